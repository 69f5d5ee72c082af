"""Calendar arithmetic in integers (``relmon.domain.rules``) agrees with ``datetime``.

Loyalty counts a donor's tenure in calendar months (a mandate started on 31 January reaches a
month on 28 or 29 February) and the legal basis of a call lapses months after the last gift:
the engine adds months to epoch seconds with integer arithmetic. These tests hold it to the
``datetime`` computation it replaced, over every day of four centuries and at random seconds.
An event's instant (the replay's sort key and the engine's epoch second) is computed the same
way and must be ``timestamp()`` to the last bit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from relmon.domain import parse_event
from relmon.domain.events import parse_event_pydantic
from relmon.domain.rules import add_months, instant, whole_months
from relmon.testing import at, call, to_line


def _add_months_datetime(t: int, months: int) -> int:
    """The reference: ``datetime``'s calendar, the day clamped to the month's last day."""
    d = datetime.fromtimestamp(t, UTC)
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    first = datetime(year, month, 1, tzinfo=UTC)
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    day = min(d.day, (following - first).days)
    return int(d.replace(year=year, month=month, day=day).timestamp())


def _whole_months_datetime(start: int, end: int) -> int:
    a, b = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    months = (b.year - a.year) * 12 + b.month - a.month
    if _add_months_datetime(start, months) > end:
        months -= 1
    return max(months, 0)


# 1900-01-01 to 2299-12-31: leap years of every kind (1900 and 2100 are not, 2000 is)
FIRST, LAST = -2_208_988_800, 10_413_792_000 - 1
seconds = st.integers(FIRST + 400 * 86_400, LAST - 400 * 86_400)


def test_every_day_of_four_centuries_plus_the_months_loyalty_and_lapse_use() -> None:
    """Every day from 1900 to 2299, at a time of day, plus 1, 6, 12, 13 and 24 months."""
    for day in range((LAST - FIRST) // 86_400 - 800):
        t = FIRST + day * 86_400 + 49_999
        for months in (1, 6, 12, 13, 24):
            assert add_months(t, months) == _add_months_datetime(t, months), (t, months)


@given(t=seconds, months=st.integers(0, 240))
def test_any_second_plus_any_months_matches_datetime(t: int, months: int) -> None:
    assert add_months(t, months) == _add_months_datetime(t, months)


@given(start=seconds, end=seconds)
def test_whole_months_between_any_two_seconds_matches_datetime(start: int, end: int) -> None:
    assert whole_months(start, end) == _whole_months_datetime(start, end)


def test_month_ends_are_clamped() -> None:
    """31 January plus a month is the last day of February, leap year or not."""
    jan31 = int(datetime(2024, 1, 31, 9, 30, tzinfo=UTC).timestamp())
    assert add_months(jan31, 1) == int(datetime(2024, 2, 29, 9, 30, tzinfo=UTC).timestamp())
    jan31 = int(datetime(2026, 1, 31, 9, 30, tzinfo=UTC).timestamp())
    assert add_months(jan31, 1) == int(datetime(2026, 2, 28, 9, 30, tzinfo=UTC).timestamp())
    assert whole_months(jan31, add_months(jan31, 1) - 1) == 0


@given(
    t=seconds,
    micro=st.integers(0, 999_999),
    offset_minutes=st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
def test_an_instant_is_timestamp_to_the_last_bit(t: int, micro: int, offset_minutes: int) -> None:
    """Any second, any microsecond, any whole-minute offset: the same float as
    ``timestamp()``, a float even without microseconds."""
    zone = timezone(timedelta(minutes=offset_minutes))
    d = datetime.fromtimestamp(t, zone).replace(microsecond=micro)
    assert instant(d) == d.timestamp()
    assert type(instant(d)) is float


def test_instants_of_other_zones_and_decoded_events_are_timestamp() -> None:
    """An IANA zone (its offset depends on the date), an offset with seconds, and the
    events both decoders give (msgspec's ``timezone``, pydantic's own tzinfo class)."""
    summer = datetime(2026, 7, 1, 12, 0, 0, 250_000, tzinfo=ZoneInfo("Europe/Amsterdam"))
    odd = datetime(2026, 7, 1, 12, 0, 0, tzinfo=timezone(timedelta(seconds=3_601.5)))
    for d in (summer, odd):
        assert instant(d) == d.timestamp()
    line = to_line(call(at=at(0)))
    start = line.index(b'"occurred_at":"') + len(b'"occurred_at":"')
    end = line.index(b'"', start)
    for text in (b"2026-03-02T10:00:00.123456+05:30", b"2026-03-02 10:00:00-08:00"):
        for decode in (parse_event, parse_event_pydantic):
            event = decode(line[:start] + text + line[end:])
            assert instant(event.occurred_at) == event.occurred_at.timestamp()
