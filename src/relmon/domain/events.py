"""The four input events of the contract (section 1), as pydantic models (the reference)
and as msgspec Structs (the fast path of :func:`relmon.domain.decoding.parse_event`).

Modelling choices:

* One pydantic model per event type, joined in :data:`InputEvent`, a union discriminated on
  ``type``. Validation is strict (no coercion: ``"3"`` is not an integer, ``3.0`` is not
  an integer), fields relmon does not know are ignored (the contract lets producers send
  more), enum values are ``Literal`` types, so an unknown value is an error naming the field.
* Timestamps (``occurred_at``, ``mandate_started_at``) must be JSON strings in RFC 3339 form:
  ``YYYY-MM-DD``, ``T`` (or ``t`` or a space, which RFC 3339 allows), ``hh:mm:ss``, an
  optional fraction, and ``Z`` (or ``z``) or ``+hh:mm``/``-hh:mm``. A number or a string of
  digits (Unix time, which pydantic would otherwise accept) is rejected, and so is any other
  form pydantic reads (``hh:mm`` without seconds, ``+hhmm``). A timestamp without an offset
  is rejected with a message that shows the expected form. The instant must lie in
  [1970-01-01, 2200-01-01) UTC, so the engine's epoch-second arithmetic (months added for the
  loyalty tenure, windows, expiry times) never leaves the years ``datetime`` can hold.
  Models built in Python may also be given aware ``datetime`` objects (the same range).
* Identifier strings are 1–256 characters (``event_id`` 1–128 and ``supporter_id`` 1–64, as
  the contract says): the bound keeps one supporter's state bounded.
* ``schema_version`` is the JSON integer ``1``, the only version this relmon reads; anything
  else is an error, because a later version may change a field's meaning. ``1.0``, ``1e0``,
  ``true`` and ``"1"`` are errors too (a bare ``Literal[1]`` would take the first three, since
  they compare equal to 1): the field is a strict integer first, then the literal.
* Every integer field has bounds a real charity never reaches, chosen so that no arithmetic
  on it (differences, monthly equivalents, sums over a whole replay, encoding with orjson,
  which refuses integers beyond 64 bits) can leave the signed 64-bit range: amounts
  (``amount_cents_before``/``_after``) are 0 to :data:`MAX_AMOUNT_CENTS` = 10**11 cents (one
  billion in currency units per period; ten million such amounts still sum below 2**63),
  ``amount_delta_cents`` is within ``±MAX_AMOUNT_CENTS``, ``duration_s`` is 0 to
  :data:`MAX_DURATION_S` = 7 days (no call lasts a week). Out of range is an error naming the
  field and the bound, e.g. ``amount_cents_after: must be at most 100000000000 (got ...)``.
* ``sentiment`` is a finite number in [-1, 1]: pydantic's JSON reader takes ``NaN``,
  ``Infinity`` and ``1e400`` (which overflows to infinity), and these are errors saying
  "must be a finite number". It is the only float field.
* ``supporter_timezone`` (optional on every event) is an IANA zone name that ``zoneinfo``
  knows, e.g. ``Europe/Brussels``; an unknown name is an error naming the field.
* :func:`~relmon.domain.decoding.parse_event` (compiled with the engine) decodes first with
  msgspec into frozen Structs that mirror the models (about a third less time per event;
  see "the fast path" below for how it stays within what the models accept). On any
  refusal it runs :func:`parse_event_pydantic`: pydantic decodes and validates in one pass
  (``TypeAdapter.validate_json``) and turns every failure into
  :class:`~relmon.errors.InvalidEvent` with ``field`` and ``kind`` set, so every error is
  pydantic's, and a line msgspec refused but pydantic accepts gives pydantic's model.
* Code that receives events takes either kind: it reads them through the Protocols
  :data:`Event` joins (read-only fields; no ``isinstance`` check, which mypyc would add for
  a parameter typed with a concrete class) and tells the types apart by ``ev.type``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

from relmon.errors import InvalidEvent

EventId = Annotated[str, Field(min_length=1, max_length=128)]
SupporterId = Annotated[str, Field(min_length=1, max_length=64)]
Ident = Annotated[str, Field(min_length=1, max_length=256)]
MAX_AMOUNT_CENTS = 10**11
MAX_DURATION_S = 7 * 86_400
AmountCents = Annotated[int, Field(ge=0, le=MAX_AMOUNT_CENTS)]
AmountDeltaCents = Annotated[int, Field(ge=-MAX_AMOUNT_CENTS, le=MAX_AMOUNT_CENTS)]
DurationS = Annotated[int, Field(ge=0, le=MAX_DURATION_S)]
Sentiment = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]

# RFC 3339 date-time (as published in the JSON Schemas). Validation uses it with the offset
# optional, so that a timestamp without one reaches the datetime check, whose message shows
# the expected form.
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
_FORM_PATTERN = RFC3339_PATTERN[:-1] + "?$"
TIMESTAMP_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX = datetime(2200, 1, 1, tzinfo=UTC)  # excluded
TIMESTAMP_FIELDS = frozenset({"occurred_at", "mandate_started_at"})
_RANGE_TEXT = "must be between 1970-01-01 and 2200-01-01"


class _Rfc3339:
    """Marks a datetime field as an RFC 3339 timestamp in [1970-01-01, 2200-01-01) UTC.

    All of it runs in pydantic-core (no Python call per field): from JSON, a strict string
    matching :data:`RFC3339_PATTERN` (the offset checked next), then an aware datetime with
    ``ge``/``lt`` bounds (compared as instants, whatever the offset); from Python, an aware
    ``datetime`` with the same bounds.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> cs.CoreSchema:
        bounded = {"tz_constraint": "aware", "ge": TIMESTAMP_MIN, "lt": TIMESTAMP_MAX}
        return cs.json_or_python_schema(
            json_schema=cs.chain_schema(
                [
                    cs.str_schema(pattern=_FORM_PATTERN, strict=True),
                    # lax: the chain hands the string on as a Python value
                    cs.datetime_schema(strict=False, **bounded),  # type: ignore[arg-type]
                ]
            ),
            python_schema=cs.datetime_schema(strict=True, **bounded),  # type: ignore[arg-type]
            serialization=cs.simple_ser_schema("datetime"),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}


