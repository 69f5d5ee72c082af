"""Properties of the engine over generated event streams (hypothesis).

Guarantees checked, for streams within the retention windows (20 days here):

* any permutation gives the same final decision and scores (bit for bit), and, as long as
  the churns of a mandate arrive in their time order, the same set of
  ``churn_after_contact`` alert ids (only the first churn of a run counts, and an alert
  raised for a later churn is not withdrawn when an earlier one arrives late: see
  ``test_one_lost_mandate_raises_one_churn_alert`` in ``test_engine_rules``);
* for streams without facts that *lower* suppression (no ``opt_in``, no mandate ending or
  pausing), any permutation also gives the same set of ``call_while_suppressed`` alert ids.
  With such facts the set can differ, because alerts are never retracted: see
  ``test_a_call_after_an_opt_in_is_judged_on_what_was_known`` in ``test_engine_rules``;
* any permutation gives the same set of ``call_outside_window`` alert ids (a call is
  judged by its own time alone);
* duplicates change nothing; scores stay in [0, 1]; a complaint never lowers irritation
  risk; every ``until`` is after its ``decided_at``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relmon.domain import Engine, default_policy, encode_record
from relmon.testing import at, call, consent, donation, email, run

T0 = at(0, 0).astimezone(UTC)
SPAN = 20 * 86_400
ENGINE = Engine(default_policy())
SETTINGS = settings(
    max_examples=int(os.environ.get("RELMON_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

times = st.integers(min_value=0, max_value=SPAN).map(lambda s: T0 + timedelta(seconds=s))
OUTCOMES = [
    "no_answer", "busy", "voicemail", "wrong_number", "converted", "declined", "info_requested",
    "callback_requested", "hung_up", "complaint", "do_not_call", "cancelled_donation",
]  # fmt: skip
PURPOSES = ["upgrade", "reactivation", "acquisition", "thank_you", "service", "survey", "other"]

calls = st.builds(
    call,
    at=times,
    outcome=st.sampled_from(OUTCOMES),
    direction=st.sampled_from(["outbound", "outbound", "outbound", "inbound"]),
    campaign_purpose=st.sampled_from(PURPOSES),
    partner_id=st.sampled_from(["p-a", "p-b", "p-c"]),
    sentiment=st.one_of(st.none(), st.floats(min_value=-1, max_value=1)),
)
emails = st.builds(
    email,
    at=times,
    action=st.sampled_from(
        ["sent", "delivered", "opened", "clicked", "unsubscribed", "spam_complaint", "bounced"]
    ),
)


def consents(lowering: bool) -> Any:
    actions = ["opt_out", "objection", *(["opt_in"] if lowering else [])]
    return st.builds(
        consent,
        at=times,
        channel=st.sampled_from(["phone", "email", "post", "sms", "all"]),
        action=st.sampled_from(actions),
    )


def donations(lowering: bool) -> Any:
    actions = ["started", "upgraded", "resumed", "payment_failed", "one_off"]
    if lowering:
        actions += ["downgraded", "paused", "cancelled", "reversed"]
    return st.builds(
        donation,
        at=times,
        action=st.sampled_from(actions),
        started=st.sampled_from([T0 - timedelta(days=800), T0 - timedelta(days=360), T0]),
        mandate_id=st.sampled_from(["m-1", "m-2"]),
    )


def streams(lowering: bool = True) -> Any:
    event = st.one_of(calls, calls, emails, consents(lowering), donations(lowering))
    return st.lists(event, min_size=1, max_size=25)


def churn_stream() -> Any:
    """Streams rich in loyal churns and reached calls (they are rare in `streams`)."""
    churn = st.builds(
        donation,
        at=times,
        action=st.sampled_from(["cancelled", "paused", "reversed"]),
        started=st.just(T0 - timedelta(days=800)),
    )
    return st.lists(st.one_of(calls, churn, emails), min_size=1, max_size=20)


_CHURNS = frozenset({"cancelled", "paused", "reversed", "downgraded"})


def _churns_in_order(events: list[Any]) -> list[Any]:
    """``events`` with the churns moved among their own places into (time, event id) order."""
    places = [
        i for i, e in enumerate(events) if e.type == "donation_change" and e.action in _CHURNS
    ]
    ordered = sorted(
        (events[i] for i in places), key=lambda e: (int(e.occurred_at.timestamp()), e.event_id)
    )
    out = list(events)
    for i, e in zip(places, ordered, strict=True):
        out[i] = e
    return out


def _final(
    events: list[Any],
) -> tuple[bytes, tuple[float, float], set[str], set[str], set[str]]:
    result = run(events)
    end = max(e.occurred_at for e in events).astimezone(UTC) + timedelta(hours=1)
    record = result.decision(end, events[0].supporter_id)
    kinds: dict[str, set[str]] = {
        "churn_after_contact": set(),
        "call_while_suppressed": set(),
        "call_outside_window": set(),
    }
    for alert in result.alerts:
        kinds[alert.kind].add(alert.alert_id)
    scores = (record.fatigue, record.irritation_risk)
    answer = record.model_copy(update={"cause_event_id": None})  # the cause is history
    return (
        encode_record(answer),
        scores,
        kinds["churn_after_contact"],
        kinds["call_while_suppressed"],
        kinds["call_outside_window"],
    )


@SETTINGS
@given(events=streams(), data=st.data())
def test_any_permutation_gives_the_same_decision_scores_and_churn_alerts(
    events: list[Any], data: Any
) -> None:
    """The final decision, the raw scores, the churn alert ids and the calls outside the
    calling window do not depend on arrival order."""
    shuffled = data.draw(st.permutations(events))
    first, second = _final(events), _final(shuffled)
    assert first[:2] == second[:2]
    assert first[4] == second[4]
    assert _final(_churns_in_order(events))[2] == _final(_churns_in_order(shuffled))[2]


@SETTINGS
@given(events=churn_stream(), data=st.data())
def test_churn_alerts_do_not_depend_on_arrival_order(events: list[Any], data: Any) -> None:
    """Loyal churns and the calls before them raise the same churn alerts in any order
    that keeps each mandate's churns in time order."""
    shuffled = data.draw(st.permutations(events))
    assert _final(_churns_in_order(events))[2] == _final(_churns_in_order(shuffled))[2]


