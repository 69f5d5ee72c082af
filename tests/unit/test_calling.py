"""Calling windows (policy ``[calling]``): ``next_call_at`` and ``call_outside_window`` over the
awkward dates of the Dutch Code Telemarketing preset, a mourning day added to the policy at
run time, and supporters in another time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relmon.domain import Alert, Engine, Policy, default_policy
from relmon.domain.calling import calendar_for, next_call_at
from relmon.domain.policy import parse_policy
from relmon.errors import PolicyError
from relmon.testing import call, email, run

AMS = ZoneInfo("Europe/Amsterdam")
DEFAULT_TEXT = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def with_mourning_day(day: str) -> Policy:
    """The default policy with a national day of mourning added, as an operator would."""
    text = DEFAULT_TEXT.replace("banned_dates = []", f"banned_dates = [{day}]")
    text = re.sub(r'version = "[^"]+"', 'version = "mourning"', text, count=1)
    return parse_policy(text)


MOURNING = with_mourning_day("2026-12-01")

# (what, zone or None for the policy's, asked at, expected next_call_at), times in UTC
NEXT_CALL_AT = [
    ("inside a working day's window: now", None, "2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z"),
    ("before opening: 09:00 local", None, "2026-11-30T06:00:00Z", "2026-11-30T08:00:00Z"),
    ("after 22:00 local: next morning", None, "2026-11-30T21:00:00Z", "2026-12-01T08:00:00Z"),
    ("Saturday after 16:00: Monday", None, "2026-11-28T15:30:00Z", "2026-11-30T08:00:00Z"),
    ("Sunday: Monday 09:00", None, "2026-11-29T12:00:00Z", "2026-11-30T08:00:00Z"),
    # summer time starts Sunday 29 March 2026: Saturday CET, Monday CEST
    ("DST spring: Sat 17:30 CET -> Mon 09:00 CEST", None, "2026-03-28T16:30:00Z",
     "2026-03-30T07:00:00Z"),
    ("DST spring: Monday 09:30 CEST is inside", None, "2026-03-30T07:30:00Z",
     "2026-03-30T07:30:00Z"),
    # summer time ends Sunday 25 October 2026: Saturday CEST, Monday CET
    ("DST autumn: Sat 17:00 CEST -> Mon 09:00 CET", None, "2026-10-24T15:00:00Z",
     "2026-10-26T08:00:00Z"),
    ("DST autumn: Monday 08:30 CET is before opening", None, "2026-10-26T07:30:00Z",
     "2026-10-26T08:00:00Z"),
    # 27 April 2025 is a Sunday: King's Day moves to Saturday 26 April
    ("King's Day on Saturday 26 April 2025", None, "2025-04-25T20:30:00Z", "2025-04-28T07:00:00Z"),
    ("King's Day on Monday 27 April 2026", None, "2026-04-26T12:00:00Z", "2026-04-28T07:00:00Z"),
    # 5 December 2026 is a Saturday: the Saturday hours, not the part day
    ("5 December on a Saturday opens at 10:00", None, "2026-12-05T08:00:00Z",
     "2026-12-05T09:00:00Z"),
    ("5 December on a Saturday closes at 16:00", None, "2026-12-05T15:00:00Z",
     "2026-12-07T08:00:00Z"),
    ("5 December 2025 (a Friday) until 18:30", None, "2025-12-05T17:29:00Z",
     "2025-12-05T17:29:00Z"),
    ("5 December 2025 after 18:30: Saturday 10:00", None, "2025-12-05T17:30:00Z",
     "2025-12-06T09:00:00Z"),
    # 4 May 2026 is a Monday: until 18:30 CEST; 5 May 2026 is no lustrum, a working day
    ("4 May on a working day until 18:30", None, "2026-05-04T16:29:59Z",
     "2026-05-04T16:29:59Z"),
    ("4 May after 18:30: 5 May 09:00", None, "2026-05-04T16:30:00Z", "2026-05-05T07:00:00Z"),
    # Easter 2026: Good Friday 3 April and Easter Monday 6 April are holidays (holidays 0.109)
    ("Easter weekend: Tuesday after Easter Monday", None, "2026-04-04T15:00:00Z",
     "2026-04-07T07:00:00Z"),
    ("24 December 2026 after 18:30: Monday 28th", None, "2026-12-24T17:31:00Z",
     "2026-12-28T08:00:00Z"),
    # a supporter in London: 08:30 there is before opening; in Amsterdam it is 09:30
    ("Europe/London: 09:00 London time", "Europe/London", "2026-11-30T08:30:00Z",
     "2026-11-30T09:00:00Z"),
    ("the policy's zone at the same instant", None, "2026-11-30T08:30:00Z",
     "2026-11-30T08:30:00Z"),
    # Curaçao (UTC-4): Sunday 21:00 there; Monday 09:00 there is 13:00Z
    ("America/Curacao on its Sunday evening", "America/Curacao", "2026-11-30T01:00:00Z",
     "2026-11-30T13:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "zone", "asked", "expected"), NEXT_CALL_AT, ids=[c[0] for c in NEXT_CALL_AT]
)
def test_next_call_at_over_awkward_dates(
    what: str, zone: str | None, asked: str, expected: str
) -> None:
    """The earliest allowed moment is the request itself inside a window, else the next
    window's opening, with holidays, part days, summer time and the supporter's zone."""
    assert next_call_at(default_policy(), zone, utc(asked)) == utc(expected), what


def test_a_mourning_day_added_to_the_policy_closes_that_day() -> None:
    """A date added to ``banned_dates`` (no release: the policy file) has no window; the
    shipped policy still calls that day."""
    asked = utc("2026-11-30T21:30:00Z")  # Monday 22:30 local
    assert next_call_at(default_policy(), None, asked) == utc("2026-12-01T08:00:00Z")
    assert next_call_at(MOURNING, None, asked) == utc("2026-12-02T08:00:00Z")
    day = calendar_for(MOURNING).day(None, local("2026-12-01T12:00").date())
    assert (day.kind, day.start) == ("banned_date", None)


def test_next_call_at_rounds_up_to_a_whole_second() -> None:
    """A request at a fraction of a second is answered at the next whole second, never before."""
    asked = datetime(2026, 11, 30, 10, 0, 0, 400_000, tzinfo=UTC)
    assert next_call_at(default_policy(), None, asked) == utc("2026-11-30T10:00:01Z")


def _outside(events: list[object], policy: Policy | None = None) -> list[Alert]:
    result = run(events, policy=policy)  # type: ignore[arg-type]
    return [a for a in result.alerts if a.kind == "call_outside_window"]


# (what, the call's local time in Amsterdam, extra call fields, expected day or None)
CALLS = [
    ("Monday 21:59 is inside", "2026-11-30T21:59", {}, None),
    ("Monday 22:00 is outside", "2026-11-30T22:00", {}, "monday"),
    ("Monday 08:59 is outside", "2026-11-30T08:59", {}, "monday"),
    ("Saturday 16:30 is outside", "2026-11-28T16:30", {}, "saturday"),
    ("Sunday afternoon", "2026-11-29T14:00", {}, "sunday"),
    ("King's Day on Saturday 26 April 2025", "2025-04-26T12:00", {}, "public_holiday"),
    ("Easter Monday 2026", "2026-04-06T10:00", {}, "public_holiday"),
    ("4 May 2026 at 18:45", "2026-05-04T18:45", {}, "part_day"),
    ("4 May 2026 at 18:00 is inside", "2026-05-04T18:00", {}, None),
    ("5 December 2026 (Saturday) 15:00 is inside", "2026-12-05T15:00", {}, None),
    ("5 December 2026 (Saturday) 16:30: Saturday hours", "2026-12-05T16:30", {}, "saturday"),
    ("24 December 2026 at 19:00", "2026-12-24T19:00", {}, "part_day"),
    ("DST spring: Monday 09:30 CEST is inside", "2026-03-30T09:30", {}, None),
    ("DST autumn: Monday 08:30 CET is outside", "2026-10-26T08:30", {}, "monday"),
    ("a callback the supporter asked for", "2026-11-29T14:00", {"trigger": "callback_requested"},
     None),
    ("a thank-you call is not marketing", "2026-11-29T14:00", {"campaign_purpose": "thank_you"},
     None),
    ("an inbound call", "2026-11-29T14:00", {"direction": "inbound",
                                            "campaign_purpose": "service"}, None),
    ("an attempt counts too", "2026-11-29T14:00", {"outcome": "no_answer"}, "sunday"),
    ("a supporter in London at 08:30 there", "2026-11-30T09:30",
     {"supporter_timezone": "Europe/London"}, "monday"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "when", "extra", "day"), CALLS, ids=[c[0] for c in CALLS])
def test_calls_outside_the_window_raise_an_alert(
    what: str, when: str, extra: dict[str, str], day: str | None
) -> None:
    """An outbound marketing call outside its local date's window raises one
    ``call_outside_window`` alert naming the rule of the day; inside, exempt or not
    marketing, none."""
    alerts = _outside([call(at=local(when), **extra)])
    if day is None:
        assert alerts == [], what
        return
    (alert,) = alerts
    assert alert.window is not None
    assert alert.window.day == day, what
    assert alert.contact.occurred_at == local(when)
    assert alert.reasons == []
    nxt = alert.window.next_opens_at
    assert nxt is not None
    assert nxt > alert.occurred_at


def test_the_alert_names_the_window_it_missed() -> None:
    """The alert carries the zone, the local time, the day's window and when calls were next
    allowed: here a Monday 22:30 call, window 09:00-22:00, next Tuesday 09:00."""
    (alert,) = _outside([call(at=local("2026-11-30T22:30"), partner_id="p-late")])
    w = alert.window
    assert w is not None
    assert (w.zone, w.local_time) == ("Europe/Amsterdam", "2026-11-30T22:30:00+01:00")
    assert (w.day, w.opens, w.closes) == ("monday", "09:00", "22:00")
    assert w.next_opens_at == utc("2026-12-01T08:00:00Z")
    assert alert.contact.partner_id == "p-late"


def test_a_holiday_alert_says_which_holiday() -> None:
    """On a public holiday the detail names it (from the holidays package)."""
    (alert,) = _outside([call(at=local("2025-04-26T12:00"))])
    assert alert.window is not None
    assert "King's Day" in alert.window.detail
    assert (alert.window.opens, alert.window.closes) == (None, None)


def test_a_mourning_day_added_at_run_time_flags_calls_that_day() -> None:
    """A call on a date added to ``banned_dates`` raises the alert under that policy only."""
    events = [call(at=local("2026-12-01T11:00"))]
    assert _outside(events) == []
    (alert,) = _outside(events, MOURNING)
    assert alert.window is not None
    assert alert.window.day == "banned_date"
    assert alert.policy_version == "mourning"


def test_the_supporters_zone_from_an_earlier_event_applies_to_later_calls() -> None:
    """A zone given on any earlier event of the supporter judges a call that carries none."""
    in_london = email(at=local("2026-11-29T10:00")).model_copy(
        update={"supporter_timezone": "Europe/London"}
    )
    later = call(at=local("2026-11-30T09:30"))  # 08:30 in London
    assert len(_outside([in_london, later])) == 1
    assert _outside([later]) == []


def test_the_zone_is_kept_in_the_state_and_survives_serialization() -> None:
    """The supporter's zone is on its state (the latest by time), and a state written
    before zones existed reads back without one."""
    first = email(at=local("2026-11-29T10:00")).model_copy(
        update={"supporter_timezone": "Europe/London"}
    )
    second = email(at=local("2026-11-30T10:00"), campaign_id="c2").model_copy(
        update={"supporter_timezone": "Europe/Lisbon"}
    )
    for order in ([first, second], [second, first]):
        state = run(order).state
        assert state.zone is not None
        assert state.zone[1] == "Europe/Lisbon"
        again = type(state).from_bytes(state.to_bytes())
        assert again.zone == state.zone
    old = run([first]).state
    doc = orjson.loads(old.to_bytes()[1:])[:13]  # as written before the zone was added
    assert type(old).from_bytes(b"\x01" + orjson.dumps(doc)).zone is None


def test_a_redelivered_zone_only_event_changes_nothing() -> None:
    """An event that leaves only its zone is a duplicate the second time."""
    engine = Engine(default_policy())
    opened = email(at=local("2026-11-29T10:00"), action="opened").model_copy(
        update={"supporter_timezone": "Europe/London"}
    )
    first = engine.apply(None, opened)
    assert first.state.zone == (int(local("2026-11-29T10:00").timestamp()), "Europe/London")
    again = engine.apply(first.state, opened)
    assert again.state is first.state
    assert (again.records, again.alerts) == ([], [])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("sunday = []", None),
        ('sunday = ["10:00"]', "calling.hours.sunday"),
        ('saturday = ["16:00", "10:00"]', "open before it closes"),
        ('"12-24" = "18:30"', None),
        ('"13-24" = "18:30"', "MM-DD"),
        ("banned_dates = []", None),
        ('banned_dates = ["2026-12-01"]', "TOML dates"),
        ('holidays_country = "NL"', None),
        ('holidays_country = "XX"', "holidays package"),
        ('zone = "Europe/Amsterdam"', None),
        ('zone = "Mars/Olympus"', "unknown time zone"),
    ],
)
def test_the_calling_section_is_validated(change: str, error: str | None) -> None:
    """A bad value in ``[calling]`` names the key and says what is expected."""
    key = change.split(" = ")[0].replace("13-24", "12-24")
    text = re.sub(rf"^{re.escape(key)} = .*$", change, DEFAULT_TEXT, count=1, flags=re.M)
    if error is None:
        parse_policy(text)
        return
    with pytest.raises(PolicyError, match=re.escape(error)):
        parse_policy(text)


def test_no_weekday_with_hours_is_an_error() -> None:
    """A calendar with no window at all would make every answer "never": refused on load."""
    text = re.sub(r'^(monday|tuesday|wednesday|thursday|friday|saturday) = \[.*\]$',
                  r"\1 = []", DEFAULT_TEXT, flags=re.M)  # fmt: skip
    with pytest.raises(PolicyError, match="at least one weekday"):
        parse_policy(text)


def test_a_policy_file_without_the_new_sections_gets_the_nl_preset() -> None:
    """An older policy file (no ``[calling]``, no ``[legal_basis]``) still loads, with the
    shipped NL preset for both."""
    text = DEFAULT_TEXT.split("\n[calling]")[0]
    assert "[calling]" not in text
    assert "[legal_basis]" not in text
    policy = parse_policy(text)
    assert policy.calling == default_policy().calling
    assert policy.legal_basis.relationship_term_months == 36


@settings(max_examples=300, deadline=None)
@given(
    t=st.integers(min_value=1_700_000_000, max_value=1_900_000_000),
    zone=st.sampled_from(
        [None, "Europe/London", "America/Curacao", "Asia/Kathmandu", "Australia/Lord_Howe"]
    ),
)
def test_next_call_at_is_inside_a_window_and_nothing_earlier_is(t: int, zone: str | None) -> None:
    """For any moment and zone (odd offsets and half-hour summer time included), the answer
    is at or after it and inside a window; when later, it is a window's opening (the second
    before is outside) and the moment asked was outside."""
    cal = calendar_for(default_policy())
    found = cal.next_call_at(zone, t)
    assert found is not None
    assert found >= t
    assert cal.inside(zone, found)
    if found > t:
        assert not cal.inside(zone, found - 1)
        assert not cal.inside(zone, t)
