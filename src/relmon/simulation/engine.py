"""The core of the simulation: two heaps, the clock, and how events are made.

Actions (a dial attempt, a mailing, a churn clock firing…) wait in one heap ordered by
(time, sequence). The events an action makes may lie a little in its future (an e-mail
opened hours after it was sent), so they wait in a second heap and leave it only once no
earlier action is left: the stream comes out sorted by ``occurred_at`` with bounded memory.
Event ids are ``<run>-<n>``: ``run`` hashes the seed, size, start and parameters, ``n``
counts released events, so a rerun gives the same ids and another run different ones.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from datetime import date
from typing import Any

from relmon.simulation.params import SimulationParams
from relmon.simulation.population import (
    Clock,
    Supporter,
    make_campaigns,
    make_supporters,
    rate_per_second,
    rfc3339,
)

Event = dict[str, Any]
INBOUND_PARTNER = "P-00"  # the charity's own phone line: supporters calling in
INBOUND_CAMPAIGN = "C-INBOUND"
SERVICE_HOURS = (8 * 3600 + 1800, 20 * 3600)  # when the charity's phone line is open, local
DURATION = {
    "converted": (240, 900),
    "declined": (60, 300),
    "info_requested": (90, 400),
    "callback_requested": (30, 120),
    "hung_up": (5, 40),
    "complaint": (120, 600),
    "do_not_call": (20, 90),
    "cancelled_donation": (120, 400),
}


class SimCore:
    """State shared by every part of the simulation and the primitives to schedule and emit."""

    def __init__(
        self, params: SimulationParams, seed: int, supporters: int, days: int, start: date
    ) -> None:
        if supporters < 1 or days < 1:
            raise ValueError("supporters and days must be at least 1")
        self.params = params
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock(start, days)
        self.end = self.clock.end_ts
        key = f"{seed}|{supporters}|{days}|{start.isoformat()}|{params.model_dump_json()}"
        self.run_id = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
        self.people = make_supporters(params, self.rng, supporters, self.clock)
        self.campaigns = make_campaigns(params, self.rng, self.clock)
        self._actions: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._out: list[tuple[int, int, Event]] = []
        self._seq = 0
        self._calls = 0
        self._gifts = 0
        self.emitted = 0
        self.last_ts: int | None = None
        p = params
        self._lam_new = rate_per_second(p.first_year_monthly_attrition)
        self._lam_est = rate_per_second(p.established_monthly_attrition)
        life_rates = (
            p.inbound_call_rate,
            p.one_off_gift_rate,
            p.organic_signup_rate,
            p.phone_opt_out_rate,
            p.reversal_rate,
            p.failed_payment_rate,
            p.pause_rate,
            p.downgrade_rate,
            p.self_upgrade_rate,
        )
        self._life_weights = [rate_per_second(r) for r in life_rates]
        self._life_rate = sum(self._life_weights)

    def _release(self, item: tuple[int, int, Event]) -> Event:
        ts, _, event = item
        event["event_id"] = f"{self.run_id}-{self.emitted:09d}"
        self.emitted += 1
        self.last_ts = ts
        return event

    def _at(self, ts: int, fn: Callable[..., None], *args: Any) -> None:
        if ts < self.end:
            self._seq += 1
            heapq.heappush(self._actions, (ts, self._seq, fn, args))

    def _emit(self, ts: int, s: Supporter, kind: str, **fields: Any) -> None:
        if ts < self.end:
            self._seq += 1
            event = {
                "type": kind,
                "event_id": "",
                "supporter_id": s.sid,
                "occurred_at": rfc3339(ts),
                **fields,
            }
            heapq.heappush(self._out, (ts, self._seq, event))

    def _call(
        self,
        ts: int,
        s: Supporter,
        direction: str,
        campaign_id: str,
        purpose: str,
        partner_id: str,
        agent_id: str | None,
        duration: int,
        outcome: str,
        *,
        amount_delta: int | None = None,
        trigger: str | None = None,
        sentiment: float | None = None,
    ) -> str:
        self._calls += 1
        call_id = f"K{self.run_id}-{self._calls:08d}"
        self._emit(
            ts,
            s,
            "call_outcome",
            call_id=call_id,
            direction=direction,
            campaign_id=campaign_id,
            campaign_purpose=purpose,
            partner_id=partner_id,
            agent_id=agent_id,
            duration_s=duration,
            outcome=outcome,
            amount_delta_cents=amount_delta,
            trigger=trigger,
            sentiment=sentiment,
        )
        return call_id
