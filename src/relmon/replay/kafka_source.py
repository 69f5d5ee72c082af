"""``relmon replay --from-kafka``: the four input topics for a time range, in event-time order.

How a range is read:

* The consumer has no group (``group_id=None``) and assigns the partitions itself: it never
  commits an offset, so it never touches the live worker's offsets (or anyone else's).
* ``--since``/``--until`` select messages by their Kafka timestamp (the time the producer
  stamped: normally when the event was reported). ``offsets_for_times`` finds, in each
  partition of each prefixed input topic, the first offset at or after ``since``; the
  partition is read until a message stamped at or after ``until``, or its end offset as of
  the start of the read (so a busy topic does not keep the replay going).
* Every message is decoded and validated as the worker does (the key must equal the
  ``supporter_id``); the valid events are then applied in event-time order, sorted by
  ``(occurred_at, topic, partition, offset)``: messages must be parsed to know their
  ``occurred_at``, so the range is held in memory. Bad messages become dead letters naming
  their topic, partition and offset, exactly like the worker's.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from tqdm import tqdm

from relmon.domain import parse_event
from relmon.domain.rules import instant
from relmon.errors import BrokerError, ConfigError, InputFileError, InvalidEvent
from relmon.replay import TIME_HELP
from relmon.replay.file_replay import (
    Event,
    PolicyChoice,
    ReplayStats,
    Session,
    fewer_gc_passes,
    no_valid_events,
)
from relmon.settings import Settings
from relmon.streaming.admin import CONNECT_ERRORS, unreachable
from relmon.topics import INPUT_TOPICS


def parse_time(text: str, flag: str) -> datetime:
    """An RFC 3339 timestamp with an offset, or a date (midnight UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected {TIME_HELP}") from None
    if value.tzinfo is None:
        raise ConfigError(f"{flag} {text!r}: a timestamp needs a UTC offset, e.g. {text}Z")
    return value


def check_range(since: datetime, until: datetime) -> None:
    if since >= until:
        raise ConfigError(
            f"--since {_iso(since)} is not before --until {_iso(until)}: the range is empty"
        )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Range:
    """What was read: valid events in event-time order, and the bad messages."""

    topics: list[str]
    # (instant, topic, partition, offset, event, the message's value as read)
    events: list[tuple[float, str, int, int, Event, bytes]] = field(default_factory=list)
    bad: list[tuple[Message, InvalidEvent]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.bad)


def topic_names(prefix: str) -> list[str]:
    return [f"{prefix}{t}" for t in INPUT_TOPICS]


def describe(settings: Settings, prefix: str, since: datetime, until: datetime) -> str:
    return (
        f"kafka {settings.kafka_bootstrap} topics {', '.join(topic_names(prefix))} "
        f"from {_iso(since)} until {_iso(until)}"
    )


def empty_range(settings: Settings, prefix: str, since: datetime, until: datetime) -> str:
    return (
        f"no events between {_iso(since)} and {_iso(until)} on topics "
        f"{', '.join(topic_names(prefix))} at {settings.kafka_bootstrap} (the range selects "
        "messages by their Kafka timestamp)"
    )


def read_range(
    settings: Settings,
    prefix: str,
    since: datetime,
    until: datetime,
    *,
    progress: bool,
    only_key: str | None = None,
    stall_s: float = 30.0,
) -> Range:
    """Read and sort the range (see the module docstring); ``only_key`` reads only the
    partition that key is in (the contract keys every message by ``supporter_id``)."""
    return asyncio.run(
        _read(settings, prefix, since, until, progress=progress, only_key=only_key, stall=stall_s)
    )


async def _read(
    settings: Settings,
    prefix: str,
    since: datetime,
    until: datetime,
    *,
    progress: bool,
    only_key: str | None,
    stall: float,
) -> Range:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    since_ms, until_ms = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        group_id=None,  # no group: nothing is ever committed
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        await asyncio.wait_for(consumer.start(), 15)
    except CONNECT_ERRORS as exc:
        await consumer.stop()
        raise unreachable(settings, exc) from exc
    names = topic_names(prefix)
    result = Range(names)
    raw: list[Message] = []
    try:
        counts = await _partition_counts(settings, names)
        missing = [t for t in names if t not in counts]
        if missing:
            raise ConfigError(
                f"topic(s) {', '.join(missing)} do not exist at {settings.kafka_bootstrap}; "
                "is --prefix right?"
            )
        tps = []
        for name in names:
            parts = list(range(counts[name]))
            if only_key is not None and parts:
                from relmon.streaming.processor import partition_for

                parts = [partition_for(only_key, len(parts))]
            tps += [TopicPartition(name, p) for p in parts]
        consumer.assign(tps)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        todo = {}
        for tp in tps:
            hit = found.get(tp)
            if hit is not None and hit.offset < ends[tp]:
                consumer.seek(tp, hit.offset)
                todo[tp] = ends[tp]
        paused = [tp for tp in tps if tp not in todo]
        if paused:
            consumer.pause(*paused)
        total = sum(ends[tp] - found[tp].offset for tp in todo)
        with tqdm(
            total=total, unit=" msg", desc="kafka", disable=not progress, file=sys.stderr
        ) as bar:
            last_progress = time.monotonic()
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        if tp not in todo:
                            break
                        if r.offset >= todo[tp] or r.timestamp >= until_ms:
                            done(consumer, todo, tp)
                            break
                        bar.update(1)
                        if r.timestamp >= since_ms:
                            raw.append(Message(tp.topic, tp.partition, r.offset, r.key, r.value))
                    if records:
                        last_progress = time.monotonic()
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        done(consumer, todo, tp)
                if todo and time.monotonic() - last_progress > stall:
                    raise BrokerError(
                        f"no message from Kafka at {settings.kafka_bootstrap} for {stall:.0f} s "
                        f"while {len(todo)} partition(s) still had messages to read"
                    )
    except KafkaError as exc:
        raise BrokerError(
            f"Kafka at {settings.kafka_bootstrap} failed ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        await consumer.stop()
    for m in raw:
        try:
            key = m.key.decode("utf-8") if m.key is not None else None
        except UnicodeDecodeError:
            result.bad.append((m, InvalidEvent("key: not valid UTF-8", kind="encoding")))
            continue
        value = m.value if m.value is not None else b""
        try:
            event = parse_event(value, key=key)
        except InvalidEvent as exc:
            result.bad.append((m, exc))
            continue
        result.events.append(
            (instant(event.occurred_at), m.topic, m.partition, m.offset, event, value)
        )
    result.events.sort(key=lambda e: e[:4])
    return result


async def _partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    from relmon.streaming.admin import partition_counts

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        return await partition_counts(admin, names)
    finally:
        await admin.close()


def done(consumer: object, todo: dict[object, int], tp: object) -> None:
    todo.pop(tp, None)
    consumer.pause(tp)  # type: ignore[attr-defined]


def replay_kafka(
    settings: Settings,
    prefix: str,
    since: datetime,
    until: datetime,
    out_dir: str | Path,
    policy: PolicyChoice,
    *,
    progress: bool,
    compare: PolicyChoice | None = None,
    outcomes: list[object] | None = None,
) -> ReplayStats:
    """Replay a time range of the input topics into ``out_dir``, like a file replay."""
    check_range(since, until)
    started = time.perf_counter()
    read = read_range(settings, prefix, since, until, progress=progress)
    if not len(read):
        raise InputFileError(empty_range(settings, prefix, since, until))
    out = Path(out_dir)
    source = describe(settings, prefix, since, until)
    with fewer_gc_passes(), Session(out, policy, source, compare) as session:
        stats = session.primary.stats
        for m, exc in sorted(read.bad, key=lambda b: (b[0].topic, b[0].partition, b[0].offset)):
            stats.lines += 1
            session.primary.dead_letter(
                m.value or b"", exc, source=m.topic, partition=m.partition, offset=m.offset
            )
        for at, topic, partition, offset, event, value in read.events:
            stats.lines += 1
            # a late event's dead letter carries the message as read, and where it was
            session.apply(event, int(at), value, topic, partition, offset)
        stats, rows = session.finish(time.perf_counter() - started)
    if outcomes is not None:
        outcomes.extend(rows)
    if stats.valid == 0:
        raise InputFileError(no_valid_events(stats, session.primary.first_error, source, out))
    return stats
