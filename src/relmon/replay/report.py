"""``report.html``: what a replay found, as plots an analyst can read offline.

:class:`Analysis` watches a replay (it is a :class:`~relmon.replay.file_replay.Observer`) and
keeps only what the report needs; :func:`write_report` renders one self-contained HTML file
(inline CSS and SVG, no scripts, no fonts, no network). The same input and policy give a
byte-identical report: nothing in it depends on the clock or the machine.

Definitions (also written under each plot):

* *Loyal* at a time and *loyal churn*: the policy's definitions, as the engine applies them
  (:mod:`relmon.domain.loyalty`), followed from the donation events.
* *Observation period*: from the first outbound call in the input to the last event.
* *Churn after contact* rate of a group (a partner, purpose or agent): among the reached
  outbound calls of that group to donors loyal at the call, the share followed by a loyal
  churn of that donor within ``churn_after_contact.window_days`` (W) after the call.
  Denominator: those calls; a donor called three times counts three times.
* *Baseline*: the observation period is cut into consecutive W-day windows; among the
  (loyal donor, window) pairs where the donor is loyal at the window's start and has no
  reached outbound call from W days before the window to its end, the share with a loyal
  churn in the window. Both rates are "chance of a loyal churn within W days".
* *Excess churn*: the group's rate minus the baseline (percentage points).
* *Suppressed by reason over time*: supporters suppressed at the end of each UTC day, each
  counted once under its first reason in force, in the contract's order (most lasting
  first); a reason ends at its ``until`` even when the replay emitted no lift yet.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, get_args

from relmon.domain import Alert, Policy, SuppressionRecord, loyalty
from relmon.domain.events import (
    ATTEMPT_OUTCOMES,
    MARKETING_PURPOSES,
    DonationChangeEvent,
    Event,
)
from relmon.domain.outputs import ReasonCode, iso
from relmon.domain.rules import instant, utc
from relmon.replay import svg
from relmon.replay.calling_report import calling_section, outside_label

DAY = 86_400
_FIRST = itemgetter(0)  # the time of a (t, ...) change, as a C-level bisect key
REASON_ORDER: tuple[str, ...] = get_args(ReasonCode)  # the contract's order


class CallFact(NamedTuple):
    """An outbound call as the report needs it."""

    t: int
    eid: str
    partner: str
    purpose: str
    agent: str
    outcome: str
    amount_delta: int | None

    @property
    def reached(self) -> bool:
        return self.outcome not in ATTEMPT_OUTCOMES

    @property
    def marketing(self) -> bool:
        return self.purpose in MARKETING_PURPOSES


class Churn(NamedTuple):
    """A loyal churn: time, event id, monthly amount lost (cents)."""

    t: int
    eid: str
    lost: int


# What the report reads of an alert: (kind, partner, group, monthly cents lost, currency,
# purpose, agent), see alert_view. A plain tuple: a replay split by supporter sends it
# between processes (relmon.replay.sharded).
AlertView = tuple[str, str, str, int, str | None, str, str]


def alert_view(a: Alert) -> AlertView:
    """What :meth:`Analysis.alerts` reads of an alert: its kind; the partner of its call;
    the group (a ``call_while_suppressed``'s first reason, a ``call_outside_window``'s
    missed window: :func:`~relmon.replay.calling_report.outside_label`); and, for a
    ``churn_after_contact``, the monthly amount lost, its currency (None without a
    donation), the call's purpose and agent."""
    kind, c = a.kind, a.contact
    if kind == "call_while_suppressed":
        return (kind, c.partner_id, a.reasons[0].code if a.reasons else "?", 0, None, "", "")
    if kind == "churn_after_contact":
        d = a.donation
        lost, currency = (d.monthly_amount_lost_cents, d.currency) if d else (0, None)
        agent = c.agent_id or "(no agent)"
        return (kind, c.partner_id, "", lost, currency, c.campaign_purpose, agent)
    return (kind, c.partner_id, outside_label(a), 0, None, "", "")  # call_outside_window


class Rate(NamedTuple):
    """``churned`` of ``n`` (calls, or donor-windows for the baseline)."""

    label: str
    n: int
    churned: int

    @property
    def rate(self) -> float:
        return self.churned / self.n if self.n else 0.0


