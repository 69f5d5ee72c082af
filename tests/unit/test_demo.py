"""`make run`'s demo without Kafka: the simulated past ends now, live events are dated when
sent, the board knows who is suppressed now and what lifts next, and printing survives a
closed pipe."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relmon.demo import Board, Stream, out

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_the_past_ends_now_and_the_live_part_follows_it() -> None:
    """Every past event is dated at or before now and the first live event after it; the
    period starts a year before today; the live events come in simulated-time order."""
    stream = Stream(60, 4, NOW)
    past = stream.past()
    assert past
    last = max(datetime.fromisoformat(e["occurred_at"]) for e in past)
    assert last <= NOW
    assert last > NOW - timedelta(days=7)  # a year that ends now, not last year
    first = datetime.fromisoformat(min(past, key=lambda e: e["occurred_at"])["occurred_at"])
    assert first < NOW - timedelta(days=300)
    sim_times = [ts for _n, (ts, _e) in zip(range(50), stream.live(), strict=False)]
    assert sim_times[0] > NOW.timestamp()
    assert sim_times == sorted(sim_times)


def test_a_live_event_is_dated_when_it_is_sent() -> None:
    """Redating sets occurred_at to now; a mandate begun in the live part keeps the start of
    its first event, and a mandate from the past keeps its real start."""
    stream = Stream(5, 1, NOW)
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # the stamp keeps milliseconds
    call = stream.redate({"type": "call_outcome", "occurred_at": "2027-01-01T10:00:00+01:00"})
    assert before <= datetime.fromisoformat(call["occurred_at"]) <= datetime.now(UTC)

    def donation(started: str) -> dict[str, Any]:
        return {
            "type": "donation_change",
            "mandate_id": "M1" if started > "2026-12" else "M0",
            "occurred_at": "2027-01-05T10:00:00+01:00",
            "mandate_started_at": started,
        }

    first = stream.redate(donation("2027-01-02T10:00:00+01:00"))
    again = stream.redate(donation("2027-01-02T10:00:00+01:00"))
    assert first["mandate_started_at"] == first["occurred_at"]
    assert again["mandate_started_at"] == first["mandate_started_at"]
    old = stream.redate(donation("2024-03-01T10:00:00+01:00"))
    assert old["mandate_started_at"] == "2024-03-01T10:00:00+01:00"


def _record(sid: str, suppressed: bool, until: str | None, code: str = "MIN_GAP") -> dict[str, Any]:
    reasons = [{"code": code, "until": until, "detail": ""}] if suppressed else []
    return {"supporter_id": sid, "suppressed": suppressed, "reasons": reasons, "until": until}


def test_the_board_knows_who_is_suppressed_now_and_the_next_lift() -> None:
    """A suppression whose until has passed does not count as standing; the next lift is the
    earliest standing until; a lift after a suppression is reported once."""
    board = Board()
    t = NOW.timestamp()
    board.take("p.relmon.suppressions", _record("S1", True, "2026-11-30T10:00:00Z"))
    board.take("p.relmon.suppressions", _record("S2", True, "2026-11-30T08:00:00Z"))
    board.take("p.relmon.suppressions", _record("S3", True, None, "OPTED_OUT"))
    board.take("p.relmon.suppressions", _record("S4", True, "2026-11-30T09:30:00Z"))
    board.take("p.relmon.suppressions", _record("S4", False, None))
    board.take("p.relmon.alerts", {"kind": "call_while_suppressed"})
    board.take("p.relmon.dlq", {"error": "bad"})
    assert sorted(d["supporter_id"] for d in board.suppressed_now(t)) == ["S1", "S3"]
    nxt = board.next_lift(t)
    assert nxt is not None
    assert nxt[1]["supporter_id"] == "S1"
    assert [before["supporter_id"] for before, _after in board.lifted] == ["S4"]
    assert board.alerts["call_while_suppressed"] == 1
    assert board.dead == 1
    board.clear_recent()
    assert board.new == board.new_alerts == board.new_dead == []
    assert board.lifted == []


def test_printing_survives_a_closed_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """When stdout's reader is gone (`| tee` stopped by Ctrl-C), out() does not raise, so the
    clean-up that follows still stops the worker and the broker."""
    read, write = os.pipe()
    os.close(read)
    saved = os.dup(1)
    try:
        os.dup2(write, 1)
        with open(1, "w", closefd=False) as closed:
            monkeypatch.setattr(sys, "stdout", closed)
            out("first line to a pipe nobody reads")
            out("and a second")
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(write)


def test_live_marketing_calls_wait_for_calling_hours_unless_they_strayed() -> None:
    """A call the simulation made inside calling hours (Monday 10:00 Amsterdam) is held when
    it would be sent on a Sunday or at 23:00, and sent on a working day at 11:00; a call that
    strayed in the simulation (Sunday noon) is sent whenever it comes, so only straying
    partners raise call_outside_window alerts in the live demo."""
    stream = Stream(5, 1, datetime(2026, 11, 30, 10, tzinfo=UTC))
    monday_10 = int(datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp())  # 10:00 CET
    sunday_noon = datetime(2026, 11, 29, 11, tzinfo=UTC).timestamp()  # 12:00 CET
    monday_23 = datetime(2026, 11, 30, 22, tzinfo=UTC).timestamp()  # 23:00 CET
    monday_11 = datetime(2026, 11, 30, 10, tzinfo=UTC).timestamp()  # 11:00 CET
    assert stream.held_by_calling_hours(monday_10, sunday_noon)
    assert stream.held_by_calling_hours(monday_10, monday_23)
    assert not stream.held_by_calling_hours(monday_10, monday_11)
    assert not stream.held_by_calling_hours(int(sunday_noon), sunday_noon)
