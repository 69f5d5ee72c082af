"""The replays' event-time driver (:class:`relmon.domain.batch.EventTime`): a chunk applied
supporter by supporter gives what one event at a time gives, and says which items were late.

Items are built by hand here, in an order no time-ordered file gives (an event a year older
than its supporter's latest), so that the engine's "late" answer is reached for real.
"""

from __future__ import annotations

from typing import Any

from relmon.domain import Engine, SupporterState, default_policy, encode_alert, encode_record
from relmon.domain.batch import EventTime
from relmon.domain.rules import instant
from relmon.testing import InputEvent, at, call, consent, email

POLICY = default_policy()


def _items(events: list[InputEvent]) -> list[tuple[Any, ...]]:
    """Merge items as the file replay builds them: ``(t, event_id, raw, input, line, event)``."""
    return [(instant(e.occurred_at), e.event_id, b"", 0, n, e) for n, e in enumerate(events, 1)]


def _one_by_one(events: list[InputEvent]) -> tuple[list[bytes], list[bytes], list[int]]:
    """Records, alerts and late items, each event applied alone (``apply_at``'s order:
    the expiries its time passes first, then the event)."""
    clock = EventTime(Engine(POLICY), {})
    records: list[bytes] = []
    alerts: list[bytes] = []
    late: list[int] = []
    for p, e in enumerate(events):
        t = int(instant(e.occurred_at))
        if t > clock.watermark:
            expired: list[Any] = []
            if t >= clock.next_due:
                clock.expire_until(t, expired)
            records += [encode_record(r) for r in expired]
            clock.watermark = t
        state = clock.states.get(e.supporter_id)
        outcome = clock.engine.apply(state, e, t)
        if outcome.late is not None:
            late.append(p)
        if outcome.state is not state:
            clock.states[e.supporter_id] = outcome.state
            if state is None or outcome.state.wake != state.wake:
                clock.note(e.supporter_id, outcome.state.wake)
        records += [encode_record(r) for r in outcome.records]
        alerts += [encode_alert(a) for a in outcome.alerts]
    return records, alerts, late


def _story() -> list[InputEvent]:
    """Two supporters interleaved: a complaint and an opt-out that expire or hold, calls
    while suppressed, and at the end an e-mail a year older than A's latest event."""
    a, b = "S-A", "S-B"
    return [
        call(at=at(0), outcome="complaint", supporter_id=a),
        consent(at=at(1), supporter_id=b, channel="phone", action="opt_out"),
        call(at=at(2), outcome="declined", supporter_id=b),
        email(at=at(3), supporter_id=a),
        call(at=at(40), outcome="declined", supporter_id=a),
        consent(at=at(41), supporter_id=b, channel="phone", action="opt_in"),
        call(at=at(400), outcome="hung_up", supporter_id=a),
        email(at=at(10), supporter_id=a, event_id="e-late"),
    ]


def test_a_chunk_gives_what_one_event_at_a_time_gives() -> None:
    """Same records (expiries included, at their place), alerts and late items; the new
    supporters counted; the watermark at the latest time."""
    events = _story()
    records, alerts, late = _one_by_one(events)
    clock = EventTime(Engine(POLICY), {})
    seen: list[str] = []
    done = clock.apply_chunk(_items(events), lambda e, t: seen.append(e.event_id))
    assert [encode_record(r) for r in done.records] == records
    assert [encode_alert(a) for a in done.alerts] == alerts
    assert [p for p, _ in done.late] == late == [len(events) - 1]
    assert done.new_supporters == 2
    assert clock.watermark == int(instant(at(400)))
    assert seen == [e.event_id for e in events]  # the hook sees every item, in order
    assert len(records) >= 4  # the story does decide things: suppressions and lifts


def test_a_late_item_says_why_and_changes_nothing() -> None:
    """The engine's reason for a late event reaches the chunk's caller, with the item's
    index; the supporter's state is what it was without that event."""
    events = _story()
    without = EventTime(Engine(POLICY), {})
    without.apply_chunk(_items(events[:-1]), None)
    clock = EventTime(Engine(POLICY), {})
    done = clock.apply_chunk(_items(events), None)
    ((p, reason),) = done.late
    assert p == len(events) - 1
    assert "can no longer change a decision" in reason
    state: SupporterState = clock.states["S-A"]
    assert state == without.states["S-A"]


def test_the_hook_sees_only_the_types_it_asks_for_and_the_rest_are_counted() -> None:
    """``see`` gets the items of ``see_types`` in order; every other item is counted by
    type in ``skipped`` (what the report does with the e-mails it only counts)."""
    events = _story()
    seen: list[str] = []
    done = EventTime(Engine(POLICY), {}).apply_chunk(
        _items(events), lambda e, t: seen.append(e.event_id), frozenset({"call_outcome"})
    )
    assert seen == [e.event_id for e in events if e.type == "call_outcome"]
    assert done.skipped == {"consent_change": 2, "email_engagement": 2}
