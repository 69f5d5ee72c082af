"""``relmon backfill``: load history files into the worker's history topic, in event time.

The files are merged exactly as ``relmon replay`` merges them
(:class:`relmon.replay.file_replay.EventTimeMerge`: the order of ``(occurred_at, event_id,
line bytes)``), and each valid line is produced, byte for byte, to ``relmon.history`` keyed by
its ``supporter_id``, whatever its type. One topic keyed by supporter puts each supporter's
events in one partition in event-time order, so the worker applies them in the replay's
order. Loading the four type topics instead (one after another, or even merged) lets the
worker read one topic far ahead of another: it keeps bounded state and judges an old fact
against the supporter's latest event, so the result would differ from a replay.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relmon.errors import BrokerError, ConfigError, InputFileError, InvalidEvent

SHOWN_BAD = 10  # invalid lines listed in the summary; --dead-letters FILE keeps them all

DESCRIPTION = """\
Load history (JSONL files of contract input events, e.g. one export per topic) into the live
worker so that it reaches the same decisions as `relmon replay` of the same files. The files
are merged in event time with the replay's merge (order: occurred_at as an instant, then
event_id, then the line's bytes), and each valid line is produced unchanged, in that order,
to the history topic (relmon.history, with the prefix) keyed by supporter_id: each
supporter's events then reach the worker in event-time order, whatever their types. A file
whose events never go back in time is streamed; any other is read whole and sorted in memory
first (its size plus about 300 bytes a line).

