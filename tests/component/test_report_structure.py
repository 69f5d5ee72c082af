"""The report of a simulated year, read as a user reads it: the headline first, money next to
the counts, one colour per reason in every chart and table, named axes, a glossary.

A structural test of the HTML and its SVG rather than a screenshot: it fails on what a
reader would notice (a reason changing colour between charts, an unlabelled axis, the
headline moved below the plots) and not on a pixel of font rendering.
"""

from __future__ import annotations

import re
from datetime import date
from importlib import resources

import orjson
import pytest

from relmon.cli import main
from relmon.replay import svg
from relmon.replay.report import REASON_ORDER
from relmon.simulation import SimulationParams, generate


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """report.html of a what-if replay of 600 supporters over a simulated year."""
    tmp = tmp_path_factory.mktemp("report")
    events = tmp / "events.jsonl"
    events.write_bytes(
        b"".join(
            orjson.dumps(e) + b"\n"
            for e in generate(SimulationParams(), 11, 600, 365, date(2026, 1, 1))
        )
    )
    text = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")
    strict = tmp / "strict.toml"
    strict.write_text(text.replace("min_gap_days = 14", "min_gap_days = 28"))
    out = tmp / "out"
    argv = ["replay", "--input", str(events), "--out", str(out), "--no-progress"]
    assert main([*argv, "--compare-policy", str(strict)]) == 0
    return (out / "report.html").read_text("utf-8")


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, flags=re.S)


def test_the_headline_comes_first_and_answers_who_and_what_it_costs(report: str) -> None:
    """Right under the title: the five headline figures (churn after contact, excess over
    the baseline, money lost a month, the partner doing most harm, calls against a
    suppression) and a sentence naming that partner with its money, before any table or
    plot."""
    body = report.split("<main>", 1)[1]
    assert body.startswith('<h1>relmon replay report</h1>\n<div class="headline">')
    headline = body.index('class="headline"')
    assert headline < body.index("<svg")
    assert headline < body.index('class="facts"')
    cards = re.findall(r'<div class="what">([^<]+)</div>', body)
    assert cards == [
        "churn after contact",
        "excess over the baseline",
        "lost per month",
        "partner doing most harm",
        "calls against a suppression",
    ]
    answer = re.search(r'<p class="answer">(.*?)</p>', body, flags=re.S)
    assert answer is not None
    assert re.search(r"Who harms loyal donors most: partner P-\d+", answer.group(1))
    assert re.search(r"€[\d,]+\.\d\d of the €[\d,]+\.\d\d a month lost", answer.group(1))


def test_money_stands_next_to_the_counts(report: str) -> None:
    """Churn bars carry the monthly amount lost, the partner table a lost column, the alert
    count its money, and every what-if policy a net figure and a sentence."""
    assert re.search(r"churn_after_contact [\d,]+ \(€[\d,.]+ a month lost\)", report)
    assert re.search(r"\(\+?-?[\d.]+ pp\)  €[\d,.]+/mo", report)
    assert "churns after its calls (lost)" in report
    assert "EUR/month net" in report
    assert len(re.findall(r"<p class=\"answer\">Policy [AB] ", report)) == 2


def test_each_reason_has_one_colour_in_every_chart_and_table(report: str) -> None:
    """Every legend swatch, area, bar segment and table swatch of a reason code has that
    code's colour from svg.REASON_COLORS, and at least two charts show reasons."""
    charts_with_reasons = 0
    for chart in _svgs(report):
        pairs = re.findall(r'fill="(#[0-9a-f]{6})"/><text[^>]*>([A-Z_]+)</text>', chart)
        pairs += re.findall(r'fill="(#[0-9a-f]{6})"[^>]*><title>([A-Z_]+)</title>', chart)
        pairs += re.findall(r'fill="(#[0-9a-f]{6})"><title>[^<]*, ([A-Z_]+): ', chart)
        if pairs:
            charts_with_reasons += 1
        for color, code in pairs:
            assert code in REASON_ORDER
            assert color == svg.REASON_COLORS[code], (code, color)
    assert charts_with_reasons >= 2
    swatches = re.findall(
        r'<span class="sw" style="background:(#[0-9a-f]{6})"></span>(\w+)', report
    )
    assert {code for _c, code in swatches} >= set(REASON_ORDER)  # the glossary has them all
    assert all(color == svg.REASON_COLORS[code] for color, code in swatches)
    assert len(set(svg.REASON_COLORS.values())) == len(REASON_ORDER)


def test_every_chart_names_its_axes(report: str) -> None:
    """Each chart has a named value axis; the time chart also names its y axis."""
    charts = _svgs(report)
    assert len(charts) >= 6
    for chart in charts:
        assert 'class="axis-label"' in chart, chart[:200]
    area = next(c for c in charts if "supporters suppressed by first reason" in c)
    assert ">supporters suppressed</text>" in area
    assert ">day (UTC)</text>" in area


def test_the_glossary_explains_every_reason_with_the_policys_numbers(report: str) -> None:
    """The reason-code glossary lists each code with its meaning and this policy's numbers."""
    glossary = report.split("<h2>Reason codes</h2>", 1)[1]
    for code in REASON_ORDER:
        assert f"</span>{code}</td>" in glossary
    assert "for 14 days" in glossary  # MIN_GAP under the default policy
    assert "at or above 0.6 (0.5 for a loyal donor)" in glossary


def test_the_report_is_written_for_a_reader_offline(report: str) -> None:
    """Still self-contained: no script, no link, no external reference."""
    assert "<script" not in report
    assert not re.search(r'(src|href)="', report)