@dataclass
class Money:
    """A count of churns and the monthly amount they lost (cents)."""

    count: int = 0
    cents: int = 0

    def add(self, cents: int) -> None:
        self.count += 1
        self.cents += cents


@dataclass
class ExcessChurn:
    """Churn-after-contact rates by group, and the baseline they are set against."""

    window_days: int
    baseline: Rate
    contacted: Rate
    by: dict[str, list[Rate]] = field(default_factory=dict)


class Analysis:
    """Collects, during a replay, what the report plots (see the module docstring)."""

    def __init__(self, policy: Policy) -> None:
        self.window = policy.churn_after_contact.window_days * DAY
        self.tenure = policy.loyalty.min_tenure_months
        self.types: Counter[str] = Counter()
        self.calls: dict[str, list[CallFact]] = defaultdict(list)
        self.churns: dict[str, list[Churn]] = defaultdict(list)
        self._mandates: dict[str, dict[str, int | None]] = defaultdict(dict)
        self._loyal: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
        self.first_call: int | None = None
        # suppressions: the open record per supporter, day counts by first reason
        self._open: dict[str, tuple[int, tuple[tuple[str, int | None], ...]]] = {}
        self._diff: dict[str, Counter[int]] = defaultdict(Counter)
        self.started: Counter[str] = Counter()
        self.days_in_force: Counter[str] = Counter()
        self.first_record: int | None = None
        self.alert_kinds: Counter[str] = Counter()
        self.cws: Counter[tuple[str, str]] = Counter()  # (partner, first reason)
        self.outside: Counter[tuple[str, str]] = Counter()  # (partner, day): calling_report
        self.end: int | None = None
        self.policy = policy
        # churn_after_contact alerts, as the engine raised them: how many and the monthly
        # amount lost (cents), by (dimension, group) of the last reached call before the churn
        self.cac = Money()
        self.cac_by: dict[tuple[str, str], Money] = defaultdict(Money)
        self.currencies: Counter[str] = Counter()

    # -- observing ---------------------------------------------------------------------

    # the events whose details the report needs; the replay only counts the others (skipped)
    event_types: frozenset[str] | None = frozenset({"call_outcome", "donation_change"})

    def event(self, event: Event, t: int) -> None:
        """Note one valid event at its epoch second ``t``: a call or a donation change (a
        file replay gives only those: :attr:`event_types`); any other is counted and
        nothing more."""
        kind = event.type
        self.types[kind] += 1
        if kind == "email_engagement":  # most events (given one at a time): nothing more
            return
        if event.type == "call_outcome":
            if event.direction == "outbound":
                if self.first_call is None or t < self.first_call:
                    self.first_call = t
                self.calls[event.supporter_id].append(
                    CallFact(
                        t,
                        event.event_id,
                        event.partner_id,
                        event.campaign_purpose,
                        event.agent_id or "(no agent)",
                        event.outcome,
                        event.amount_delta_cents,
                    )
                )
        elif event.type == "donation_change":
            self._donation(event, t)

    def _donation(self, ev: DonationChangeEvent, t: int) -> None:
        if ev.action == "one_off":
            return
        sid = ev.supporter_id
        loyal_at = loyalty.loyal_from(int(instant(ev.mandate_started_at)), self.tenure)
        mandates = self._mandates[sid]
        mandates[ev.mandate_id] = loyal_at if loyalty.leaves_active(ev) else None
        since = None  # the earliest onset of an active mandate (a loop: most donors have one)
        for onset in mandates.values():
            if onset is not None and (since is None or onset < since):
                since = onset
        changes = self._loyal[sid]
        if not changes or changes[-1][1] != since:
            changes.append((t, since))
        if loyalty.is_loyal_churn(ev, t, loyal_at):
            lost = loyalty.monthly_amount_lost(
                ev.action, ev.frequency, ev.amount_cents_before, ev.amount_cents_after
            )
            self.churns[sid].append(Churn(t, ev.event_id, lost))

    def skipped(self, counts: dict[str, int]) -> None:
        """Count the events of the types the replay does not show :meth:`event`."""
        self.types.update(counts)

    def records(self, records: list[SuppressionRecord]) -> None:
        started, opened = self.started, self._open
        for r in records:
            sid = r.supporter_id
            t = int(instant(r.decided_at))
            if self.first_record is None:
                self.first_record = t
            reasons = tuple(
                [(x.code, None if x.until is None else int(instant(x.until))) for x in r.reasons]
            )
            before = opened.pop(sid, None)
            if before is None:  # nothing was in force: every reason starts
                for code, _until in reasons:
                    started[code] += 1
            else:
                self._interval(before[0], t, before[1])
                in_force = {c for c, u in before[1] if u is None or u > t}
                for code, _until in reasons:
                    if code not in in_force:
                        started[code] += 1
            if reasons:
                opened[sid] = (t, reasons)

    def alerts(self, alerts: list[Alert]) -> None:
        self.alert_views([alert_view(a) for a in alerts])

    def alert_views(self, views: Iterable[AlertView]) -> None:
        """:meth:`alerts`, given what it reads of each (:func:`alert_view`)."""
        for kind, partner, group, lost, currency, purpose, agent in views:
            self.alert_kinds[kind] += 1
            if kind == "call_while_suppressed":
                self.cws[(partner, group)] += 1
            elif kind == "churn_after_contact":
                if currency is not None:
                    self.currencies[currency] += 1
                self.cac.add(lost)
                for key in (("partner", partner), ("purpose", purpose), ("agent", agent)):
                    self.cac_by[key].add(lost)
            elif kind == "call_outside_window":
                self.outside[(partner, group)] += 1

    def add_part(self, part: Analysis) -> None:
        """Add what ``part`` saw of other supporters (one process of a replay split by
        supporter, :mod:`relmon.replay.sharded`, after its :meth:`finish`): its events and
        records. Every table made of these is a sum over supporters or sorted, so neither
        the order of the parts nor their interleaving matters; alerts are not added (this
        analysis must see them in the one-by-one order: ties in "mostly against" follow it),
        nor ``first_record`` (the caller knows which part's record came first). The calls by
        supporter come in the parts' order; the what-if, whose call index depends on it,
        puts them back in one process's."""
        if part._open:
            raise ValueError("add a part after its finish()")
        self.types.update(part.types)
        if part.first_call is not None and (
            self.first_call is None or part.first_call < self.first_call
        ):
            self.first_call = part.first_call
        self.calls.update(part.calls)
        self.churns.update(part.churns)
        self._mandates.update(part._mandates)
        self._loyal.update(part._loyal)
        self.started.update(part.started)
        self.days_in_force.update(part.days_in_force)
        for code, diff in part._diff.items():
            self._diff[code].update(diff)

    def finish(self, end: int) -> None:
        """Close what is still open at ``end`` (the last event time)."""
        self.end = end
        for start, reasons in self._open.values():
            self._interval(start, max(end, start), reasons)
        self._open.clear()

    def _interval(self, start: int, end: int, reasons: tuple[tuple[str, int | None], ...]) -> None:
        for code, until in reasons:
            stop = end if until is None else min(end, until)
            if stop > start:
                self.days_in_force[code] += stop - start
        t = start
        while t < end:
            live = [(c, u) for c, u in reasons if u is None or u > t]
            if not live:
                return
            code, until = live[0]
            stop = end if until is None else min(end, until)
            first, last = -(-t // DAY) - 1, -(-stop // DAY) - 1  # days whose end is in [t, stop)
            if last > first:
                self._diff[code][first] += 1
                self._diff[code][last] -= 1
            t = stop

    # -- derived -------------------------------------------------------------------------

    def loyal_at(self, sid: str, t: int) -> bool:
        changes = self._loyal.get(sid)
        if not changes:
            return False
        i = bisect.bisect_right(changes, t, key=_FIRST) - 1
        if i < 0:
            return False
        since = changes[i][1]
        return since is not None and since <= t

    @property
    def period(self) -> tuple[int, int] | None:
        """The observation period: first outbound call to the last event."""
        if self.end is None:
            return None
        start = self.first_call if self.first_call is not None else self.first_record
        return None if start is None or start > self.end else (start, self.end)

    def excess_churn(self, min_calls: int = 20) -> ExcessChurn:
        """Rates by partner, purpose and agent (agents with at least ``min_calls`` calls)."""
        w = self.window
        n: dict[str, Counter[str]] = defaultdict(Counter)
        churned: dict[str, Counter[str]] = defaultdict(Counter)
        reached_at: dict[str, list[int]] = {}
        for sid, calls in self.calls.items():
            churn_ts = sorted(c.t for c in self.churns.get(sid, ()))
            reached_at[sid] = sorted(c.t for c in calls if c.reached)
            for c in calls:
                if not c.reached or not self.loyal_at(sid, c.t):
                    continue
                i = bisect.bisect_left(churn_ts, c.t)
                hit = i < len(churn_ts) and churn_ts[i] <= c.t + w
                for dim, key in (
                    ("all", "all"),
                    ("partner", c.partner),
                    ("purpose", c.purpose),
                    ("agent", c.agent),
                ):
                    n[dim][key] += 1
                    churned[dim][key] += hit
        base_n = base_churned = 0
        period = self.period
        if period is not None:
            start, end = period
            blocks = range(start, end - w + 1, w)
            for sid in self._loyal:
                calls_t = reached_at.get(sid, [])
                churn_ts = sorted(c.t for c in self.churns.get(sid, ()))
                for b in blocks:
                    if not self.loyal_at(sid, b):
                        continue
                    i = bisect.bisect_left(calls_t, b - w)
                    if i < len(calls_t) and calls_t[i] < b + w:
                        continue
                    base_n += 1
                    j = bisect.bisect_left(churn_ts, b)
                    base_churned += j < len(churn_ts) and churn_ts[j] < b + w
        result = ExcessChurn(
            w // DAY,
            Rate("not contacted", base_n, base_churned),
            Rate("all contacts", n["all"]["all"], churned["all"]["all"]),
        )
        for dim in ("partner", "purpose", "agent"):
            rows = [Rate(k, v, churned[dim][k]) for k, v in n[dim].items()]
            if dim == "agent":
                rows = [r for r in rows if r.n >= min_calls]
            rows.sort(key=lambda r: (-r.rate, -r.n, r.label))
            result.by[dim] = rows[:15] if dim == "agent" else rows
        return result

    def suppression_days(self) -> tuple[list[int], list[tuple[str, list[float]]]]:
        """Epoch days of the observation period, and per first reason the daily counts."""
        period = self.period
        if period is None:
            return [], []
        first, last = period[0] // DAY, period[1] // DAY - 1
        days = list(range(first, last + 1)) if last >= first else []
        series = []
        for code in REASON_ORDER:
            diff = self._diff.get(code)
            if not diff:
                continue
            running = sum(v for d, v in diff.items() if d < first)
            values = []
            for d in days:
                running += diff.get(d, 0)
                values.append(float(running))
            if any(values):
                series.append((code, values))
        return days, series

    def marketing_calls_by_partner(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for calls in self.calls.values():
            out.update(c.partner for c in calls if c.marketing)
        return out

    def call_index(self) -> dict[str, CallFact]:
        return {c.eid: c for calls in self.calls.values() for c in calls}


# -- rendering ---------------------------------------------------------------------------


@dataclass
class ReportMeta:
    """The header of a report: where the events came from and what the replay counted."""

    source: str
    policy_version: str
    counts: dict[str, object]
    first_at: int | None
    last_at: int | None


CSS = """
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
margin:0;background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 6px;border-top:1px solid #ddd;
padding-top:18px}h3{font-size:15px;margin:20px 0 4px}
p.explain{color:#444;max-width:900px;margin:4px 0 10px}
table{border-collapse:collapse;margin:8px 0 12px}
td:first-child{white-space:nowrap}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{color:#666}
figure{margin:6px 0 14px}svg{max-width:100%;height:auto}
.note{color:#777;font-size:12px}
.headline{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:10px;
margin:14px 0 8px}
.card{border:1px solid #e3e3e3;border-left:5px solid #e15759;padding:8px 12px;background:#fffafa}
.card .big{font-size:26px;font-weight:700;line-height:1.2}.card .what{font-weight:600}
.card .sub{color:#555;font-size:13px}
p.answer{font-size:16px;max-width:900px;margin:6px 0 14px;padding:8px 12px;background:#f6f6f6}
.sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}
"""

# What each reason code means, for the glossary ({...} filled from the policy).
GLOSSARY: dict[str, str] = {
    "OPTED_OUT": "The supporter opted out of phone calls (a consent opt_out on phone or all "
    "channels). No end until an opt_in.",
    "OBJECTION": "The supporter objected to marketing (a consent objection). No end until an "
    "opt_in.",
    "DO_NOT_CALL_REQUEST": "The supporter asked on a call not to be called again (outcome "
    "do_not_call). No end until an opt_in.",
    "COMPLAINT": "The supporter complained on a call (outcome complaint). For "
    "{complaint_days} days.",
    "DECIDING_IN_OWN_TIME": "The supporter asked for information to decide in their own time "
    "(outcome info_requested): no marketing call may chase the decision, for "
    "{deciding_in_own_time_days} days.",
    "RECENT_UPGRADE": "The supporter just agreed to give or give more (outcome converted): "
    "left in peace for {recent_upgrade_days} days.",
    "CONTACT_CAP": "{cap_calls} or more outbound calls (any purpose, partner or outcome) in "
    "the trailing {cap_window} days: until fewer remain in the window.",
    "MIN_GAP": "A reached outbound marketing call: no other marketing call for "
    "{min_gap_days} days.",
    "FATIGUE": "Contact pressure: the fatigue score is at or above {fatigue}; ends when it "
    "decays below.",
    "IRRITATION_RISK": "The irritation-risk score is at or above {irritation} ({loyal} for a "
    "loyal donor); ends when it decays below.",
    "RELATIONSHIP_LAPSED": "The supporter's last donorship ended more than {term_months} months "
    "ago and no phone opt-in came since: no legal basis left to call. Ends with an opt_in or a "
    "new donorship.",
}


def _pct(x: float) -> str:
    return f"{x * 100:.1f}\u00a0%"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    out = ["<table><tr>"]
    for i, h in enumerate(head):
        cls = ' class="num"' if i in numeric else ""
        out.append(f"<th{cls}>{escape(h)}</th>")
    out.append("</tr>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = f"{cell:,}" if isinstance(cell, int) else str(cell)
            cls = ' class="num"' if i in numeric else ""
            out.append(f"<td{cls}>{escape(text)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def page(title: str, body: Sequence[str]) -> str:
    """A whole self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        + "\n".join(body)
        + "</main></body></html>\n"
    )


def _header(meta: ReportMeta, analysis: Analysis, ex: ExcessChurn) -> list[str]:
    c = meta.counts
    period = analysis.period
    facts = [
        ("input", meta.source),
        ("policy version", meta.policy_version),
        ("time range of the events", f"{_ts(meta.first_at)} to {_ts(meta.last_at)}"),
        (
            "observation period (plots)",
            f"{_ts(period[0])} to {_ts(period[1])}" if period else "no outbound calls",
        ),
        ("lines / messages read", f"{c.get('lines', 0):,}"),
        ("valid events", f"{c.get('valid', 0):,}"),
        ("by type", ", ".join(f"{k} {v:,}" for k, v in sorted(analysis.types.items())) or "none"),
        ("dead letters", f"{c.get('dead_letters', 0):,}"),
        ("supporters", f"{c.get('supporters', 0):,}"),
        ("suppression records", f"{c.get('records', 0):,}"),
        (
            "alerts",
            ", ".join(
                f"{k} {v:,}"
                + (f" ({money(analysis, analysis.cac.cents)} a month lost)" if k == CAC else "")
                for k, v in sorted(analysis.alert_kinds.items())
            )
            or "none",
        ),
    ]
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in facts)
    return [
        "<h1>relmon replay report</h1>",
        *headline(analysis, ex),
        '<p class="explain">What the engine decided and noticed over the replayed events. '
        "Every number comes from the events and the policy below; the same input and policy "
        "give the same report.</p>",
        f'<table class="facts">{rows}</table>',
    ]


def _ts(t: int | None) -> str:
    return "-" if t is None else str(iso(utc(t)))


def _churn_section(analysis: Analysis, ex: ExcessChurn) -> list[str]:
    w = ex.window_days
    base = ex.baseline
    out = [
        "<h2>Churn after contact, against donors not contacted (excess churn)</h2>",
        f'<p class="explain">Each bar: of the reached outbound calls (any purpose) made to '
        f"donors who were loyal at the call, the share followed by that donor's churn "
        f"(cancel, pause, reversal or downgrade of a monthly gift) within {w} days. The dashed "
        f"line is the baseline: of the {base.n:,} windows of {w} days in which a loyal donor "
        f"had no reached call (nor in the {w} days before), {base.churned:,} had a churn "
        f"({_pct(base.rate)}). Bars in red are above the baseline; the difference is the "
        "excess churn after contact. Small groups swing widely: read the counts.</p>",
    ]
    if ex.contacted.n == 0:
        out.append("<p>No reached outbound calls to loyal donors in this input.</p>")
        return out
    out.append(
        f'<p class="explain">All contacts: {ex.contacted.churned:,} of {ex.contacted.n:,} '
        f"calls ({_pct(ex.contacted.rate)}); excess "
        f"{(ex.contacted.rate - base.rate) * 100:+.1f} percentage points. The engine raised "
        f"{analysis.cac.count:,} churn-after-contact alerts, "
        f"{money(analysis, analysis.cac.cents)} a month of monthly gifts lost; after each bar, "
        "the amount lost by the churns whose last reached call before them was that "
        "group's.</p>"
    )
    titles = {
        "partner": "By partner",
        "purpose": "By campaign purpose",
        "agent": "By agent (the 15 highest rates among agents with at least 20 such calls)",
    }
    for dim in ("partner", "purpose", "agent"):
        rows = ex.by.get(dim, [])
        out.append(f"<h3>{escape(titles[dim])}</h3>")
        if not rows:
            out.append('<p class="note">No group large enough.</p>')
            continue
        bars = [
            svg.Bar(
                r.label,
                r.rate,
                f"{r.churned:,}/{r.n:,}  ({(r.rate - base.rate) * 100:+.1f} pp)  "
                f"{money(analysis, analysis.cac_by[(dim, r.label)].cents)}/mo",
            )
            for r in rows
        ]
        out.append(
            "<figure>"
            + svg.hbar(
                bars,
                value_text=_pct,
                ref=base.rate,
                ref_label="baseline",
                title=f"churn after contact {titles[dim].lower()}",
                x_label=f"share of calls followed by the donor's churn within {w} days",
            )
            + "</figure>"
        )
    return out


def _cws_section(analysis: Analysis) -> list[str]:
    calls = analysis.marketing_calls_by_partner()
    by_partner: Counter[str] = Counter()
    reasons_of: dict[str, Counter[str]] = defaultdict(Counter)
    for (partner, code), k in analysis.cws.items():
        by_partner[partner] += k
        reasons_of[partner][code] += k
    out = [
        "<h2>Calls made against a suppression, by partner</h2>",
        '<p class="explain">An outbound marketing call (upgrade, reactivation, acquisition, '
        "survey, other; attempts included) to a supporter the policy said not to call at that "
        "moment, judged on the events before the call. Each bar is split by the first reason "
        "in force (the most lasting one). A partner with many such calls ignores or does not "
        "receive the suppression list.</p>",
    ]
    if not by_partner:
        out.append("<p>No call was made against a suppression.</p>")
        return out
    partners = sorted(by_partner, key=lambda p: (-by_partner[p], p))
    codes = [c for c in REASON_ORDER if any(reasons_of[p][c] for p in partners)]
    rows = [(p, [float(reasons_of[p][c]) for c in codes]) for p in partners]
    out.append(
        "<figure>"
        + svg.stacked_hbar(
            rows,
            codes,
            title="calls against a suppression by partner",
            colors=[svg.reason_color(c) for c in codes],
            x_label="marketing calls made against a suppression",
        )
        + "</figure>"
    )
    out.append("<h3>Top partners by calls against a suppression</h3>")
    table_rows = []
    for p in partners[:20]:
        total = calls.get(p, 0)
        top = ", ".join(f"{c} {k:,}" for c, k in reasons_of[p].most_common(3))
        share = _pct(by_partner[p] / total) if total else "-"
        lost = analysis.cac_by[("partner", p)]
        churn = f"{lost.count:,} ({money(analysis, lost.cents)} a month)"
        table_rows.append((p, total, by_partner[p], share, churn, top))
    out.append(
        _table(
            [
                "partner",
                "marketing calls",
                "against a suppression",
                "share",
                "churns after its calls (lost)",
                "first reasons",
            ],
            table_rows,
            {1, 2, 3, 4},
        )
    )
    return out


def _suppression_section(analysis: Analysis) -> list[str]:
    days, series = analysis.suppression_days()
    out = [
        "<h2>Suppressions by reason over time</h2>",
        '<p class="explain">Supporters suppressed at the end of each day (UTC), each counted '
        "once, under the first reason in force in the contract's order (opt-outs and "
        "objections first, scores last). A reason stops counting at its end date even if the "
        "supporter had no later event. The table counts every reason: how often it started "
        "and how many supporter-days it was in force.</p>",
    ]
    if days and series:
        out.append(
            "<figure>"
            + svg.stacked_area(
                days,
                series,
                title="supporters suppressed by first reason",
                colors=[svg.reason_color(code) for code, _v in series],
                x_label="day (UTC)",
                y_label="supporters suppressed",
            )
            + "</figure>"
        )
    else:
        out.append("<p>No suppression in the observation period.</p>")
    rows = [
        (code, analysis.started[code], f"{analysis.days_in_force[code] / DAY:,.0f}")
        for code in REASON_ORDER
        if analysis.started[code] or analysis.days_in_force[code]
    ]
    if rows:
        out.append(
            _swatched(_table(["reason", "times started", "supporter-days in force"], rows, {1, 2}))
        )
    return out


def _swatched(table: str) -> str:
    """The table with each reason code in its first column preceded by its colour."""
    for code in REASON_ORDER:
        table = table.replace(f"<td>{code}</td>", f"<td>{_swatch(code)}{code}</td>")
    return table


def _swatch(code: str) -> str:
    return f'<span class="sw" style="background:{svg.reason_color(code)}"></span>'


CAC = "churn_after_contact"


def money(analysis: Analysis, cents: int) -> str:
    """An amount in the donations' currency (euros unless the events say otherwise)."""
    code = analysis.currencies.most_common(1)[0][0] if analysis.currencies else "EUR"
    sign = "\u20ac" if code == "EUR" else f"{code}\u00a0"
    return f"{sign}{cents / 100:,.2f}"


def headline(analysis: Analysis, ex: ExcessChurn | None = None) -> list[str]:
    """The first screen: churn after contact against the baseline, the money it cost, the
    partner doing most harm and the calls made against a suppression (``ex``:
    ``analysis.excess_churn()`` when the caller has it already)."""
    if ex is None:
        ex = analysis.excess_churn()
    base, contacted = ex.baseline, ex.contacted
    cws_by: Counter[str] = Counter()
    reasons_of: dict[str, Counter[str]] = defaultdict(Counter)
    for (partner, code), k in analysis.cws.items():
        cws_by[partner] += k
        reasons_of[partner][code] += k
    cws_total = sum(cws_by.values())
    lost = analysis.cac
    partners = {p for d, p in analysis.cac_by if d == "partner"} | set(cws_by)
    worst = min(
        partners,
        key=lambda p: (
            -analysis.cac_by[("partner", p)].cents,
            -analysis.cac_by[("partner", p)].count,
            -cws_by[p],
            p,
        ),
        default=None,
    )
    excess_pp = (contacted.rate - base.rate) * 100
    extra = contacted.churned - contacted.n * base.rate
    cards = [
        (
            _pct(contacted.rate),
            "churn after contact",
            f"{contacted.churned:,} of {contacted.n:,} reached calls to loyal donors were "
            f"followed by the donor's churn within {ex.window_days} days",
        ),
        (
            f"{excess_pp:+.1f} pp",
            "excess over the baseline",
            f"baseline {_pct(base.rate)} for loyal donors not called; about "
            f"{max(extra, 0):,.0f} churns more than the baseline rate gives",
        ),
        (
            money(analysis, lost.cents),
            "lost per month",
            f"monthly gifts lost by {lost.count:,} churns after contact (engine alerts)",
        ),
    ]
    sentence = "No partner's calls were followed by a churn or made against a suppression."
    if worst is not None:
        w_lost = analysis.cac_by[("partner", worst)]
        share = w_lost.cents / lost.cents if lost.cents else 0.0
        rate = next((r for r in ex.by.get("partner", []) if r.label == worst), None)
        rate_text = (
            f", churn rate after its calls {_pct(rate.rate)} "
            f"({(rate.rate - base.rate) * 100:+.1f} pp)"
            if rate is not None and rate.n
            else ""
        )
        cards.append(
            (
                worst,
                "partner doing most harm",
                f"{money(analysis, w_lost.cents)} a month lost ({_pct(share)} of it), "
                f"{cws_by[worst]:,} calls against a suppression",
            )
        )
        top_reason = reasons_of[worst].most_common(1)
        against = (
            f"; it made {cws_by[worst]:,} of the {cws_total:,} calls against a suppression "
            f"({_pct(cws_by[worst] / cws_total)}), mostly against {top_reason[0][0]}"
            if cws_total and top_reason
            else ""
        )
        sentence = (
            f"<b>Who harms loyal donors most: partner {escape(worst)}.</b> After its calls "
            f"{w_lost.count:,} loyal donors churned within {ex.window_days} days, "
            f"{money(analysis, w_lost.cents)} of the {money(analysis, lost.cents)} a month lost "
            f"to churn after contact ({_pct(share)}){rate_text}{against}."
        )
    top_cws = cws_by.most_common(1)
    cards.append(
        (
            f"{cws_total:,}",
            "calls against a suppression",
            f"{top_cws[0][0]} made {top_cws[0][1]:,} ({_pct(top_cws[0][1] / cws_total)})"
            if top_cws
            else "none",
        )
    )
    html = "".join(
        f'<div class="card"><div class="big">{escape(big)}</div>'
        f'<div class="what">{escape(what)}</div><div class="sub">{escape(sub)}</div></div>'
        for big, what, sub in cards
    )
    return [f'<div class="headline">{html}</div>', f'<p class="answer">{sentence}</p>']


def glossary(policy: Policy) -> list[str]:
    """What each reason code means under this policy, with its colour in the charts."""
    r, cap, th = policy.reasons, policy.contact_cap, policy.thresholds
    values = {
        "complaint_days": r.complaint_days,
        "deciding_in_own_time_days": r.deciding_in_own_time_days,
        "recent_upgrade_days": r.recent_upgrade_days,
        "min_gap_days": r.min_gap_days,
        "cap_calls": cap.calls,
        "cap_window": cap.window_days,
        "fatigue": th.fatigue,
        "irritation": th.irritation_risk,
        "loyal": th.irritation_risk_loyal,
        "term_months": policy.legal_basis.relationship_term_months,
    }
    rows = "".join(
        f"<tr><td>{_swatch(code)}{code}</td><td>{escape(GLOSSARY[code].format(**values))}</td></tr>"
        for code in REASON_ORDER
        if code in GLOSSARY
    )
    return [
        "<h2>Reason codes</h2>",
        '<p class="explain">Why a supporter is suppressed, in the contract\'s order (most '
        "lasting first), with the colour each reason has in every chart; durations are this "
        f"policy's ({escape(policy.version)}).</p>",
        f'<table class="glossary"><tr><th>reason</th><th>meaning</th></tr>{rows}</table>',
    ]


def render(meta: ReportMeta, analysis: Analysis, extra: Sequence[str] = ()) -> str:
    """The whole report as HTML text (``extra``: more sections, e.g. the what-if)."""
    ex = analysis.excess_churn()  # once: the headline and the churn section (1 s a 1M year)
    body = [
        *_header(meta, analysis, ex),
        *_churn_section(analysis, ex),
        *_cws_section(analysis),
        *calling_section(analysis.outside, analysis.marketing_calls_by_partner()),
        *_suppression_section(analysis),
        *extra,
        *glossary(analysis.policy),
        '<p class="note">Written by relmon replay. Self-contained: no scripts, no network.</p>',
    ]
    return page("relmon replay report", body)


def write_report(
    path: Path, meta: ReportMeta, analysis: Analysis, extra: Sequence[str] = ()
) -> None:
    path.write_text(render(meta, analysis, extra), encoding="utf-8")


def table_html(head: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    """An HTML table in the report's style (for other sections)."""
    return _table(head, rows, numeric)
