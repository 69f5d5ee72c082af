"""Event time, for the replays: many supporters' states, the watermark, and the expiries it
passes, applied one event at a time or a chunk at a time, supporter by supporter.

A replay applies events in event time and keeps a watermark, the latest event time so far.
Before an event that moves it forward, every supporter whose decision changes by time alone
at or before the new watermark is re-decided at exactly its ``wake``
(:func:`relmon.domain.expiry.expire_due`), across supporters in time order
(:class:`~relmon.domain.expiry.WakeQueue`). :class:`EventTime` does this either way:

* one event at a time: :meth:`EventTime.expire_until` before an event that moves the
  watermark, :meth:`EventTime.note` of the supporter's new ``wake`` after it (what
  ``Replayer.apply_at`` does for the Kafka replay);
* :meth:`EventTime.apply_chunk`, a run of events in that order applied supporter by
  supporter: each supporter's events keep their order and its expiries happen at the same
  moments, so every state, record and alert is the same; each output carries its place
  in the one-by-one order and the outputs are returned sorted by it. Why: a year holds tens
  of thousands of states, and one event after the other touches a different one each time,
  cold in the CPU's caches (the engine takes a third less time in chunks of 100,000).

Pure: no clock and no I/O; the caller emits what is returned. Compiled with the engine
(:mod:`relmon.compiled`); its loops run once an event.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any, Final

from relmon.domain.engine import Engine
from relmon.domain.events import Event
from relmon.domain.expiry import WakeQueue, expire_due
from relmon.domain.outputs import Alert, SuppressionRecord
from relmon.domain.state import SupporterState

NEVER: Final = float("inf")
EventHook = Callable[[Event, int], None]


def _first(pair: tuple[tuple[Any, ...], object]) -> tuple[Any, ...]:
    return pair[0]


class Chunk:
    """What a chunk gave, in the one-by-one order: the records and alerts to emit, the late
    events (their index in the chunk and the engine's reason), how many supporters were
    seen for the first time, and the events not shown to the hook, counted by type."""

    def __init__(
        self,
        records: list[SuppressionRecord],
        alerts: list[Alert],
        late: list[tuple[int, str]],
        new_supporters: int,
        skipped: dict[str, int],
    ) -> None:
        self.records = records
        self.alerts = alerts
        self.late = late
        self.new_supporters = new_supporters
        self.skipped = skipped
        # with ``keyed``: each record's and alert's merge key (item keys, or expiry_key)
        self.record_keys: list[tuple[Any, ...]] = []
        self.alert_keys: list[tuple[Any, ...]] = []


class EventTime:
    """The supporters' states under one engine, applied in event time (module docstring)."""

    def __init__(self, engine: Engine, states: dict[str, SupporterState]) -> None:
        self.engine = engine
        self.states = states
        self.due = WakeQueue()
        self.next_due: float = NEVER  # the earliest time in ``due`` (it may be stale)
        self.watermark: int = -(1 << 62)  # the latest event time so far

    def note(self, sid: str, wake: int | None) -> None:
        """The supporter's next change by time alone is at ``wake``."""
        if wake is not None:
            self.due.note(sid, wake)
            if wake < self.next_due:
                self.next_due = float(wake)

    def expire_until(self, t: int, out: list[SuppressionRecord]) -> None:
        """Apply, across supporters in time order, every change by time alone up to ``t``;
        the records to ``out``."""
        states, engine, due = self.states, self.engine, self.due
        for wake, sid in due.pop_due(t, states_wake(states)):
            # one step: the supporter's next change goes back in the queue, in time order
            for _due, outcome in expire_due(engine, states[sid], wake):
                state = outcome.state
                states[sid] = state
                self.note(sid, state.wake)
                out.extend(outcome.records)
        # everything due by t is done: the queue's earliest is after t (or there is none)
        after = due.next_at()
        self.next_due = NEVER if after is None else float(after)

    def expire_keyed(self, t: int) -> list[tuple[tuple[Any, ...], SuppressionRecord]]:
        """:meth:`expire_until` ``t``, each record with its merge key (:func:`expiry_key`):
        the end of one part of a replay split by supporter, at the last time of all."""
        states, engine, due = self.states, self.engine, self.due
        out: list[tuple[tuple[Any, ...], SuppressionRecord]] = []
        for wake, sid in due.pop_due(t, states_wake(states)):
            for n, (_due, outcome) in enumerate(expire_due(engine, states[sid], wake)):
                state = outcome.state
                states[sid] = state
                self.note(sid, state.wake)
                for m, r in enumerate(outcome.records):
                    out.append((expiry_key(wake, sid, n, m), r))
        after = due.next_at()
        self.next_due = NEVER if after is None else float(after)
        if t > self.watermark:
            self.watermark = t
        return out

    def apply_chunk(
        self,
        items: Sequence[tuple[Any, ...]],
        see: EventHook | None,
        see_types: frozenset[str] | None = None,
        keyed: bool = False,
    ) -> Chunk:
        """Apply merged items ``(t, ..., event)`` (the epoch second first, the event last), in
        their order, supporter by supporter; ``see(event, t)`` first for each item whose
        type is in ``see_types`` (None: every type), in order, the others counted by type
        (:attr:`Chunk.skipped`). See the module docstring.

        ``keyed``: the items are file replay items (:data:`relmon.domain.decoding.Item`),
        and each record and alert also gets its place in the one-by-one order of every
        item: the merge key of the item that caused it, or :func:`expiry_key` (for a replay
        split by supporter, :mod:`relmon.replay.sharded`)."""
        states, engine = self.states, self.engine  # engine.apply: a direct call, compiled
        moves: list[int] = []  # the items that move the watermark (expiries come first)
        move_t: list[int] = []  # their epoch seconds
        by_sid: dict[str, list[int]] = {}
        times: list[int] = []  # each item's epoch second
        events: list[Event] = []
        water = self.watermark
        skipped: dict[str, int] = {}
        for i, item in enumerate(items):
            t = int(item[0])
            event: Event = item[-1]
            times.append(t)
            events.append(event)
            if t > water:
                moves.append(i)
                move_t.append(t)
                water = t
            kind = event.type
            if see is not None and (see_types is None or kind in see_types):
                see(event, t)
            else:
                skipped[kind] = skipped.get(kind, 0) + 1
            sid = event.supporter_id
            where = by_sid.get(sid)
            if where is None:
                by_sid[sid] = [i]
            else:
                where.append(i)
        records: list[tuple[tuple[Any, ...], SuppressionRecord]] = []
        alerts: list[tuple[tuple[Any, ...], Alert]] = []
        late: list[tuple[int, str]] = []
        changed: list[str] = []  # supporters whose next wake the queue must hear of
        fresh = 0
        n = len(times)
        for sid, where in by_sid.items():
            state = states.get(sid)
            wake_before = None if state is None else state.wake
            prev = -1
            for p in where:
                t = times[p]
                # a wake after this item's time cannot be reached by the moves before it
                if state is not None:
                    wake = state.wake
                    if wake is not None and wake <= t:
                        state = self._expire_moves(sid, state, prev, p, moves, move_t, records)
                outcome = engine.apply(state, events[p], t)
                new, emitted, raised = outcome.state, outcome.records, outcome.alerts
                if outcome.late is not None:
                    late.append((p, outcome.late))
                if new is not state:
                    if state is None:
                        fresh += 1
                    state = new
                for k, r in enumerate(emitted):
                    records.append(((p, 1, k), r))
                for k, a in enumerate(raised):
                    alerts.append(((p, k), a))
                prev = p
            assert state is not None  # the supporter had an event here
            last_wake = state.wake
            if last_wake is not None and moves and last_wake <= move_t[-1]:
                state = self._expire_moves(sid, state, prev, n, moves, move_t, records)
            states[sid] = state
            if state.wake != wake_before:
                changed.append(sid)
        if moves:
            # the queue's entries of the supporters above are done, or stale, or popped
            # now and noted again below
            changed += self._expire_others(by_sid, moves, move_t, records)
            self.watermark = move_t[-1]
        for sid in dict.fromkeys(changed):  # once each (a supporter can be in both lists)
            self.note(sid, states[sid].wake)
        late.sort()
        records.sort(key=_first)
        alerts.sort(key=_first)
        done = Chunk([r for _, r in records], [a for _, a in alerts], late, fresh, skipped)
        if keyed:
            done.record_keys = [_merge_key(items, k) for k, _ in records]
            done.alert_keys = [(*items[k[0]][:5], *k[1:]) for k, _ in alerts]
        return done

    def _expire_moves(
        self,
        sid: str,
        state: SupporterState,
        after: int,
        upto: int,
        moves: list[int],
        move_t: list[int],
        out: list[tuple[tuple[Any, ...], SuppressionRecord]],
    ) -> SupporterState:
        """``state`` after the expiries that the watermark's moves at items in
        ``(after, upto]`` of the chunk apply to it, their records keyed by the move."""
        j, end = bisect.bisect_right(moves, after), bisect.bisect_right(moves, upto)
        engine = self.engine
        while j < end:
            next_wake = state.wake
            if next_wake is None:
                break
            k = bisect.bisect_left(move_t, next_wake, j, end)
            if k == end:
                break
            i, t = moves[k], move_t[k]
            while True:  # as the queue pops them
                wake = state.wake
                if wake is None or wake > t:
                    break
                for n, (_due, outcome) in enumerate(expire_due(engine, state, wake)):
                    state = outcome.state
                    for m, r in enumerate(outcome.records):
                        out.append(((i, 0, wake, sid, n, m), r))
                if state.wake == wake:
                    break  # time alone did not move it (never expected): as expire_due stops
            j = k + 1
        return state

    def _expire_others(
        self,
        touched: dict[str, list[int]],
        moves: list[int],
        move_t: list[int],
        out: list[tuple[tuple[Any, ...], SuppressionRecord]],
    ) -> list[str]:
        """The expiries of supporters without an item in the chunk, each at the first move
        that reaches its wake (``touched``' were applied with their items); the touched
        supporters whose current entry it popped (to be noted again)."""
        states, engine, due = self.states, self.engine, self.due
        last = move_t[-1]
        popped: list[str] = []
        if last >= self.next_due:
            for wake, sid in due.pop_due(last, states_wake(states)):
                if sid in touched:
                    popped.append(sid)
                    continue
                i = moves[bisect.bisect_left(move_t, wake)]
                for n, (_due, outcome) in enumerate(expire_due(engine, states[sid], wake)):
                    state = outcome.state
                    states[sid] = state
                    self.note(sid, state.wake)
                    for m, r in enumerate(outcome.records):
                        out.append(((i, 0, wake, sid, n, m), r))
            after = due.next_at()
            self.next_due = NEVER if after is None else float(after)
        return popped


def _merge_key(items: Sequence[tuple[Any, ...]], key: tuple[Any, ...]) -> tuple[Any, ...]:
    """The merge key of a record keyed in a chunk: ``(p, 1, k)``, the k-th record of item
    ``p``, or ``(i, 0, wake, sid, n, m)``, an expiry at the watermark's move at item ``i``."""
    if key[1] == 1:
        return (*items[key[0]][:5], 1, key[2])
    return expiry_key(key[2], key[3], key[4], key[5])


def expiry_key(wake: int, sid: str, n: int, m: int) -> tuple[Any, ...]:
    """Where an expiry's record goes among the outputs of a file replay, whatever the
    supporters the process holds (a replay split by supporter merges its parts by these
    keys; the m-th record of the n-th change of supporter ``sid`` at ``wake``).

    An item's outputs go at its merge key ``(instant, event_id, line, input, number)``
    then ``(1, k)``. The watermark reaches ``wake`` at the first item whose instant is at
    or after it, and the expiries it passes come before that item, by (wake, supporter):
    ``(wake, "", b"", ...)`` sorts after every earlier instant and before every item at
    ``wake`` or later (an event id is never empty).
    """
    return (float(wake), "", b"", -1, 0, 0, sid, n, m)


def states_wake(states: dict[str, SupporterState]) -> Callable[[str], int | None]:
    """The current ``wake`` of a supporter in ``states`` (the wake queue's staleness test)."""

    def wake_of(sid: str) -> int | None:
        return states[sid].wake

    return wake_of
