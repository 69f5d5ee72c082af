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

from hypothesis import given
from hypothesis import strategies as st

from relmon.domain import Engine, SupporterState, default_policy
from relmon.domain.decide import Decision, evaluate, evaluate_scan
from relmon.testing import call, email
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
            scanned = evaluate_scan(state, RULES, as_of)
            assert cached == scanned
            assert cached.fatigue.hex() == scanned.fatigue.hex()
            assert cached.irritation.hex() == scanned.irritation.hex()


@SETTINGS
@given(stream=mixed, in_order=st.booleans())
def test_the_decision_kept_after_each_event_is_a_full_evaluation_at_the_clock(
    stream: list[Any], in_order: bool
) -> None:
    """After every event, including those the engine does not re-decide (an event that only
    moves the clock, an e-mail sent that cannot start FATIGUE), the decision the state keeps
    (the last record's key, or none while never suppressed) and its wake are what a full
    evaluation of its facts at its clock gives."""
    if in_order:
        stream = sorted(stream, key=lambda e: e.occurred_at.astimezone(UTC))
    for state in _apply_all(stream):
        full = evaluate_scan(SupporterState.from_bytes(state.to_bytes()), RULES, state.clock)
        if state.last is None:
            assert not full.suppressed
        else:
            assert state.last == _key(full)
        assert state.wake == full.wake