Timestamp = Annotated[datetime, _Rfc3339]


class _SchemaVersion:
    """Marks ``schema_version``: a strict integer (no float, bool or string), then ``1``.

    Both steps run in pydantic-core; the JSON Schema stays ``{"const": 1, "type": "integer"}``.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> cs.CoreSchema:
        return cs.chain_schema([cs.int_schema(strict=True), cs.literal_schema([1])])

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"const": 1, "type": "integer"}


SchemaVersion = Annotated[Literal[1], _SchemaVersion]

Direction = Literal["outbound", "inbound"]
CampaignPurpose = Literal[
    "upgrade", "reactivation", "acquisition", "thank_you", "service", "survey", "other"
]
CallOutcomeValue = Literal[
    "no_answer",
    "busy",
    "voicemail",
    "wrong_number",
    "converted",
    "declined",
    "info_requested",
    "callback_requested",
    "hung_up",
    "complaint",
    "do_not_call",
    "cancelled_donation",
]
ConsentChannel = Literal["phone", "email", "post", "sms", "all"]
ConsentAction = Literal["opt_out", "objection", "opt_in"]
ConsentSource = Literal["call", "web", "email", "letter", "register", "other"]
EmailAction = Literal[
    "sent", "delivered", "opened", "clicked", "unsubscribed", "spam_complaint", "bounced"
]
DonationAction = Literal[
    "started",
    "upgraded",
    "downgraded",
    "paused",
    "resumed",
    "cancelled",
    "reversed",
    "payment_failed",
    "one_off",
]
Frequency = Literal["monthly", "quarterly", "yearly", "one_off"]
DonationChannel = Literal["phone", "web", "bank", "post", "other"]

# The outcomes that are attempts (the supporter was not reached): the one spelling of the
# rule; everything else (the engine's codes, the report, the timeline) derives from it.
ATTEMPT_OUTCOMES = frozenset({"no_answer", "busy", "voicemail", "wrong_number"})
MARKETING_PURPOSES = frozenset({"upgrade", "reactivation", "acquisition", "survey", "other"})


@cache
def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise ValueError("unknown IANA time zone, e.g. Europe/Amsterdam") from None
    return value


# The supporter's IANA time zone, optional on every event: when given it overrides the
# policy's calling zone for this supporter (calling windows, ``next_call_at``).
SupporterZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_zone)]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: EventId
    supporter_id: SupporterId
    occurred_at: Timestamp
    schema_version: SchemaVersion = 1
    supporter_timezone: SupporterZone | None = None


class CallOutcome(_Event):
    """A call between a partner's call centre and a supporter (topic ``relmon.calls``)."""

    type: Literal["call_outcome"]
    call_id: Ident
    direction: Direction
    campaign_id: Ident
    campaign_purpose: CampaignPurpose
    partner_id: Ident
    agent_id: Ident | None = None
    duration_s: DurationS
    outcome: CallOutcomeValue
    amount_delta_cents: AmountDeltaCents | None = None
    trigger: Ident | None = None
    sentiment: Sentiment | None = None


