"""parse_event's msgspec fast path against the pydantic path it falls back to (hypothesis).

The invariant: whatever the msgspec Structs accept, pydantic accepts too, with equal fields
(values, their Python types, each timestamp's instant and UTC offset); and parse_event's
result or error (message, field, kind) is the one :func:`parse_event_pydantic` gives. The
lines are valid events mutated one or more times at the JSON text level: wrong JSON types,
integer bounds +-1, empty and over-long strings, every timestamp form (no offset, ``t`` or a
space, fractions of 0-9 digits, ``+hhmm``, years out of range, non-ASCII digits), NaN and
1e400, booleans and 1.0 for integers, duplicate keys, unknown fields, unknown zones, escapes,
lone surrogates and bytes that are not UTF-8.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relmon.domain import Engine, default_policy, encode_alert, encode_record
from relmon.domain.decoding import parse_event
from relmon.domain.events import (
    MAX_AMOUNT_CENTS,
    MAX_DURATION_S,
    encode_event,
    parse_event_pydantic,
)
from relmon.errors import InvalidEvent
from relmon.testing import call, consent, donation, email, event_fields, to_line

SETTINGS = settings(
    max_examples=int(os.environ.get("RELMON_HYPOTHESIS_EXAMPLES", "150")) * 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

GOLDEN = Path(__file__).parent.parent / "golden" / "inputs"
# valid events as (key, raw JSON value) pairs, so that a mutation may write any JSON text
BASES: list[list[tuple[bytes, bytes]]] = [
    [(orjson.dumps(k), orjson.dumps(v)) for k, v in orjson.loads(to_line(event)).items()]
    for event in (
        call(sentiment=-0.5, trigger="web_visit"),
        call(direction="inbound", outcome="no_answer"),
        consent(),
        email(),
        email(action="sent"),
        donation(),
        donation(action="cancelled"),
    )
]
FIELDS = [
    b"type", b"event_id", b"supporter_id", b"occurred_at", b"schema_version",
    b"supporter_timezone", b"call_id", b"direction", b"campaign_id", b"campaign_purpose",
    b"partner_id", b"agent_id", b"duration_s", b"outcome", b"amount_delta_cents", b"trigger",
    b"sentiment", b"channel", b"action", b"source", b"message_id", b"mandate_id", b"frequency",
    b"amount_cents_before", b"amount_cents_after", b"currency", b"mandate_started_at",
    b"reason", b"extra", b"Type", b"\xff", b"",
]  # fmt: skip


def _j(value: object) -> bytes:
    return orjson.dumps(value)


INTS = [
    0, 1, -1, 2, 95, MAX_DURATION_S - 1, MAX_DURATION_S, MAX_DURATION_S + 1,
    MAX_AMOUNT_CENTS - 1, MAX_AMOUNT_CENTS, MAX_AMOUNT_CENTS + 1, -MAX_AMOUNT_CENTS,
    -MAX_AMOUNT_CENTS - 1, 2**63, -(2**63) - 1, 10**30,
]  # fmt: skip
NUMBER_TEXTS = [
    b"1.0", b"1e0", b"-0", b"-0.0", b"0.5", b"-0.5", b"1", b"-1", b"1.0000001", b"-1.0000001",
    b"0.1", b"0.30000000000000004", b"1e-400", b"NaN", b"Infinity", b"-Infinity", b"1e400",
    b"-1e400", b"1E0", b"01", b"+1", b".5", b"1.", b"0.99999999999999999999", b"-1e-7",
    b"123456789e-9", b"true", b"false", b"null",
]  # fmt: skip
LITERALS = [
    "call_outcome", "consent_change", "email_engagement", "donation_change", "letter",
    "outbound", "inbound", "Outbound", "upgrade", "survey", "no_answer", "declined",
    "do_not_call", "cancelled_donation", "phone", "email", "all", "opt_out", "opt_in",
    "objection", "web", "register", "sent", "delivered", "unsubscribed", "spam_complaint",
    "started", "cancelled", "downgraded", "one_off", "monthly", "yearly", "bank", "EUR", "eur",
    "EURO", "EU", "EUR\n", "\u00c9UR", "GBP", "1",
]  # fmt: skip
ZONES = [
    "Europe/Brussels", "Europe/Amsterdam", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires",
    "Mars/Base", "Europe", "America", "\U0001f600" * 64, "europe/brussels", "../etc/passwd",
    "/etc/localtime", "Europe/Brussels\n", "", " UTC", "Europe/" + "x" * 60,
]  # fmt: skip
STRING_TEXTS = [
    b'""', b'"x"', _j("x" * 63), _j("x" * 64), _j("x" * 65), _j("x" * 127), _j("x" * 128),
    _j("x" * 129), _j("x" * 255), _j("x" * 256), _j("x" * 257), _j("\U0001f600" * 64),
    _j("\U0001f600" * 65), _j("\u00e9t\u00e9"), b'"\\u0041BC"', b'"a\\nb"', b'"\\ud800"',
    b'"\\udc00x"', b'"\\ud83d\\ude00"', b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b'"a\x01"',
    b'"\\u0000"', b"[]", b"{}", b'{"a": [1, {"b": "\xff"}]}', b"[1, 2,]",
]  # fmt: skip


@st.composite
def timestamps(draw: st.DrawFn) -> bytes:
    """Timestamp texts around every rule: forms, separators, fractions, offsets, ranges."""
    year = draw(st.sampled_from(["1969", "1970", "1971", "2026", "2198", "2199", "2200", "0001",
                                 "9999", "0000", "202", "\u0662\u0660\u0662\u0666"]))  # fmt: skip
    month = draw(st.sampled_from(["01", "02", "03", "12", "13", "00", "1"]))
    day = draw(st.sampled_from(["01", "28", "29", "30", "31", "00", "32"]))
    sep = draw(st.sampled_from(["T", "t", " ", "x", "", "TT"]))
    hour = draw(st.sampled_from(["00", "01", "18", "23", "24", "1"]))
    minute = draw(st.sampled_from(["00", "05", "59", "60"]))
    second = draw(st.sampled_from([":00", ":59", ":60", "", ":5", ":\u0660\u0660"]))
    digits = draw(st.integers(0, 9))
    fraction = (
        draw(st.sampled_from(["", ".", ","]))
        if digits == 0
        else "."
        + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
    )
    offset = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59",
                                   "-23:59", "+24:00", "+01:60", "+0100", "-0530", "+01", "",
                                   " Z", "Z ", "+1:00", "UTC"]))  # fmt: skip
    text = f"{year}-{month}-{day}{sep}{hour}:{minute}{second}{fraction}{offset}"
    if draw(st.booleans()):  # a plausible one most of the time
        y = draw(st.sampled_from(["1970", "2026", "2199", "1969", "2200"]))
        text = f"{y}-01-01T00:00:00{fraction}{offset}"
    return _j(text)


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """Raw JSON text for a field's value: valid or just wrong."""
    kind = draw(st.sampled_from(["int", "number", "literal", "zone", "string", "ts", "ts"]))
    if kind == "int":
        return str(draw(st.sampled_from(INTS))).encode()
    if kind == "number":
        return draw(st.sampled_from(NUMBER_TEXTS))
    if kind == "literal":
        return _j(draw(st.sampled_from(LITERALS)))
    if kind == "zone":
        return _j(draw(st.sampled_from(ZONES)))
    if kind == "string":
        return draw(st.sampled_from(STRING_TEXTS))
    return draw(timestamps())


