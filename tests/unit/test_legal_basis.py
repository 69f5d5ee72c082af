"""RELATIONSHIP_LAPSED: no legal basis to call once a donorship ended more than the policy's
term ago (NL: 3 years) with no phone opt-in since; never for a relationship not seen to end."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from relmon.domain import SuppressionRecord
from relmon.domain.policy import parse_policy
from relmon.testing import InputEvent, call, consent, donation, email, run

STARTED = datetime(2019, 5, 1, 10, 0, tzinfo=UTC)
ENDED = datetime(2022, 3, 15, 10, 0, tzinfo=UTC)
LAPSES = datetime(2025, 3, 15, 10, 0, tzinfo=UTC)  # ENDED + 36 calendar months
LATER = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def start(at: datetime = STARTED, mandate: str = "m-1") -> InputEvent:
    return donation(at=at, started=at, mandate_id=mandate)


def cancel(at: datetime = ENDED, mandate: str = "m-1", started: datetime = STARTED) -> InputEvent:
    return donation(at=at, action="cancelled", started=started, mandate_id=mandate)


def codes(record: SuppressionRecord) -> list[str]:
    return [r.code for r in record.reasons]


def test_the_reason_starts_three_years_after_the_donorship_ended() -> None:
    """One second before end + 36 months: not suppressed; from then on: suppressed with no
    end, the detail naming the cancellation."""
    result = run([start(), cancel()])
    before = result.decision(LAPSES - timedelta(seconds=1))
    at = result.decision(LAPSES)
    assert not before.suppressed
    assert at.suppressed
    assert codes(at) == ["RELATIONSHIP_LAPSED"]
    assert at.until is None
    assert "3 years" in at.reasons[0].detail
    assert "no phone opt-in" in at.reasons[0].detail


def test_the_start_is_a_wake_so_the_expiry_emits_the_record() -> None:
    """With no event after the cancellation, the engine's expiry (as the worker's timer and
    the replay drive it) emits the suppression at end + 36 months: a change by time alone."""
    result = run([start(), cancel()])
    assert result.state.next_change_at == LAPSES
    assert result.expire(LAPSES - timedelta(seconds=1)) == []
    (record,) = result.expire(LAPSES)
    assert record.suppressed
    assert codes(record) == ["RELATIONSHIP_LAPSED"]
    assert record.decided_at == LAPSES
    assert result.state.next_change_at is None


def test_an_event_after_the_term_decides_it_too() -> None:
    """Any later event (an e-mail) re-decides at its time and emits the suppression."""
    result = run([start(), cancel(), email(at=LATER)])
    assert [codes(r) for r in result.records] == [["RELATIONSHIP_LAPSED"]]


def test_a_call_after_the_term_is_a_call_while_suppressed() -> None:
    """A marketing call to a lapsed supporter is flagged like any call against a suppression."""
    result = run([start(), cancel(), call(at=LATER)])
    (alert,) = [a for a in result.alerts if a.kind == "call_while_suppressed"]
    assert [r.code for r in alert.reasons] == ["RELATIONSHIP_LAPSED"]


@pytest.mark.parametrize(
    ("what", "events", "lapsed"),
    [
        ("no mandate ever seen", [email(at=ENDED)], False),
        ("a mandate still active", [start()], False),
        ("paused, not ended", [start(), donation(at=ENDED, action="paused", started=STARTED)],
         False),
        ("a bank reversal is not an end",
         [start(), donation(at=ENDED, action="reversed", started=STARTED)], False),
        ("a phone opt-in after the end", [start(), cancel(), consent(at=ENDED + timedelta(days=400),
                                                                    action="opt_in")], False),
        ("an opt-in on all after the end", [start(), cancel(), consent(
            at=ENDED + timedelta(days=1), channel="all", action="opt_in")], False),
        ("an e-mail opt-in does not count", [start(), cancel(), consent(
            at=ENDED + timedelta(days=1), channel="email", action="opt_in")], True),
        ("an opt-in before the end does not count", [start(), consent(
            at=ENDED - timedelta(days=1), action="opt_in"), cancel()], True),
        ("a new mandate after the end", [start(), cancel(), start(ENDED + timedelta(days=30),
                                                                 "m-2")], False),
        ("two mandates, one still active", [start(), start(STARTED, "m-2"), cancel()], False),
        ("two mandates, both cancelled", [start(), start(STARTED, "m-2"), cancel(),
                                          cancel(ENDED - timedelta(days=90), "m-2")], True),
        ("resumed after a pause", [start(), donation(at=ENDED, action="paused", started=STARTED),
                                   donation(at=ENDED + timedelta(days=9), action="resumed",
                                            started=STARTED)], False),
    ],
)  # fmt: skip
def test_only_a_relationship_seen_to_end_lapses(
    what: str, events: list[InputEvent], lapsed: bool
) -> None:
    """The reason needs every known mandate cancelled and no phone opt-in after the end."""
    record = run(events).decision(LATER)
    assert ("RELATIONSHIP_LAPSED" in codes(record)) is lapsed, what


def test_the_last_cancellation_sets_the_start() -> None:
    """With two mandates the term runs from the later cancellation."""
    second_end = ENDED + timedelta(days=100)
    result = run([start(), start(STARTED, "m-2"), cancel(), cancel(second_end, "m-2")])
    assert result.state.next_change_at == datetime(2025, 6, 23, 10, 0, tzinfo=UTC)


def test_the_decision_does_not_depend_on_arrival_order() -> None:
    """A late cancellation or opt-in decides the same as one in time, in any order."""
    base = [start(), cancel(), email(at=LATER)]
    finals = set()
    for order in itertools.permutations(base):
        finals.add(tuple(codes(run(list(order)).decision(LATER))))
    assert finals == {("RELATIONSHIP_LAPSED",)}
    with_opt_in = [*base, consent(at=ENDED + timedelta(days=10), action="opt_in")]
    for order in itertools.permutations(with_opt_in):
        assert codes(run(list(order)).decision(LATER)) == []


def test_a_term_of_zero_turns_the_rule_off() -> None:
    """``relationship_term_months = 0`` never gives the reason."""
    text = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")
    policy = parse_policy(
        text.replace("relationship_term_months = 36", "relationship_term_months = 0")
    )
    record = run([start(), cancel(), email(at=LATER)], policy=policy).decision(LATER)
    assert not record.suppressed


def test_the_reason_is_listed_in_the_contracts_order() -> None:
    """After the consent reasons (no end either), before the timed ones and the scores."""
    events = [
        start(),
        cancel(),
        consent(at=LATER - timedelta(days=2)),
        call(at=LATER - timedelta(days=1), outcome="complaint", direction="inbound",
             campaign_purpose="service"),
    ]  # fmt: skip
    assert codes(run(events).decision(LATER))[:3] == [
        "OPTED_OUT",
        "RELATIONSHIP_LAPSED",
        "COMPLAINT",
    ]
