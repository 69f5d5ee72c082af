"""The policy's numbers in the engine's units (epoch seconds), read once per engine."""

from __future__ import annotations

from datetime import UTC, datetime, timezone, tzinfo
from operator import truediv
from typing import Any, Final

from relmon.domain.facts import COMPLAINT, CONVERTED, DAY, INFO_REQUESTED, LABELS
from relmon.domain.policy import Policy
from relmon.domain.scoring import Weights, threshold_sum


class Rules:
    """Durations in seconds, thresholds as decayed sums, retention per fact list."""

    def __init__(self, policy: Policy) -> None:
        p = policy
        self.policy = policy
        self.version = p.version
        self.w = Weights(policy)
        self.irritation_weights = tuple(float(getattr(p.irritation, name)) for name in LABELS)
        self.tenure_months = p.loyalty.min_tenure_months
        self.lapse_months = p.legal_basis.relationship_term_months  # 0: no such reason
        self.churn_window = p.churn_after_contact.window_days * DAY
        self.min_gap = p.reasons.min_gap_days * DAY
        self.deciding = p.reasons.deciding_in_own_time_days * DAY
        self.cap_calls = p.contact_cap.calls
        self.cap_window = p.contact_cap.window_days * DAY
        self.fatigue_detail = f"fatigue >= {p.thresholds.fatigue}"
        self.irritation_detail = f"irritation_risk >= {p.thresholds.irritation_risk}"
        self.irritation_detail_loyal = (
            f"irritation_risk >= {p.thresholds.irritation_risk_loyal} (loyal donor)"
        )
        self.s_fatigue = threshold_sum(p.thresholds.fatigue)
        self.s_irritation = threshold_sum(p.thresholds.irritation_risk)
        self.s_irritation_loyal = threshold_sum(p.thresholds.irritation_risk_loyal)
        # (marker kind, reason code, duration) for the reasons that last a fixed time
        self.timed_markers = (
            (COMPLAINT, "COMPLAINT", p.reasons.complaint_days * DAY),
            (INFO_REQUESTED, "DECIDING_IN_OWN_TIME", self.deciding),
            (CONVERTED, "RECENT_UPGRADE", p.reasons.recent_upgrade_days * DAY),
        )
        grace = p.retention.late_event_grace_days * DAY
        self.max_facts = p.retention.max_facts_per_kind
        # how long (seconds before the clock) each list keeps its facts
        self.keep_calls = (
            max(
                self.cap_window,
                self.churn_window,
                self.min_gap,
                self.deciding,
                self.w.partner_window,
                self.w.f_horizon,
            )
            + grace
        )
        self.keep_irritation = self.w.i_horizon + grace
        self.keep_emails = self.w.f_horizon + grace
        self.keep_markers = tuple(d + grace for _k, _c, d in self.timed_markers)
        self.marker_retention = tuple(
            (kind, keep)
            for (kind, _c, _d), keep in zip(self.timed_markers, self.keep_markers, strict=True)
        )
        self.min_keep = min(
            self.keep_calls, self.keep_irritation, self.keep_emails, *self.keep_markers
        )
        self.reason_cache: dict[tuple[str, int | None, str | int], Any] = {}
        self.max_do_not_call = 4
        self.max_consents = 16
        self.max_mandates = 16


# Final: compiled, C statics; datetime.fromtimestamp read from the class made a new bound
# method on every call (utc runs for each record and alert)
_fromtimestamp: Final = datetime.fromtimestamp
_UTC: Final = UTC


def utc(t: int) -> datetime:
    """An epoch second as an aware UTC datetime."""
    return _fromtimestamp(t, _UTC)


_EPOCH_ORDINAL: Final = 719_163  # datetime(1970, 1, 1).toordinal()
_EXACT: Final = 1 << 53  # integers below this are exact as doubles (microseconds up to 2255)
_OFFSETS: dict[tzinfo, int] = {}  # fixed offsets seen (timezone objects), in seconds


def instant(d: datetime) -> float:
    """``d.timestamp()`` of an aware datetime with a fixed offset (an event's time), the
    same float, in a third of the time.

    ``timestamp()`` subtracts the epoch, which asks both time zones for their offset
    through Python calls and counts microseconds in Python integers: ~0.5 µs, once for
    each event of a replay. Here the offset of each fixed-offset zone is remembered and
    the rest is integer arithmetic; the microseconds, when there are any, are divided as
    ``timestamp()`` divides them (one correctly rounded division; compiled, a division of
    integers beyond 2**53 would round twice, so those go to Python's). Other zones (an IANA
    zone's offset depends on the date) take ``timestamp()``.
    """
    tz = d.tzinfo
    if type(tz) is not timezone:
        return d.timestamp()
    offset = _OFFSETS.get(tz)
    if offset is None:
        delta = tz.utcoffset(None)
        if delta.microseconds:  # not an RFC 3339 offset (whole minutes)
            return d.timestamp()
        offset = _OFFSETS[tz] = delta.days * DAY + delta.seconds
    seconds = (d.toordinal() - _EPOCH_ORDINAL) * DAY + d.hour * 3600 + d.minute * 60
    seconds += d.second - offset
    micro = d.microsecond
    if not micro:
        return float(seconds)
    total = seconds * 1_000_000 + micro
    if -_EXACT < total < _EXACT:  # both exact as doubles: one IEEE division, as Python does
        return total / 1_000_000
    exact: float = truediv(total, 1_000_000)  # Python's correctly rounded division
    return exact


def add_months(t: int, months: int) -> int:
    """``t`` plus whole calendar months (UTC), the day clamped to the month's last day.

    Integer arithmetic on the proleptic Gregorian calendar (what ``datetime`` counts in):
    compiled, a few dozen machine operations where the ``datetime`` round trip took ~3 µs,
    once for each donation event. ``tests/unit/test_calendar.py`` holds it to ``datetime``.
    """
    days, second = divmod(t, DAY)
    year, month, day = _civil(days)
    index = month - 1 + months
    year, month = year + index // 12, index % 12 + 1
    return _epoch_day(year, month, min(day, _days_in_month(year, month))) * DAY + second


def whole_months(start: int, end: int) -> int:
    """Whole calendar months (UTC) from ``start`` to ``end`` (0 when end is before start)."""
    a, b = _civil(start // DAY), _civil(end // DAY)
    months = (b[0] - a[0]) * 12 + b[1] - a[1]
    if add_months(start, months) > end:
        months -= 1
    return max(months, 0)


# Days since 1970-01-01 to and from (year, month, day): the algorithms of H. Hinnant's
# "chrono-Compatible Low-Level Date Algorithms" (years of 400 years from 0000-03-01, so that
# February, and its leap day, ends each year), with Python's floor division.


def _civil(days: int) -> tuple[int, int, int]:
    z = days + 719_468  # days from 0000-03-01
    era = z // 146_097
    doe = z - era * 146_097  # [0, 146096]
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365  # [0, 399]
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # [0, 365], from March 1st
    mp = (5 * doy + 2) // 153  # [0, 11], March = 0
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def _epoch_day(year: int, month: int, day: int) -> int:
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _days_in_month(year: int, month: int) -> int:
    if month != 2:
        return 30 if month in (4, 6, 9, 11) else 31
    return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
