"""Every rule of the contract's section 3, table-driven, through the public Engine API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relmon.domain import default_policy
from relmon.testing import at, call, consent, donation, email, run

ABSENT = "absent"


def plus(when: datetime, days: float = 0, seconds: int = 0) -> datetime:
    """Absolute time arithmetic (aware local datetimes add wall-clock time in Python)."""
    return when.astimezone(UTC) + timedelta(days=days, seconds=seconds)


def inbound(**kw: Any) -> Any:
    """An inbound call: it leaves markers and irritation but is no contact pressure."""
    return call(direction="inbound", campaign_purpose="service", **kw)


def loyal_mandate(day: float = -5) -> Any:
    """A monthly mandate started 800 days before ``day``, status 'started' at ``day``."""
    return donation(at=at(day), action="started", started=plus(at(day), -800))


T0 = at(0)

REASON_RULES = [
    ("opt_out on phone", [consent(channel="phone")], at(1), "OPTED_OUT", None),
    ("opt_out on all", [consent(channel="all")], at(1), "OPTED_OUT", None),
    ("opt_out on email does not block", [consent(channel="email")], at(1), "OPTED_OUT", ABSENT),
    (
        "opt_in on phone ends an opt_out",
        [consent(), consent(at=at(1), action="opt_in")],
        at(2),
        "OPTED_OUT",
        ABSENT,
    ),
    (
        "opt_in on all ends an opt_out on phone",
        [consent(), consent(at=at(1), channel="all", action="opt_in")],
        at(2),
        "OPTED_OUT",
        ABSENT,
    ),
    (
        "opt_in on email does not end an opt_out on phone",
        [consent(), consent(at=at(1), channel="email", action="opt_in")],
        at(2),
        "OPTED_OUT",
        None,
    ),
    (
        "objection on any channel blocks calls",
        [consent(channel="email", action="objection")],
        at(1),
        "OBJECTION",
        None,
    ),
    (
        "objection ends with an opt_in on its channel",
        [
            consent(channel="email", action="objection"),
            consent(at=at(1), channel="email", action="opt_in"),
        ],
        at(2),
        "OBJECTION",
        ABSENT,
    ),
    (
        "objection does not end with an opt_in on another channel",
        [
            consent(channel="email", action="objection"),
            consent(at=at(1), channel="phone", action="opt_in"),
        ],
        at(2),
        "OBJECTION",
        None,
    ),
    (
        "do_not_call has no end",
        [inbound(outcome="do_not_call")],
        at(900),
        "DO_NOT_CALL_REQUEST",
        None,
    ),
    (
        "do_not_call ends with an opt_in on phone",
        [inbound(outcome="do_not_call"), consent(at=at(1), action="opt_in")],
        at(2),
        "DO_NOT_CALL_REQUEST",
        ABSENT,
    ),
    (
        "do_not_call after an opt_in holds",
        [consent(action="opt_in"), inbound(at=at(1), outcome="do_not_call")],
        at(2),
        "DO_NOT_CALL_REQUEST",
        None,
    ),
    ("complaint: 180 days", [inbound(outcome="complaint")], at(179), "COMPLAINT", plus(T0, 180)),
    ("complaint ends", [inbound(outcome="complaint")], plus(T0, 180), "COMPLAINT", ABSENT),
    (
        "info_requested: deciding in own time for 30 days",
        [inbound(outcome="info_requested")],
        at(29),
        "DECIDING_IN_OWN_TIME",
        plus(T0, 30),
    ),
    (
        "deciding in own time ends",
        [inbound(outcome="info_requested")],
        plus(T0, 30),
        "DECIDING_IN_OWN_TIME",
        ABSENT,
    ),
    (
        "converted: 180 days",
        [inbound(outcome="converted")],
        at(100),
        "RECENT_UPGRADE",
        plus(T0, 180),
    ),
    (
        "contact cap: calls on days 0, 2 and 4 until day 30",
        [call(at=at(d), outcome="no_answer") for d in (0, 2, 4)],
        at(5),
        "CONTACT_CAP",
        plus(T0, 30),
    ),
    (
        "contact cap ends on day 30",
        [call(at=at(d), outcome="no_answer") for d in (0, 2, 4)],
        plus(T0, 30),
        "CONTACT_CAP",
        ABSENT,
    ),
    (
        "two calls are under the cap",
        [call(at=at(d), outcome="no_answer") for d in (0, 2)],
        at(3),
        "CONTACT_CAP",
        ABSENT,
    ),
    (
        "the cap counts any purpose, outcome and partner",
        [
            call(at=at(0), outcome="busy", campaign_purpose="thank_you", partner_id="p1"),
            call(at=at(1), outcome="declined", campaign_purpose="service", partner_id="p2"),
            call(at=at(2), outcome="voicemail", campaign_purpose="upgrade", partner_id="p3"),
        ],
        at(3),
        "CONTACT_CAP",
        plus(T0, 30),
    ),
    (
        "inbound calls are not counted",
        [inbound(at=at(d), outcome="callback_requested") for d in (0, 1, 2)],
        at(3),
        "CONTACT_CAP",
        ABSENT,
    ),
    ("min gap: 14 days after a reached marketing call", [call()], at(1), "MIN_GAP", plus(T0, 14)),
    ("min gap ends", [call()], plus(T0, 14), "MIN_GAP", ABSENT),
    ("no min gap after an attempt", [call(outcome="voicemail")], at(1), "MIN_GAP", ABSENT),
    (
        "no min gap after a service call",
        [call(campaign_purpose="service")],
        at(1),
        "MIN_GAP",
        ABSENT,
    ),
    (
        "irritation below 0.6 does not suppress",
        [inbound(at=at(0, 10 + i), outcome="hung_up") for i in range(2)],
        at(0, 13),
        "IRRITATION_RISK",
        ABSENT,
    ),
    (
        "irritation >= 0.6 suppresses",
        [inbound(at=at(0, 10 + i), outcome="hung_up") for i in range(3)],
        at(0, 13),
        "IRRITATION_RISK",
        "some",
    ),
    (
        "irritation >= 0.5 suppresses a loyal donor",
        [loyal_mandate(), *(inbound(at=at(0, 10 + i), outcome="hung_up") for i in range(2))],
        at(0, 13),
        "IRRITATION_RISK",
        "some",
    ),
    (
        "fatigue >= 0.7 suppresses",
        [call(at=at(0, 9 + i), outcome="no_answer", partner_id=f"p{i}") for i in range(5)],
        at(0, 15),
        "FATIGUE",
        "some",
    ),
    (
        "fatigue below 0.7 does not",
        [call(at=at(0, 9 + i), outcome="no_answer") for i in range(3)],
        at(0, 15),
        "FATIGUE",
        ABSENT,
    ),
]


@pytest.mark.parametrize(
    ("events", "when", "code", "until"),
    [row[1:] for row in REASON_RULES],
    ids=[row[0] for row in REASON_RULES],
)
def test_reason_rules(events: list[Any], when: datetime, code: str, until: object) -> None:
    """Each rule of section 3 puts its reason in force with its `until`, or not at all."""
    record = run(events).decision(when)
    reasons = {r.code: r.until for r in record.reasons}
    if until == ABSENT:
        assert code not in reasons
        return
    assert code in reasons
    assert record.suppressed
    if until != "some":
        assert reasons[code] == until
    for reason_until in reasons.values():
        assert reason_until is None or reason_until > record.decided_at


@pytest.mark.parametrize(
    ("events", "code", "score"),
    [
        (
            [call(at=at(0, 9 + i), outcome="declined", partner_id=f"p{i}") for i in range(4)],
            "FATIGUE",
            "fatigue",
        ),
        (
            [inbound(at=at(0, 9 + i), outcome="hung_up") for i in range(4)],
            "IRRITATION_RISK",
            "irritation_risk",
        ),
    ],
)
def test_score_reasons_end_when_the_score_falls_below_the_threshold(
    events: list[Any], code: str, score: str
) -> None:
    """FATIGUE and IRRITATION_RISK last until the decaying score drops under its threshold."""
    result = run(events)
    threshold = {"fatigue": 0.7, "irritation_risk": 0.6}[score]
    now = result.decision(at(0, 14))
    (until,) = [r.until for r in now.reasons if r.code == code]
    assert until is not None
    before, after = result.decision(plus(until, seconds=-2)), result.decision(until)
    assert getattr(before, score) >= threshold > getattr(after, score)
    assert code in {r.code for r in before.reasons}
    assert code not in {r.code for r in after.reasons}


@pytest.mark.parametrize(
    ("events", "when", "loyal"),
    [
        ([loyal_mandate()], at(0), True),
        ([donation(at=at(0), started=plus(at(0), -364))], at(0), False),
        ([donation(at=at(0), started=plus(at(0), -364))], at(2), True),
        ([donation(at=at(0), started=plus(at(0), -800), frequency="quarterly")], at(0), False),
        (
            [
                loyal_mandate(-5),
                donation(at=at(-1), action="cancelled", started=plus(at(-5), -800)),
            ],
            at(0),
            False,
        ),
        (
            [loyal_mandate(-5), donation(at=at(-2), action="paused", started=plus(at(-5), -800))],
            at(0),
            False,
        ),
        (
            [
                loyal_mandate(-5),
                donation(at=at(-2), action="paused", started=plus(at(-5), -800)),
                donation(at=at(-1), action="resumed", started=plus(at(-5), -800)),
            ],
            at(0),
            True,
        ),
        (
            [donation(at=at(0), action="one_off", frequency="one_off", started=plus(at(0), -800))],
            at(0),
            False,
        ),
    ],
)
def test_loyal_donor(events: list[Any], when: datetime, loyal: bool) -> None:
    """Loyal means an active monthly mandate with at least 12 months of tenure."""
    assert run(events).decision(when).loyal is loyal


def _fatigue_weight(event: Any, others: list[Any] = ()) -> float:  # type: ignore[assignment]
    result = run([*others, event])
    explained = result.engine.explain(result.state, result.state.supporter_id, event.occurred_at)
    fatigue = explained["fatigue"]
    assert isinstance(fatigue, dict)
    (weight,) = [c["weight"] for c in fatigue["contributions"] if c["event_id"] == event.event_id]
    return float(weight)


@pytest.mark.parametrize(
    ("hour", "minute", "day", "factor"),
    [
        (11, 0, 0, 1.0),
        (17, 29, 0, 1.0),
        (17, 30, 0, 1.5),
        (18, 45, 0, 1.5),
        (19, 29, 0, 1.5),
        (19, 30, 0, 1.0),
        (18, 0, 60, 1.5),  # summer time: 18:00 local is 16:00 UTC
        (20, 0, 60, 1.0),  # and 20:00 local is 18:00 UTC, not dinner time
    ],
)
def test_dinner_time_calls_weigh_more(hour: int, minute: int, day: int, factor: float) -> None:
    """A call in 17:30–19:30 supporter-local time weighs dinner_factor times more in fatigue."""
    weight = _fatigue_weight(call(at=at(day, hour, minute), outcome="declined"))
    assert weight == pytest.approx(0.35 * factor)


def test_several_partners_weigh_more_than_one() -> None:
    """A call weighs more for each other partner that called in the trailing week."""
    same = [call(at=at(d), partner_id="p-a", outcome="no_answer") for d in (0, 1)]
    others = [
        call(at=at(d), partner_id=p, outcome="no_answer") for d, p in ((0, "p-b"), (1, "p-c"))
    ]
    last_same = call(at=at(2), partner_id="p-a", outcome="no_answer")
    assert _fatigue_weight(last_same, same) == pytest.approx(0.15)
    assert _fatigue_weight(last_same, others) == pytest.approx(0.15 * 2.0)
    old = [call(at=at(-9), partner_id="p-b", outcome="no_answer")]
    assert _fatigue_weight(last_same, old) == pytest.approx(0.15)


def test_fatigue_counts_emails_sent_a_little() -> None:
    """An e-mail sent adds a small fatigue contribution; other e-mail actions add none."""
    sent = run([email(action="sent")]).decision(at(0))
    opened = run([email(action="opened")]).decision(at(0))
    assert 0.0 < sent.fatigue < 0.1
    assert opened.fatigue == 0.0


@pytest.mark.parametrize(
    ("event", "irritates"),
    [
        (inbound(outcome="complaint"), True),
        (inbound(outcome="hung_up"), True),
        (inbound(outcome="declined"), True),
        (inbound(outcome="do_not_call"), True),
        (inbound(outcome="callback_requested", sentiment=-0.8), True),
        (inbound(outcome="callback_requested", sentiment=0.8), False),
        (call(at=at(0, 18), outcome="callback_requested", campaign_purpose="service"), True),
        (call(at=at(0, 11), outcome="callback_requested", campaign_purpose="service"), False),
        (consent(channel="email"), True),
        (consent(channel="post", action="objection"), True),
        (consent(channel="phone", action="opt_in"), False),
        (email(action="unsubscribed"), True),
        (email(action="spam_complaint"), True),
        (email(action="clicked"), False),
        (donation(action="downgraded", amount_cents_before=2000, amount_cents_after=1000), True),
        (donation(action="upgraded", amount_cents_before=1000, amount_cents_after=2000), False),
    ],
)
def test_irritation_sources(event: Any, irritates: bool) -> None:
    """Complaints, hang-ups, refusals, negative sentiment, dinner calls, opt-outs elsewhere,
    unsubscribes, spam complaints and downgrades raise irritation risk; the rest do not."""
    assert (run([event]).decision(at(0, 20)).irritation_risk > 0.0) is irritates


def test_a_marketing_call_chasing_a_decision_irritates_in_either_order() -> None:
    """A marketing call within 30 days of info_requested adds irritation, whatever came first."""
    asked = inbound(at=at(0), outcome="info_requested")
    chase = call(at=at(3), outcome="no_answer", partner_id="p-b")
    in_order, reversed_ = run([asked, chase]), run([chase, asked])
    assert in_order.decision(at(4)).irritation_risk > 0.0
    assert in_order.decision(at(4)) == reversed_.decision(at(4))
    late = call(at=at(31), outcome="no_answer")
    assert run([asked, late]).decision(at(32)).irritation_risk == 0.0


def test_records_are_emitted_only_on_a_change() -> None:
    """No record while never suppressed; one when suppression starts, changes or is lifted."""
    result = run([email(at=at(0)), email(at=at(1), action="opened")])
    assert result.records == []
    result = run([call(at=at(0)), email(at=at(1), action="opened"), call(at=at(2), outcome="busy")])
    assert [r.suppressed for r in result.records] == [True]
    assert result.records[0].decided_at == at(0)
    assert result.records[0].cause_event_id is not None
    assert result.records[0].policy_version == default_policy().version
    changed = run([call(at=at(0)), consent(at=at(1)), consent(at=at(2), action="opt_in")])
    assert [r.suppressed for r in changed.records] == [True, True, True]
    first, with_opt_out, without = ([x.code for x in r.reasons] for r in changed.records)
    assert (first, with_opt_out, without) == (["MIN_GAP"], ["OPTED_OUT", "MIN_GAP"], ["MIN_GAP"])
    assert [r.cause_event_id for r in changed.records[1:]] == [
        consent(at=at(1)).event_id,
        consent(at=at(2), action="opt_in").event_id,
    ]
    lifted = run([call(at=at(0)), email(at=at(20), action="opened")])
    assert [(r.suppressed, r.until, r.decided_at) for r in lifted.records] == [
        (True, plus(T0, 14), T0),
        (False, None, at(20)),
    ]
    assert lifted.records[1].reasons == []
    same = run([consent(), consent(at=at(1)), email(at=at(2), action="opened")])
    assert len(same.records) == 1  # a second opt-out changes no reason: no second record


def test_time_passing_lifts_through_expire_or_a_later_event() -> None:
    """A reason's until passed gives a lift at the expiry time (expire) or the event time."""
    result = run([call(at=at(0))])
    assert result.state.next_change_at == plus(T0, 14)
    assert result.expire(plus(T0, 13)) == []
    (lift,) = result.expire(plus(T0, 14))
    assert (lift.suppressed, lift.reasons, lift.until, lift.decided_at) == (
        False,
        [],
        None,
        plus(T0, 14),
    )
    assert lift.cause_event_id is None
    assert result.state.next_change_at is None
    later = run([call(at=at(0)), email(at=at(20), action="opened")])
    assert [(r.suppressed, r.decided_at) for r in later.records] == [(True, T0), (False, at(20))]


