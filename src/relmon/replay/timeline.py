"""One supporter's story: every event, the scores after it, the decisions and the alerts.

:func:`build` runs the engine over that supporter's events in input order, as the replay
does, and emits the expiries (lifts) at their own time up to the end of the input (the last
event time of the file, or of the Kafka range read), so the records are the ones the full
replay writes for this supporter. :func:`text_table` prints it; :func:`html` draws the
scores over time with the suppressed periods shaded and the events marked.

Each row also says when a marketing call was next allowed at that moment (``next_call_at``,
as the API would have answered then: after the decision's ``until``, inside a calling window
of the supporter's zone; none while suppressed with no end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

import orjson

from relmon.domain import (
    Alert,
    Engine,
    Policy,
    SupporterState,
    SuppressionRecord,
    parse_event,
)
from relmon.domain.calling import calendar_for
from relmon.domain.compliance import supporter_zone
from relmon.domain.events import ATTEMPT_OUTCOMES
from relmon.domain.expiry import expire_due
from relmon.domain.outputs import iso
from relmon.domain.rules import utc
from relmon.errors import InputFileError, InvalidEvent
from relmon.replay import svg
from relmon.replay.file_replay import Event, check_text, read_lines

DAY = 86_400
PLOT_DAYS = 400  # the plot shows at most this many days before the end


@dataclass
class Row:
    """One line of the story: an event, or an expiry (``event`` is None)."""

    t: int
    event: Event | None
    state: SupporterState
    fatigue: float
    irritation: float
    suppressed: bool
    reasons: list[str]
    records: list[SuppressionRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    next_call_at: int | None = None

    @property
    def what(self) -> str:
        return describe(self.event) if self.event is not None else "expiry (time passed)"


@dataclass
class Timeline:
    supporter_id: str
    source: str
    policy: Policy
    end: int
    rows: list[Row]


def describe(ev: Event) -> str:
    """A short human description of an event."""
    if ev.type == "call_outcome":
        return (
            f"call {ev.direction} {ev.campaign_purpose} by {ev.partner_id}"
            f"{' (' + ev.agent_id + ')' if ev.agent_id else ''}: {ev.outcome}"
        )
    if ev.type == "consent_change":
        return f"consent {ev.action} on {ev.channel} via {ev.source}"
    if ev.type == "email_engagement":
        return f"email {ev.action} ({ev.campaign_id})"
    amounts = f"{ev.amount_cents_before / 100:.2f} -> {ev.amount_cents_after / 100:.2f}"
    return f"donation {ev.action} {ev.frequency} {amounts} {ev.currency} ({ev.mandate_id})"


def _ts(t: int) -> str:
    return str(iso(utc(t)))


def _next(r: Row) -> str:
    return "never (no end)" if r.next_call_at is None else _ts(r.next_call_at)


def _reasons(record: SuppressionRecord) -> list[str]:
    out = []
    for r in record.reasons:
        until = "no end" if r.until is None else f"until {iso(r.until)}"
        out.append(f"{r.code} ({until})")
    return out


def _next_call_at(policy: Policy, st: SupporterState, d: SuppressionRecord, t: int) -> int | None:
    """When a marketing call was next allowed at ``t`` (None: suppressed with no end)."""
    if d.suppressed and d.until is None:
        return None
    after = t if d.until is None else max(t, int(d.until.timestamp()))
    return calendar_for(policy).next_call_at(supporter_zone(st), after)


def build(
    events: list[Event], supporter_id: str, policy: Policy, end: int, source: str
) -> Timeline:
    """Run the engine over one supporter's events (see the module docstring)."""
    engine = Engine(policy)
    state: SupporterState | None = None
    rows: list[Row] = []

    def row(t: int, ev: Event | None, st: SupporterState, recs: list[SuppressionRecord]) -> Row:
        d = engine.decision(st, supporter_id, utc(max(t, st.clock)))
        nxt = _next_call_at(policy, st, d, t)
        return Row(
            t, ev, st, d.fatigue, d.irritation_risk, d.suppressed, _reasons(d), recs, [], nxt
        )

    def expire_until(t: int) -> None:
        nonlocal state
        if state is None:
            return
        for wake, outcome in expire_due(engine, state, t):
            state = outcome.state
            if outcome.records:
                rows.append(row(wake, None, state, outcome.records))

    for ev in events:
        t = int(ev.occurred_at.timestamp())
        expire_until(t)
        outcome = engine.apply(state, ev)
        state = outcome.state
        r = row(t, ev, state, outcome.records)
        r.alerts = outcome.alerts
        rows.append(r)
    expire_until(end)
    return Timeline(supporter_id, source, policy, end, rows)


