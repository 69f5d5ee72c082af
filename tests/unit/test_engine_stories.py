"""The stories relmon exists for, end to end through the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relmon.domain import Alert
from relmon.testing import at, call, donation, run


def plus(when: datetime, days: float) -> datetime:
    return when.astimezone(UTC) + timedelta(days=days)


def _kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_loyal_donor_asked_for_time_called_next_day_by_another_partner_and_cancels() -> None:
    """A loyal donor asks for time; partner B calls the next day anyway; four days later she
    cancels: B's call is flagged as a call against a suppression, and the cancellation as a
    churn after contact with B's call as the contact."""
    mandate_start = plus(at(0), -3 * 365)
    events = [
        donation(at=at(-30), action="payment_failed", started=mandate_start),
        call(at=at(0, 11), outcome="info_requested", partner_id="p-a", campaign_purpose="upgrade"),
        call(at=at(1, 11), outcome="declined", partner_id="p-b", campaign_purpose="upgrade"),
        donation(at=at(5, 9), action="cancelled", started=mandate_start, amount_cents_before=2500),
    ]
    result = run(events)
    first = result.records[0]
    assert first.loyal
    assert {r.code for r in first.reasons} == {"DECIDING_IN_OWN_TIME", "MIN_GAP"}
    assert first.decided_at == at(0, 11)
    chase, churn = result.alerts
    assert _kinds(result.alerts) == ["call_while_suppressed", "churn_after_contact"]
    assert chase.contact.partner_id == "p-b"
    assert {r.code for r in chase.reasons} == {"DECIDING_IN_OWN_TIME", "MIN_GAP"}
    assert churn.contact.call_id == events[2].call_id
    assert churn.contact.days_before_churn == 3  # 11:00 on day 1 to 09:00 on day 5
    assert churn.donation is not None
    assert churn.donation.monthly_amount_lost_cents == 2500
    assert churn.donation.tenure_months == 36
    # the chasing call made her more irritated than the request alone
    assert result.decision(at(1, 12)).irritation_risk > result.decision(at(0, 12)).irritation_risk


def test_dinner_time_calls_tire_more_than_daytime_calls() -> None:
    """Three calls at 18:15 tire a supporter past the fatigue threshold; the same calls at
    11:00 do not, though both hit the contact cap."""

    def calls(hour: int, minute: int) -> list[object]:
        return [
            call(at=at(d, hour, minute), outcome="declined", campaign_purpose="service")
            for d in (0, 1, 2)
        ]

    dinner = run(calls(18, 15)).decision(at(2, 20))
    daytime = run(calls(11, 0)).decision(at(2, 20))
    assert {r.code for r in dinner.reasons} == {"CONTACT_CAP", "FATIGUE"}
    assert {r.code for r in daytime.reasons} == {"CONTACT_CAP"}
    assert dinner.fatigue > 0.7 > daytime.fatigue
    assert dinner.irritation_risk > daytime.irritation_risk


def test_three_partners_calling_one_person_in_a_week() -> None:
    """Three partners each reaching the same supporter in a week tire her more than one
    partner calling three times, and the second and third partners are flagged for calling
    during the first call's minimum gap."""
    partners = ["p-a", "p-b", "p-c"]
    spread = run(
        [
            call(at=at(d), outcome="declined", partner_id=p)
            for d, p in zip((0, 1, 3), partners, strict=True)
        ]
    )
    single = run([call(at=at(d), outcome="declined", partner_id="p-a") for d in (0, 1, 3)])
    many, one = spread.decision(at(3, 12)), single.decision(at(3, 12))
    assert {r.code for r in many.reasons} == {"CONTACT_CAP", "MIN_GAP", "FATIGUE"}
    assert {r.code for r in one.reasons} == {"CONTACT_CAP", "MIN_GAP"}
    assert many.fatigue > one.fatigue
    assert [a.contact.partner_id for a in spread.alerts] == ["p-b", "p-c"]


def test_loyal_versus_three_month_donor_cancelling_after_a_call() -> None:
    """Both cancel three days after a reached call; only the loyal donor's loss is an alert."""

    def story(supporter: str, months: int) -> list[object]:
        start = plus(at(0), -30.5 * months)
        return [
            donation(supporter_id=supporter, at=at(-20), action="started", started=start),
            call(
                supporter_id=supporter,
                at=at(0),
                outcome="declined",
                campaign_purpose="reactivation",
            ),
            donation(supporter_id=supporter, at=at(3), action="cancelled", started=start),
        ]

    result = run([*story("s-loyal", 40), *story("s-new", 3)])
    churns = [a for a in result.alerts if a.kind == "churn_after_contact"]
    assert [a.supporter_id for a in churns] == ["s-loyal"]
    assert churns[0].donation is not None
    assert churns[0].donation.tenure_months == 40
    assert result.decision(at(0, 12), "s-loyal").loyal
    assert not result.decision(at(0, 12), "s-new").loyal
