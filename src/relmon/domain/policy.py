"""The policy: every number of the contract's section 3 as a versioned TOML file.

The default ships as ``default_policy.toml`` next to this module (each setting is explained
there); ``load_policy(path)`` reads another file. The file is validated on load: every key is
required, unknown keys are errors, numbers must be in range, and the error names the key,
e.g. ``fatigue.half_life_days: must be greater than 0``. Reading the policy file is the only
I/O in :mod:`relmon.domain`; it happens once, before any event.
"""

from __future__ import annotations

import math
import re
import tomllib
from datetime import date, time
from datetime import datetime as datetime_type
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
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


def _clock(value: Any) -> time:
    """A ``"HH:MM"`` string as a time of day."""
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d", value):
        raise ValueError(f'must be a time of day written "HH:MM" (got {value!r})')
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f'must be a time of day written "HH:MM" (got {value!r})') from None


def _month_day(value: Any) -> tuple[int, int]:
    """A ``"MM-DD"`` string as (month, day); 02-29 is allowed (it then applies in leap years)."""
    if isinstance(value, str) and re.fullmatch(r"\d\d-\d\d", value):
        month, day = int(value[:2]), int(value[3:])
        try:
            date(2024, month, day)
        except ValueError:
            pass
        else:
            return month, day
    raise ValueError(f'must be a day of the year written "MM-DD" (got {value!r})')


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CallingHours(_Section):
    """The local window per weekday, ``(from, until)``; None: no calls that day."""

    monday: tuple[time, time] | None
    tuesday: tuple[time, time] | None
    wednesday: tuple[time, time] | None
    thursday: tuple[time, time] | None
    friday: tuple[time, time] | None
    saturday: tuple[time, time] | None
    sunday: tuple[time, time] | None

    @field_validator(*WEEKDAYS, mode="before")
    @classmethod
    def _window(cls, value: Any) -> tuple[time, time] | None:
        if value == [] or value == ():
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError('must be ["HH:MM", "HH:MM"] (from, until) or [] for no calls')
        start, end = _clock(value[0]), _clock(value[1])
        if start >= end:
            raise ValueError(f"the window must open before it closes (got {value!r})")
        return start, end

    @model_validator(mode="after")
    def _some_window(self) -> CallingHours:
        if all(self.of(day) is None for day in range(7)):
            raise ValueError("at least one weekday needs calling hours")
        return self

    def of(self, weekday: int) -> tuple[time, time] | None:
        """The window of a weekday (Monday is 0)."""
        window: tuple[time, time] | None = getattr(self, WEEKDAYS[weekday])
        return window


class Calling(_Section):
    """When marketing calls are allowed (see ``[calling]`` in the default policy)."""

    zone: str
    holidays_country: str
    exempt_triggers: tuple[str, ...]
    banned_dates: tuple[date, ...]
    remembrance_days: tuple[tuple[int, int], ...]
    hours: CallingHours
    part_days: tuple[tuple[tuple[int, int], time], ...]

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("holidays_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value and value not in holidays.list_supported_countries():
            raise ValueError(f"not a country the holidays package knows (got {value!r}), e.g. NL")
        return value

    @field_validator("exempt_triggers", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError('must be a list of strings, e.g. ["callback_requested"]')
        return tuple(value)

    @field_validator("banned_dates", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> tuple[date, ...]:
        if not isinstance(value, list) or not all(
            isinstance(v, date) and not isinstance(v, datetime_type) for v in value
        ):
            raise ValueError("must be a list of TOML dates, e.g. [2026-12-01] (no quotes)")
        return tuple(sorted(set(value)))

    @field_validator("remembrance_days", mode="before")
    @classmethod
    def _month_days(cls, value: Any) -> tuple[tuple[int, int], ...]:
        if not isinstance(value, list):
            raise ValueError('must be a list of "MM-DD" strings, e.g. ["05-04"]')
        return tuple(sorted({_month_day(v) for v in value}))

    @field_validator("part_days", mode="before")
    @classmethod
    def _part_days(cls, value: Any) -> tuple[tuple[tuple[int, int], time], ...]:
        if not isinstance(value, dict):
            raise ValueError('must be a table of "MM-DD" = "HH:MM", e.g. "12-24" = "18:30"')
        return tuple(sorted((_month_day(k), _clock(v)) for k, v in value.items()))


class LegalBasis(_Section):
    """How long a donorship that ended allows calls (``RELATIONSHIP_LAPSED``)."""

    relationship_term_months: Annotated[int, Field(ge=0, le=1200)]


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
    calling: Calling
    legal_basis: LegalBasis

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    def horizon_days(self, half_life_days: float) -> float:
        """Age after which a contribution is below ``contribution_floor`` of its weight."""
        return half_life_days * math.log2(1.0 / self.retention.contribution_floor)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Amsterdam") from None
    return value


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
def _default_text() -> str:
    return resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")


# Sections added after the first release: a policy file written before them gets the
# shipped default's (the NL preset), so an older file still loads.
OPTIONAL_SECTIONS = ("calling", "legal_basis")


@cache
def default_policy() -> Policy:
    """The policy shipped with relmon (``relmon/domain/default_policy.toml``)."""
    return parse_policy(_default_text(), source="default policy")


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Validate the TOML text of a policy; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    missing = [name for name in OPTIONAL_SECTIONS if name not in data]
    if missing:
        default = tomllib.loads(_default_text())
        for name in missing:
            data[name] = default[name]
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