def events_from_file(path: Path, supporter_id: str) -> tuple[list[Event], int]:
    """The supporter's valid events in file order, and the file's last event time."""
    try:
        if not path.is_file():
            raise InputFileError(f"{path}: no such file" if not path.exists() else "not a file")
        if path.stat().st_size == 0:
            raise InputFileError(f"{path}: the file is empty")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    check_text(path)
    needle = orjson.dumps(supporter_id)
    found: list[Event] = []
    end: int | None = None
    for line in read_lines(path):
        if needle in line or b"\\u" in line:
            try:
                ev = parse_event(line)
            except InvalidEvent:
                continue
            t = int(ev.occurred_at.timestamp())
            if ev.supporter_id == supporter_id:
                found.append(ev)
        else:
            try:
                t = int(datetime.fromisoformat(orjson.loads(line)["occurred_at"]).timestamp())
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        end = t if end is None or t > end else end
    if not found:
        raise InputFileError(f"supporter {supporter_id} has no events in {path}")
    return found, max(end or 0, *(int(e.occurred_at.timestamp()) for e in found))


def text_table(tl: Timeline) -> str:
    """The story as a plain-text table (one line per row, alerts on their own lines)."""
    lines = [
        f"{tl.supporter_id}: {len(tl.rows)} rows from {tl.source} (policy {tl.policy.version})",
        f"{'time (UTC)':20}  {'event':58}  {'fatigue':>7}  {'irrit.':>6}  "
        f"{'next call (UTC)':20}  decision",
    ]
    for r in tl.rows:
        if r.records:
            decision = "* " + ("SUPPRESSED " + ", ".join(r.reasons) if r.suppressed else "lifted")
        else:
            decision = "  " + ("suppressed" if r.suppressed else "-")
        what = r.what if len(r.what) <= 58 else r.what[:57] + "…"
        lines.append(
            f"{_ts(r.t):20}  {what:58}  {r.fatigue:7.3f}  {r.irritation:6.3f}  "
            f"{_next(r):20}  {decision}"
        )
        for a in r.alerts:
            lines.append(f"{'':22}ALERT {a.kind} ({a.contact.partner_id}) {a.alert_id}")
    lines.append("* = a suppression record was emitted")
    return "\n".join(lines)


_OUTCOME_COLORS = {"reached": "#4e79a7", "attempt": "#9d9d9d", "bad": "#e15759"}
_BAD_OUTCOMES = {"complaint", "do_not_call", "hung_up", "cancelled_donation"}


def _marker(r: Row) -> svg.Marker | None:
    ev = r.event
    if ev is None:
        return None
    title = f"{_ts(r.t)} {describe(ev)}"
    if ev.type == "call_outcome":
        kind = (
            "bad"
            if ev.outcome in _BAD_OUTCOMES
            else "attempt"
            if ev.outcome in ATTEMPT_OUTCOMES
            else "reached"
        )
        return svg.Marker(r.t, r.fatigue, _OUTCOME_COLORS[kind], title)
    if ev.type == "donation_change":
        bad = ev.action in ("cancelled", "paused", "reversed", "downgraded", "payment_failed")
        return svg.Marker(r.t, 0.03, "#e15759" if bad else "#59a14f", title, "diamond")
    if ev.type == "consent_change":
        color = "#59a14f" if ev.action == "opt_in" else "#b07aa1"
        return svg.Marker(r.t, 0.1, color, title, "triangle")
    if ev.action in ("unsubscribed", "spam_complaint"):
        return svg.Marker(r.t, r.irritation, "#b07aa1", title, "triangle")
    return None


