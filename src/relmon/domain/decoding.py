"""Input events decoded: one event (:func:`parse_event`), or a file's lines a run at a time
(:class:`LineDecoder`, the file replay's reader).

Compiled with the engine (:mod:`relmon.compiled`): a replay decodes every line of its inputs
here, and in compiled code the loop and the checks around msgspec's decoder cost a fraction
of what they cost interpreted. The models, the Structs and the rules of what the fast path
may accept are in :mod:`relmon.domain.events` (its "fast path" notes); this module only
runs them. Pure: bytes in, events out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from zlib import crc32

from msgspec.structs import force_setattr

from relmon.domain.events import (
    _FAST_DECODE,
    _FAST_TS_FORM,
    _RANGE_TEXT,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    Event,
    _key_mismatch,
    _known_zone,
    parse_event_pydantic,
)
from relmon.domain.rules import instant
from relmon.errors import InvalidEvent

# One valid event of an input, as merged: the sort key (instant, event_id, raw bytes), then
# the input's index and the line number (which only separate byte-identical lines), then the
# event. Tuples compare element by element, so the event itself is never compared. The
# instant is ``occurred_at.timestamp()`` (as :func:`relmon.domain.rules.instant` computes
# it): a float keeps every microsecond of an epoch-second time apart (its spacing there is
# below 0.25 µs) and compares far faster than datetimes; ``int()`` of it is the epoch second
# the engine takes.
Item = tuple[float, str, bytes, int, int, Event]
_BEFORE_ALL: Final = -1e300


def _instant(text: object) -> datetime:
    """A timestamp's text as pydantic reads it, or ValueError."""
    if not isinstance(text, str) or _FAST_TS_FORM(text) is None:
        raise ValueError("not in the form pydantic reads")
    when = datetime.fromisoformat(text)  # ValueError for a form it does not read
    # an offset is under a day: a local year strictly inside is inside as an instant, and the
    # comparison across time zones (about 1 µs) is left to the years at the edges
    if not 1970 < when.year < 2199 and not TIMESTAMP_MIN <= when < TIMESTAMP_MAX:
        raise ValueError(_RANGE_TEXT)
    return when


def parse_event(data: bytes | str, *, key: str | None = None) -> Event:
    """Decode and validate one input event; check it against the Kafka ``key`` when given.

    Tries the msgspec Structs first, and on any refusal :func:`parse_event_pydantic`, so the
    result is an event with equal field values (or the same error) either way; what differs
    is the class (a Struct or a model), the timestamps' ``tzinfo`` class (``timezone`` or
    pydantic's ``TzInfo``: the same offsets) and :func:`encode_event`'s bytes. Raises
    :class:`InvalidEvent` whose message starts with the offending field.
    """
    try:
        if isinstance(data, bytes) and not data.isascii():
            data.decode("utf-8")  # msgspec does not check the strings of skipped fields
        event: Any = _FAST_DECODE(data)
        force_setattr(event, "occurred_at", _instant(event.occurred_at))
        if event.type == "donation_change":
            force_setattr(event, "mandate_started_at", _instant(event.mandate_started_at))
        if event.supporter_timezone is not None:
            _known_zone(event.supporter_timezone)
    except Exception:  # noqa: BLE001 (any refusal, even unforeseen: pydantic decides)
        return parse_event_pydantic(data, key=key)
    if key is not None and key != event.supporter_id:
        raise _key_mismatch(event.supporter_id, key)
    result: Event = event
    return result


_KEY: Final = b'"supporter_id"'


def shard_of(line: bytes, shards: int) -> int:
    """Which of ``shards`` replays a line belongs to: by its supporter, so that one process
    holds all of a supporter's events (:mod:`relmon.replay.sharded`).

    Read from the bytes when that is exact: no backslash in the line (so no JSON escapes,
    and every quote delimits a string), the key once, written ``"supporter_id":"``; the
    value's bytes are then the decoded supporter id. Otherwise the line is decoded, and a
    line that is not a valid event belongs to shard 0 (which writes its dead letter). The
    same bytes always give the same shard; a valid event's shard depends only on its
    supporter id (CRC-32 of its UTF-8).
    """
    if shards == 1:
        return 0
    at = line.find(_KEY)
    if (
        at >= 0
        and line[at + 14 : at + 16] == b':"'
        and line.find(_KEY, at + 14) < 0
        and line.find(b"\\") < 0
    ):
        end = line.find(b'"', at + 16)
        if end > at + 16:
            return crc32(line[at + 16 : end]) % shards
    try:
        event = parse_event(line)
    except InvalidEvent:
        return 0
    return crc32(event.supporter_id.encode("utf-8")) % shards


class LineDecoder:
    """One input file's lines, given a run at a time (:meth:`feed`), as merge items in time
    order; events of one instant sorted among themselves (their whole item compared).

    Counts the lines, blank lines and bytes read; keeps each bad line (number, bytes
    without its line end, error) in :attr:`bad` for the caller to take; stops at the first
    line that goes back in time (its number in :attr:`back`), since the caller cannot use
    what follows. With ``shards`` > 1 it decodes only the lines of shard ``shard``
    (:func:`shard_of`), and counts blank lines in shard 0 only; every shard counts every
    line and byte read.
    """

    def __init__(self, index: int, shard: int = 0, shards: int = 1) -> None:
        self.index = index
        self.shard = shard
        self.shards = shards
        self.lines = 0  # lines read (the line number of the last one)
        self.blank = 0
        self.bytes_read = 0
        self.back = 0  # the number of the first line that goes back in time; 0: none yet
        self.bad: list[tuple[int, bytes, InvalidEvent]] = []
        self._at = _BEFORE_ALL  # the instant of the events in _group
        self._group: list[Item] = []

    def feed(self, lines: list[bytes]) -> list[Item]:
        """The items complete after ``lines`` (the file's next lines, each with its line
        end): every event before the latest instant read, in order."""
        out: list[Item] = []
        if self.back:
            return out
        group, at, index, number = self._group, self._at, self.index, self.lines
        shard, shards = self.shard, self.shards
        read = 0
        for raw in lines:
            number += 1
            read += len(raw)
            line = raw.rstrip(b"\r\n")
            if shards > 1 and shard_of(line, shards) != shard:
                continue
            try:
                event = parse_event(line)
            except InvalidEvent as exc:
                if line.strip():
                    self.bad.append((number, line, exc))
                else:
                    self.blank += 1
                continue
            t = instant(event.occurred_at)
            if t != at:
                if t < at:
                    self.back = number
                    break
                if len(group) == 1:  # most instants hold one event
                    out.append(group[0])
                elif group:
                    group.sort()
                    out.extend(group)
                group = []
                at = t
            group.append((t, event.event_id, line, index, number, event))
        self._group, self._at, self.lines = group, at, number
        self.bytes_read += read
        return out

    def finish(self) -> list[Item]:
        """The items of the last instant read (after the last :meth:`feed`)."""
        group = self._group
        self._group = []
        if len(group) > 1 and not self.back:
            group.sort()
        return group