@st.composite
def lines(draw: st.DrawFn) -> tuple[bytes | str, str | None]:
    """A valid event mutated 0-3 times, as bytes (or str), and a Kafka key or None."""
    pairs = list(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["set", "set", "set", "drop", "duplicate", "add"]))
        key = b'"' + draw(st.sampled_from(FIELDS)) + b'"'
        value = draw(values())
        names = [k for k, _ in pairs]
        if how == "set" and key in names:
            pairs[names.index(key)] = (key, value)
        elif how == "drop" and key in names:
            pairs.pop(names.index(key))
        elif how == "duplicate" and key in names:
            pairs.insert(draw(st.integers(0, len(pairs))), (key, value))
        else:
            pairs.append((key, value))
    data = b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"
    if draw(st.booleans()):
        data = b" " + data + b"\n"
    key = draw(st.sampled_from([None, None, "s-0001", "someone-else"]))
    if draw(st.integers(0, 4)) == 0:
        try:
            return data.decode("utf-8"), key
        except UnicodeDecodeError:
            pass
    return data, key


def _outcome(parse: Any, data: bytes | str, key: str | None) -> tuple[str, object]:
    try:
        event = parse(data, key=key)
    except InvalidEvent as exc:
        return "error", (str(exc), exc.field, exc.kind)
    fields = event_fields(event)
    return "event", (fields, {name: type(v) for name, v in fields.items()})


def _is_struct(event: object) -> bool:
    return type(event).__name__.endswith("Struct")


@SETTINGS
@given(lines())
def test_fast_path_accepts_only_what_pydantic_accepts_with_equal_fields(
    line: tuple[bytes | str, str | None],
) -> None:
    """Whatever msgspec accepts, pydantic accepts with equal fields, and parse_event's result
    or error is always the pydantic path's."""
    data, key = line
    assert _outcome(parse_event, data, key) == _outcome(parse_event_pydantic, data, key)


