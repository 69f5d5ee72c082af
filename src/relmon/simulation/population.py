"""The simulated world before anything happens: the clock, the supporters, the campaigns.

Everything is drawn from one ``random.Random`` handed in by the generator, in a fixed order,
so a seed fixes the whole world.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from relmon.simulation.params import PartnerProfile, SimulationParams

ZONE = ZoneInfo("Europe/Amsterdam")
DAY = 86_400
MONTH = 30.4375 * DAY  # mean Gregorian month, seconds
DINNER = (17 * 3600 + 1800, 19 * 3600 + 1800)  # 17:30–19:30 local
CALL_HOURS = (9 * 3600, 21 * 3600)  # when partners dial, local


class Clock:
    """Epoch seconds ↔ local (Europe/Amsterdam) calendar for the simulated period."""

    def __init__(self, start: date, days: int) -> None:
        self.start = start
        self.days = days
        self.weekday = [(start + timedelta(days=d)).weekday() for d in range(days + 1)]
        self.start_ts = int(datetime(start.year, start.month, start.day, tzinfo=ZONE).timestamp())
        end = start + timedelta(days=days)
        self.end_ts = int(datetime(end.year, end.month, end.day, tzinfo=ZONE).timestamp())
        # Epoch of local midnight of each day, taken at that day's noon offset, so that
        # `midnight[d] + seconds` is right for every time after the 02:00–03:00 DST switch.
        self._midnight: list[int] = []
        for d in range(days + 1):
            day = start + timedelta(days=d)
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=ZONE)
            offset = noon.utcoffset() or timedelta(0)
            utc_midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            self._midnight.append(int(utc_midnight - offset.total_seconds()))

    def at(self, day: int, seconds: int) -> int:
        """Epoch seconds of local day ``day`` (0 = start) at ``seconds`` after midnight."""
        return self._midnight[min(max(day, 0), self.days)] + seconds

    def date_of(self, day: int) -> date:
        """The local date of day ``day`` (0 = start)."""
        return self.start + timedelta(days=min(max(day, 0), self.days))

    def day_of(self, ts: int) -> int:
        return max(0, min(self.days, (ts - self.start_ts) // DAY))

    def local_seconds(self, ts: int) -> int:
        """Seconds since local midnight."""
        day = self.day_of(ts)
        if ts < self._midnight[day]:
            day -= 1
        return ts - self._midnight[max(day, 0)]

    def is_dinner_time(self, ts: int) -> bool:
        return DINNER[0] <= self.local_seconds(ts) < DINNER[1]


def rfc3339(ts: int) -> str:
    """Local time with its offset, e.g. ``2026-03-01T17:45:00+01:00``."""
    return datetime.fromtimestamp(ts, ZONE).isoformat()


@dataclass(slots=True)
class Mandate:
    mandate_id: str
    frequency: str
    amount: int  # cents per period
    started_at: int
    active: bool = True
    paused: bool = False
    ended_at: int | None = None
    end_cause: str | None = None


@dataclass(slots=True)
class Supporter:
    """One supporter: latent traits (ground truth) and the state the simulation needs."""

    idx: int
    sid: str
    segment: str  # donor | lapsed | prospect at the start
    reach: float
    irritability: float
    open_rate: float
    has_email: bool
    has_phone: bool
    phone_ok: bool = True  # no phone opt-out
    objected: bool = False
    dnc: bool = False
    email_ok: bool = True
    bounced: bool = False
    ever_donor: bool = False
    mandate: Mandate | None = None
    mandates: list[Mandate] = field(default_factory=list)
    asked_time_at: int = -(10**12)
    last_reached_marketing: int = -(10**12)
    recent_calls: list[tuple[int, str]] = field(default_factory=list)  # (ts, partner)
    irritating_calls: list[str] = field(default_factory=list)
    churns: list[dict[str, object]] = field(default_factory=list)

    @property
    def phone_blocked(self) -> bool:
        return not self.phone_ok or self.objected or self.dnc


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    partner: PartnerProfile
    purpose: str
    start_ts: int
    end_ts: int


def make_supporters(
    params: SimulationParams, rng: random.Random, count: int, clock: Clock
) -> list[Supporter]:
    """The population at ``clock.start_ts``: traits, mandates with tenure, consents."""
    out = []
    frequencies = list(params.frequency_mix)
    freq_weights = list(params.frequency_mix.values())
    lo, hi = params.reachability
    ia, ib = params.irritability_beta
    oa, ob = params.email_open_rate_beta
    for idx in range(count):
        u = rng.random()
        segment = (
            "donor"
            if u < params.share_donors
            else "lapsed"
            if u < params.share_donors + params.share_lapsed
            else "prospect"
        )
        s = Supporter(
            idx=idx,
            sid=f"S{idx:07d}",
            segment=segment,
            reach=rng.uniform(lo, hi),
            irritability=rng.betavariate(ia, ib),
            open_rate=rng.betavariate(oa, ob),
            has_email=rng.random() < params.share_with_email,
            has_phone=rng.random() < params.share_with_phone,
        )
        s.phone_ok = rng.random() >= params.share_phone_opted_out
        s.email_ok = rng.random() >= params.share_email_opted_out
        if segment != "prospect":
            s.ever_donor = True
        if segment == "donor":
            frequency = rng.choices(frequencies, freq_weights)[0]
            if rng.random() < params.share_new_donors:
                tenure = rng.uniform(0.0, 12.0)
            else:
                extra = rng.expovariate(1.0 / params.loyal_extra_tenure_mean_months)
                tenure = 12.0 + min(extra, 288.0)
            started = clock.start_ts - int(tenure * MONTH)
            s.mandate = Mandate(
                f"M{idx:07d}-1", frequency, amount_for(params, rng, frequency), started
            )
            s.mandates.append(s.mandate)
        out.append(s)
    return out


def amount_for(params: SimulationParams, rng: random.Random, frequency: str) -> int:
    monthly = rng.choices(params.monthly_amounts_cents, params.monthly_amount_weights)[0]
    return monthly * {"monthly": 1, "quarterly": 3, "yearly": 12}.get(frequency, 1)


def make_campaigns(params: SimulationParams, rng: random.Random, clock: Clock) -> list[Campaign]:
    """Each partner's call campaigns over the period, in start order."""
    campaigns = []
    years = clock.days / 365.0
    for partner in params.partners:
        expected = partner.campaigns_per_year * years
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        purposes = list(partner.purposes)
        weights = list(partner.purposes.values())
        for _ in range(count):
            purpose = rng.choices(purposes, weights)[0]
            first_day = rng.randrange(clock.days)
            length = rng.randint(*partner.campaign_days)
            start = clock.at(first_day, CALL_HOURS[0])
            end = min(clock.at(first_day + length, CALL_HOURS[0]), clock.end_ts)
            campaigns.append(Campaign("", partner, purpose, start, end))
    campaigns.sort(key=lambda c: (c.start_ts, c.partner.partner_id))
    return [
        Campaign(
            f"C{n:04d}-{c.partner.partner_id}-{c.purpose}",
            c.partner,
            c.purpose,
            c.start_ts,
            c.end_ts,
        )
        for n, c in enumerate(campaigns, 1)
    ]


def rate_per_second(monthly_probability: float) -> float:
    """Constant hazard (per second) that gives ``monthly_probability`` over one month."""
    if monthly_probability >= 1.0:
        return 1.0
    return -math.log1p(-monthly_probability) / MONTH
