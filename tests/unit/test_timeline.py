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