class ConsentChange(_Event):
    """An opt-out, objection or opt-in on one channel (topic ``relmon.consents``)."""

    type: Literal["consent_change"]
    channel: ConsentChannel
    action: ConsentAction
    source: ConsentSource


class EmailEngagement(_Event):
    """Something that happened to one marketing e-mail (topic ``relmon.emails``)."""

    type: Literal["email_engagement"]
    message_id: Ident
    campaign_id: Ident
    action: EmailAction


class DonationChange(_Event):
    """A change to a mandate or a gift (topic ``relmon.donations``)."""

    type: Literal["donation_change"]
    mandate_id: Ident
    action: DonationAction
    frequency: Frequency
    amount_cents_before: AmountCents
    amount_cents_after: AmountCents
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    mandate_started_at: Timestamp
    channel: DonationChannel
    reason: Ident | None = None


InputEvent = Annotated[
    CallOutcome | ConsentChange | EmailEngagement | DonationChange,
    Field(discriminator="type"),
]
INPUT_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    CallOutcome,
    ConsentChange,
    EmailEngagement,
    DonationChange,
)

_ADAPTER: TypeAdapter[CallOutcome | ConsentChange | EmailEngagement | DonationChange] = TypeAdapter(
    InputEvent
)
# The core validator itself: ``TypeAdapter.validate_json`` only forwards its default
# arguments to it, so calling it directly validates exactly the same way, one call cheaper.
_VALIDATE_JSON = _ADAPTER.validator.validate_json
_TS_EXAMPLE = "2026-03-01T18:05:00+01:00"


# -- what the engine reads: either kind of event -------------------------------------------
#
# parse_event gives a msgspec Struct (below) when the fast decoder accepts the line, else the
# pydantic model above; code that receives events reads them through these Protocols (the
# fields, read only) and tells the types apart by ``type``, never by ``isinstance``.


class _EventFields(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def supporter_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def supporter_timezone(self) -> str | None: ...


class CallOutcomeEvent(_EventFields, Protocol):
    """A call outcome as the engine reads it (:class:`CallOutcome` or its Struct)."""

    @property
    def type(self) -> Literal["call_outcome"]: ...
    @property
    def call_id(self) -> str: ...
    @property
    def direction(self) -> Direction: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def campaign_purpose(self) -> CampaignPurpose: ...
    @property
    def partner_id(self) -> str: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def duration_s(self) -> int: ...
    @property
    def outcome(self) -> CallOutcomeValue: ...
    @property
    def amount_delta_cents(self) -> int | None: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def sentiment(self) -> float | None: ...


class ConsentChangeEvent(_EventFields, Protocol):
    """A consent change as the engine reads it (:class:`ConsentChange` or its Struct)."""

    @property
    def type(self) -> Literal["consent_change"]: ...
    @property
    def channel(self) -> ConsentChannel: ...
    @property
    def action(self) -> ConsentAction: ...
    @property
    def source(self) -> ConsentSource: ...


class EmailEngagementEvent(_EventFields, Protocol):
    """An e-mail engagement as the engine reads it (:class:`EmailEngagement` or its Struct)."""

    @property
    def type(self) -> Literal["email_engagement"]: ...
    @property
    def message_id(self) -> str: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def action(self) -> EmailAction: ...


class DonationChangeEvent(_EventFields, Protocol):
    """A donation change as the engine reads it (:class:`DonationChange` or its Struct)."""

    @property
    def type(self) -> Literal["donation_change"]: ...
    @property
    def mandate_id(self) -> str: ...
    @property
    def action(self) -> DonationAction: ...
    @property
    def frequency(self) -> Frequency: ...
    @property
    def amount_cents_before(self) -> int: ...
    @property
    def amount_cents_after(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def mandate_started_at(self) -> datetime: ...
    @property
    def channel(self) -> DonationChannel: ...
    @property
    def reason(self) -> str | None: ...


# Any valid input event, whichever decoder made it; narrowed by ``ev.type == "..."``.
Event = CallOutcomeEvent | ConsentChangeEvent | EmailEngagementEvent | DonationChangeEvent


# -- the fast path: msgspec Structs ----------------------------------------------------------
#
# The same four events as msgspec Structs, decoded in one pass by one msgspec Decoder. msgspec
# never decides alone that an event is invalid: on any refusal parse_event runs the pydantic
# path, whose error (field, kind, message) is the one users see. What the fast path accepts
# must therefore be a subset of what the models accept, with equal values
# (tests/unit/test_events_fast_path.py checks it on mutated events):
#
# * bounds, lengths and Literal sets are msgspec constraints; msgspec refuses bools and floats
#   for ints (and for ``schema_version``'s ``Literal[1]``), NaN and infinities; the currency
#   pattern ends in ``\Z`` (Python's ``$`` also matches before a final newline, pydantic's
#   Rust regex does not);
# * a timestamp is decoded as text, then parse_event checks it against :data:`_FAST_TS_FORM`
#   (pydantic's form with ASCII digits and at most six fraction digits: pydantic truncates
#   more, msgspec's own datetime parser rounds, and it also reads ``+hhmm``), reads it with
#   ``datetime.fromisoformat`` (a ``z`` it does not read goes to pydantic) and checks the range.
#   Until then a Struct's timestamps hold that text: only parse_event makes these Structs;
# * ``supporter_timezone`` is checked against zoneinfo after decoding;
# * bytes that are not ASCII are checked to be UTF-8 first (msgspec does not check the strings
#   of fields it skips); a duplicate ``type`` key is refused by msgspec (pydantic takes the
#   last); for other duplicate keys the last one wins in both.

_FAST_TS_FORM = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-5][0-9])"  # offset minutes 00-59 (Python's parser takes 60)
).fullmatch
if TYPE_CHECKING:
    _FastTimestamp = datetime
