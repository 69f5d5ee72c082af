"""Input event models and parse_event: strict validation with errors that name the field."""

from __future__ import annotations

import orjson
import pytest

from relmon.domain import EmailEngagement, parse_event
from relmon.domain.events import (
    CallOutcomeStruct,
    ConsentChangeStruct,
    DonationChangeStruct,
    EmailEngagementStruct,
)
from relmon.errors import InvalidEvent
from relmon.testing import call, consent, donation, email, event_fields, to_line

VALID = {
    "call_outcome": call(sentiment=-0.5, trigger="web_visit"),
    "consent_change": consent(),
    "email_engagement": email(),
    "donation_change": donation(),
}


def _with(event: object, **changes: object) -> bytes:
    data = orjson.loads(to_line(event))  # type: ignore[arg-type]
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return orjson.dumps(data)


_DROP = object()


@pytest.mark.parametrize(
    ("event", "struct"),
    [
        (VALID["call_outcome"], CallOutcomeStruct),
        (VALID["consent_change"], ConsentChangeStruct),
        (VALID["email_engagement"], EmailEngagementStruct),
        (VALID["donation_change"], DonationChangeStruct),
    ],
)
def test_each_type_parses_to_its_model(event: object, struct: type) -> None:
    """A valid line of each type parses (by the msgspec fast path) to the Struct its `type`
    names, field for field equal to the model it was written from."""
    parsed = parse_event(to_line(event))  # type: ignore[arg-type]
    assert isinstance(parsed, struct)
    assert event_fields(parsed) == event_fields(event)  # type: ignore[arg-type]


def test_str_input_and_unknown_fields_are_accepted() -> None:
    """A str works as well as bytes, and fields relmon does not know are ignored."""
    line = _with(VALID["email_engagement"], producer="crm-7", extra={"a": 1})
    parsed = parse_event(line.decode())
    assert event_fields(parsed) == event_fields(VALID["email_engagement"])


def test_schema_version_defaults_to_1() -> None:
    """Leaving out schema_version means version 1."""
    assert parse_event(_with(VALID["consent_change"], schema_version=_DROP)).schema_version == 1


