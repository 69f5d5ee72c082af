"""What-if: two policies over the same events (``relmon replay --compare-policy B.toml``).

Each policy runs its own engine over the same events in the same order. For each one:

* **calls it would have suppressed**: outbound marketing calls made while that policy says
  "suppressed", judged on the events before the call (its ``call_while_suppressed`` alerts),
  split into attempts and reached calls;
* **conversions forgone**: of those, the calls whose outcome was ``converted`` (and the
  monthly amount agreed on them) — what blocking would have cost;
* **churns after contact** under that policy (its ``churn_after_contact`` alerts) and how
  many it would have **prevented**: a reached outbound call in the churn-after-contact
  window before the churn is one that policy would have blocked;
* the monthly amount those prevented churns lost.

The history stays what happened: a blocked call is not taken out of the events, so later
scores are those of the real history. This is the first-order effect, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, ClassVar

from relmon.domain import Alert, Policy, SuppressionRecord

if TYPE_CHECKING:
    from relmon.replay.file_replay import Event
    from relmon.replay.report import CallFact

DAY = 86_400


@dataclass
class Tally:
    """One policy's alerts, as the comparison needs them (an observer of its replay)."""

    label: str
    policy: Policy
    blocked: set[str] = field(default_factory=set)  # call event ids
    churns: list[tuple[str, int, int]] = field(default_factory=list)  # sid, t, monthly lost
    record_count: int = 0
    event_types: ClassVar[frozenset[str]] = frozenset()  # no event: only its outputs

    def event(self, event: Event, t: int) -> None:
        return None

    def skipped(self, counts: dict[str, int]) -> None:
        return None

    def records(self, records: list[SuppressionRecord]) -> None:
        self.record_count += len(records)

    def add_part(self, part: Tally) -> None:
        """Add the tally of other supporters under the same policy (one process of a replay
        split by supporter): the outcome is made of sums, so the order does not matter."""
        self.blocked |= part.blocked
        self.churns += part.churns
        self.record_count += part.record_count

    def alerts(self, alerts: list[Alert]) -> None:
        for a in alerts:
            if a.kind == "call_while_suppressed":
                self.blocked.add(a.cause_event_id)
            elif a.kind == "churn_after_contact":
                lost = a.donation.monthly_amount_lost_cents if a.donation else 0
                self.churns.append((a.supporter_id, int(a.occurred_at.timestamp()), lost))


@dataclass(frozen=True)
class Outcome:
    """One row of the comparison."""

    label: str
    policy_version: str
    calls_suppressed: int
    attempts: int
    reached: int
    conversions_forgone: int
    conversion_cents_forgone: int
    churns_after_contact: int
    churns_prevented: int
    monthly_cents_kept: int

    @property
    def net_monthly_cents(self) -> int:
        """Monthly gifts kept by the prevented churns minus those the forgone conversions
        would have brought: what the policy's suppressions are worth a month, first order."""
        return self.monthly_cents_kept - self.conversion_cents_forgone


def sentence(o: Outcome) -> str:
    """One outcome in plain words, with its net figure."""
    net = o.net_monthly_cents
    verdict = "kept" if net >= 0 else "lost"
    return (
        f"Policy {o.label} would not have made {o.calls_suppressed:,} of the marketing calls "
        f"that were made ({o.reached:,} of them reached the supporter). That would have "
        f"prevented {o.churns_prevented:,} of its {o.churns_after_contact:,} churns after "
        f"contact, keeping {_eur(o.monthly_cents_kept)} a month, and forgone "
        f"{o.conversions_forgone:,} conversions worth {_eur(o.conversion_cents_forgone)} a "
        f"month: net {_eur(abs(net))} a month {verdict}."
    )


def _eur(cents: int) -> str:
    return f"EUR {cents / 100:,.2f}"