def test_a_late_event_is_decided_at_the_supporters_latest_time() -> None:
    """decided_at is max(clock, occurred_at): a late event does not move decisions back."""
    result = run([call(at=at(5), outcome="no_answer"), inbound(at=at(1), outcome="complaint")])
    (record,) = result.records
    assert record.decided_at == at(5)
    assert "COMPLAINT" in {r.code for r in record.reasons}


def test_a_never_seen_supporter_is_not_suppressed() -> None:
    """decision() for an unknown supporter says not suppressed with zero scores."""
    record = run([]).decision(at(0), "nobody")
    assert (record.suppressed, record.fatigue, record.irritation_risk, record.loyal) == (
        False,
        0.0,
        0.0,
        False,
    )


CHURN = [
    ("loyal, reached call 4 days before", 0, "declined", "cancelled", 4, -800, True),
    ("loyal, reached call 30 days before", 0, "declined", "cancelled", 30, -800, True),
    ("loyal, reached call 31 days before", 0, "declined", "cancelled", 31, -800, False),
    ("loyal, only an attempt", 0, "no_answer", "cancelled", 4, -800, False),
    ("three-month donor", 0, "declined", "cancelled", 4, -90, False),
    ("loyal, paused", 0, "declined", "paused", 4, -800, True),
    ("loyal, reversed", 0, "declined", "reversed", 4, -800, True),
    ("loyal, downgraded", 0, "declined", "downgraded", 4, -800, True),
    ("loyal, upgraded is no churn", 0, "converted", "upgraded", 4, -800, False),
    ("loyal, call after the churn", 5, "declined", "cancelled", 4, -800, False),
]


