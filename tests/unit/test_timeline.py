"""`relmon timeline`: one supporter's story with scores, decisions, expiries and alerts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relmon.domain import default_policy
from relmon.domain.calling import calendar_for
from relmon.errors import InputFileError
from relmon.replay.timeline import build, events_from_file, html, text_table
from relmon.testing import at, call, donation, email, to_line

LOYAL = at(-900)
STORY = [
    donation(at=at(-30), action="started", started=LOYAL),
    call(at=at(0), outcome="info_requested", partner_id="p-a"),
    call(at=at(1), outcome="declined", partner_id="p-b"),
    donation(at=at(5), action="cancelled", started=LOYAL),
    email(at=at(60), supporter_id="s-other"),
]


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_line(e) + b"\n" for e in STORY))
    return path


def test_the_story_has_every_event_the_expiries_and_the_alerts(tmp_path: Path) -> None:
    """Only the supporter's events are read; lifts appear at their own time up to the end of
    the file; the chasing call and the churn carry their alerts."""
    events, end = events_from_file(_file(tmp_path), "s-0001")
    assert len(events) == 4
    assert end == int(STORY[-1].occurred_at.timestamp())
    tl = build(events, "s-0001", default_policy(), end, "events.jsonl")
    kinds = [(r.event is None, [a.kind for a in r.alerts]) for r in tl.rows]
    assert kinds[:4] == [
        (False, []),
        (False, []),
        (False, ["call_while_suppressed"]),
        (False, ["churn_after_contact"]),
    ]
    expiries = [r for r in tl.rows if r.event is None]
    assert expiries
    assert not expiries[-1].suppressed
    assert all(r.t <= end for r in tl.rows)
    assert tl.rows[2].fatigue > tl.rows[1].fatigue > 0
    table = text_table(tl)
    assert "ALERT churn_after_contact (p-b)" in table
    assert "* SUPPRESSED DECIDING_IN_OWN_TIME" in table
    page = html(tl)
    assert page.count("<svg") == 1
    assert "<script" not in page
    assert page == html(tl)


def test_an_unknown_supporter_is_a_clear_error(tmp_path: Path) -> None:
    """A supporter with no events in the file names the supporter and the file."""
    path = _file(tmp_path)
    with pytest.raises(InputFileError, match=re.escape(f"supporter S-x has no events in {path}")):
        events_from_file(path, "S-x")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing input file is named in the error."""
    with pytest.raises(InputFileError, match=r"nope\.jsonl: no such file"):
        events_from_file(tmp_path / "nope.jsonl", "s-0001")


def test_the_loyal_threshold_is_drawn_only_while_the_donor_is_loyal(tmp_path: Path) -> None:
    """A donor who cancels on day 5 gets the loyal irritation threshold up to the
    cancellation only; a supporter never loyal gets none; the axes are named."""
    from relmon.replay.timeline import chart, loyal_spans

    assert loyal_spans([(0, False), (10, True), (20, True), (30, False), (40, True)], 50) == [
        (10, 30),
        (40, 50),
    ]
    events, end = events_from_file(_file(tmp_path), "s-0001")
    tl = build(events, "s-0001", default_policy(), end, "events.jsonl")
    svg = chart(tl)
    spans = re.findall(r'<line class="span" x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"', svg)
    assert len(spans) == 1
    cancelled_x = float(spans[0][1])
    right_edge = max(
        float(x) for x in re.findall(r'<line x1="[\d.]+" y1="[\d.]+" x2="([\d.]+)"', svg)
    )
    assert cancelled_x < right_edge - 100  # day 5 of a 60-day plot, far left of the end
    assert 'class="axis-label"' in svg
    assert "score (0 to 1)" in svg
    never = build(
        [call(at=at(0), outcome="declined", supporter_id="s-9")], "s-9", default_policy(), end, "x"
    )
    assert "loyal 0.5" not in chart(never)


def test_each_row_says_when_a_marketing_call_was_next_allowed(tmp_path: Path) -> None:
    """Every row carries ``next_call_at`` as the API would have answered then: inside a
    calling window, not before the row's decision ends; the text and HTML show it."""
    events, end = events_from_file(_file(tmp_path), "s-0001")
    tl = build(events, "s-0001", default_policy(), end, "events.jsonl")
    cal = calendar_for(default_policy())
    for r in tl.rows:
        assert r.next_call_at is not None  # nothing here suppresses with no end
        assert r.next_call_at >= r.t
        assert cal.inside(None, r.next_call_at)
    assert "next call (UTC)" in text_table(tl)
    assert "next call (UTC)" in html(tl)