else:  # decoded as text; parse_event makes it a datetime
    _FastTimestamp = str
_FastEventId = Annotated[str, Meta(min_length=1, max_length=128)]
_FastSupporterId = Annotated[str, Meta(min_length=1, max_length=64)]
_FastIdent = Annotated[str, Meta(min_length=1, max_length=256)]
_FastZone = Annotated[str, Meta(min_length=1, max_length=64)]
_FastAmount = Annotated[int, Meta(ge=0, le=MAX_AMOUNT_CENTS)]
_FastDelta = Annotated[int, Meta(ge=-MAX_AMOUNT_CENTS, le=MAX_AMOUNT_CENTS)]
_FastDuration = Annotated[int, Meta(ge=0, le=MAX_DURATION_S)]
_FastSentiment = Annotated[float, Meta(ge=-1.0, le=1.0)]
_FastCurrency = Annotated[str, Meta(pattern=r"\A[A-Z]{3}\Z")]


class _EventStruct(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="type"):
    event_id: _FastEventId
    supporter_id: _FastSupporterId
    occurred_at: _FastTimestamp
    schema_version: Literal[1] = 1
    supporter_timezone: _FastZone | None = None


class CallOutcomeStruct(_EventStruct, frozen=True, gc=False, kw_only=True, tag="call_outcome"):
    """:class:`CallOutcome` as decoded by msgspec."""

    type: ClassVar[Literal["call_outcome"]] = "call_outcome"
    call_id: _FastIdent
    direction: Direction
    campaign_id: _FastIdent
    campaign_purpose: CampaignPurpose
    partner_id: _FastIdent
    agent_id: _FastIdent | None = None
    duration_s: _FastDuration
    outcome: CallOutcomeValue
    amount_delta_cents: _FastDelta | None = None
    trigger: _FastIdent | None = None
    sentiment: _FastSentiment | None = None


class ConsentChangeStruct(_EventStruct, frozen=True, gc=False, kw_only=True, tag="consent_change"):
    """:class:`ConsentChange` as decoded by msgspec."""

    type: ClassVar[Literal["consent_change"]] = "consent_change"
    channel: ConsentChannel
    action: ConsentAction
    source: ConsentSource


class EmailEngagementStruct(
    _EventStruct, frozen=True, gc=False, kw_only=True, tag="email_engagement"
):
    """:class:`EmailEngagement` as decoded by msgspec."""

    type: ClassVar[Literal["email_engagement"]] = "email_engagement"
    message_id: _FastIdent
    campaign_id: _FastIdent
    action: EmailAction


class DonationChangeStruct(
    _EventStruct, frozen=True, gc=False, kw_only=True, tag="donation_change"
):
    """:class:`DonationChange` as decoded by msgspec."""

    type: ClassVar[Literal["donation_change"]] = "donation_change"
    mandate_id: _FastIdent
    action: DonationAction
    frequency: Frequency
    amount_cents_before: _FastAmount
    amount_cents_after: _FastAmount
    currency: _FastCurrency
    mandate_started_at: _FastTimestamp
    channel: DonationChannel
    reason: _FastIdent | None = None


