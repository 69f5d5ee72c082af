"""Which process of ``relmon replay --jobs N`` a line goes to
(:func:`relmon.domain.decoding.shard_of`), against the decoder (hypothesis).

The invariant that keeps a split replay exact: a valid event goes to the shard of its decoded
supporter id, however its JSON is written (the id read from the bytes when that is exact,
else decoded); any line goes to one shard only, always the same. The lines are the fast
path's property test's: valid events mutated at the JSON text level (escapes, duplicate
keys, unknown fields, bytes that are not UTF-8, ...), plus keys that look like
``supporter_id`` and spacing around it.
"""

from __future__ import annotations

from zlib import crc32

from hypothesis import given
from hypothesis import strategies as st

from relmon.domain.decoding import parse_event, shard_of
from relmon.errors import InvalidEvent
from tests.unit.test_events_fast_path import SETTINGS, lines

REWRITES = [
    (b"", b""),  # as drawn
    (b"{", b'{"x\\"supporter_id":"other",'),  # a key that ends like it
    (b"{", b'{"supporter_idx":"other","xsupporter_id":"other",'),
    (b"{", b'{"note":"\\"supporter_id\\":\\"other\\"",'),  # inside a string
    (b"{", b'{"supporter_id":"other",'),  # the key twice: the later one counts
    (b'"supporter_id":', b'"supporter_id" :'),  # spacing
    (b'"supporter_id":"', b'"supporter_id":"\\u0073'),  # the id's first character escaped
    (b'"supporter_id":', b'"supporter\\u005fid":'),  # the key escaped ...
]


@SETTINGS
@given(lines(), st.sampled_from(REWRITES), st.booleans(), st.sampled_from([2, 3, 4]))
def test_a_valid_event_goes_to_its_supporters_shard_and_every_line_to_one(
    line: tuple[bytes | str, str | None],
    rewrite: tuple[bytes, bytes],
    decoy: bool,
    shards: int,
) -> None:
    """For every line: one shard in range, the same each time; for a valid event, the
    shard of its decoded supporter id."""
    data = line[0] if isinstance(line[0], bytes) else line[0].encode("utf-8")
    data = data.strip()
    if rewrite[0]:
        data = data.replace(rewrite[0], rewrite[1], 1)
    if decoy and data.startswith(b"{"):  # ... and a plain one before it, which loses
        data = b'{"supporter_id":"other",' + data[1:]
    shard = shard_of(data, shards)
    assert 0 <= shard < shards
    assert shard_of(data, shards) == shard
    try:
        event = parse_event(data)
    except InvalidEvent:
        return
    assert shard == crc32(event.supporter_id.encode("utf-8")) % shards
