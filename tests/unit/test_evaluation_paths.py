"""Evaluation paths that claim to agree bit for bit do agree (hypothesis).

The engine decides at a supporter's latest time from caches it keeps up to date as events
arrive (folded score sums extended item by item, consent reasons and loyalty onsets kept
until their facts change) and skips work that cannot change a decision (an event that only
moves the clock, an e-mail sent whose fatigue cannot start FATIGUE). Each shortcut claims
to give exactly what a full evaluation from the facts gives. These properties compare them
with :func:`relmon.domain.decide.evaluate_scan`, which reads every fact and keeps nothing.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import relmon.domain.engine as engine_module
from relmon.domain import Engine, SupporterState, default_policy, encode_record
from relmon.domain.decide import Decision, evaluate, evaluate_scan
from relmon.testing import call, donation, email
from tests.unit.test_engine_properties import (
    SETTINGS,
    T0,
    calls,
    consents,
    donations,
    emails,
)

ENGINE = Engine(default_policy())
RULES = ENGINE.rules

# e-mails weigh three times: the e-mail fast path needs runs of them
events = st.one_of(calls, emails, emails, emails, consents(True), donations(True))
# bursts of e-mails sent (and a few calls) within days: fatigue crosses its threshold
soon = st.integers(min_value=0, max_value=4 * 86_400).map(lambda s: T0 + timedelta(seconds=s))
burst = st.one_of(
    *[st.builds(email, at=soon, campaign_id=st.sampled_from(["a", "b", "c", "d"]))] * 6,
    st.builds(call, at=soon, outcome=st.sampled_from(["no_answer", "declined", "busy"])),
)
mixed = st.one_of(
    st.lists(events, min_size=1, max_size=40), st.lists(burst, min_size=20, max_size=70)
)


def _fresh(state: SupporterState) -> SupporterState:
    """The same facts with no cache at all (read back from bytes): the scan then reads only
    facts, even the fatigue items it would otherwise take from the state's cache."""
    return SupporterState.from_bytes(state.to_bytes())


def _key(d: Decision) -> tuple[Any, ...]:
    return (d.suppressed, d.reasons, d.until)


def _apply_all(stream: list[Any]) -> list[SupporterState]:
    """The state after each event, one supporter, in the order given."""
    state: SupporterState | None = None
    states = []
    for event in stream:
        state = ENGINE.apply(state, event).state
        states.append(state)
    return states


@SETTINGS
@given(stream=mixed, in_order=st.booleans(), later=st.integers(0, 40 * 86_400))
def test_the_cached_evaluation_equals_a_full_scan_bit_for_bit(
    stream: list[Any], in_order: bool, later: int
) -> None:
    """At or after the clock, the decision from the caches (folds extended event by event)
    equals the one from every fact read afresh: reasons, untils, wake, and both scores to
    the last bit."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    for state in _apply_all(stream):
        for as_of in (state.clock, state.clock + later):
            cached = evaluate(state, RULES, as_of)
            scanned = evaluate_scan(_fresh(state), RULES, as_of)
            assert cached == scanned
            assert cached.fatigue.hex() == scanned.fatigue.hex()
            assert cached.irritation.hex() == scanned.irritation.hex()


# over two years, so that contributions leave the scores' horizons (about 50 and 300 days)
# between events, and mandates reach their tenure mid-stream
far = st.integers(min_value=0, max_value=730 * 86_400).map(lambda s: T0 + timedelta(seconds=s))
years = st.lists(
    st.one_of(
        st.builds(email, at=far),
        st.builds(email, at=far, action=st.sampled_from(["sent", "delivered", "unsubscribed"])),
        st.builds(
            call,
            at=far,
            outcome=st.sampled_from(["complaint", "hung_up", "declined", "info_requested"]),
        ),
        st.builds(donation, at=far, started=st.just(T0 - timedelta(days=200))),
        consents(True),
    ),
    min_size=1,
    max_size=50,
)


@st.composite
def horizon_crossings(draw: Any) -> list[Any]:
    """An irritating call, then about 300 days later (the irritation horizon) a complaint
    and e-mails sent around the moment the first call leaves the horizon."""
    first = draw(st.sampled_from(["hung_up", "declined", "do_not_call"]))
    day = draw(st.integers(min_value=296, max_value=298))
    stream = [
        call(at=T0, outcome=first, partner_id="p-a"),
        call(at=T0 + timedelta(days=day), outcome="complaint", partner_id="p-b"),
    ]
    for offset in draw(st.lists(st.integers(0, 3 * 86_400), min_size=2, max_size=20)):
        stream.append(email(at=T0 + timedelta(days=day, seconds=offset)))
    return stream


@st.composite
def forgotten_churns(draw: Any) -> list[Any]:
    """A loyal donor's mandate paused, a reached call, the mandate cancelled (the same lost
    mandate: one alert), then e-mails sent around the time the pause is forgotten (call
    facts and churns are kept about 64 days) while the call is still kept."""
    loyal = T0 - timedelta(days=800)
    call_day = draw(st.integers(min_value=1, max_value=10))
    stream = [
        donation(at=T0 - timedelta(days=10), started=loyal),
        donation(at=T0, action="paused", started=loyal),
        call(at=T0 + timedelta(days=call_day), outcome="declined"),
        donation(at=T0 + timedelta(days=call_day + 1), action="cancelled", started=loyal),
    ]
    sent = st.integers(62 * 86_400, (64 + call_day) * 86_400)
    for offset in draw(st.lists(sent, min_size=2, max_size=8)):
        stream.append(email(at=T0 + timedelta(seconds=offset)))
    return stream


def _outputs(stream: list[Any]) -> list[Any]:
    state: SupporterState | None = None
    out = []
    for event in stream:
        outcome = ENGINE.apply(state, event)
        state = outcome.state
        out.append(([encode_record(r) for r in outcome.records], outcome.alerts, state.wake))
    out.append(state)
    return out


@SETTINGS
@given(
    stream=st.one_of(years, mixed, horizon_crossings(), forgotten_churns()), in_order=st.booleans()
)
def test_an_e_mail_sent_is_re_decided_exactly_when_a_full_re_decision_would_differ(
    stream: list[Any], in_order: bool
) -> None:
    """The shortcut for an e-mail sent in time order (no re-decision when its fatigue cannot
    change the decision) gives the same records, alerts, wakes and states as re-deciding
    after every such e-mail, also over years in which old contributions leave the horizons,
    donors become loyal and remembered churns are forgotten."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    with_shortcut = _outputs(stream)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(engine_module, "_only_emails_added", lambda *_: False)  # no shortcut
        without = _outputs(stream)
    assert with_shortcut == without


