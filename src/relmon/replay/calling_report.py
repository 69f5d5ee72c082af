"""The replay report's section on calls outside the calling windows, by partner.

Kept apart from :mod:`relmon.replay.report` (which collects the counts in ``Analysis.outside``
and places this section after the calls against a suppression).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

from relmon.domain import Alert
from relmon.replay import svg

# How a missed window is grouped (the metric's ``day`` label, spelled for people).
LATE = "outside the day's hours"
NO_HOURS = "day without hours (Sunday)"
HOLIDAY = "public holiday, remembrance or banned day"
LABELS = (LATE, NO_HOURS, HOLIDAY)
_HOLIDAYS = frozenset({"public_holiday", "remembrance_day", "banned_date"})


def outside_label(alert: Alert) -> str:
    """The group of a ``call_outside_window`` alert's missed window."""
    w = alert.window
    if w is None:
        return LATE
    if w.day in _HOLIDAYS:
        return HOLIDAY
    return LATE if w.opens is not None else NO_HOURS


def calling_section(outside: Mapping[tuple[str, str], int], calls: Mapping[str, int]) -> list[str]:
    """HTML of the section: a bar per partner split by group, and a table with the shares."""
    from relmon.replay.report import table_html  # report imports this module

    by_partner: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for (partner, label), k in outside.items():
        by_partner[partner] += k
        groups[partner][label] += k
    out = [
        "<h2>Calls outside calling hours, by partner</h2>",
        '<p class="explain">Outbound marketing calls (attempts included) made outside the '
        "policy's calling windows in the supporter's local time (the Dutch Code Telemarketing "
        "by default: working days 09:00-22:00, Saturdays 10:00-16:00, 4 May, 5 and 24 December "
        "until 18:30, no Sundays or public holidays); calls whose trigger says the supporter "
        "asked for them are exempt. Each is a <code>call_outside_window</code> alert.</p>",
    ]
    if not by_partner:
        out.append("<p>No call was made outside calling hours.</p>")
        return out
    partners = sorted(by_partner, key=lambda p: (-by_partner[p], p))
    labels = [x for x in LABELS if any(groups[p][x] for p in partners)]
    rows = [(p, [float(groups[p][x]) for x in labels]) for p in partners]
    out.append(
        "<figure>"
        + svg.stacked_hbar(
            rows,
            labels,
            title="calls outside calling hours by partner",
            x_label="marketing calls outside calling hours",
        )
        + "</figure>"
    )
    table_rows = []
    for p in partners[:20]:
        total = calls.get(p, 0)
        share = f"{100 * by_partner[p] / total:.1f} %" if total else "-"
        table_rows.append((p, total, by_partner[p], share, *(groups[p][x] for x in LABELS)))
    out.append(
        table_html(
            ["partner", "marketing calls", "outside hours", "share", *LABELS],
            table_rows,
            {1, 2, 3, 4, 5, 6},
        )
    )
    return out
