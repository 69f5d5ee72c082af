"""What the worker does with one Kafka message, without Faust.

:class:`Processor` decodes and validates a message, applies the engine to the supporter's
state and says what to send. It never writes the state store itself: new states wait in a
write-back cache (:meth:`Processor.take_dirty`) until the batch's outputs are on Kafka, and
the batch pipeline (:mod:`relmon.streaming.pipeline`) persists them; see there for the order.

Nothing raises out of :meth:`Processor.handle`. Every message ends as exactly one of:

* **applied** — its outputs (suppression records, alerts) are returned, its state cached;
* **duplicate** — its ``event_id`` is already in the supporter's state: nothing to do;
* **re-routed** — its Kafka key is missing or is not its ``supporter_id``, or it sits on a
  partition other than its supporter's: it is sent again, unchanged, to the same topic with
  the supporter's key and partition (murmur2, as Kafka's Java client and aiokafka compute
  it), and applied when that copy arrives. So no event is applied on a partition that does
  not own its supporter, and an opt-out sent without a key is still honoured;
* **dead letter** — it cannot be decoded or validated, is dated too far ahead of the
  worker's clock, the engine cannot process it, or it is *late*: older than anything the
  supporter's state still keeps, so it can no longer change a decision (kind ``late``).
  A dead letter carries the message's coordinates and the reason, and as much of the
  original as Kafka accepts (:func:`dead_letter`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

import orjson
import structlog
from aiokafka.partitioner import murmur2

from relmon.domain import (
    DeadLetter,
    Engine,
    Event,
    Outcome,
    SupporterState,
    encode_alert,
    encode_dead_letter,
    encode_record,
    parse_event,
)
from relmon.domain.expiry import expire_due
from relmon.errors import InvalidEvent
from relmon.streaming.view import DecisionView

MAX_EXPIRY_STEPS = 32  # successive untils handled per supporter and tick (bounded work)
# A dead letter must fit in one Kafka message: the broker's and the producer's default limit
# is about 1 MB (message.max.bytes 1,048,588; max.request.size 1,048,576). Keep well below.
MAX_DEAD_LETTER_BYTES = 900_000
MAX_ERROR_CHARS = 2_000
MAX_DLQ_KEY_BYTES = 256
log = structlog.get_logger(__name__)


class StateStore(Protocol):
    """Per-supporter state bytes, keyed by supporter id (read only: the pipeline writes)."""

    def get(self, key: str) -> bytes | None: ...


@dataclass(frozen=True)
class Emit:
    """One message to send: which output (``suppressions``, ``alerts``, ``dlq``, or
    ``reroute`` with its own ``topic`` and ``partition``), key and value."""

    output: str
    key: bytes | None
    value: bytes
    topic: str | None = None
    partition: int | None = None


@dataclass
class Result:
    """What handling one message produced, for the pipeline and for metrics.

    ``status`` is ``ok``, ``duplicate``, ``rerouted``, ``late`` or ``dead_letter``.
    """

    emits: list[Emit] = field(default_factory=list)
    event: Event | None = None
    status: str = "ok"
    error_kind: str | None = None
    outcome: Outcome | None = None
    # the event's type when it could be read though the event was refused (a dead letter):
    # the metrics then count it under its type, not "unknown"
    event_type: str | None = None
    new_reasons: list[str] = field(default_factory=list)


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as Java and aiokafka).

    Cached: one event asks it several times (its routing, the expiry index, the store and
    the changelog), and pure-Python murmur2 costs about 1.7 µs a call.
    """
    return (int(murmur2(key.encode())) & 0x7FFFFFFF) % partitions


@dataclass
class ExpiryIndex:
    """Supporters whose decision changes by time alone, and when (epoch seconds, kept as
    ints: a million entries), grouped by partition."""

    partitions: int
    due: dict[int, dict[str, int]] = field(default_factory=dict)
    built: bool = False

    def note(self, state: SupporterState) -> None:
        part = self.due.setdefault(partition_for(state.supporter_id, self.partitions), {})
        if state.wake is None:
            part.pop(state.supporter_id, None)
        else:
            part[state.supporter_id] = state.wake

    def due_in(self, partition: int, now: datetime) -> list[str]:
        part = self.due.get(partition, {})
        t = now.timestamp()
        return sorted(sid for sid, when in part.items() if when <= t)

    def __len__(self) -> int:
        return sum(len(p) for p in self.due.values())


