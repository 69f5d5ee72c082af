"""The order check (``relmon backfill`` reads each input's order before producing) reads
``occurred_at`` as the decoder does, for every form the validator accepts.

A check that disagreed with the decoder would stream a file that is not in time order: the
stream would then stop with an error half-way through a backfill. These tests hold the check
to the decoder's instants, and show what happens when a file changes between the two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relmon.replay.file_replay import EventTimeMerge, OutOfOrderError
from relmon.testing import at, call, to_line

# the same instants written every way the validator accepts, in time order
FORMS = [
    "2026-03-02T10:00:00Z",
    "2026-03-02t10:00:00.5z",  # lower-case t and z
    "2026-03-02 11:00:00.75+01:00",  # a space, an offset
    "2026-03-02T10:00:01.123456Z",  # microseconds
    "2026-03-02T10:00:01.1234567Z",  # beyond microseconds
    "2026-03-02T10:00:01.999999999Z",  # beyond microseconds, at the edge of a second
    "2026-03-02T05:00:02-05:00",
    "2026-03-02T10:00:02Z",  # the same instant as the line before (a tie)
]


def _lines(forms: list[str]) -> list[bytes]:
    """One outbound call a form, each with its ``occurred_at`` text as given."""
    lines = []
    for n, text in enumerate(forms):
        line = to_line(call(at=at(0), supporter_id=f"s-{n}", event_id=f"e-{n}"))
        start = line.index(b'"occurred_at":"') + len(b'"occurred_at":"')
        end = line.index(b'"', start)
        lines.append(line[:start] + text.encode() + line[end:])
    return lines


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _instants(merge: EventTimeMerge) -> list[float]:
    """The merged keys, each checked against its decoded event's instant."""
    keys = []
    for instant, event_id, _raw, _index, _number, event in merge:
        assert instant == event.occurred_at.timestamp(), event_id
        keys.append(instant)
    return keys


def test_every_rfc3339_form_in_time_order_is_found_in_order_and_streamed(tmp_path: Path) -> None:
    """Offsets, lower-case letters, a space, fractions of any length: the check finds the
    lines in order, as the decoder's instants are, and the stream yields them all."""
    merge = EventTimeMerge([_write(tmp_path / "forms.jsonl", _lines(FORMS))], lambda *bad: None)
    assert merge.check() == [True]
    keys = _instants(merge)
    assert len(keys) == len(FORMS)
    assert keys == sorted(keys)


# neighbours whose decoded instants differ (lines 3 and 4 are the same microsecond once the
# seventh digit is cut, as the decoder cuts it; lines 6 and 7 are the same instant)
@pytest.mark.parametrize("swap", [0, 1, 2, 4, 5])
def test_one_step_back_in_any_form_is_found(tmp_path: Path, swap: int) -> None:
    """Two neighbouring lines swapped make the file out of order for the check, whatever
    their forms; the merge then sorts it."""
    forms = FORMS[:]
    forms[swap], forms[swap + 1] = forms[swap + 1], forms[swap]
    merge = EventTimeMerge([_write(tmp_path / "swapped.jsonl", _lines(forms))], lambda *bad: None)
    assert merge.check() == [False]
    keys = _instants(merge)
    assert keys == sorted(keys)
    assert len(keys) == len(FORMS)


def test_an_occurred_at_given_twice_is_read_as_the_value_the_decoder_keeps(
    tmp_path: Path,
) -> None:
    """A line naming ``occurred_at`` twice counts at its last value, for the check as for
    the decoder: in order by the first value but not by the last is out of order."""
    lines = _lines(["2026-03-02T10:00:00Z", "2026-03-02T10:00:05Z"])
    back = lines[1][:-1] + b',"occurred_at":"2026-03-02T09:00:00Z"}'
    merge = EventTimeMerge([_write(tmp_path / "back.jsonl", [lines[0], back])], lambda *b: None)
    assert merge.check() == [False]
    ahead = lines[0][:-1] + b',"occurred_at":"2026-03-02T10:00:03Z"}'
    merge = EventTimeMerge([_write(tmp_path / "ahead.jsonl", [ahead, lines[1]])], lambda *b: None)
    assert merge.check() == [True]
    assert len(_instants(merge)) == 2


def test_a_file_changed_after_the_check_stops_the_stream_with_a_clear_error(
    tmp_path: Path,
) -> None:
    """Lines appended after the check are streamed in order when they are in order; a line
    that goes back in time stops the stream, naming the line and the likely cause."""
    lines = _lines(FORMS)
    source = _write(tmp_path / "growing.jsonl", lines[:3])
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    with source.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines[3:]))
    assert len(_instants(merge)) == len(FORMS)

    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    with source.open("ab") as handle:
        handle.write(lines[0] + b"\n")  # back to the first instant
    with pytest.raises(OutOfOrderError, match=r"line 9: goes back in time .* changed meanwhile"):
        _instants(merge)
