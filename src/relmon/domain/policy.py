"""The policy: every number of the contract's section 3 as a versioned TOML file.

The default ships as ``default_policy.toml`` next to this module (each setting is explained
there); ``load_policy(path)`` reads another file. The file is validated on load: every key is
required, unknown keys are errors, numbers must be in range, and the error names the key,
e.g. ``fatigue.half_life_days: must be greater than 0``. Reading the policy file is the only
I/O in :mod:`relmon.domain`; it happens once, before any event.
"""

from __future__ import annotations

import math
import tomllib
from datetime import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relmon.errors import PolicyError

Days = Annotated[int, Field(gt=0, le=3650)]
Weight = Annotated[float, Field(ge=0.0, le=100.0)]
HalfLife = Annotated[float, Field(gt=0.0, le=3650.0)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Loyalty(_Section):
    min_tenure_months: Annotated[int, Field(ge=0, le=600)]


class ChurnAfterContact(_Section):
    window_days: Days


class ReasonDurations(_Section):
    complaint_days: Days
    deciding_in_own_time_days: Days
    recent_upgrade_days: Days
    min_gap_days: Days


class ContactCap(_Section):
    calls: Annotated[int, Field(ge=1, le=1000)]
    window_days: Days


class Thresholds(_Section):
    fatigue: Fraction
    irritation_risk: Fraction
    irritation_risk_loyal: Fraction


class FatigueWeights(_Section):
    half_life_days: HalfLife
    call_attempt: Weight
    call_reached: Weight
    email_sent: Weight
    dinner_factor: Annotated[float, Field(ge=1.0, le=100.0)]
    dinner_start: time
    dinner_end: time
    extra_partner_factor: Weight
    partner_window_days: Days

    @field_validator("dinner_start", "dinner_end", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> time:
        if not isinstance(value, str):
            raise ValueError('must be a time of day written "HH:MM"')
        try:
            return time.fromisoformat(value)
        except ValueError:
            raise ValueError(f'must be a time of day written "HH:MM" (got {value!r})') from None

    @model_validator(mode="after")
    def _dinner_in_order(self) -> FatigueWeights:
        if self.dinner_start >= self.dinner_end:
            raise ValueError("dinner_start must be before dinner_end")
        return self


class IrritationWeights(_Section):
    half_life_days: HalfLife
    complaint: Weight
    do_not_call: Weight
    hung_up: Weight
    declined: Weight
    negative_sentiment: Weight
    chased_decision: Weight
    dinner_call_reached: Weight
    opt_out_other_channel: Weight
    email_unsubscribed: Weight
    email_spam_complaint: Weight
    downgraded: Weight


class Retention(_Section):
    contribution_floor: Annotated[float, Field(gt=0.0, le=0.1)]
    max_facts_per_kind: Annotated[int, Field(ge=8, le=1000)]
    late_event_grace_days: Annotated[int, Field(ge=0, le=365)]


class Policy(_Section):
    """A validated policy. ``version`` is written into every output."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    timezone: str
    loyalty: Loyalty
    churn_after_contact: ChurnAfterContact
    reasons: ReasonDurations
    contact_cap: ContactCap
    thresholds: Thresholds
    fatigue: FatigueWeights
    irritation: IrritationWeights
    retention: Retention

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Amsterdam") from None
        return value

    def horizon_days(self, half_life_days: float) -> float:
        """Age after which a contribution is below ``contribution_floor`` of its weight."""
        return half_life_days * math.log2(1.0 / self.retention.contribution_floor)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; ``None`` gives the shipped default."""
    if path is None:
        return default_policy()
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy {source}: cannot read it: {exc.strerror or exc}") from None
    return parse_policy(text, source=str(source))


@cache
def default_policy() -> Policy:
    """The policy shipped with relmon (``relmon/domain/default_policy.toml``)."""
    text = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")
    return parse_policy(text, source="default policy")


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Validate the TOML text of a policy; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            key = ".".join(str(part) for part in err["loc"])
            if err["type"] == "missing":
                message = "missing"
            elif err["type"] == "extra_forbidden":
                message = "unknown key"
            else:
                message = str(err["msg"]).removeprefix("Value error, ")
                message = f"{message} (got {err['input']!r})"
            problems.append(f"{key}: {message}")
        raise PolicyError(f"{source}: " + "; ".join(problems)) from None
