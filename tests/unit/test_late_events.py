"""Late events: refusals and mandate changes apply however late; the rest say why not.

Table-driven through the public Engine API (``Outcome.late``), plus two hypothesis
properties: a refusal or mandate change gives the same final decision wherever it is
delivered in a year of other events, and an event that changes nothing is either a
duplicate, an event that keeps nothing even in time, or reported ``late``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relmon.domain import Engine, SupporterState, default_policy, encode_record
from relmon.testing import InputEvent, at, call, consent, donation, email, run

ENGINE = Engine(default_policy())
SETTINGS = settings(
    max_examples=int(os.environ.get("RELMON_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
YEAR = 365
CLOCK_DAY = 400  # the day of the last event of the "year of other events"


def plus(when: datetime, days: float = 0) -> datetime:
    """Absolute time arithmetic (aware local datetimes add wall-clock time in Python)."""
    return when.astimezone(UTC) + timedelta(days=days)


def inbound(**kw: Any) -> Any:
    """An inbound service call (no contact pressure; leaves markers and irritation)."""
    return call(direction="inbound", campaign_purpose="service", **kw)


def year_of_calls(until_day: int = CLOCK_DAY, every: int = 7) -> list[InputEvent]:
    """Unanswered outbound calls every ``every`` days up to ``until_day``: a busy year."""
    return [
        call(at=at(day, 10), outcome="no_answer", partner_id=f"p-{day % 3}")
        for day in range(until_day - YEAR, until_day + 1, every)
    ]


# (label, the late event, the reason code it must give at the end, or None for "not suppressed")
REFUSALS = [
    ("opt_out on phone", consent(at=at(40)), "OPTED_OUT"),
    ("opt_out on all", consent(at=at(40), channel="all"), "OPTED_OUT"),
    ("objection on email", consent(at=at(40), channel="email", action="objection"), "OBJECTION"),
    ("objection on all", consent(at=at(40), channel="all", action="objection"), "OBJECTION"),
    ("outbound do_not_call", call(at=at(40), outcome="do_not_call"), "DO_NOT_CALL_REQUEST"),
    ("inbound do_not_call", inbound(at=at(40), outcome="do_not_call"), "DO_NOT_CALL_REQUEST"),
]


@pytest.mark.parametrize("days_late", [0, 30, 70, 200, 360, 1000])
@pytest.mark.parametrize(("label", "late", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refusal_applies_however_late_it_arrives(
    label: str, late: InputEvent, code: str, days_late: int
) -> None:
    """An opt-out, objection or do_not_call that arrives days_late after the clock still
    suppresses indefinitely, applied rather than reported late."""
    others = year_of_calls(until_day=40 + days_late)
    result = run(others)
    state = result.state
    outcome = result.engine.apply(state, late)
    assert outcome.late is None
    assert outcome.state is not state
    decision = result.engine.decision(outcome.state, late.supporter_id, plus(at(41 + days_late)))
    assert decision.suppressed
    assert code in {r.code for r in decision.reasons}
    assert decision.until is None


@pytest.mark.parametrize("days_late", [0, 70, 200, 1000])
@pytest.mark.parametrize(
    ("ended_by", "code"),
    [
        (consent(at=at(45), action="opt_in"), "OPTED_OUT"),
        (consent(at=at(45), channel="all", action="opt_in"), "OPTED_OUT"),
    ],
)
def test_a_late_opt_in_ends_an_opt_out_however_late(
    ended_by: InputEvent, code: str, days_late: int
) -> None:
    """An opt_in arriving long after the clock still ends the opt-out before it."""
    events = [consent(at=at(40)), *year_of_calls(until_day=45 + days_late), ended_by]
    result = run(events)
    assert code not in {r.code for r in result.decision(plus(at(46 + days_late))).reasons}


def test_a_late_opt_in_ends_a_do_not_call_however_late() -> None:
    """An opt_in on phone a year late still ends the do_not_call request made before it."""
    events = [
        inbound(at=at(40), outcome="do_not_call"),
        *year_of_calls(until_day=45 + YEAR),
        consent(at=at(45), action="opt_in"),
    ]
    reasons = run(events).decision(plus(at(46 + YEAR))).reasons
    assert "DO_NOT_CALL_REQUEST" not in {r.code for r in reasons}


LOYAL_START = plus(at(0), -800)


@pytest.mark.parametrize("days_late", [0, 70, 200, 1000])
@pytest.mark.parametrize(
    ("mandate_events", "loyal"),
    [
        ([donation(at=at(40), started=LOYAL_START)], True),
        ([donation(at=at(39), started=LOYAL_START), donation(at=at(40), action="cancelled",
                                                               started=LOYAL_START)], False),
        ([donation(at=at(39), started=LOYAL_START), donation(at=at(40), action="paused",
                                                               started=LOYAL_START)], False),
        ([donation(at=at(39), started=LOYAL_START, frequency="yearly")], False),
    ],
)  # fmt: skip
def test_a_mandate_change_applies_however_late(
    mandate_events: list[InputEvent], loyal: bool, days_late: int
) -> None:
    """A mandate's start or end arriving days_late after the clock decides loyalty."""
    result = run([*year_of_calls(until_day=40 + days_late), *mandate_events])
    assert result.decision(plus(at(41 + days_late))).loyal is loyal