def test_valid_events_take_the_fast_path() -> None:
    """The property above is not vacuous: valid lines of each type, in each timestamp form
    the fast path reads, come back as msgspec Structs."""
    forms = [
        "2026-03-01T18:05:00Z", "2026-03-01 18:05:00+01:00", "2026-03-01t18:05:00.5-05:30",
        "2026-03-01T18:05:00.123456+00:00", "1970-01-01T00:00:00Z", "2199-12-31T23:59:59Z",
    ]  # fmt: skip
    for base in BASES:
        for form in forms:
            pairs = [(k, _j(form) if k == b'"occurred_at"' else v) for k, v in base]
            data = b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"
            assert _is_struct(parse_event(data)), data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (b"occurred_at", _j("2026-03-01T18:05:00+0100")),  # msgspec reads +hhmm
        (b"occurred_at", _j("2026-03-01T18:05:00.1234567Z")),  # msgspec rounds, pydantic cuts
        (b"occurred_at", _j("2026-03-01T18:05:00.9999999Z")),
        (b"occurred_at", _j("1969-12-31T23:59:59.9999999Z")),
        (b"occurred_at", _j("2199-12-31T23:59:59-01:00")),  # in 2200 UTC
        (b"occurred_at", _j("2026-03-01T18:05:00")),  # no offset
        (b"occurred_at", _j("2026-03-01T18:05:00+01:60")),  # Python's parser takes it
        (b"currency", _j("EUR\n")),  # Python's $ matches before a final newline
        (b"extra", b'"\xff"'),  # msgspec skips the field without reading its UTF-8
        (b"supporter_timezone", _j("Mars/Base")),
        (b"type", _j("consent_change")),  # a second type: pydantic takes the last
        (b"schema_version", b"1.0"),
        (b"sentiment", b"1e400"),
    ],
)
def test_what_msgspec_alone_would_misread_is_pydantic_s(field: bytes, value: bytes) -> None:
    """Lines that msgspec alone reads differently from pydantic (or the fast path's own
    checks refuse) get exactly the pydantic path's result or error."""
    base = BASES[5] if field == b"currency" else BASES[0]
    pairs = [(k, v) for k, v in base if k != b'"' + field + b'"'] + [(b'"' + field + b'"', value)]
    if field == b"type":
        pairs = [*base, (b'"type"', value)]
    data = b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"
    fast, slow = _outcome(parse_event, data, None), _outcome(parse_event_pydantic, data, None)
    assert fast == slow
    if fast[0] == "event":  # pydantic accepts it: parse_event gives pydantic's model
        assert not _is_struct(parse_event(data))


def test_encode_event_reads_back_equal_for_both_kinds() -> None:
    """encode_event (the body of a late event's dead letter when the raw line is gone, as in
    a Kafka replay) gives a line that parses back to equal fields, from a Struct or a model;
    a model is dumped as pydantic dumps it (the fields it was given)."""
    for base in BASES:
        line = b"{" + b",".join(k + b":" + v for k, v in base) + b"}"
        struct, model = parse_event(line), parse_event_pydantic(line)
        assert _is_struct(struct)
        for event in (struct, model):
            assert event_fields(parse_event(encode_event(event))) == event_fields(model)
        assert encode_event(model) == model.model_dump_json(exclude_unset=True).encode()


@pytest.mark.parametrize("case", ["adversarial.jsonl", "sim-year.jsonl.gz"])
def test_the_engine_gives_the_same_outputs_from_either_kind(case: str) -> None:
    """The engine takes Structs and models alike (no isinstance on a concrete class): a golden
    input's valid lines, applied in file order once as parse_event's Structs and once as
    pydantic's models, give the same records, alerts and late reasons, byte for byte."""
    path = GOLDEN / case
    raw = gzip.decompress(path.read_bytes()) if case.endswith(".gz") else path.read_bytes()

    def outputs(parse: Any) -> tuple[list[bytes], int]:
        engine, states, out, structs = Engine(default_policy()), {}, [], 0
        for line in raw.splitlines():
            try:
                event = parse(line)
            except InvalidEvent:
                continue
            structs += _is_struct(event)
            new = engine.apply(states.get(event.supporter_id), event)
            states[event.supporter_id] = new.state
            out += [encode_record(r) for r in new.records] + [encode_alert(a) for a in new.alerts]
            out.append((new.late or "").encode())
        return out, structs

    (fast, structs), (slow, models) = outputs(parse_event), outputs(parse_event_pydantic)
    assert structs > 0
    assert models == 0
    assert fast == slow