@pytest.mark.parametrize(
    ("call_day", "outcome", "action", "churn_day", "started", "alert"),
    [row[1:] for row in CHURN],
    ids=[row[0] for row in CHURN],
)
@pytest.mark.parametrize("churn_first", [False, True], ids=["call-first", "churn-first"])
def test_churn_after_contact(
    call_day: int,
    outcome: str,
    action: str,
    churn_day: int,
    started: int,
    alert: bool,
    churn_first: bool,
) -> None:
    """A loyal donor's churn within 30 days after a reached outbound call raises one alert,
    whichever of the two arrives first."""
    contact = call(at=at(call_day), outcome=outcome, campaign_purpose="thank_you")
    amounts = {"downgraded": (2000, 1000), "upgraded": (1000, 2000)}.get(action, (1500, 0))
    churn = donation(
        at=plus(at(call_day), churn_day - call_day),  # whole days, across summer time
        action=action,
        started=plus(at(churn_day), started),
        amount_cents_before=amounts[0],
        amount_cents_after=amounts[1],
    )
    events = [churn, contact] if churn_first else [contact, churn]
    alerts = [a for a in run(events).alerts if a.kind == "churn_after_contact"]
    assert len(alerts) == int(alert)
    if alert:
        (a,) = alerts
        assert a.contact.call_id == contact.call_id
        assert a.contact.days_before_churn == churn_day - call_day
        assert a.donation is not None
        assert a.donation.monthly_amount_lost_cents == amounts[0] - amounts[1]
        assert a.donation.tenure_months >= 12
        assert a.occurred_at == churn.occurred_at