@pytest.mark.parametrize(
    ("base", "field", "value", "expected"),
    [
        ("call_outcome", "direction", "sideways", "direction: 'sideways' is not one of"),
        ("call_outcome", "outcome", "maybe", "outcome: 'maybe' is not one of"),
        ("call_outcome", "campaign_purpose", "fun", "campaign_purpose: 'fun' is not one of"),
        ("consent_change", "channel", "fax", "channel: 'fax' is not one of"),
        ("email_engagement", "action", "forwarded", "action: 'forwarded' is not one of"),
        ("donation_change", "frequency", "weekly", "frequency: 'weekly' is not one of"),
        ("call_outcome", "duration_s", "12", "duration_s: "),
        ("call_outcome", "duration_s", -1, "duration_s: "),
        ("call_outcome", "sentiment", 1.5, "sentiment: "),
        ("donation_change", "currency", "euro", "currency: "),
        ("donation_change", "amount_cents_after", 12.5, "amount_cents_after: "),
        ("call_outcome", "event_id", "", "event_id: "),
        ("call_outcome", "supporter_id", "x" * 65, "supporter_id: "),
        ("call_outcome", "schema_version", 2, "schema_version: "),
    ],
)
def test_wrong_values_are_rejected_naming_the_field(
    base: str, field: str, value: object, expected: str
) -> None:
    """An unknown enum value or a wrong type or range fails with the field in the message."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_with(VALID[base], **{field: value}))
    assert str(caught.value).startswith(expected)
    assert caught.value.field == field
    assert caught.value.kind == "validation"


@pytest.mark.parametrize(
    ("base", "field"),
    [
        ("call_outcome", "occurred_at"),
        ("donation_change", "mandate_started_at"),
    ],
)
def test_timestamps_without_offset_are_rejected(base: str, field: str) -> None:
    """A timestamp without a UTC offset fails with the expected form in the message."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_with(VALID[base], **{field: "2026-03-01T18:05:00"}))
    assert str(caught.value) == (
        f"{field}: timestamp must have a UTC offset, e.g. 2026-03-01T18:05:00+01:00"
    )
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("base", "field", "value"),
    [
        ("call_outcome", "occurred_at", "9999-12-31T23:00:00Z"),
        ("call_outcome", "occurred_at", "9999-12-31T23:00:00-02:00"),
        ("call_outcome", "occurred_at", "0001-01-01T00:30:00+01:00"),
        ("consent_change", "occurred_at", "1969-12-31T23:59:59Z"),
        ("email_engagement", "occurred_at", "2200-01-01T00:00:00Z"),
        ("donation_change", "occurred_at", "2200-01-01T00:30:00-01:00"),
        ("donation_change", "mandate_started_at", "9999-06-01T00:00:00Z"),
        ("donation_change", "mandate_started_at", "1900-01-01T00:00:00Z"),
    ],
)
def test_timestamps_out_of_range_are_rejected(base: str, field: str, value: str) -> None:
    """A timestamp outside [1970-01-01, 2200-01-01) UTC fails naming the field and the range."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_with(VALID[base], **{field: value}))
    assert str(caught.value).startswith(f"{field}: must be between 1970-01-01 and 2200-01-01")
    assert caught.value.field == field
    assert caught.value.kind == "validation"


@pytest.mark.parametrize(
    "value",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T01:00:00+01:00",
        "2199-12-31T23:59:59.999999Z",
        "2026-03-01t18:05:00z",
        "2026-03-01 18:05:00+01:00",
        "2026-03-01T18:05:00.5-05:30",
    ],
)
def test_timestamps_at_the_range_ends_and_in_rfc3339_variants_are_accepted(value: str) -> None:
    """The range's first instant, its last, and RFC 3339's 't', 'z' and space forms parse."""
    for base, field in (("call_outcome", "occurred_at"), ("donation_change", "mandate_started_at")):
        parse_event(_with(VALID[base], **{field: value}))


@pytest.mark.parametrize(
    "value",
    [
        "1700000000",
        "1700000000.5",
        1700000000,
        1700000000.5,
        "2026-03-01",
        "2026-03-01T18:05Z",
        "2026-03-01T18:05:00+0100",
        "2026-03-01T18:05:00+01",
        "20260301T180500Z",
        "2026-03-01T18:05:00Z ",
        "2026-03-01_18:05:00Z",
        True,
        None,
    ],
)
@pytest.mark.parametrize(
    ("base", "field"),
    [
        ("call_outcome", "occurred_at"),
        ("donation_change", "mandate_started_at"),
    ],
)
def test_timestamps_not_in_rfc3339_form_are_rejected(base: str, field: str, value: object) -> None:
    """Unix time (number or digits) and other non-RFC 3339 forms fail naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_with(VALID[base], **{field: value}))
    assert str(caught.value).startswith(f"{field}: not an RFC 3339 timestamp")
    assert caught.value.field == field
    assert caught.value.kind == "validation"


def test_out_of_range_timestamps_are_rejected_when_built_in_python() -> None:
    """The range holds for models built in Python from datetime objects too."""
    from datetime import UTC, datetime, timedelta, timezone

    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="less than 2200-01-01"):
        donation(started=datetime(9999, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="greater than or equal to 1970-01-01"):
        call(at=datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))


