"""Expiries: decisions that change by time alone, and the one driver that applies them.

A supporter's state says when its decision next changes with no new event (``wake``: a
reason's ``until``, or a loyalty onset that matters). :func:`expire_due` takes a state up to
a time, one change at a time, each decided at the moment it falls due (so a lift carries its
true ``decided_at``, however late it is noticed). The live worker (per partition, at the
wall clock), the replays (in event time, at the watermark) and the timeline all call it;
they differ only in *when* they ask.

:class:`WakeQueue` orders many supporters' next changes, for a caller that must apply them
across supporters in time order (the replays).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import count

from relmon.domain.engine import Engine, Outcome
from relmon.domain.rules import utc
from relmon.domain.state import SupporterState


def expire_due(
    engine: Engine, state: SupporterState, now: float, max_steps: int | None = None
) -> Iterator[tuple[int, Outcome]]:
    """``(due, outcome)`` for each change of ``state``'s decision by time alone at or before
    ``now`` (epoch seconds), in time order; each outcome's state is the next step's input.

    Stops after ``max_steps`` changes when given (bounded work per call), and after a change
    that did not move ``wake`` forward (which time alone never should).
    """
    for _ in range(max_steps) if max_steps is not None else count():
        due = state.wake
        if due is None or due > now:
            return
        outcome = engine.expire(state, utc(due))
        yield due, outcome
        state = outcome.state
        if state.wake is not None and state.wake <= due:
            return


class WakeQueue:
    """Supporters by the time their decision next changes (a heap; stale entries skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def note(self, supporter_id: str, wake: int | None) -> None:
        """The supporter's next change is at ``wake`` (None: none by time alone)."""
        if wake is not None:
            heapq.heappush(self._heap, (wake, supporter_id))

    def next_at(self) -> int | None:
        """The earliest time noted (it may be stale), or None."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, t: int, wake_of: Callable[[str], int | None]) -> Iterator[tuple[int, str]]:
        """``(wake, supporter_id)`` in time order while the earliest is at or before ``t``,
        skipping entries whose supporter's ``wake_of`` has changed since (superseded).
        Entries noted meanwhile are popped too when due."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            wake, sid = heapq.heappop(heap)
            if wake_of(sid) == wake:
                yield wake, sid