Invalid lines are skipped, never produced: the summary counts them and lists the first ones
with file and line number; --dead-letters FILE writes every one of them as a dead letter
(the replay's dead_letters.jsonl format). Kafka message timestamps are the produce time
(topic retention would otherwise delete old history at once), so `relmon replay
--from-kafka --since` selects backfilled events by when they were loaded.

The history topic must exist (`relmon topics create`). Exit status 1 with the reason when
an argument or file is wrong, Kafka cannot be reached, a topic is missing, or no line is a
valid event."""

EPILOG = """\
examples:
  relmon topics create
  relmon backfill --input calls.jsonl --input consents.jsonl --input emails.jsonl \\
      --input donations.jsonl --bootstrap kafka:9092 --prefix prod.
  relmon backfill --input history.jsonl --dead-letters rejected.jsonl"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "backfill",
        help="load history files into the history topic, merged in event time",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        metavar="FILE.jsonl",
        action="append",
        required=True,
        help="a file of input events, one JSON object a line; repeat for several files",
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: RELMON_KAFKA_BOOTSTRAP)",
    )
    parser.add_argument(
        "--prefix", default=None, help="topic name prefix (default: RELMON_TOPIC_PREFIX)"
    )
    parser.add_argument(
        "--dead-letters",
        metavar="FILE.jsonl",
        type=Path,
        default=None,
        help="write every invalid line there as a dead letter (default: only listed)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal anyway)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from relmon.settings import Settings

    try:
        settings = Settings(**({"kafka_bootstrap": args.bootstrap} if args.bootstrap else {}))
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigError(f"--bootstrap / RELMON_* settings: {exc}") from None
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    progress = not args.no_progress and sys.stderr.isatty()
    result = backfill(
        args.input, settings, prefix, progress=progress, dead_letters=args.dead_letters
    )
    print(result.summary())
    if result.valid == 0:
        raise InputFileError(
            f"none of the {result.lines - result.blank:,} non-blank lines is a valid event; "
            "nothing was produced"
        )
    return 0


class Backfill:
    """What a backfill did: produced per topic, lines read, invalid lines."""

    def __init__(self, inputs: list[str], topics: list[str]) -> None:
        self.inputs = inputs
        self.produced: Counter[str] = Counter(dict.fromkeys(topics, 0))
        self.lines = 0
        self.blank = 0
        self.valid = 0
        self.bad: list[str] = []  # the first SHOWN_BAD, "file line N: error"
        self.bad_count = 0
        self.seconds = 0.0
        self.dead_letters: Path | None = None

    def summary(self) -> str:
        total = sum(self.produced.values())
        rate = total / self.seconds if self.seconds > 0 else 0.0
        blank = f" ({self.blank:,} blank)" if self.blank else ""
        out = [
            f"relmon backfill: {self.lines:,} lines read{blank} from {len(self.inputs)} "
            f"file(s), {total:,} events produced in event time in {self.seconds:.1f} s "
            f"({rate:,.0f} events/s), {self.bad_count:,} invalid lines skipped"
        ]
        width = max(len(t) for t in self.produced)
        out += [f"  {t:{width}} {n:>10,}" for t, n in sorted(self.produced.items())]
        if self.bad_count:
            more = self.bad_count - len(self.bad)
            out.append("invalid lines (not produced):")
            out += [f"  {b}" for b in self.bad]
            if more:
                out.append(f"  ... and {more:,} more")
            if self.dead_letters is not None:
                out.append(f"every invalid line is in {self.dead_letters}")
            elif more:
                out.append("  (--dead-letters FILE.jsonl writes them all)")
        return "\n".join(out)


def backfill(
    inputs: list[str],
    settings: Any,
    prefix: str,
    *,
    progress: bool,
    dead_letters: Path | None = None,
) -> Backfill:
    """Merge ``inputs`` in event time and produce each valid line to its topic."""
    from relmon.replay.file_replay import EventTimeMerge
    from relmon.topics import HISTORY

    result = Backfill(inputs, [prefix + HISTORY])
    result.dead_letters = dead_letters
    dead = None
    if dead_letters is not None:
        try:
            dead = dead_letters.open("wb")
        except OSError as exc:
            raise ConfigError(
                f"--dead-letters {dead_letters}: cannot write it: {exc.strerror or exc}"
            ) from None

    def on_bad(index: int, number: int, raw: bytes, exc: InvalidEvent) -> None:
        result.bad_count += 1
        if len(result.bad) < SHOWN_BAD:
            result.bad.append(f"{inputs[index]} line {number}: {exc}")
        if dead is not None:
            dead.write(_dead_letter(raw, exc, inputs[index], number) + b"\n")

    merge = EventTimeMerge(inputs, on_bad)
    try:
        merge.check()  # every file readable text before anything is produced
        started = time.perf_counter()
        asyncio.run(_produce(merge, settings, prefix, result, progress))
        result.seconds = time.perf_counter() - started
    finally:
        if dead is not None:
            dead.close()
    result.lines, result.blank = merge.lines, merge.blank
    return result


async def _produce(
    merge: Any, settings: Any, prefix: str, result: Backfill, progress: bool
) -> None:
    from relmon.replay.file_replay import bytes_bar
    from relmon.simulation.kafka_sink import produce_messages
    from relmon.topics import HISTORY

    history = prefix + HISTORY
    await _check_topics(settings, list(result.produced))
    with bytes_bar(merge.total_bytes, "backfill", progress) as bar:

        def messages() -> Iterator[tuple[str, bytes, bytes]]:
            shown = 0
            for count, (_, _, raw, _, _, event) in enumerate(merge, start=1):
                result.valid += 1
                yield (history, event.supporter_id.encode("utf-8"), raw)
                if count & 1023 == 0:
                    bar.update(merge.bytes_read - shown)
                    shown = merge.bytes_read
            bar.update(merge.bytes_read - shown)

        await produce_messages(messages(), settings, counts=result.produced)


async def _check_topics(settings: Any, names: list[str]) -> None:
    """Fail before producing anything when Kafka is unreachable or an input topic is missing."""
    from aiokafka.admin import AIOKafkaAdminClient

    from relmon.streaming.admin import CONNECT_ERRORS, partition_counts, unreachable

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), 15)
    except CONNECT_ERRORS as exc:
        await admin.close()
        raise unreachable(settings, exc) from exc
    try:
        counts = await partition_counts(admin, names)
    except CONNECT_ERRORS as exc:
        raise BrokerError(
            f"Kafka at {settings.kafka_bootstrap} did not describe the input topics "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        await admin.close()
    missing = [n for n in names if n not in counts]
    if missing:
        raise ConfigError(
            f"topic(s) {', '.join(missing)} do not exist at {settings.kafka_bootstrap}; "
            "create them with `relmon topics create` (is --prefix right?)"
        )


def _dead_letter(raw: bytes, exc: InvalidEvent, source: str, line: int) -> bytes:
    import base64

    from relmon.domain import DeadLetter, default_policy, encode_dead_letter

    return encode_dead_letter(
        DeadLetter(
            error=str(exc),
            kind=exc.kind,
            field=exc.field,
            source=source,
            partition=None,
            offset=None,
            line=line,
            original_base64=base64.b64encode(raw).decode("ascii"),
            policy_version=default_policy().version,
        )
    )