def test_churn_alert_ids_are_deterministic_and_unique_per_churn() -> None:
    """The same churn gives the same alert id in every run; a duplicate raises nothing new."""
    contact = call(at=at(0))
    churn = donation(at=at(3), action="cancelled", started=plus(at(3), -800))
    first, second = run([contact, churn]), run([churn, contact, churn, contact])
    assert [a.alert_id for a in first.alerts] == [a.alert_id for a in second.alerts]
    assert len(first.alerts[0].alert_id) == 32


CALLS_WHILE_SUPPRESSED = [
    (
        "marketing call after an opt_out",
        [consent()],
        call(at=at(1), outcome="no_answer"),
        ["OPTED_OUT"],
    ),
    (
        "attempts count too",
        [inbound(outcome="complaint")],
        call(at=at(1), outcome="busy"),
        ["COMPLAINT", "IRRITATION_RISK"],
    ),
    (
        "thank-you calls are not marketing",
        [consent()],
        call(at=at(1), campaign_purpose="thank_you"),
        None,
    ),
    (
        "service calls are not marketing",
        [consent()],
        call(at=at(1), campaign_purpose="service"),
        None,
    ),
    ("a call before the opt_out", [consent(at=at(2))], call(at=at(1)), None),
]


@pytest.mark.parametrize(
    ("before", "the_call", "reasons"),
    [row[1:] for row in CALLS_WHILE_SUPPRESSED],
    ids=[row[0] for row in CALLS_WHILE_SUPPRESSED],
)
def test_call_while_suppressed(before: list[Any], the_call: Any, reasons: list[str] | None) -> None:
    """An outbound marketing call to a supporter suppressed just before it raises an alert
    with the call and the reasons in force, whichever order the events arrive in."""
    for events in ([*before, the_call], [the_call, *before]):
        alerts = [a for a in run(events).alerts if a.kind == "call_while_suppressed"]
        if reasons is None:
            assert alerts == []
            continue
        (a,) = alerts
        assert a.contact.call_id == the_call.call_id
        assert a.contact.days_before_churn is None
        assert [r.code for r in a.reasons] == reasons
        assert a.occurred_at == the_call.occurred_at