@SETTINGS
@given(events=streams(lowering=False), data=st.data())
def test_calls_while_suppressed_do_not_depend_on_order_without_lowering_facts(
    events: list[Any], data: Any
) -> None:
    """Without opt-ins or mandates ending, the calls flagged do not depend on arrival order."""
    shuffled = data.draw(st.permutations(events))
    assert _final(events)[3] == _final(shuffled)[3]


@SETTINGS
@given(events=streams(), data=st.data())
def test_duplicates_change_nothing(events: list[Any], data: Any) -> None:
    """Re-applying any event already applied returns the same state and emits nothing."""
    states: dict[str, Any] = {}
    for i, event in enumerate(events):
        states[event.supporter_id] = ENGINE.apply(states.get(event.supporter_id), event).state
        again = events[data.draw(st.integers(min_value=0, max_value=i))]
        state = states[again.supporter_id]
        outcome = ENGINE.apply(state, again)
        assert outcome.state is state
        assert (outcome.records, outcome.alerts) == ([], [])


@SETTINGS
@given(events=streams())
def test_scores_stay_in_the_unit_interval_and_untils_follow_decisions(events: list[Any]) -> None:
    """Every record has scores in [0, 1] and every until after its decided_at."""
    result = run(sorted(events, key=lambda e: e.occurred_at))
    records = list(result.records)
    for days in (1, 15, 40, 200):
        when = T0 + timedelta(days=days)
        records.append(result.decision(when, events[0].supporter_id))
        records.extend(result.expire(when, events[0].supporter_id))
    for record in records:
        assert 0.0 <= record.fatigue <= 1.0
        assert 0.0 <= record.irritation_risk <= 1.0
        assert record.until is None or record.until > record.decided_at
        for reason in record.reasons:
            assert reason.until is None or reason.until > record.decided_at
    for alert in result.alerts:
        assert 0.0 <= alert.fatigue_at_contact <= 1.0
        assert 0.0 <= alert.irritation_risk_at_contact <= 1.0
        for reason in alert.reasons:
            assert reason.until is None or reason.until > alert.occurred_at


@SETTINGS
@given(events=streams(), when=times, position=st.integers(min_value=0, max_value=25))
def test_a_complaint_never_lowers_irritation_risk(
    events: list[Any], when: datetime, position: int
) -> None:
    """Adding a complaint anywhere in the stream never lowers the irritation risk."""
    complaint = call(at=when, outcome="complaint", direction="inbound", campaign_purpose="service")
    with_it = [*events[:position], complaint, *events[position:]]
    end = T0 + timedelta(days=21)
    before = run(events).decision(end, events[0].supporter_id).irritation_risk
    after = run(with_it).decision(end, events[0].supporter_id).irritation_risk
    assert after >= before
    assert after > 0.0
