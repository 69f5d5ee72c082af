"""What the worker does with one Kafka message, without Faust.

The agent body stays thin: it hands each message to :class:`Processor`, which decodes and
validates it, applies the engine to the supporter's state read from a :class:`StateStore`,
writes the new state back and returns what to send. The Faust table implements
``StateStore`` in production; tests use a dict.

A message that cannot be decoded or validated, or whose Kafka key disagrees with its
``supporter_id``, becomes a dead letter; nothing raises out of :meth:`Processor.handle`.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from aiokafka.partitioner import murmur2

from relmon.domain import (
    DeadLetter,
    Engine,
    InputEvent,
    Outcome,
    SupporterState,
    encode_alert,
    encode_dead_letter,
    encode_record,
    parse_event,
)
from relmon.errors import InvalidEvent

MAX_EXPIRY_STEPS = 32  # successive untils handled per supporter and tick (bounded work)
log = structlog.get_logger(__name__)


class StateStore(Protocol):
    """Per-supporter state bytes, keyed by supporter id."""

    def get(self, key: str) -> bytes | None: ...

    def __setitem__(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class Emit:
    """One message to send: which output (``suppressions``, ``alerts``, ``dlq``), key, value."""

    output: str
    key: bytes | None
    value: bytes


@dataclass
class Result:
    """What handling one message produced, for the agent and for metrics."""

    emits: list[Emit] = field(default_factory=list)
    event: InputEvent | None = None
    error_kind: str | None = None
    outcome: Outcome | None = None
    duplicate: bool = False
    new_reasons: list[str] = field(default_factory=list)


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as Java and aiokafka)."""
    return (int(murmur2(key.encode())) & 0x7FFFFFFF) % partitions


@dataclass
class ExpiryIndex:
    """Supporters whose decision changes by time alone, and when, grouped by partition."""

    partitions: int
    due: dict[int, dict[str, datetime]] = field(default_factory=dict)
    built: bool = False

    def note(self, state: SupporterState) -> None:
        part = self.due.setdefault(partition_for(state.supporter_id, self.partitions), {})
        when = state.next_change_at
        if when is None:
            part.pop(state.supporter_id, None)
        else:
            part[state.supporter_id] = when

    def due_in(self, partition: int, now: datetime) -> list[str]:
        part = self.due.get(partition, {})
        return sorted(sid for sid, when in part.items() if when <= now)

    def __len__(self) -> int:
        return sum(len(p) for p in self.due.values())


def codes_in_force(state: SupporterState) -> frozenset[str]:
    """The reason codes of the last record emitted for this supporter, if it suppressed."""
    if state.last is None or not state.last[0]:
        return frozenset()
    return frozenset(code for code, _until, _detail in state.last[1])


class SuppressionCounts:
    """Current suppressions by reason among this worker's supporters, kept up to date as
    records are emitted, so a metrics scrape reads them without scanning the table."""

    def __init__(self) -> None:
        self.codes: dict[str, frozenset[str]] = {}
        self.by_reason: Counter[str] = Counter()

    def clear(self) -> None:
        self.codes.clear()
        self.by_reason.clear()

    def set(self, supporter_id: str, codes: frozenset[str]) -> list[str]:
        """Record the supporter's reasons in force; returns the codes that are new."""
        old = self.codes.pop(supporter_id, frozenset())
        if codes:
            self.codes[supporter_id] = codes
        self.by_reason.subtract(old)
        self.by_reason.update(codes)
        return sorted(codes - old)

    def update(self, supporter_id: str, outcome: Outcome) -> list[str]:
        new: list[str] = []
        for record in outcome.records:
            codes = frozenset(r.code for r in record.reasons) if record.suppressed else frozenset()
            new += self.set(supporter_id, codes) or ([] if record.suppressed else ["LIFTED"])
        return new

    def snapshot(self) -> dict[str, int]:
        return {code: n for code, n in self.by_reason.items() if n > 0}


class Processor:
    """Decode → apply the engine → persist → say what to emit. One per worker."""

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
        self.max_future = max_future
        self.expiry = ExpiryIndex(partitions)
        self.suppressions = SuppressionCounts()

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
            event = parse_event(value if value is not None else b"", key=text_key)
        except InvalidEvent as exc:
            return self._dead(topic, partition, offset, key, value, str(exc), exc.kind)
        if now is not None and event.occurred_at > now + self.max_future:
            # One event dated far ahead would move the supporter's clock there and make every
            # real event after it look too old to count: refuse it instead.
            error = (
                f"occurred_at: {event.occurred_at.isoformat()} is more than "
                f"{self.max_future} ahead of the worker's clock ({now.isoformat()}); "
                "check the producer's clock and time zone"
            )
            return self._dead(topic, partition, offset, key, value, error, "validation")
        state = self.load(event.supporter_id)
        if state is not None and event.event_id in state.event_ids():
            return Result(event=event, duplicate=True)
        try:
            outcome = self.engine.apply(state, event)
        except Exception as exc:
            # The engine is pure, so an exception here is caused by this event: dead-letter
            # it (and log the trace) rather than crash and be handed the same message forever.
            log.exception("engine failed on an event", event_id=event.event_id)
            error = f"the engine could not process this event: {type(exc).__name__}: {exc}"
            return self._dead(topic, partition, offset, key, value, error, "processing")
        result = Result(event=event, outcome=outcome)
        if outcome.state is not state:
            self.store[event.supporter_id] = outcome.state.to_bytes()
            self.expiry.note(outcome.state)
        result.new_reasons = self.suppressions.update(event.supporter_id, outcome)
        result.emits.extend(self._emits(event.supporter_id, outcome))
        return result

    def load(self, supporter_id: str) -> SupporterState | None:
        """The supporter's stored state, or None if never seen."""
        raw = self.store.get(supporter_id)
        return SupporterState.from_bytes(raw) if raw is not None else None

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
            for _ in range(MAX_EXPIRY_STEPS):
                due = state.next_change_at
                if due is None or due > now:
                    break
                outcome = self.engine.expire(state, due)
                if outcome.state is state and not outcome.records:
                    break
                state = outcome.state
                self.suppressions.update(sid, outcome)
                yield from self._emits(sid, outcome)
            self.store[sid] = state.to_bytes()
            self.expiry.note(state)

    def rebuild_expiry(self, items: Iterator[tuple[str, bytes]]) -> int:
        """Rebuild the expiry index and the suppression counts from every local state (at
        start-up and after a rebalance, when partitions moved)."""
        self.expiry.due.clear()
        self.suppressions.clear()
        for sid, raw in items:
            state = SupporterState.from_bytes(raw)
            self.expiry.note(state)
            self.suppressions.set(sid, codes_in_force(state))
        self.expiry.built = True
        return len(self.expiry)

    @staticmethod
    def _emits(supporter_id: str, outcome: Outcome) -> Iterator[Emit]:
        key = supporter_id.encode()
        for record in outcome.records:
            yield Emit("suppressions", key, encode_record(record))
        for alert in outcome.alerts:
            yield Emit("alerts", key, encode_alert(alert))

    def _dead(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: str,
        kind: str,
    ) -> Result:
        letter = DeadLetter(
            error=error,
            kind=kind,
            source=topic,
            partition=partition,
            offset=offset,
            line=None,
            original_base64=base64.b64encode(value or b"").decode("ascii"),
            policy_version=self.engine.policy.version,
        )
        dlq_key = key if key is not None else hashlib.sha256(value or b"").hexdigest()[:16].encode()
        return Result(emits=[Emit("dlq", dlq_key, encode_dead_letter(letter))], error_kind=kind)
