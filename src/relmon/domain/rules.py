"""The policy's numbers in the engine's units (epoch seconds), read once per engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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

    def prune_at(self, st: Any) -> int:
        """When the oldest retained fact of ``st`` expires (``_forget`` is due)."""
        heads = [
            st.calls[0].t + self.keep_calls if st.calls else _NEVER,
            st.churns[0].t + self.keep_calls if st.churns else _NEVER,
            st.irritation[0].t + self.keep_irritation if st.irritation else _NEVER,
            st.emails[0].t + self.keep_emails if st.emails else _NEVER,
        ]
        for kind, keep in self.marker_retention:
            facts = st.markers[kind]
            if facts:
                heads.append(facts[0].t + keep)
        return min(heads)


_NEVER = 1 << 62


def utc(t: int) -> datetime:
    """An epoch second as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def add_months(t: int, months: int) -> int:
    """``t`` plus whole calendar months (UTC), the day clamped to the month's last day."""
    d = datetime.fromtimestamp(t, UTC)
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    day = min(d.day, _days_in_month(year, month))
    return int(d.replace(year=year, month=month, day=day).timestamp())


def whole_months(start: int, end: int) -> int:
    """Whole calendar months (UTC) from ``start`` to ``end`` (0 when end is before start)."""
    a, b = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    months = (b.year - a.year) * 12 + b.month - a.month
    if add_months(start, months) > end:
        months -= 1
    return max(months, 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (datetime(year, month + 1, 1, tzinfo=UTC) - datetime(year, month, 1, tzinfo=UTC)).days
