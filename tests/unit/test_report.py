"""The replay report: what the analysis counts, and an HTML page that stands alone."""

from __future__ import annotations

import re

import pytest

from relmon.domain import default_policy
from relmon.replay import svg
from relmon.replay.file_replay import Replayer
from relmon.replay.report import Analysis, ReportMeta, render
from relmon.testing import at, call, consent, donation

LOYAL = at(-900)


def _analyse(events: list[object]) -> tuple[Analysis, Replayer]:
    analysis = Analysis(default_policy())
    replayer = Replayer(default_policy(), "test", None, None, None, observer=analysis)
    for event in events:
        replayer.apply(event)  # type: ignore[arg-type]
    assert replayer.last_at is not None
    analysis.finish(replayer.last_at)
    return analysis, replayer


def _story() -> list[object]:
    """s-1 loyal, called by p-a, churns 5 days later; s-2 loyal, never called, stays."""
    return [
        donation(at=at(-40), supporter_id="s-1", started=LOYAL),
        donation(at=at(-40), supporter_id="s-2", started=LOYAL, mandate_id="m-2"),
        call(at=at(0), supporter_id="s-1", partner_id="p-a", outcome="declined"),
        call(at=at(1), supporter_id="s-1", partner_id="p-b", outcome="no_answer"),
        donation(at=at(5), supporter_id="s-1", action="cancelled", started=LOYAL),
        consent(at=at(80), supporter_id="s-2", channel="email"),
    ]


def test_churn_after_a_reached_call_counts_against_the_uncontacted_baseline() -> None:
    """A reached call followed by the loyal donor's churn within 30 days makes its partner's
    rate 1 of 1; an attempt does not count; the donor never called fills the baseline."""
    analysis, _ = _analyse(_story())
    ex = analysis.excess_churn()
    partners = {r.label: (r.churned, r.n) for r in ex.by["partner"]}
    assert partners == {"p-a": (1, 1)}  # p-b only reached voicemail-like attempts
    assert (ex.contacted.churned, ex.contacted.n) == (1, 1)
    # period day 0 .. day 80: two full 30-day windows; s-2 is loyal and uncalled in both,
    # s-1 is excluded from the first (called) and not loyal after cancelling
    assert (ex.baseline.churned, ex.baseline.n) == (0, 2)
    assert ex.window_days == 30


def test_suppressed_supporters_are_counted_each_day_under_their_first_reason() -> None:
    """An opt-out counts on every day until the end; a MIN_GAP counts until its until."""
    events = [
        call(at=at(0), supporter_id="s-1", outcome="declined"),  # MIN_GAP 14 days
        consent(at=at(2), supporter_id="s-2"),  # OPTED_OUT, no end
        consent(at=at(30), supporter_id="s-3", channel="email"),  # moves the clock
    ]
    analysis, _ = _analyse(events)
    days, series = analysis.suppression_days()
    counts = dict(series)
    assert len(days) == 30
    assert counts["OPTED_OUT"][1] == 0
    assert counts["OPTED_OUT"][2] == 1
    assert counts["OPTED_OUT"][-1] == 1
    assert counts["MIN_GAP"][0] == 1
    assert counts["MIN_GAP"][13] == 1
    assert counts["MIN_GAP"][14] == 0
    assert analysis.started["MIN_GAP"] == 1
    assert analysis.started["OPTED_OUT"] == 1


def test_the_report_is_self_contained_and_deterministic() -> None:
    """Two renders are identical; no scripts, external links or fonts; every section there."""
    analysis, replayer = _analyse(_story())
    meta = ReportMeta("events.jsonl", "v1", replayer.stats.counts(), replayer.first_at, 0)
    page = render(meta, analysis)
    assert page == render(meta, analysis)
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert not re.search(r'(src|href)="', page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count(
        "<svg"
    )
    for heading in ("excess churn", "against a suppression", "Suppressions by reason"):
        assert heading in page
    assert "p-a" in page


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 1.0), (0.034, 0.05), (3.0, 5.0), (7.0, 10.0), (180.0, 200.0), (2.2, 2.5)],
)
def test_axis_tops_are_round_numbers(value: float, expected: float) -> None:
    """nice_max rounds an axis top up to 1, 2, 2.5 or 5 times a power of ten."""
    assert svg.nice_max(value) == pytest.approx(expected)


def test_a_bar_chart_marks_the_baseline_and_colours_bars_above_it() -> None:
    """Bars above the reference are red, below blue, and the dashed reference is drawn."""
    chart = svg.hbar(
        [svg.Bar("high", 0.2), svg.Bar("low", 0.01)],
        value_text=lambda v: f"{v:.2f}",
        ref=0.05,
        ref_label="baseline",
    )
    assert chart.count(f'fill="{svg.PALETTE[2]}"') == 1
    assert chart.count(f'fill="{svg.PALETTE[0]}"') == 1
    assert "stroke-dasharray" in chart
    assert "baseline 0.05" in chart