_Struct = CallOutcomeStruct | ConsentChangeStruct | EmailEngagementStruct | DonationChangeStruct
_FAST_DECODE = msgspec.json.Decoder(_Struct).decode


def parse_event_pydantic(
    data: bytes | str, *, key: str | None = None
) -> CallOutcome | ConsentChange | EmailEngagement | DonationChange:
    """:func:`parse_event` with pydantic alone: the reference for every result and error."""
    try:
        event: CallOutcome | ConsentChange | EmailEngagement | DonationChange = _VALIDATE_JSON(data)
    except ValidationError as exc:
        raise _invalid(exc, data) from None
    if key is not None and key != event.supporter_id:
        raise _key_mismatch(event.supporter_id, key)
    return event


def encode_event(event: Event) -> bytes:
    """The event as a JSON line: a model as pydantic dumps it (the fields it was given), a
    Struct with every field."""
    if isinstance(event, BaseModel):
        return event.model_dump_json(exclude_unset=True).encode("utf-8")
    return _FAST_ENCODE(event)


_FAST_ENCODE = msgspec.json.Encoder().encode


def _key_mismatch(supporter_id: str, key: str) -> InvalidEvent:
    return InvalidEvent(
        f"supporter_id: {supporter_id!r} differs from the message key {key!r}",
        field="supporter_id",
        kind="key_mismatch",
    )


def _invalid(exc: ValidationError, data: bytes | str) -> InvalidEvent:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        if isinstance(data, bytes):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as uexc:
                return InvalidEvent(f"not valid UTF-8: {uexc.reason}", kind="encoding")
        return InvalidEvent(f"not valid JSON: {first['ctx']['error']}", kind="json")
    messages = []
    fields = []
    for err in errors:
        field, message = _describe(err)
        fields.append(field)
        messages.append(f"{field}: {message}" if field else message)
    more = f" (and {len(errors) - 1} more: {'; '.join(messages[1:])})" if len(errors) > 1 else ""
    return InvalidEvent(messages[0] + more, field=fields[0] or None, kind="validation")


def _describe(err: Any) -> tuple[str, str]:
    """The field path (without the union tag) and a message for one pydantic error."""
    loc = [str(part) for part in err["loc"]]
    kind = err["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = "call_outcome, consent_change, email_engagement, donation_change"
        if kind == "union_tag_not_found":
            return "type", f"missing field; must be one of {tags}"
        return "type", f"unknown event type {err['ctx']['tag']!r}; must be one of {tags}"
    if loc and loc[0] in _TAGS:
        loc = loc[1:]
    field = ".".join(loc)
    if kind == "missing":
        return field, "missing field"
    if kind == "timezone_aware":
        return field, f"timestamp must have a UTC offset, e.g. {_TS_EXAMPLE}"
    if loc and loc[-1] in TIMESTAMP_FIELDS:
        if kind in ("greater_than_equal", "less_than"):
            value = err["input"]
            shown = value.isoformat() if isinstance(value, datetime) else _short(value)
            return field, f"{_RANGE_TEXT} (UTC), got {shown}"
        if kind in ("string_type", "string_pattern_mismatch"):
            got = _short(err["input"])
            return field, f"not an RFC 3339 timestamp, e.g. {_TS_EXAMPLE} (got {got})"
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing"):
        return field, f"not an RFC 3339 timestamp, e.g. {_TS_EXAMPLE}"
    if field == "schema_version":
        return (
            field,
            f"must be the JSON integer 1, the only version read (got {_short(err['input'])})",
        )
    if kind == "less_than_equal":
        return field, f"must be at most {err['ctx']['le']} (got {_short(err['input'])})"
    if kind == "greater_than_equal":
        return field, f"must be at least {err['ctx']['ge']} (got {_short(err['input'])})"
    if kind == "finite_number":
        return field, f"must be a finite number (got {_short(err['input'])})"
    if kind == "literal_error":
        return field, f"{_short(err['input'])} is not one of {err['ctx']['expected']}"
    if kind == "value_error":
        return field, f"{err['ctx']['error']} (got {_short(err['input'])})"
    if kind == "dict_type" and not field:
        return "", "an event must be a JSON object"
    return field, f"{err['msg']} (got {_short(err['input'])})"


def _short(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TAGS = frozenset({"call_outcome", "consent_change", "email_engagement", "donation_change"})