def chart(tl: Timeline, samples: int = 500) -> str:
    """Fatigue and irritation risk over time, suppressed periods shaded, events marked."""
    engine = Engine(tl.policy)
    rows = tl.rows
    t1 = max(tl.end, rows[-1].t)
    t0 = max(rows[0].t, t1 - PLOT_DAYS * DAY)
    if t1 - t0 < 7 * DAY:
        t0 = t1 - 7 * DAY
    step = max((t1 - t0) // samples, 60)
    fatigue: list[tuple[int, float]] = []
    irritation: list[tuple[int, float]] = []
    loyal: list[tuple[int, bool]] = []
    for i, r in enumerate(rows):
        nxt = rows[i + 1].t if i + 1 < len(rows) else t1
        t = r.t
        while True:
            if t >= t0:
                d = engine.decision(r.state, tl.supporter_id, utc(max(t, r.state.clock)))
                fatigue.append((t, d.fatigue))
                irritation.append((t, d.irritation_risk))
                loyal.append((t, d.loyal))
            t += step
            if t >= nxt:
                break
    bands = []
    start: int | None = None
    for r in rows:
        for rec in r.records:
            if rec.suppressed and start is None:
                start = r.t
            elif not rec.suppressed and start is not None:
                bands.append((start, r.t, "suppressed"))
                start = None
    if start is not None:
        bands.append((start, t1, "suppressed"))
    markers = [m for r in rows if (m := _marker(r)) is not None]
    markers += [
        svg.Marker(r.t, 0.97, "#e15759", f"{_ts(r.t)} ALERT {a.kind}", "diamond")
        for r in rows
        for a in r.alerts
    ]
    th = tl.policy.thresholds
    return svg.line_chart(
        t0,
        t1,
        [
            svg.Line("fatigue", fatigue, "#f28e2b"),
            svg.Line("irritation risk", irritation, "#4e79a7"),
        ],
        markers=markers,
        bands=bands,
        hlines=[
            (th.fatigue, f"fatigue threshold {th.fatigue}", "#f28e2b"),
            (th.irritation_risk, f"irritation threshold {th.irritation_risk}", "#4e79a7"),
        ],
        hspans=[
            (th.irritation_risk_loyal, a, b, f"loyal {th.irritation_risk_loyal}", "#4e79a7")
            for a, b in loyal_spans(loyal, t1)
        ],
        title=f"timeline of {tl.supporter_id}",
        x_label="date (UTC)",
        y_label="score (0 to 1)",
    )


def loyal_spans(samples: list[tuple[int, bool]], end: int) -> list[tuple[int, int]]:
    """The periods in which the donor was loyal, from (time, loyal) samples in time order:
    the loyal irritation threshold applies only then, so it is drawn only there."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for t, is_loyal in samples:
        if is_loyal and start is None:
            start = t
        elif not is_loyal and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, end))
    return spans


def html(tl: Timeline) -> str:
    """The whole timeline page (self-contained)."""
    from relmon.replay.report import page, table_html

    rows = []
    for r in tl.rows:
        decision = ", ".join(r.reasons) if r.suppressed else "not suppressed"
        if r.records:
            decision = "▶ " + decision
        alerts = "; ".join(f"{a.kind} ({a.contact.partner_id})" for a in r.alerts)
        rows.append(
            (
                _ts(r.t),
                r.what,
                f"{r.fatigue:.3f}",
                f"{r.irritation:.3f}",
                decision,
                _next(r),
                alerts,
            )
        )
    first, last = tl.rows[0].t, tl.rows[-1].t
    body = [
        f"<h1>Timeline of supporter {escape(tl.supporter_id)}</h1>",
        f'<p class="explain">{len(tl.rows):,} rows from {escape(tl.source)}, policy '
        f"{escape(tl.policy.version)}; events from {_ts(first)} to {_ts(last)}. The plot shows "
        f"at most the last {PLOT_DAYS} days: fatigue (orange) and irritation risk (blue) as "
        "the engine scores them, decaying between events; shaded: suppressed. The loyal "
        "irritation threshold is drawn only while the donor was loyal. Dots are calls "
        "(blue reached, grey attempts, red complaint / do-not-call / hung up / cancellation), "
        "diamonds at the bottom are donation changes (red: a loss), triangles consent "
        "changes and e-mail unsubscribes, red diamonds at the top are alerts. Hover for "
        "details.</p>",
        "<figure>" + chart(tl) + "</figure>",
        '<p class="explain">▶ marks a row where a suppression record was emitted '
        "(the decision changed). Scores are those right after the row's event. "
        '"Next call" is the earliest moment a marketing call was allowed then: after the '
        "decision's until, inside a calling window (policy [calling]); never while suppressed "
        "with no end.</p>",
        table_html(
            [
                "time (UTC)",
                "event",
                "fatigue",
                "irritation",
                "decision",
                "next call (UTC)",
                "alerts",
            ],
            rows,
            {2, 3},
        ),
    ]
    return page(f"relmon timeline {tl.supporter_id}", body)