def test_a_call_after_an_opt_in_is_judged_on_what_was_known() -> None:
    """In order, a call after opt_out then opt_in raises nothing; when the call arrives before
    both, the opt_out arriving next raises the alert, and the later opt_in cannot retract it
    (the documented exception to order independence: facts that lower suppression)."""
    opt_out, opt_in, the_call = consent(), consent(at=at(1), action="opt_in"), call(at=at(2))
    assert run([opt_out, opt_in, the_call]).alerts == []
    assert [a.kind for a in run([the_call, opt_out, opt_in]).alerts] == ["call_while_suppressed"]
    assert run([the_call, opt_in, opt_out]).alerts == []


def _email_consent_changes(n: int, start: float = 1) -> list[Any]:
    """``n`` consent changes on e-mail, alternating opt_out and opt_in, a day apart."""
    actions = ("opt_out", "opt_in")
    return [consent(at=at(start + i), channel="email", action=actions[i % 2]) for i in range(n)]


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_a_phone_opt_out_survives_many_later_consent_changes_on_other_channels(
    order: str,
) -> None:
    """A phone opt_out stays in force after 16 or more e-mail consent changes (the cap)."""
    events = [consent(at=at(0)), *_email_consent_changes(20)]
    result = run(events if order == "in-order" else events[::-1])
    codes = [x.code for x in result.decision(at(30)).reasons]
    assert "OPTED_OUT" in codes
    assert len(result.state.consents) == 16


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_the_opt_in_ending_a_do_not_call_survives_many_later_consent_changes(order: str) -> None:
    """The phone opt_in after a do_not_call is kept past the cap, so the request stays ended."""
    events = [
        inbound(at=at(0), outcome="do_not_call"),
        consent(at=at(1), action="opt_in"),
        *_email_consent_changes(20, start=2),
    ]
    result = run(events if order == "in-order" else events[::-1])
    codes = [x.code for x in result.decision(at(40)).reasons]
    assert "DO_NOT_CALL_REQUEST" not in codes
    assert "OPTED_OUT" not in codes