# (outcome, direction, days late, expected COMPLAINT / RECENT_UPGRADE until (days after the
# event) or None when it has ended by the clock)
TIMED = [
    ("complaint", "outbound", 100, 180),
    ("complaint", "inbound", 100, 180),
    ("complaint", "outbound", 179, 180),
    ("complaint", "outbound", 181, None),
    ("complaint", "outbound", 200, None),
    ("complaint", "inbound", 200, None),
    ("converted", "outbound", 100, 180),
    ("converted", "outbound", 200, None),
]


@pytest.mark.parametrize(("outcome", "direction", "days_late", "until"), TIMED)
def test_a_late_timed_reason_holds_for_its_days_from_its_own_time(
    outcome: str, direction: str, days_late: int, until: int | None
) -> None:
    """A late complaint or converted suppresses until 180 days after its own occurred_at:
    100 days late it holds 80 more days, 200 days late it has ended yet is still applied."""
    code = {"complaint": "COMPLAINT", "converted": "RECENT_UPGRADE"}[outcome]
    happened = at(50)
    clock = plus(happened, days_late)
    result = run([call(at=clock, outcome="no_answer", campaign_purpose="service")])
    state = result.state
    late = call(at=happened, outcome=outcome, direction=direction, campaign_purpose="service")
    outcome_ = result.engine.apply(state, late)
    decision = result.engine.decision(outcome_.state, late.supporter_id, plus(clock, 0.01))
    reasons = {r.code: r.until for r in decision.reasons}
    if until is None:
        assert code not in reasons
    else:
        assert reasons[code] == plus(happened, until)
    if outcome == "complaint" or days_late <= 194:
        # applied: the marker, or (complaint) its irritation, is kept and it is no duplicate
        assert outcome_.late is None
        assert late.event_id in outcome_.state.event_ids()
        assert result.engine.apply(outcome_.state, late) == (outcome_.state, [], [], None)


def test_an_ended_late_converted_is_reported_late() -> None:
    """A converted too old for its marker, on a call too old to keep, changes nothing: late."""
    clock = plus(at(0), 200)
    result = run([call(at=clock, outcome="no_answer")])
    outcome = result.engine.apply(result.state, call(at=at(0), outcome="converted"))
    assert outcome.state is result.state
    assert outcome.late is not None
    assert "converted markers are kept 194 days" in outcome.late


def test_a_late_outbound_call_while_opted_out_keeps_its_marker_and_raises_no_call_alert() -> None:
    """An outbound marketing complaint call too old for the call facts, to an opted-out
    supporter, still leaves its COMPLAINT (and no alert about a call relmon cannot keep)."""
    result = run([consent(at=at(-10)), call(at=at(100), outcome="no_answer")])
    outcome = result.engine.apply(result.state, call(at=at(30), outcome="complaint"))
    assert outcome.late is None
    assert outcome.alerts == []
    assert outcome.state.calls == result.state.calls
    reasons = {r.code for r in result.engine.decision(outcome.state, "s-0001", at(101)).reasons}
    assert {"OPTED_OUT", "COMPLAINT"} <= reasons


def _late(state: SupporterState, event: InputEvent) -> Any:
    return ENGINE.apply(state, event)


FORTY_EIGHT_CALLS = [call(at=at(100 + i * 0.1), outcome="no_answer", partner_id=f"p{i}")
                     for i in range(48)]  # fmt: skip