@pytest.mark.parametrize(
    ("base", "field"),
    [
        ("call_outcome", "partner_id"),
        ("call_outcome", "outcome"),
        ("consent_change", "source"),
        ("email_engagement", "message_id"),
        ("donation_change", "mandate_started_at"),
        ("donation_change", "event_id"),
    ],
)
def test_a_missing_field_is_named(base: str, field: str) -> None:
    """A required field left out fails as `FIELD: missing field`."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_with(VALID[base], **{field: _DROP}))
    assert str(caught.value) == f"{field}: missing field"
    assert caught.value.field == field


def test_optional_fields_may_be_null_or_absent() -> None:
    """`agent_id`, `amount_delta_cents`, `trigger` and `sentiment` may be null or left out."""
    absent = _with(VALID["call_outcome"], agent_id=_DROP, trigger=_DROP, sentiment=_DROP)
    null = _with(VALID["call_outcome"], agent_id=None, trigger=None, sentiment=None)
    assert parse_event(absent) == parse_event(null)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b'{"type": "letter", "event_id": "e"}', "type", "type: unknown event type 'letter'"),
        (b'{"event_id": "e"}', "type", "type: missing field"),
    ],
)
def test_the_type_decides_the_model(data: bytes, field: str, message: str) -> None:
    """An unknown or missing `type` is an error on `type`, not on every other field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(data)
    assert str(caught.value).startswith(message)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'{"type": "call_outcome",', "json"),
        (b"", "json"),
        (b"\xff\xfe{}", "encoding"),
        (b"[1, 2]", "validation"),
    ],
)
def test_undecodable_input_is_classified(data: bytes, kind: str) -> None:
    """Broken JSON, bytes that are not UTF-8 and a non-object each get their own kind."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(data)
    assert caught.value.kind == kind


def test_the_key_must_equal_the_supporter_id() -> None:
    """A Kafka key that differs from supporter_id is a key_mismatch naming supporter_id."""
    line = to_line(VALID["consent_change"])
    parsed = parse_event(line, key=VALID["consent_change"].supporter_id)
    assert event_fields(parsed) == event_fields(VALID["consent_change"])
    with pytest.raises(InvalidEvent) as caught:
        parse_event(line, key="someone-else")
    assert caught.value.kind == "key_mismatch"
    assert caught.value.field == "supporter_id"
    assert str(caught.value).startswith("supporter_id: ")


def _raw(event: object, field: str, json_text: bytes) -> bytes:
    """The event's line with ``field`` set to ``json_text`` as written (NaN, 1e0, 2**64 ...)."""
    data = orjson.loads(to_line(event))  # type: ignore[arg-type]
    data[field] = "__RAW__"
    return orjson.dumps(data).replace(b'"__RAW__"', json_text)


@pytest.mark.parametrize(
    ("base", "field", "value", "message"),
    [
        ("donation_change", "amount_cents_after", b"18446744073709551616", "at most 100000000000"),
        ("donation_change", "amount_cents_after", b"100000000001", "at most 100000000000"),
        ("donation_change", "amount_cents_before", b"9223372036854775808", "at most 100000000000"),
        ("donation_change", "amount_cents_before", b"-1", "at least 0"),
        ("call_outcome", "amount_delta_cents", b"100000000001", "at most 100000000000"),
        ("call_outcome", "amount_delta_cents", b"-100000000001", "at least -100000000000"),
        ("call_outcome", "amount_delta_cents", b"-" + b"9" * 30, "at least -100000000000"),
        ("call_outcome", "duration_s", b"604801", "at most 604800"),
        ("call_outcome", "duration_s", b"1" + b"0" * 30, "at most 604800"),
    ],
)
def test_integer_fields_out_of_bounds_fail_naming_the_field_and_the_bound(
    base: str, field: str, value: bytes, message: str
) -> None:
    """An integer beyond its bound (64-bit overflow included) is an error naming both."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_raw(VALID[base], field, value))
    assert str(caught.value) == f"{field}: must be {message} (got {int(value)})"
    assert (caught.value.field, caught.value.kind) == (field, "validation")


@pytest.mark.parametrize(
    ("base", "field", "value"),
    [
        ("donation_change", "amount_cents_after", 10**11),
        ("donation_change", "amount_cents_before", 10**11),
        ("donation_change", "amount_cents_after", 0),
        ("call_outcome", "amount_delta_cents", -(10**11)),
        ("call_outcome", "amount_delta_cents", 10**11),
        ("call_outcome", "duration_s", 7 * 86_400),
        ("call_outcome", "duration_s", 0),
    ],
)
def test_integer_fields_at_their_bounds_are_accepted(base: str, field: str, value: int) -> None:
    """The bounds themselves are valid values."""
    assert getattr(parse_event(_with(VALID[base], **{field: value})), field) == value


@pytest.mark.parametrize("value", [b"1.0", b"true", b"1e0", b'"1"', b"2", b"0", b"null", b"1.5"])
def test_schema_version_must_be_the_json_integer_1(value: bytes) -> None:
    """schema_version 1.0, 1e0, true or "1" (equal to 1 in Python) fails naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_raw(VALID["call_outcome"], "schema_version", value))
    shown = {b"1e0": "1.0", b'"1"': "'1'"}.get(value, value.decode())
    assert str(caught.value) == (
        f"schema_version: must be the JSON integer 1, the only version read (got {shown})"
    )
    assert (caught.value.field, caught.value.kind) == ("schema_version", "validation")


