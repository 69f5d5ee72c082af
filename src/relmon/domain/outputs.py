"""The outputs of the contract (section 2) and their canonical JSON encoders.

Modelling choices:

* The pydantic models are the documented shape (they generate ``schemas/``) and what the
  HTTP API returns. The engine builds them only when it emits something, without
  re-validating its own data (:func:`construct`).
* ``encode_record`` / ``encode_alert`` / ``encode_dead_letter`` write canonical JSON: orjson,
  a fixed field order, timestamps in UTC with a ``Z`` and whole seconds
  (``2026-03-01T17:05:00Z``), floats rounded to 6 decimals, no trailing newline. The same
  record always gives the same bytes, which is what makes two replays byte-identical.
* Alerts of both kinds share one model: ``donation`` is set for ``churn_after_contact``,
  ``reasons`` for ``call_while_suppressed``. ``contact.days_before_churn`` is whole days
  (rounded down) and null for ``call_while_suppressed``.
* ``call_outside_window`` alerts carry ``window`` (the calling window the call missed);
  the other kinds leave it out of their JSON (their bytes are those of before it existed).
* The API's answer adds ``next_call_at`` after ``blocked_purposes`` (see
  :mod:`relmon.streaming.view`).
* ``DeadLetter`` adds ``field`` (the offending field, when known) to the contract's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from relmon.domain.events import (
    MARKETING_PURPOSES,
    CallOutcomeValue,
    CampaignPurpose,
    DonationAction,
    Frequency,
)

ReasonCode = Literal[
    "OPTED_OUT",
    "OBJECTION",
    "DO_NOT_CALL_REQUEST",
    "RELATIONSHIP_LAPSED",
    "COMPLAINT",
    "DECIDING_IN_OWN_TIME",
    "RECENT_UPGRADE",
    "CONTACT_CAP",
    "MIN_GAP",
    "FATIGUE",
    "IRRITATION_RISK",
]
AlertKind = Literal["churn_after_contact", "call_while_suppressed", "call_outside_window"]
DayKind = Literal[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "part_day",
    "public_holiday",
    "remembrance_day",
    "banned_date",
]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reason(_Output):
    """One reason in force: ``until`` is null when it has no end."""

    code: ReasonCode
    until: AwareDatetime | None
    detail: str


class SuppressionRecord(_Output):
    """The decision for one supporter (topic ``relmon.suppressions``, key ``supporter_id``)."""

    supporter_id: str
    suppressed: bool
    reasons: list[Reason]
    until: AwareDatetime | None
    fatigue: Score
    irritation_risk: Score
    loyal: bool
    policy_version: str
    decided_at: AwareDatetime
    cause_event_id: str | None


class SuppressionAnswer(SuppressionRecord):
    """What the HTTP API answers for one supporter: the record as on the topic, plus
    ``known`` (false for a supporter relmon has never seen: not suppressed, nothing decided,
    so ``decided_at`` is null) and the campaign purposes the decision blocks."""

    decided_at: AwareDatetime | None  # type: ignore[assignment]  # null when never seen
    known: bool
    blocked_purposes: list[CampaignPurpose]
    next_call_at: AwareDatetime | None = Field(
        description="The earliest moment a marketing call is allowed, computed at the request: "
        "after every reason's until and inside a calling window of the supporter's zone; "
        "null when suppressed indefinitely."
    )


class Contact(_Output):
    """The outbound call an alert is about."""

    call_id: str
    campaign_id: str
    campaign_purpose: CampaignPurpose
    partner_id: str
    agent_id: str | None
    outcome: CallOutcomeValue
    occurred_at: AwareDatetime
    days_before_churn: int | None


class Donation(_Output):
    """The donation change of a ``churn_after_contact`` alert."""

    mandate_id: str
    action: DonationAction
    frequency: Frequency
    amount_cents_before: int
    amount_cents_after: int
    currency: str
    monthly_amount_lost_cents: int
    tenure_months: int


class CallingWindow(_Output):
    """The calling window a ``call_outside_window`` call missed, in the supporter's zone."""

    zone: str
    local_time: str = Field(description="the call's time in the zone, RFC 3339 with offset")
    day: DayKind = Field(description="the rule of the call's local date")
    detail: str
    opens: str | None = Field(description='"HH:MM" local, null when that day has no window')
    closes: str | None
    next_opens_at: AwareDatetime | None = Field(description="when calls were next allowed")


class Alert(_Output):
    """An alert (topic ``relmon.alerts``); ``alert_id`` is deterministic."""

    alert_id: str
    kind: AlertKind
    supporter_id: str
    occurred_at: AwareDatetime
    donation: Donation | None
    contact: Contact
    irritation_risk_at_contact: Score
    fatigue_at_contact: Score
    reasons: list[Reason]
    policy_version: str
    cause_event_id: str
    window: CallingWindow | None = None


class DeadLetter(_Output):
    """An input that could not be decoded, validated or applied (topic ``relmon.dlq``).

    ``original_base64`` is the original message; when the whole of it would make the dead
    letter larger than Kafka accepts, it holds only the first bytes, ``original_truncated`` is
    true, and ``original_size`` and ``original_sha256`` still identify the original (the
    live worker always sets these three; a file replay leaves them null).
    """

    error: str
    kind: str
    field: str | None = None
    source: str
    partition: int | None
    offset: int | None
    line: int | None
    original_base64: str
    policy_version: str
    original_size: int | None = None
    original_sha256: str | None = None
    original_truncated: bool | None = None