def codes_in_force(state: SupporterState) -> frozenset[str]:
    """The reason codes of the last record emitted for this supporter, if it suppressed."""
    if state.last is None or not state.last[0]:
        return frozenset()
    return frozenset(code for code, _until, _detail in state.last[1])


class SuppressionCounts:
    """Current suppressions among this worker's supporters, per partition: by reason, and
    suppressed supporters. Kept up to date as records are emitted, so a metrics scrape reads
    them without scanning the table. Per partition, because each worker exports only the
    partitions it owns and Prometheus sums them across workers (a partition that just moved
    may be exported by two workers for a scrape; the dashboard takes the max per partition)."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.codes: dict[str, frozenset[str]] = {}
        self.by_partition: dict[int, Counter[str]] = {}
        self.supporters: Counter[int] = Counter()  # suppressed supporters per partition
        # one frozenset object per distinct set of codes, shared by every supporter with
        # it (a million suppressed supporters would otherwise hold a million sets)
        self._shared: dict[frozenset[str], frozenset[str]] = {}

    def clear(self) -> None:
        self.codes.clear()
        self.by_partition.clear()
        self.supporters.clear()

    def set(self, supporter_id: str, codes: frozenset[str]) -> list[str]:
        """Record the supporter's reasons in force; returns the codes that are new."""
        old = self.codes.pop(supporter_id, frozenset())
        if not old and not codes:
            return []
        partition = partition_for(supporter_id, self.partitions)
        by_reason = self.by_partition.setdefault(partition, Counter())
        if codes:
            self.codes[supporter_id] = self._shared.setdefault(codes, codes)
        self.supporters[partition] += bool(codes) - bool(old)
        by_reason.subtract(old)
        by_reason.update(codes)
        return sorted(codes - old)

    def update(self, supporter_id: str, outcome: Outcome) -> list[str]:
        new: list[str] = []
        for record in outcome.records:
            codes = frozenset(r.code for r in record.reasons) if record.suppressed else frozenset()
            new += self.set(supporter_id, codes) or ([] if record.suppressed else ["LIFTED"])
        return new

    def snapshot(self) -> dict[str, int]:
        """Suppressed supporters by reason, all partitions held here."""
        total: Counter[str] = Counter()
        for by_reason in self.by_partition.values():
            total.update(by_reason)
        return {code: n for code, n in total.items() if n > 0}

    def per_partition(self) -> dict[int, tuple[int, dict[str, int]]]:
        """Partition -> (suppressed supporters, {reason: supporters}), for the metrics."""
        return {
            partition: (
                self.supporters[partition],
                {code: n for code, n in by_reason.items() if n > 0},
            )
            for partition, by_reason in self.by_partition.items()
        }


def dead_letter(
    *,
    error: str,
    kind: str,
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    policy_version: str,
    field_name: str | None = None,
    limit: int = MAX_DEAD_LETTER_BYTES,
) -> bytes:
    """The encoded dead letter of one message, never larger than ``limit`` bytes.

    It keeps the original whole when that fits; otherwise the first bytes that fit, with
    ``original_truncated`` true. Its size and SHA-256 always identify the whole original.
    """
    original = value or b""
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + f"… ({len(error) - MAX_ERROR_CHARS} more characters)"
    letter = DeadLetter(
        error=error,
        kind=kind,
        field=field_name,
        source=topic,
        partition=partition,
        offset=offset,
        line=None,
        original_base64="",
        policy_version=policy_version,
        original_size=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
        original_truncated=False,
    )
    # base64 makes 4 characters of 3 bytes; JSON escapes none of them
    room = (limit - len(encode_dead_letter(letter)) - 8) // 4 * 3
    kept = original if len(original) <= room else original[: max(room, 0)]
    whole = letter.model_copy(
        update={
            "original_base64": base64.b64encode(kept).decode("ascii"),
            "original_truncated": len(kept) < len(original),
        }
    )
    return encode_dead_letter(whole)