@SETTINGS
@given(stream=mixed, in_order=st.booleans())
def test_the_decision_kept_after_each_event_is_a_full_evaluation_at_the_clock(
    stream: list[Any], in_order: bool
) -> None:
    """Within the scores' horizons (the streams span weeks), after every event, including
    those the engine does not re-decide (an event that only moves the clock, an e-mail sent
    that cannot change the decision), the decision the state keeps (the last record's key,
    or none while never suppressed) and its wake are what a full evaluation of its facts at
    its clock gives."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    for state in _apply_all(stream):
        full = evaluate_scan(SupporterState.from_bytes(state.to_bytes()), RULES, state.clock)
        if state.last is None:
            assert not full.suppressed
        else:
            assert state.last == _key(full)
        assert state.wake == full.wake


@SETTINGS
@given(stream=years, in_order=st.booleans(), again=st.integers(0, 20))
def test_the_duplicate_check_says_exactly_whether_a_retained_fact_carries_the_id(
    stream: list[Any], in_order: bool, again: int
) -> None:
    """`has_event` answers from an id set that may still hold the ids of facts forgotten
    since it was made (it is not remade after every drop); after every event of streams
    spanning two years, some events delivered again at the end, it says yes exactly for the
    ids some retained fact carries (`event_ids`, read from the facts)."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    stream = stream + stream[:again]
    ids = {event.event_id for event in stream}
    for state in _apply_all(stream):
        retained = state.event_ids()
        assert {eid for eid in ids if state.has_event(eid)} == retained & ids


@st.composite
def e_mail_seasons(draw: Any) -> list[Any]:
    """Months of e-mails sent, hours to days apart, with a few calls: the e-mails reach
    their cap (48 within the retention) in dense stretches and leave by retention in sparse
    ones, so the fatigue items are carried past dropped e-mails both ways instead of being
    made again."""
    stream: list[Any] = []
    at = T0
    widest = draw(st.sampled_from([12, 30, 100]))  # hours: dense runs reach the cap
    for gap in draw(st.lists(st.integers(1, widest), min_size=40, max_size=220)):
        at += timedelta(hours=gap, seconds=draw(st.integers(0, 3599)))
        stream.append(email(at=at))
        if gap % 17 == 0:
            stream.append(call(at=at + timedelta(minutes=5), outcome="no_answer"))
    return stream


@SETTINGS
@given(stream=e_mail_seasons(), in_order=st.booleans())
def test_fatigue_carried_past_dropped_e_mails_equals_a_full_scan(
    stream: list[Any], in_order: bool
) -> None:
    """After every event of long runs of e-mails sent (the oldest pushed out at the cap of 48,
    or past their retention), the fatigue the engine's cached items and fold give equals a
    full scan of the facts, bit for bit."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    for state in _apply_all(stream):
        cached = evaluate(state, RULES, state.clock)
        scanned = evaluate_scan(_fresh(state), RULES, state.clock)
        assert cached == scanned
        assert cached.fatigue.hex() == scanned.fatigue.hex()
