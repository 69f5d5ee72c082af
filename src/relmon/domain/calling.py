"""Calling windows: when the policy allows an outbound marketing call, in supporter-local time.

Pure and deterministic: time comes in as an argument; public holidays come from the
``holidays`` package (computed from its own rules, no I/O), the rest from the policy's
``[calling]`` section. One :class:`CallingCalendar` per policy (:func:`calendar_for`).

A local date gets the first rule that applies:

=================  =========================================================================
``banned_date``    a date of ``banned_dates`` (a national day of mourning): no calls
``remembrance_day`` a ``remembrance_days`` "MM-DD": no calls
``public_holiday`` a holiday of ``holidays_country`` (detail: its name): no calls
``sunday`` ...     a weekday without hours (detail: the weekday): no calls
``part_day``       a ``part_days`` date whose part-day time is before the day's own close:
                   the window closes then (on a Saturday, 16:00 comes first: Saturday hours)
``monday`` ...     the weekday's hours
=================  =========================================================================

A window is ``[opens, closes)`` in local time, turned into UTC with the zone's offset *of
that date* (so the change to and from summer time is exact). The supporter's zone is the
policy's ``zone`` unless the supporter's events carry ``supporter_timezone``; holidays, part
days and banned dates are the policy's whatever the zone.

:meth:`CallingCalendar.next_call_at` is the earliest instant at or after ``t`` inside a
window (None only if no window opens within :data:`HORIZON_DAYS`, which a valid policy
never gives: it has at least one weekday with hours).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import holidays

from relmon.domain.policy import WEEKDAYS, Calling, Policy

HORIZON_DAYS = 400
_CACHE_MAX = 200_000


class Day(NamedTuple):
    """The rule of one local date, and its window in epoch seconds (None: no calls)."""

    kind: str
    detail: str
    opens: time | None
    closes: time | None
    start: int | None
    end: int | None


class CallingCalendar:
    """The calling windows of one policy (see the module docstring)."""

    def __init__(self, calling: Calling) -> None:
        self.calling = calling
        self.zone = calling.zone
        self.exempt_triggers = frozenset(calling.exempt_triggers)
        self._banned = frozenset(calling.banned_dates)
        self._remembrance = frozenset(calling.remembrance_days)
        self._part = dict(calling.part_days)
        self._hours = tuple(calling.hours.of(d) for d in range(7))
        self._holidays: Any = None
        if calling.holidays_country:
            self._holidays = holidays.country_holidays(calling.holidays_country)
        self._zones: dict[str, ZoneInfo] = {}
        self._days: dict[tuple[str, int], Day] = {}

    def tz(self, zone: str | None) -> ZoneInfo:
        """The ZoneInfo of ``zone`` (None: the policy's)."""
        name = zone or self.zone
        tz = self._zones.get(name)
        if tz is None:
            tz = self._zones[name] = ZoneInfo(name)
        return tz

    def local_date(self, zone: str | None, t: int) -> date:
        return datetime.fromtimestamp(t, self.tz(zone)).date()

    def day(self, zone: str | None, d: date) -> Day:
        """The rule and window of local date ``d`` in ``zone`` (cached)."""
        name = zone or self.zone
        key = (name, d.toordinal())
        found = self._days.get(key)
        if found is None:
            if len(self._days) >= _CACHE_MAX:
                self._days.clear()
            found = self._days[key] = self._rule(name, d)
        return found

    def _rule(self, zone: str, d: date) -> Day:
        if d in self._banned:
            return Day("banned_date", "a banned date (policy calling.banned_dates)", *_NONE)
        if (d.month, d.day) in self._remembrance:
            return Day("remembrance_day", "a remembrance day (calling.remembrance_days)", *_NONE)
        if self._holidays is not None:
            name = self._holidays.get(d)
            if name is not None:
                return Day("public_holiday", f"public holiday: {name}", *_NONE)
        weekday = WEEKDAYS[d.weekday()]
        hours = self._hours[d.weekday()]
        if hours is None:
            return Day(weekday, f"no calling hours on {weekday}s", *_NONE)
        opens, closes = hours
        kind, detail = weekday, f"{weekday} hours"
        part = self._part.get((d.month, d.day))
        if part is not None and part < closes:  # on a Saturday 16:00 comes first
            kind, detail = "part_day", f"part day {d.month:02}-{d.day:02} (until {part:%H:%M})"
            closes = part
            if closes <= opens:
                return Day(kind, detail, *_NONE)
        tz = self.tz(zone)
        start = int(datetime.combine(d, opens, tzinfo=tz).timestamp())
        end = int(datetime.combine(d, closes, tzinfo=tz).timestamp())
        return Day(kind, detail, opens, closes, start, end)

    def inside(self, zone: str | None, t: int) -> bool:
        """Whether a call at epoch second ``t`` is inside a calling window."""
        rule = self.day(zone, self.local_date(zone, t))
        return rule.start is not None and rule.end is not None and rule.start <= t < rule.end

    def next_call_at(self, zone: str | None, t: int) -> int | None:
        """The earliest epoch second at or after ``t`` inside a calling window."""
        d = self.local_date(zone, t)
        for i in range(HORIZON_DAYS):
            rule = self.day(zone, d + timedelta(days=i))
            if rule.end is not None and t < rule.end:
                return max(t, rule.start or t)
        return None


_NONE = (None, None, None, None)
_CALENDARS: dict[int, tuple[Policy, CallingCalendar]] = {}


def calendar_for(policy: Policy) -> CallingCalendar:
    """The calendar of a policy, made once per policy object."""
    found = _CALENDARS.get(id(policy))
    if found is None or found[0] is not policy:
        found = _CALENDARS[id(policy)] = (policy, CallingCalendar(policy.calling))
    return found[1]


def next_call_at(policy: Policy, zone: str | None, not_before_utc: datetime) -> datetime | None:
    """The earliest moment at or after ``not_before_utc`` (rounded up to a whole second)
    inside a calling window of ``policy`` in ``zone`` (None: the policy's zone)."""
    t = not_before_utc.timestamp()
    second = int(t) + (t > int(t))
    found = calendar_for(policy).next_call_at(zone, second)
    return None if found is None else datetime.fromtimestamp(found, UTC)