def test_superseded_consent_changes_go_first_and_the_oldest_only_after() -> None:
    """Over the cap, a channel's older changes go before any channel's latest one."""
    events = [consent(at=at(0)), *_email_consent_changes(20)]
    kept = run(events).state.consents
    phone = consent(at=at(0)).event_id
    assert phone in {f[1] for f in kept}
    # the newest 15 e-mail changes remain, the superseded older ones went
    assert [f[1] for f in kept if f[1] != phone] == [e.event_id for e in events[-15:]]


def test_a_mandate_status_survives_many_status_changes_of_another_mandate() -> None:
    """A loyal mandate's only status is kept when another mandate has 16 or more changes."""
    loyal = loyal_mandate(day=0)
    other = [
        donation(at=at(1 + i), action=("payment_failed", "resumed")[i % 2], mandate_id="m-2")
        for i in range(20)
    ]
    result = run([loyal, *other])
    assert result.decision(at(30)).loyal
    assert loyal.event_id in {f[1] for f in result.state.mandates}
    assert len(result.state.mandates) == 16
    ended = run([loyal, donation(at=at(1), action="cancelled", started=plus(at(0), -800)), *other])
    assert not ended.decision(at(30)).loyal  # and its latest status wins over its first


def test_one_lost_mandate_raises_one_churn_alert() -> None:
    """Paused, cancelled and reversed on one mandate within 30 days raise a single alert."""
    started = plus(at(3), -800)
    contact = call(at=at(0))
    run_of_churns = [
        donation(at=at(3), action="paused", started=started),
        donation(at=at(5), action="cancelled", started=started),
        donation(at=at(8), action="reversed", started=started),
    ]
    for events in ([contact, *run_of_churns], [*run_of_churns, contact]):
        alerts = [a for a in run(events).alerts if a.kind == "churn_after_contact"]
        assert [a.donation.action for a in alerts] == ["paused"]
        assert alerts[0].cause_event_id == run_of_churns[0].event_id
    # another mandate's churn, or the same mandate's after the window, is a new loss
    other = donation(at=at(4), action="cancelled", started=started, mandate_id="m-2")
    again = donation(at=at(40), action="cancelled", started=started)
    recontact = call(at=at(38))
    alerts = run([contact, *run_of_churns, other, recontact, again]).alerts
    churned = [a.cause_event_id for a in alerts if a.kind == "churn_after_contact"]
    assert churned == [run_of_churns[0].event_id, other.event_id, again.event_id]
