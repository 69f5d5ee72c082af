"""Builders of valid input events with sensible defaults, for tests here and elsewhere.

Every builder returns a validated model; pass only what the test is about::

    from relmon.testing import at, call, consent, donation, email, to_line

    events = [
        call(at=at(0, 11), outcome="info_requested", partner_id="p-a"),
        call(at=at(1, 11), outcome="declined", partner_id="p-b"),
        donation(at=at(5, 9), action="cancelled", started=at(-800)),
    ]

``event_id`` defaults to a digest of the other fields, so the same arguments give the same
event (a duplicate) and different arguments give different ids. Times default to
:data:`ZONE` (Europe/Amsterdam) local time on days counted from :data:`DAY0`, a Monday.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

import orjson

from relmon.domain import Alert, Engine, Policy, SupporterState, SuppressionRecord, default_policy
from relmon.domain.events import (
    INPUT_EVENT_TYPES,
    CallOutcome,
    ConsentChange,
    DonationChange,
    EmailEngagement,
    Event,
)

InputEvent = CallOutcome | ConsentChange | EmailEngagement | DonationChange

ZONE = ZoneInfo("Europe/Amsterdam")
DAY0 = datetime(2026, 3, 2, tzinfo=ZONE)
SUPPORTER = "s-0001"


def at(day: float = 0, hour: int = 11, minute: int = 0) -> datetime:
    """Local time ``hour:minute`` on ``DAY0 + day`` days (fractional days add hours)."""
    whole = int(day // 1)
    base = (DAY0 + timedelta(days=whole)).replace(hour=hour, minute=minute)
    base = base.replace(tzinfo=ZONE)  # re-resolve the offset (summer time)
    return base + timedelta(days=day - whole)


DEFAULT_TIME = at(0)


def _event_id(prefix: str, fields: dict[str, Any]) -> str:
    text = repr(sorted((k, str(v)) for k, v in fields.items()))
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def call(
    *,
    at: datetime | None = None,
    outcome: str = "declined",
    direction: str = "outbound",
    campaign_purpose: str = "upgrade",
    partner_id: str = "p-callfirst",
    supporter_id: str = SUPPORTER,
    event_id: str | None = None,
    **extra: Any,
) -> CallOutcome:
    """A call outcome (default: an outbound upgrade call, declined, at ``at(0)``)."""
    fields: dict[str, Any] = {
        "type": "call_outcome",
        "supporter_id": supporter_id,
        "occurred_at": at if at is not None else DEFAULT_TIME,
        "direction": direction,
        "campaign_id": f"cmp-{campaign_purpose}",
        "campaign_purpose": campaign_purpose,
        "partner_id": partner_id,
        "agent_id": "a-1042",
        "duration_s": 0 if outcome in ("no_answer", "busy", "wrong_number") else 95,
        "outcome": outcome,
    }
    fields.update(extra)
    fields.setdefault("call_id", _event_id("call", fields))
    fields["event_id"] = event_id or _event_id("evt", fields)
    return CallOutcome(**fields)


def consent(
    *,
    at: datetime | None = None,
    channel: str = "phone",
    action: str = "opt_out",
    source: str = "web",
    supporter_id: str = SUPPORTER,
    event_id: str | None = None,
) -> ConsentChange:
    """A consent change (default: opt_out on phone via the web)."""
    fields: dict[str, Any] = {
        "type": "consent_change",
        "supporter_id": supporter_id,
        "occurred_at": at if at is not None else DEFAULT_TIME,
        "channel": channel,
        "action": action,
        "source": source,
    }
    fields["event_id"] = event_id or _event_id("evt", fields)
    return ConsentChange(**fields)


def email(
    *,
    at: datetime | None = None,
    action: str = "sent",
    campaign_id: str = "nl-2026-03",
    supporter_id: str = SUPPORTER,
    event_id: str | None = None,
) -> EmailEngagement:
    """An e-mail engagement (default: a newsletter sent)."""
    fields: dict[str, Any] = {
        "type": "email_engagement",
        "supporter_id": supporter_id,
        "occurred_at": at if at is not None else DEFAULT_TIME,
        "campaign_id": campaign_id,
        "action": action,
    }
    fields["message_id"] = _event_id("msg", fields)
    fields["event_id"] = event_id or _event_id("evt", fields)
    return EmailEngagement(**fields)


def donation(
    *,
    at: datetime | None = None,
    action: str = "started",
    started: datetime | None = None,
    frequency: str = "monthly",
    amount_cents_before: int = 1500,
    amount_cents_after: int | None = None,
    mandate_id: str = "m-1",
    supporter_id: str = SUPPORTER,
    event_id: str | None = None,
) -> DonationChange:
    """A donation change (default: a monthly 15 EUR mandate; ``started`` defaults to ``at``)."""
    when = at if at is not None else DEFAULT_TIME
    if amount_cents_after is None:
        ends = action in ("cancelled", "paused", "reversed")
        amount_cents_after = 0 if ends else amount_cents_before
    fields: dict[str, Any] = {
        "type": "donation_change",
        "supporter_id": supporter_id,
        "occurred_at": when,
        "mandate_id": mandate_id,
        "action": action,
        "frequency": frequency,
        "amount_cents_before": amount_cents_before,
        "amount_cents_after": amount_cents_after,
        "currency": "EUR",
        "mandate_started_at": started if started is not None else when,
        "channel": "bank",
    }
    fields["event_id"] = event_id or _event_id("evt", fields)
    return DonationChange(**fields)


def to_line(event: InputEvent) -> bytes:
    """The event as one JSONL line (without the newline), as a producer would send it."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


_MODELS = {get_args(m.model_fields["type"].annotation)[0]: m for m in INPUT_EVENT_TYPES}


def event_fields(event: Event) -> dict[str, object]:
    """Every field of an event of either kind (a pydantic model or a msgspec Struct from
    :func:`~relmon.domain.parse_event`), with each timestamp as its UTC instant and its UTC
    offset: equal for events whose fields are equal, whatever their kind or ``tzinfo`` class.
    """
    out: dict[str, object] = {}
    for name in _MODELS[event.type].model_fields:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = (value.astimezone(UTC), value.utcoffset())
        out[name] = value
    return out


@dataclass
class Run:
    """What applying a list of events produced, in order."""

    engine: Engine
    states: dict[str, SupporterState] = field(default_factory=dict)
    records: list[SuppressionRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def state(self) -> SupporterState:
        """The state of :data:`SUPPORTER` (the builders' default supporter)."""
        return self.states[SUPPORTER]

    def decision(self, when: datetime, supporter_id: str = SUPPORTER) -> SuppressionRecord:
        return self.engine.decision(self.states.get(supporter_id), supporter_id, when)

    def expire(self, now: datetime, supporter_id: str = SUPPORTER) -> list[SuppressionRecord]:
        outcome = self.engine.expire(self.states[supporter_id], now)
        self.states[supporter_id] = outcome.state
        self.records.extend(outcome.records)
        return outcome.records


def run(events: Iterable[Event], *, policy: Policy | None = None) -> Run:
    """Apply ``events`` in the order given, one engine, one state per supporter."""
    result = Run(Engine(policy or default_policy()))
    for event in events:
        outcome = result.engine.apply(result.states.get(event.supporter_id), event)
        result.states[event.supporter_id] = outcome.state
        result.records.extend(outcome.records)
        result.alerts.extend(outcome.alerts)
    return result
