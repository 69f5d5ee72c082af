"""``relmon replay --input FILE.jsonl --out DIR``: the engine over a JSONL file.

What is written to ``DIR``:

* ``suppressions.jsonl``: every suppression record, in the order emitted;
* ``alerts.jsonl``: every alert;
* ``dead_letters.jsonl``: each bad line with its line number and error (``source`` is the
  input path, ``partition``/``offset`` are null);
* ``summary.json``: the counts below and the policy version (no timings, so two replays of
  the same input are byte-identical, all four files).

Replay time is event time. The replay keeps a watermark, the latest ``occurred_at`` read so
far; before applying an event that moves it forward, every supporter whose decision changes
by time alone at or before the new watermark is re-decided at exactly that time (a lift,
``decided_at`` = the expiry time). Nothing expires after the last event of the input.

Blank lines are skipped and counted; every other line that cannot be decoded or validated
becomes a dead letter, and the replay goes on.
"""

from __future__ import annotations

import base64
import gc
import heapq
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from tqdm import tqdm

from relmon.domain import (
    DeadLetter,
    Engine,
    Policy,
    SupporterState,
    encode_alert,
    encode_dead_letter,
    encode_record,
    parse_event,
)
from relmon.domain.rules import utc
from relmon.errors import InputFileError, InvalidEvent

Sink = Callable[[bytes], object]


@dataclass
class ReplayStats:
    """Counts of one replay (``seconds`` is wall time, reported but never written)."""

    lines: int = 0
    blank: int = 0
    valid: int = 0
    dead_letters: int = 0
    records: int = 0
    alerts: int = 0
    supporters: int = 0
    policy_version: str = ""
    seconds: float = field(default=0.0, compare=False)

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, object]:
        data = asdict(self)
        del data["seconds"]
        return data


class Replayer:
    """Feeds lines through parse → engine, keeps the states and the event-time expiries."""

    def __init__(
        self, policy: Policy, source: str, records: Sink, alerts: Sink, dead: Sink
    ) -> None:
        self.engine = Engine(policy)
        self.policy_version = policy.version
        self.source = source
        self.states: dict[str, SupporterState] = {}
        self.stats = ReplayStats(policy_version=policy.version)
        self._records, self._alerts, self._dead = records, alerts, dead
        self._due: list[tuple[int, str]] = []  # (wake, supporter_id), stale entries skipped
        self._watermark = -(1 << 62)

    def feed(self, line: bytes, number: int) -> None:
        """Process one input line (``number`` counts from 1)."""
        stats = self.stats
        stats.lines += 1
        try:
            event = parse_event(line)
        except InvalidEvent as exc:
            if not line.strip():
                stats.blank += 1
                return
            self._dead_letter(line, number, exc)
            return
        stats.valid += 1
        t = int(event.occurred_at.timestamp())
        if t > self._watermark:
            if self._due and self._due[0][0] <= t:
                self._expire_until(t)
            self._watermark = t
        sid = event.supporter_id
        state = self.states.get(sid)
        outcome = self.engine.apply(state, event)
        new = outcome.state
        if new is not state:
            if state is None:
                stats.supporters += 1
            self.states[sid] = new
            if new.wake is not None and (state is None or new.wake != state.wake):
                heapq.heappush(self._due, (new.wake, sid))
        if outcome.records:
            stats.records += len(outcome.records)
            for record in outcome.records:
                self._records(encode_record(record))
        if outcome.alerts:
            stats.alerts += len(outcome.alerts)
            for alert in outcome.alerts:
                self._alerts(encode_alert(alert))

    def _expire_until(self, t: int) -> None:
        due = self._due
        while due and due[0][0] <= t:
            wake, sid = heapq.heappop(due)
            state = self.states[sid]
            if state.wake != wake:
                continue  # superseded by a later decision
            outcome = self.engine.expire(state, utc(wake))
            self.states[sid] = outcome.state
            if outcome.state.wake is not None:
                heapq.heappush(due, (outcome.state.wake, sid))
            self.stats.records += len(outcome.records)
            for record in outcome.records:
                self._records(encode_record(record))

    def _dead_letter(self, line: bytes, number: int, exc: InvalidEvent) -> None:
        self.stats.dead_letters += 1
        letter = DeadLetter(
            error=str(exc),
            kind=exc.kind,
            field=exc.field,
            source=self.source,
            partition=None,
            offset=None,
            line=number,
            original_base64=base64.b64encode(line).decode("ascii"),
            policy_version=self.policy_version,
        )
        self._dead(encode_dead_letter(letter))


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Let the cyclic garbage collector run far less often while replaying.

    A replay holds one state per supporter: hundreds of thousands of small tuples and lists
    that never form cycles (reference counting frees them). With the default thresholds the
    collector walks them again and again and costs about a third of the replay's time; a
    gen-0 threshold of 100,000 makes that negligible. Restored on exit.
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def read_lines(path: Path) -> Iterable[bytes]:
    """The lines of ``path`` without their line ends."""
    with path.open("rb") as handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


def replay_file(
    input_path: str | Path, out_dir: str | Path, policy: Policy, *, progress: bool
) -> ReplayStats:
    """Replay one JSONL file into ``out_dir``; see the module docstring."""
    source = Path(input_path)
    out = Path(out_dir)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise InputFileError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    if not source.is_file():
        raise InputFileError(f"{source}: not a file")
    if size == 0:
        raise InputFileError(f"{source}: the file is empty")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(
            f"{out}: cannot create the output directory: {exc.strerror or exc}"
        ) from None
    started = time.perf_counter()
    with (
        fewer_gc_passes(),
        (out / "suppressions.jsonl").open("wb") as records,
        (out / "alerts.jsonl").open("wb") as alerts,
        (out / "dead_letters.jsonl").open("wb") as dead,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc="replay",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        replayer = Replayer(
            policy,
            str(source),
            lambda b: records.write(b + b"\n"),
            lambda b: alerts.write(b + b"\n"),
            lambda b: dead.write(b + b"\n"),
        )
        pending = 0
        try:
            for number, line in enumerate(read_lines(source), start=1):
                replayer.feed(line, number)
                pending += len(line) + 1
                if pending >= 1 << 20:
                    bar.update(pending)
                    pending = 0
        except OSError as exc:
            raise InputFileError(f"{source}: read failed: {exc.strerror or exc}") from None
        bar.update(pending)
    stats = replayer.stats
    stats.seconds = time.perf_counter() - started
    (out / "summary.json").write_bytes(
        orjson.dumps(stats.counts(), option=orjson.OPT_INDENT_2) + b"\n"
    )
    return stats