def outcome(
    tally: Tally, calls: dict[str, CallFact], calls_by_supporter: dict[str, list[CallFact]]
) -> Outcome:
    """Count one policy's effect (see the module docstring)."""
    reached = conversions = conversion_cents = 0
    for eid in tally.blocked:
        call = calls.get(eid)
        if call is None:
            continue
        if call.reached:
            reached += 1
        if call.outcome == "converted":
            conversions += 1
            conversion_cents += call.amount_delta or 0
    window = tally.policy.churn_after_contact.window_days * DAY
    prevented = kept = 0
    for sid, t, lost in tally.churns:
        if any(
            c.reached and t - window <= c.t <= t and c.eid in tally.blocked
            for c in calls_by_supporter.get(sid, ())
        ):
            prevented += 1
            kept += lost
    return Outcome(
        tally.label,
        tally.policy.version,
        len(tally.blocked),
        len(tally.blocked) - reached,
        reached,
        conversions,
        conversion_cents,
        len(tally.churns),
        prevented,
        kept,
    )


HEAD = (
    "policy",
    "version",
    "calls suppressed",
    "attempts",
    "reached",
    "conversions forgone",
    "EUR/month forgone",
    "churns after contact",
    "prevented",
    "EUR/month kept",
    "EUR/month net",
)


def rows(outcomes: list[Outcome]) -> list[tuple[object, ...]]:
    return [
        (
            o.label,
            o.policy_version,
            o.calls_suppressed,
            o.attempts,
            o.reached,
            o.conversions_forgone,
            f"{o.conversion_cents_forgone / 100:,.2f}",
            o.churns_after_contact,
            o.churns_prevented,
            f"{o.monthly_cents_kept / 100:,.2f}",
            f"{o.net_monthly_cents / 100:+,.2f}",
        )
        for o in outcomes
    ]


def text_table(outcomes: list[Outcome]) -> str:
    """The comparison as a plain-text table for the terminal."""
    cells = [list(HEAD)]
    cells += [[f"{c:,}" if isinstance(c, int) else str(c) for c in r] for r in rows(outcomes)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEAD))]
    lines = []
    for n, row in enumerate(cells):
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def html_section(outcomes: list[Outcome]) -> list[str]:
    """The what-if section of report.html."""
    from relmon.replay import svg
    from relmon.replay.report import table_html

    out = [
        "<h2>What-if: the policies compared</h2>",
        '<p class="explain">Each policy ran over the same events. <b>Calls suppressed</b>: '
        "marketing calls that were made while that policy says the supporter is suppressed "
        "(judged on the events before the call), i.e. the calls it would not have made. "
        "<b>Conversions forgone</b>: of those, the calls that converted, and the monthly "
        "amount agreed on them. <b>Prevented</b>: churns after contact (by that policy's "
        "definition) where a reached call in the window before the churn is one the policy "
        "would have blocked. The history is kept as it happened (a blocked call still counts "
        "in later scores), so this is the first-order effect. <b>Net</b>: EUR/month kept "
        "minus EUR/month forgone.</p>",
        *(f'<p class="answer">{escape(sentence(o))}</p>' for o in outcomes),
        table_html(HEAD, rows(outcomes), {2, 3, 4, 5, 6, 7, 8, 9, 10}),
    ]
    count = lambda v: f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"  # noqa: E731 - a formatter
    calls = [
        svg.Bar(o.label, float(o.calls_suppressed), f"({o.reached:,} reached)") for o in outcomes
    ]
    churns = [
        svg.Bar(o.label, float(o.churns_prevented), f"of {o.churns_after_contact:,} churns")
        for o in outcomes
    ]
    out.append("<h3>Calls it would have suppressed</h3>")
    out.append(
        "<figure>"
        + svg.hbar(
            calls,
            value_text=count,
            title="calls suppressed",
            x_label="marketing calls the policy would not have made",
        )
        + "</figure>"
    )
    out.append("<h3>Churns after contact it would have prevented</h3>")
    out.append(
        "<figure>"
        + svg.hbar(
            churns,
            value_text=count,
            title="churns prevented",
            x_label="churns after contact the policy would have prevented",
        )
        + "</figure>"
    )
    return out