# (label, events before, the event, expected: None, or words the `late` reason must contain)
LATE_FIELD = [
    ("a duplicate is not late", [call(at=at(0))], call(at=at(0)), None),
    (
        "a duplicate long after is not late",
        [inbound(at=at(0), outcome="do_not_call"), call(at=at(900), outcome="busy")],
        inbound(at=at(0), outcome="do_not_call"),
        None,
    ),
    ("older but within retention", [call(at=at(60))], call(at=at(10), outcome="busy"), None),
    (
        "an unanswered call older than the call facts",
        [call(at=at(200))],
        call(at=at(100), outcome="busy"),
        ["is 100 days before", "call facts are kept 63.8 days"],
    ),
    (
        "an e-mail sent older than the e-mails kept",
        [call(at=at(200))],
        email(at=at(100)),
        ["e-mails sent are kept 63.8 days"],
    ),
    ("an e-mail opened keeps nothing at any age", [call(at=at(200))], email(at=at(0), action="opened"), None),  # noqa: E501
    ("a one_off gift keeps nothing at any age", [call(at=at(200))], donation(at=at(0), action="one_off"), None),  # noqa: E501
    (
        "a callback request keeps nothing at any age",
        [call(at=at(200))],
        inbound(at=at(0), outcome="callback_requested"),
        None,
    ),
    (
        "a declined call too old even for irritation",
        [call(at=at(400))],
        call(at=at(0), outcome="declined"),
        ["call facts are kept 63.8 days and irritation contributions are kept 313 days"],
    ),
    (
        "a late declined call within irritation retention is applied",
        [call(at=at(200))],
        call(at=at(0), outcome="declined"),
        None,
    ),
    (
        "a call older than the 48 calls kept",
        FORTY_EIGHT_CALLS,
        call(at=at(99), outcome="no_answer"),
        ["call facts are kept up to 48 (the oldest go) and it is not among them"],
    ),
    (
        "a consent change superseded on its channel over the cap",
        [consent(at=at(i), channel=["email", "post"][i % 2], action=["opt_out", "opt_in"][i // 2 % 2])  # noqa: E501
         for i in range(30)],
        consent(at=at(0.5), channel="post", action="opt_in"),
        ["consent changes are kept up to 16 (superseded ones first, then the oldest go)"],
    ),
    ("an event later than the clock", [call(at=at(0))], email(at=at(1), action="opened"), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "before", "event", "words"), LATE_FIELD, ids=[c[0] for c in LATE_FIELD]
)
def test_outcome_late_says_why_an_event_too_old_changes_nothing(
    label: str, before: list[InputEvent], event: InputEvent, words: list[str] | None
) -> None:
    """`late` is set exactly for events too old to keep, naming the times and the retention;
    a duplicate, an event applied, or one that keeps nothing at any age has late None."""
    result = run(before)
    state = result.state
    outcome = result.engine.apply(state, event)
    if words is None:
        assert outcome.late is None
        return
    assert outcome.late is not None
    assert (outcome.state, outcome.records, outcome.alerts) == (state, [], [])
    assert outcome.state is state
    for word in words:
        assert word in outcome.late


def test_the_late_reason_names_event_time_clock_and_retention() -> None:
    """The reason is one readable sentence with both times in UTC and the retention."""
    result = run([call(at=at(200, 11))])
    outcome = result.engine.apply(result.state, call(at=at(0, 11), outcome="no_answer"))
    assert outcome.late == (
        "occurred_at 2026-03-02T10:00:00Z is 200 days before this supporter's latest time "
        "2026-09-18T09:00:00Z; call facts are kept 63.8 days, so it can no longer change a "
        "decision"
    )


def test_expire_and_an_in_order_event_are_never_late() -> None:
    """expire() and an event after the clock leave late None (the NamedTuple default)."""
    result = run([call(at=at(0))])
    assert result.engine.apply(result.state, call(at=at(1))).late is None
    assert result.engine.expire(result.state, plus(at(0), 30)).late is None


# -- properties --------------------------------------------------------------------------

T0 = at(0, 0).astimezone(UTC)
ONE_YEAR = YEAR * 86_400
year_times = st.integers(min_value=0, max_value=ONE_YEAR).map(lambda s: T0 + timedelta(seconds=s))
others = st.lists(
    st.one_of(
        st.builds(
            call,
            at=year_times,
            outcome=st.sampled_from(["no_answer", "busy", "declined", "hung_up", "converted"]),
            partner_id=st.sampled_from(["p-a", "p-b"]),
        ),
        st.builds(email, at=year_times, action=st.sampled_from(["sent", "opened"])),
        st.builds(consent, at=year_times, channel=st.just("email"), action=st.just("opt_out")),
    ),
    min_size=1,
    max_size=40,
).map(lambda evs: sorted(evs, key=lambda e: e.occurred_at))
refusal = st.one_of(
    st.builds(consent, at=year_times, channel=st.sampled_from(["phone", "all"])),
    st.builds(consent, at=year_times, channel=st.sampled_from(["email", "sms"]),
              action=st.just("objection")),
    st.builds(call, at=year_times, outcome=st.just("do_not_call"),
              direction=st.sampled_from(["outbound", "inbound"])),
    st.builds(donation, at=year_times, action=st.sampled_from(["cancelled", "started"]),
              started=st.just(T0 - timedelta(days=800))),
)  # fmt: skip


def _answer(events: list[InputEvent]) -> bytes:
    result = run(events)
    end = max(e.occurred_at for e in events).astimezone(UTC) + timedelta(hours=1)
    record = result.decision(end)
    return encode_record(record.model_copy(update={"cause_event_id": None}))


@SETTINGS
@given(events=others, late=refusal, data=st.data())
def test_a_refusal_or_mandate_change_decides_the_same_wherever_it_is_delivered(
    events: list[InputEvent], late: InputEvent, data: Any
) -> None:
    """The same opt-out, objection, do_not_call or mandate change delivered at any place in a
    year of other events (in time order) gives the same final decision as in time order."""
    where = data.draw(st.integers(min_value=0, max_value=len(events)))
    delivered = [*events[:where], late, *events[where:]]
    in_order = sorted(delivered, key=lambda e: e.occurred_at)
    assert _answer(delivered) == _answer(in_order)
    if late.type != "donation_change":
        assert b'"suppressed":true' in _answer(delivered)


anything = st.one_of(
    st.builds(call, at=year_times, outcome=st.sampled_from(
        ["no_answer", "declined", "complaint", "do_not_call", "converted", "info_requested",
         "callback_requested", "hung_up"]),
        direction=st.sampled_from(["outbound", "inbound"]),
        campaign_purpose=st.sampled_from(["upgrade", "service"]),
        sentiment=st.one_of(st.none(), st.floats(min_value=-1, max_value=1))),
    st.builds(email, at=year_times, action=st.sampled_from(["sent", "opened", "unsubscribed"])),
    st.builds(consent, at=year_times, channel=st.sampled_from(["phone", "email", "all"]),
              action=st.sampled_from(["opt_out", "objection", "opt_in"])),
    st.builds(donation, at=year_times, action=st.sampled_from(
        ["started", "cancelled", "downgraded", "one_off"]),
        amount_cents_after=st.just(500), started=st.just(T0 - timedelta(days=800))),
)  # fmt: skip


@SETTINGS
@given(events=st.lists(anything, min_size=1, max_size=40))
def test_an_event_that_changes_nothing_is_a_duplicate_keeps_nothing_or_is_late(
    events: list[InputEvent],
) -> None:
    """Nothing vanishes silently: an event that leaves the state unchanged is a duplicate,
    or keeps nothing even when it is the only event, or comes with a `late` reason, and
    `late` is set only then."""
    state: SupporterState | None = None
    for event in events:
        duplicate = state is not None and event.event_id in state.event_ids()
        outcome = ENGINE.apply(state, event)
        if outcome.late is not None:
            assert outcome.state is state
            assert not duplicate
            assert (outcome.records, outcome.alerts) == ([], [])
        elif state is not None and outcome.state is state and not duplicate:
            alone = ENGINE.apply(None, event).state
            assert event.event_id not in alone.event_ids()
        state = outcome.state


def test_a_late_event_carrying_a_zone_is_still_reported_late() -> None:
    """The supporter's time zone on an event too old to keep does not turn it into an applied
    event: the state stays as it was and ``late`` says why (as without the zone)."""
    clock = plus(at(0), 200)
    result = run([call(at=clock, outcome="no_answer")])
    late = call(at=at(0), outcome="converted", supporter_timezone="Europe/London")
    outcome = result.engine.apply(result.state, late)
    assert outcome.state is result.state
    assert outcome.late is not None
    assert "converted markers are kept 194 days" in outcome.late


def test_an_event_keeping_no_fact_but_a_zone_only_moves_the_time() -> None:
    """An e-mail that keeps no fact (delivered) with the supporter's zone notes the zone and
    moves the clock, and emits nothing, like the same e-mail without a zone."""
    result = run([call(at=at(0), outcome="no_answer")])
    plain = result.engine.apply(result.state, email(at=at(1), action="delivered"))
    zoned = result.engine.apply(
        result.state,
        email(at=at(1), action="delivered").model_copy(
            update={"supporter_timezone": "Europe/London"}
        ),
    )
    assert plain.records == zoned.records == []
    assert plain.alerts == zoned.alerts == []
    assert zoned.state.clock == plain.state.clock > result.state.clock
    assert zoned.state.zone is not None
    assert zoned.state.zone[1] == "Europe/London"


def test_an_e_mail_pushed_out_at_the_cap_comes_again_late_with_or_without_restart() -> None:
    """The 49th e-mail sent within the retention pushes the first out (48 kept); the first
    delivered again is then older than everything kept of its kind: late (a dead letter with
    its reason), whether the state is the one in memory or read back from bytes after a
    restart. (The duplicate check answers from the facts, not from ids it may still hold.)"""
    engine = Engine(default_policy())
    sent = [email(at=T0 + timedelta(hours=6 * i), event_id=f"m-{i}") for i in range(49)]
    state = None
    for event in sent:
        state = engine.apply(state, event).state
    assert state is not None
    assert len(state.emails) == 48
    assert not state.has_event("m-0")
    for held in (state, SupporterState.from_bytes(state.to_bytes())):
        outcome = engine.apply(held, sent[0])
        assert outcome.late is not None
        assert (outcome.records, outcome.alerts) == ([], [])