def readable_type(value: bytes | None) -> str | None:
    """The ``type`` of a refused message when it is a JSON object naming one, else None."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    kind = doc.get("type") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None


class Processor:
    """Decode → apply the engine → cache the new state → say what to emit. One per worker."""

    def __init__(
        self,
        engine: Engine,
        store: StateStore,
        *,
        partitions: int,
        max_future: timedelta = timedelta(days=1),
    ) -> None:
        self.engine = engine
        self.store = store
        self.partitions = partitions
        self.max_future = max_future
        self.expiry = ExpiryIndex(partitions)
        self.suppressions = SuppressionCounts(partitions)
        # new states of the batch in hand, not yet persisted (read before the store)
        self.dirty: dict[str, SupporterState] = {}
        # the states of the previous batch while the pipeline persists them (read after
        # `dirty`, before the store; see relmon.streaming.pipeline)
        self.persisting: dict[str, SupporterState] = {}
        # what the API answers, per supporter; forgotten whenever a state changes
        self.view = DecisionView(engine, self.load)

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        *,
        now: datetime | None = None,
    ) -> Result:
        """Handle one input message; ``now`` (the worker's clock) refuses future-dated events."""
        try:
            text_key = key.decode("utf-8") if key is not None else None
        except UnicodeDecodeError:
            return self._dead(
                topic, partition, offset, key, value, "key: not valid UTF-8", "encoding"
            )
        try:
            event = parse_event(value if value is not None else b"")
        except InvalidEvent as exc:
            dead = self._dead(topic, partition, offset, key, value, str(exc), exc.kind, exc.field)
            dead.event_type = readable_type(value)
            return dead
        if now is not None and event.occurred_at > now + self.max_future:
            # One event dated far ahead would move the supporter's clock there and make every
            # real event after it look too old to count: refuse it instead.
            error = (
                f"occurred_at: {event.occurred_at.isoformat()} is more than "
                f"{self.max_future} ahead of the worker's clock ({now.isoformat()}); "
                "check the producer's clock and time zone"
            )
            dead = self._dead(topic, partition, offset, key, value, error, "future", "occurred_at")
            dead.event_type = event.type
            return dead
        sid = event.supporter_id
        home = partition_for(sid, self.partitions)
        if text_key != sid or partition != home:
            return self._reroute(topic, partition, offset, text_key, value or b"", event, home)
        try:
            state = self.load(sid)
            if state is not None and state.has_event(event.event_id):
                return Result(event=event, status="duplicate")
            outcome = self.engine.apply(state, event)
        except Exception as exc:
            # The engine is pure, so an exception here is caused by this event (or by the
            # supporter's stored state): dead-letter it, with the trace in the log, rather
            # than stop the worker and be handed the same message forever.
            log.exception("engine failed on an event", event_id=event.event_id)
            error = f"the engine could not process this event: {type(exc).__name__}: {exc}"
            dead = self._dead(topic, partition, offset, key, value, error, "processing")
            dead.event_type = event.type
            return dead
        if outcome.late is not None:
            dead = self._dead(topic, partition, offset, key, value, outcome.late, "late")
            dead.event, dead.status = event, "late"
            return dead
        result = Result(event=event, outcome=outcome)
        if outcome.state is not state:
            self.dirty[sid] = outcome.state
            self.expiry.note(outcome.state)
            self.view.forget(sid)
        result.new_reasons = self.suppressions.update(sid, outcome)
        result.emits.extend(self._emits(sid, outcome))
        return result

    def load(self, supporter_id: str) -> SupporterState | None:
        """The supporter's latest state (this batch's, else the one being persisted, else the
        store's), or None if never seen."""
        cached = self.dirty.get(supporter_id)
        if cached is None:
            cached = self.persisting.get(supporter_id)
        if cached is not None:
            return cached
        raw = self.store.get(supporter_id)
        return SupporterState.from_bytes(raw) if raw is not None else None

    def current_record(self, supporter_id: str) -> Emit | None:
        """The supporter's current decision as a suppression record (decided at its latest
        event time), or None if never seen: to re-assert what the topic should end with."""
        state = self.load(supporter_id)
        if state is None:
            return None
        record = self.engine.decision(state, supporter_id, datetime.fromtimestamp(state.clock, UTC))
        return Emit("suppressions", supporter_id.encode(), encode_record(record))

    def take_dirty(self) -> dict[str, SupporterState]:
        """The states changed since the last call, to persist; the cache starts empty again."""
        dirty, self.dirty = self.dirty, {}
        return dirty

    def expire(self, partition: int, now: datetime) -> Iterator[Emit]:
        """Lifts (or records with the remaining reasons) for this partition's due supporters.

        Each change is decided at the moment it falls due (the reason's ``until``), not at
        the tick that noticed it: after downtime a lift still carries its true
        ``decided_at``, and the supporter's clock is not pushed to the wall clock.
        """
        for sid in self.expiry.due_in(partition, now):
            loaded = self.load(sid)
            if loaded is None:
                self.expiry.due.get(partition, {}).pop(sid, None)
                continue
            state = loaded
            for _due, outcome in expire_due(self.engine, state, now.timestamp(), MAX_EXPIRY_STEPS):
                state = outcome.state
                self.suppressions.update(sid, outcome)
                yield from self._emits(sid, outcome)
            if state is not loaded:
                self.dirty[sid] = state
                self.view.forget(sid)
            self.expiry.note(state)

    def rebuild_expiry(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Rebuild the expiry index and the suppression counts from every local state (at
        start-up and after a rebalance, when partitions moved)."""
        for _ in self._rebuild(items):
            pass
        return len(self.expiry)

    async def rebuild_expiry_async(
        self, items: Iterable[tuple[str, bytes]], slice_s: float = 0.005
    ) -> int:
        """:meth:`rebuild_expiry` in slices of ``slice_s``, yielding to the event loop in
        between: a million states take seconds to read, and requests and batches go on
        meanwhile (a state a batch changes during the rebuild is noted by the batch)."""
        started = time.perf_counter()
        for _ in self._rebuild(items):
            if time.perf_counter() - started > slice_s:
                await asyncio.sleep(0)
                started = time.perf_counter()
        return len(self.expiry)

    def _rebuild(self, items: Iterable[tuple[str, bytes]]) -> Iterator[None]:
        self.expiry.built = False
        self.expiry.due.clear()
        self.suppressions.clear()
        self.view.clear()
        for sid, raw in items:
            if sid not in self.dirty and sid not in self.persisting:  # else newer below
                state = SupporterState.from_bytes(raw)
                self.expiry.note(state)
                self.suppressions.set(sid, codes_in_force(state))
            yield
        for sid, state in {**self.persisting, **self.dirty}.items():  # not in the store yet
            self.expiry.note(state)
            self.suppressions.set(sid, codes_in_force(state))
        self.expiry.built = True

    @staticmethod
    def _emits(supporter_id: str, outcome: Outcome) -> Iterator[Emit]:
        key = supporter_id.encode()
        for record in outcome.records:
            yield Emit("suppressions", key, encode_record(record))
        for alert in outcome.alerts:
            yield Emit("alerts", key, encode_alert(alert))

    def _reroute(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: str | None,
        value: bytes,
        event: Event,
        home: int,
    ) -> Result:
        if key is None:
            why = "the message has no key"
        elif key != event.supporter_id:
            why = f"its key {key[:80]!r} is not its supporter_id"
        else:
            why = f"it arrived on partition {partition}, not its supporter's"
        log.info(
            "event re-routed to its supporter's partition",
            event_id=event.event_id,
            reason=why,
            to_partition=home,
        )
        sid = event.supporter_id.encode()
        emit = Emit("reroute", sid, value, topic=topic, partition=home)
        return Result(emits=[emit], event=event, status="rerouted")

    def _dead(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: str,
        kind: str,
        field_name: str | None = None,
    ) -> Result:
        letter = dead_letter(
            error=error,
            kind=kind,
            topic=topic,
            partition=partition,
            offset=offset,
            value=value,
            policy_version=self.engine.policy.version,
            field_name=field_name,
        )
        if key is None or len(key) > MAX_DLQ_KEY_BYTES:
            key = hashlib.sha256(value or b"").hexdigest()[:16].encode()
        return Result(emits=[Emit("dlq", key, letter)], status="dead_letter", error_kind=kind)
