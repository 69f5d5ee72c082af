"""The merge's sort key holds each event's own instant, whichever pass computed it.

A streamed input takes its instants from the order check (it read the ``occurred_at`` text
already); these tests hold that key to ``occurred_at.timestamp()`` of the decoded event, for
every RFC 3339 form the validator accepts and for lines the check never saw.
"""

from __future__ import annotations

from pathlib import Path

from relmon.replay.file_replay import EventTimeMerge
from relmon.testing import at, call, to_line

# the same instants written every way the validator accepts, in time order
FORMS = [
    "2026-03-02T10:00:00Z",
    "2026-03-02t10:00:00.5z",  # lower-case t and z
    "2026-03-02 11:00:00.75+01:00",  # a space, an offset
    "2026-03-02T10:00:01.123456Z",  # microseconds
    "2026-03-02T10:00:01.1234567Z",  # beyond microseconds: left to the decoder
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


def _keys_match_events(merge: EventTimeMerge) -> int:
    count = 0
    for instant, event_id, _raw, _index, _number, event in merge:
        assert instant == event.occurred_at.timestamp(), event_id
        count += 1
    return count


def test_every_rfc3339_form_keys_the_event_at_its_decoded_instant(tmp_path: Path) -> None:
    """Streamed (the check finds the file in order), every line's key is the decoded event's
    ``occurred_at.timestamp()``, for offsets, lower-case letters, fractions of any length."""
    source = tmp_path / "forms.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in _lines(FORMS)))
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    assert _keys_match_events(merge) == len(FORMS)


def test_lines_appended_after_the_check_are_keyed_by_their_events(tmp_path: Path) -> None:
    """Lines written to an input between the order check and the stream (a growing export)
    have no instant from the check: their keys come from the decoded events."""
    source = tmp_path / "growing.jsonl"
    lines = _lines(FORMS)
    source.write_bytes(b"".join(line + b"\n" for line in lines[:3]))
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    with source.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines[3:]))
    assert _keys_match_events(merge) == len(FORMS)


def test_a_repeated_long_fraction_is_still_left_to_the_decoder(tmp_path: Path) -> None:
    """Two lines with the same ``occurred_at`` text beyond microseconds (the check parses the
    text once) both take their instant from the decoded events."""
    text = "2026-03-02T10:00:01.9999999Z"
    source = tmp_path / "same.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in _lines([text, text])))
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    # the check vouches for neither line (today's decoder truncates as Python's parser does,
    # so only the kept instants show that the second line was not taken on trust)
    kept = merge._instants[0].tolist()
    assert len(kept) == 2
    assert all(x != x for x in kept)  # NaN
    assert _keys_match_events(merge) == 2


def test_an_occurred_at_given_twice_keys_the_event_at_the_value_it_keeps(
    tmp_path: Path,
) -> None:
    """A line naming ``occurred_at`` twice is keyed by the value the decoder keeps (the last),
    as the order check reads it: the key never disagrees with the applied event."""
    lines = _lines(["2026-03-02T10:00:00Z", "2026-03-02T10:00:05Z"])
    twice = lines[0][:-1] + b',"occurred_at":"2026-03-02T10:00:03Z"}'
    source = tmp_path / "twice.jsonl"
    source.write_bytes(twice + b"\n" + lines[1] + b"\n")
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    assert _keys_match_events(merge) == 2