_M = TypeVar("_M", bound=BaseModel)
# BaseModel's slots, set through their descriptors (what object.__setattr__ ends up doing,
# without looking the attribute up on the class each time)
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def construct(cls: type[_M], **values: Any) -> _M:
    """Build a model from trusted values without validation (the engine's own outputs).

    What ``model_construct`` does for a model without defaults to fill, private attributes
    or extras, at a fraction of its cost; ``test_outputs`` checks it equals a validated model.
    """
    model = _new(cls)
    _set_dict(model, values)
    _set_fields_set(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model


def iso(value: datetime | None) -> str | None:
    """``2026-03-01T17:05:00Z``: UTC, whole seconds (fractions are dropped)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: datetime | None) -> datetime | None:
    """orjson writes an aware UTC datetime as ``...Z`` with the options below."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def _reason(r: Reason) -> dict[str, Any]:
    until = r.until
    if until is None or until.tzinfo is UTC:
        return r.__dict__  # code, until, detail: the field order is the canonical order
    return {"code": r.code, "until": _utc(until), "detail": r.detail}


def encode_record(r: SuppressionRecord) -> bytes:
    """Canonical JSON of a suppression record."""
    return orjson.dumps(
        {
            "supporter_id": r.supporter_id,
            "suppressed": r.suppressed,
            "reasons": [_reason(x) for x in r.reasons],
            "until": _utc(r.until),
            "fatigue": round(r.fatigue, 6),
            "irritation_risk": round(r.irritation_risk, 6),
            "loyal": r.loyal,
            "policy_version": r.policy_version,
            "decided_at": _utc(r.decided_at),
            "cause_event_id": r.cause_event_id,
        },
        option=_OPTIONS,
    )


_BLOCKED = orjson.dumps(sorted(MARKETING_PURPOSES))
# what the API's answer for a known supporter adds to its record's JSON (from which the
# closing brace is cut): see relmon.streaming.view
KNOWN_SUPPRESSED = b',"known":true,"blocked_purposes":' + _BLOCKED + b"}"
KNOWN_FREE = b',"known":true,"blocked_purposes":[]}'


def encode_unknown_answer(
    supporter_id: str, policy_version: str, next_call_at: datetime | None = None
) -> bytes:
    """Canonical JSON of the API's answer for a supporter relmon has never seen."""
    return orjson.dumps(
        {
            "supporter_id": supporter_id,
            "suppressed": False,
            "reasons": [],
            "until": None,
            "fatigue": 0.0,
            "irritation_risk": 0.0,
            "loyal": False,
            "policy_version": policy_version,
            "decided_at": None,
            "cause_event_id": None,
            "known": False,
            "blocked_purposes": [],
            "next_call_at": _utc(next_call_at),
        },
        option=_OPTIONS,
    )


def encode_alert(a: Alert) -> bytes:
    """Canonical JSON of an alert."""
    c = a.contact
    d = a.donation
    doc = {
        "alert_id": a.alert_id,
        "kind": a.kind,
        "supporter_id": a.supporter_id,
        "occurred_at": _utc(a.occurred_at),
        "donation": None
        if d is None
        else {
            "mandate_id": d.mandate_id,
            "action": d.action,
            "frequency": d.frequency,
            "amount_cents_before": d.amount_cents_before,
            "amount_cents_after": d.amount_cents_after,
            "currency": d.currency,
            "monthly_amount_lost_cents": d.monthly_amount_lost_cents,
            "tenure_months": d.tenure_months,
        },
        "contact": {
            "call_id": c.call_id,
            "campaign_id": c.campaign_id,
            "campaign_purpose": c.campaign_purpose,
            "partner_id": c.partner_id,
            "agent_id": c.agent_id,
            "outcome": c.outcome,
            "occurred_at": _utc(c.occurred_at),
            "days_before_churn": c.days_before_churn,
        },
        "irritation_risk_at_contact": round(a.irritation_risk_at_contact, 6),
        "fatigue_at_contact": round(a.fatigue_at_contact, 6),
        "reasons": [_reason(x) for x in a.reasons],
        "policy_version": a.policy_version,
        "cause_event_id": a.cause_event_id,
    }
    w = getattr(a, "window", None)  # construct() leaves an unset default out
    if w is not None:
        doc["window"] = {
            "zone": w.zone,
            "local_time": w.local_time,
            "day": w.day,
            "detail": w.detail,
            "opens": w.opens,
            "closes": w.closes,
            "next_opens_at": _utc(w.next_opens_at),
        }
    return orjson.dumps(doc, option=_OPTIONS)


def encode_dead_letter(d: DeadLetter) -> bytes:
    """Canonical JSON of a dead letter."""
    return orjson.dumps(
        {
            "error": d.error,
            "kind": d.kind,
            "field": d.field,
            "source": d.source,
            "partition": d.partition,
            "offset": d.offset,
            "line": d.line,
            "original_base64": d.original_base64,
            "policy_version": d.policy_version,
            "original_size": d.original_size,
            "original_sha256": d.original_sha256,
            "original_truncated": d.original_truncated,
        }
    )