def test_schema_version_1_is_accepted_from_json_and_python() -> None:
    """The JSON integer 1 parses, and models built in Python refuse True for it."""
    from pydantic import ValidationError

    assert parse_event(_raw(VALID["email_engagement"], "schema_version", b"1")).schema_version == 1
    with pytest.raises(ValidationError):
        EmailEngagement(**{**email().model_dump(), "schema_version": True})


@pytest.mark.parametrize(
    ("value", "shown"),
    [(b"NaN", "nan"), (b"Infinity", "inf"), (b"-Infinity", "-inf"), (b"1e400", "inf")],
)
def test_sentiment_must_be_a_finite_number(value: bytes, shown: str) -> None:
    """NaN and infinities (which pydantic's JSON reader accepts) fail as not finite."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_raw(VALID["call_outcome"], "sentiment", value))
    assert str(caught.value) == f"sentiment: must be a finite number (got {shown})"
    assert caught.value.field == "sentiment"


@pytest.mark.parametrize(("value", "message"), [(b"1.5", "at most 1.0"), (b"-2", "at least -1.0")])
def test_sentiment_out_of_range_names_the_bound(value: bytes, message: str) -> None:
    """A sentiment outside [-1, 1] fails naming the bound it passed."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_raw(VALID["call_outcome"], "sentiment", value))
    assert str(caught.value).startswith(f"sentiment: must be {message} (got ")


@pytest.mark.parametrize("kind", list(VALID))
def test_supporter_timezone_is_optional_and_must_be_an_iana_zone(kind: str) -> None:
    """Every event type takes an optional ``supporter_timezone``; a name zoneinfo does not
    know is an error naming the field (a dead letter), absent means the policy's zone."""
    assert parse_event(_with(VALID[kind])).supporter_timezone is None
    ok = parse_event(_with(VALID[kind], supporter_timezone="Europe/Brussels"))
    assert ok.supporter_timezone == "Europe/Brussels"
    for bad in ("Mars/Olympus", "", 3, "../../etc/passwd"):
        with pytest.raises(InvalidEvent) as info:
            parse_event(_with(VALID[kind], supporter_timezone=bad))
        assert info.value.field == "supporter_timezone"


@pytest.mark.parametrize("bad", ["Europe", "America", "\U0001f600" * 64])
def test_a_zone_name_zoneinfo_cannot_open_is_an_unknown_zone(bad: str) -> None:
    """A zone name that is a directory of the time zone database, or too long for a file
    name (zoneinfo raises OSError for both), is an unknown zone naming the field, not a
    crash of parse_event."""
    with pytest.raises(InvalidEvent) as info:
        parse_event(_with(VALID["email_engagement"], supporter_timezone=bad))
    assert info.value.field == "supporter_timezone"
    assert str(info.value).startswith("supporter_timezone: unknown IANA time zone")
