"""The current-decision view: what a dialer is told about each supporter this worker holds.

A read model beside the write path (compare cosmicpython's ``views.py``): the batch pipeline
writes states, this view turns them into answers and keeps each answer until it can change.

* **The answer** for a known supporter is its decision *as on the topic*: the reasons,
  ``until``, ``decided_at`` and ``cause_event_id`` of the last record emitted
  (``decided_at`` is the causing event's time, or the ``until`` that lifted it), followed by
  ``known: true`` and the purposes it blocks (``KNOWN_SUPPRESSED`` / ``KNOWN_FREE`` in
  :mod:`relmon.domain.outputs`). Its scores are those at ``decided_at`` from every fact
  known now: the same as the record's when events arrived in time order; when an earlier
  event arrived later, they count it (the live-equals-replay test holds the API to the
  engine's decision over all events), and when facts were forgotten since (retention), they
  no longer count them. A supporter that was never suppressed has no record on the topic;
  its answer is its decision at its latest event time. Never the request time: the same
  state always gives the same bytes.
* **Until when it holds.** Each answer is kept with the supporter's next change by time alone
  (a reason's ``until``). A request after that moment re-decides that one supporter: the
  expiries due are applied to a copy of its state (as the worker's timer will, and persists,
  a moment later), so the answer is the lift the topic is about to carry, at its true
  ``decided_at``.
* **Invalidation.** The processor forgets a supporter's answer whenever it changes its
  state; the next request decides it again from the state (the batch's write-back cache
  first, then the table). After a rebalance the view starts empty, and :meth:`warm` fills it
  in the background so that the first 100,000-id check does not pay for every decision.

* **When to call.** Every answer ends with ``next_call_at``, computed per request from the
  request's clock (so unlike the rest it changes with time): the earliest moment at or after
  the request, and after the record's ``until`` when suppressed, inside a calling window of
  the supporter's zone (:mod:`relmon.domain.calling`); null when suppressed with no end.
  Cost: for a suppressed supporter it depends on the ``until`` alone while the answer is
  held (a held answer is asked before its wake, so before its until), so it is encoded
  once with the record; for the supporters free now it is computed once per zone and
  request (``benchmarks/bench_calling.py``: 100,000 held answers in 34 ms of CPU instead of
  24 ms without the field; 94 ms when it was computed per answer).

A never-seen supporter is answered ``known: false``, ``suppressed: false``, ``decided_at:
null`` (nothing was decided); the caller finds that out from the store, not from the view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import orjson

from relmon.domain import Engine, SupporterState, encode_record, encode_unknown_answer
from relmon.domain.calling import calendar_for
from relmon.domain.compliance import supporter_zone
from relmon.domain.expiry import expire_due
from relmon.domain.outputs import KNOWN_FREE, KNOWN_SUPPRESSED

MAX_EXPIRY_STEPS = 32  # successive untils applied per supporter and answer (bounded work)
_SUPPRESSED = KNOWN_SUPPRESSED[:-1]  # without the closing brace: next_call_at follows
_FREE = KNOWN_FREE[:-1]
_NEXT = b',"next_call_at":'
_NEVER = _NEXT + b"null}"


class DecisionView:
    """Encoded answers per supporter, each held until the epoch second it may change.

    Memory matters (a worker may hold a million supporters): per supporter only the
    record's JSON without its closing brace is kept, plus the time it holds until (only for
    supporters with one) and whether it suppresses; ``known`` and ``blocked_purposes`` are
    appended when answering.
    """

    def __init__(self, engine: Engine, load: Callable[[str], SupporterState | None]) -> None:
        self.engine = engine
        self.load = load
        self._records: dict[str, bytes] = {}  # the record's JSON, without its final "}"
        self._until: dict[str, int] = {}  # when it may change by time alone, if ever
        # suppressed supporters: what follows their record (see _decide)
        self._suppressing: dict[str, bytes] = {}
        self._zones: dict[str, str] = {}  # supporters whose events gave a time zone
        self.calendar = calendar_for(engine.policy)
        self._unknown_head, self._unknown_tail = _unknown_template(engine.policy.version)

    def __len__(self) -> int:
        return len(self._records)

    def forget(self, supporter_id: str) -> None:
        """The supporter's state changed: decide again on the next request."""
        if self._records.pop(supporter_id, None) is not None:
            self._until.pop(supporter_id, None)
            self._suppressing.pop(supporter_id, None)
            self._zones.pop(supporter_id, None)

    def clear(self) -> None:
        """Partitions moved: nothing held here is known to be this worker's any more."""
        self._records.clear()
        self._until.clear()
        self._suppressing.clear()
        self._zones.clear()

    def answer(self, supporter_id: str, now: datetime) -> bytes:
        """The encoded answer for one supporter at ``now`` (the request's wall clock, which
        only decides whether a due expiry has to be applied first)."""
        return next(self.answers([supporter_id], now))[1]

    def answers(self, ids: Iterable[str], now: datetime) -> Iterator[tuple[str, bytes]]:
        """``(id, answer)`` for many supporters (the batch check's inner loop)."""
        t = now.timestamp()
        second = int(t) + (t > int(t))  # next_call_at is never before the request
        records, until, suppressing, zones = (
            self._records,
            self._until,
            self._suppressing,
            self._zones,
        )
        free: dict[str | None, bytes] = {}  # the tail of a free answer, per zone
        unknown: bytes | None = None
        for sid in ids:
            record = records.get(sid)
            if record is None or until.get(sid, t + 1) <= t:
                record = self._decide(sid, t)
                if record is None:  # never seen
                    if unknown is None:
                        nxt = self._next(None, second)[len(_NEXT) :]
                        unknown = self._unknown_tail[: -len(b"null}")] + nxt
                    yield sid, self._unknown_head + orjson.dumps(sid) + unknown
                    continue
            tail = suppressing.get(sid)
            if tail is None:
                zone = zones.get(sid)
                tail = free.get(zone)
                if tail is None:
                    tail = free[zone] = _FREE + self._next(zone, second)
            yield sid, record + tail

    def _next(self, zone: str | None, t: int) -> bytes:
        """``,"next_call_at":...}`` for the first calling moment at or after ``t``."""
        found = self.calendar.next_call_at(zone, t)
        if found is None:
            return _NEVER
        return _NEXT + orjson.dumps(datetime.fromtimestamp(found, UTC), option=_Z) + b"}"

    async def warm(self, ids: Iterable[str], now: datetime, slice_s: float = 0.005) -> int:
        """Decide every supporter in ``ids`` not held yet, yielding to the event loop every
        ``slice_s`` so that requests and stream processing go on meanwhile."""
        t = now.timestamp()
        done = 0
        started = time.perf_counter()
        for sid in ids:
            if sid not in self._records:
                self._decide(sid, t)
                done += 1
            if time.perf_counter() - started > slice_s:
                await asyncio.sleep(0)
                started = time.perf_counter()
        return done

    def _decide(self, supporter_id: str, t: float) -> bytes | None:
        """Decide one supporter and hold its record (without the closing brace); None for a
        supporter never seen."""
        state = self.load(supporter_id)
        if state is None:
            return None
        engine = self.engine
        for _due, outcome in expire_due(engine, state, t, MAX_EXPIRY_STEPS):
            state = outcome.state
        at = state.last_at if state.last is not None else state.clock
        decision = engine.decision(state, supporter_id, datetime.fromtimestamp(at, UTC))
        record = encode_record(decision)[:-1]
        self._records[supporter_id] = record
        if state.wake is None:
            self._until.pop(supporter_id, None)
        else:
            self._until[supporter_id] = state.wake
        zone = supporter_zone(state)
        if zone is None:
            self._zones.pop(supporter_id, None)
        else:
            self._zones[supporter_id] = zone
        if decision.suppressed:
            # While the record is held the request is before its wake, so before its until:
            # next_call_at depends on the until alone and is encoded once, here.
            ends = decision.until
            second = int(t) + (t > int(t))
            tail = _NEVER if ends is None else self._next(zone, max(int(ends.timestamp()), second))
            self._suppressing[supporter_id] = _SUPPRESSED + tail
        else:
            self._suppressing.pop(supporter_id, None)
        return record


def _unknown_template(policy_version: str) -> tuple[bytes, bytes]:
    """The never-seen answer split around its supporter id (it differs in nothing else)."""
    placeholder = "\x00"
    template = encode_unknown_answer(placeholder, policy_version)  # next_call_at: null
    head, sep, tail = template.partition(orjson.dumps(placeholder))
    if not sep:
        raise RuntimeError("the never-seen answer does not carry its supporter_id")
    return head, tail


_Z = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
