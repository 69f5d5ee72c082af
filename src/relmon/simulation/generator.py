"""The simulation: a discrete-event loop over the population, yielding contract events.

Pure and deterministic: one ``random.Random(seed)``, no wall clock, no I/O. Actions (a dial
attempt, a mailing, a churn clock firing…) wait in one heap ordered by (time, sequence);
the events an action produces may lie a little in its future (an e-mail opened hours after
it was sent), so they wait in a second heap and leave it only once no earlier action is
left. The result is a stream sorted by ``occurred_at`` with bounded memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import date
from typing import Any

from relmon.simulation.calls import Calls
from relmon.simulation.engine import Event
from relmon.simulation.params import SimulationParams
from relmon.simulation.population import (
    DAY,
    Supporter,
    rfc3339,
)


class Simulation(Calls):
    """One simulated population; :meth:`events` runs it, :meth:`truth` tells what was latent."""

    # --- the loop ----------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Every event of the run, sorted by ``occurred_at`` (then by creation order)."""
        self._setup()
        actions, out = self._actions, self._out
        while actions:
            t, _, fn, args = heapq.heappop(actions)
            while out and out[0][0] <= t:
                yield self._release(heapq.heappop(out))
            fn(t, *args)
        while out and out[0][0] < self.end:
            yield self._release(heapq.heappop(out))

    def _setup(self) -> None:
        rng, p, start = self.rng, self.params, self.clock.start_ts
        for s in self.people:
            m = s.mandate
            if p.backfill_history:
                if m is not None:
                    channel = rng.choice(("phone", "web", "post", "other"))
                    self._donation(m.started_at, s, m, "started", 0, m.amount, channel)
                if not s.phone_ok:
                    ts = start - rng.randrange(DAY, 700 * DAY)
                    source = rng.choice(("register", "web", "letter"))
                    self._emit(
                        ts, s, "consent_change", channel="phone", action="opt_out", source=source
                    )
                if not s.email_ok and s.has_email:
                    ts = start - rng.randrange(DAY, 700 * DAY)
                    self._emit(
                        ts, s, "consent_change", channel="email", action="opt_out", source="email"
                    )
            if m is not None:
                self._start_churn_clock(start, s, m)
            self._next_life(start, s)
        for campaign in self.campaigns:
            self._at(campaign.start_ts, self._campaign_start, campaign)
        first_day = rng.randrange(max(1, int(p.email_interval_days)))
        self._at(self.clock.at(first_day, 10 * 3600), self._mailing, 1, first_day)

    # --- e-mail ------------------------------------------------------------------------------

    def _mailing(self, t: int, number: int, day: int) -> None:
        rng, p = self.rng, self.params
        campaign_id = f"E{number:04d}"
        for s in self.people:
            if not (s.has_email and s.email_ok and not s.bounced):
                continue
            mid = f"{campaign_id}-{s.sid}"
            sent = t + rng.randrange(4 * 3600)
            self._emit(
                sent, s, "email_engagement", message_id=mid, campaign_id=campaign_id, action="sent"
            )
            if rng.random() < p.email_bounce_rate:
                s.bounced = True
                self._email(sent + rng.randint(10, 600), s, mid, campaign_id, "bounced")
                continue
            seen = sent + rng.randint(5, 300)
            self._email(seen, s, mid, campaign_id, "delivered")
            if rng.random() < s.open_rate:
                seen += int(min(rng.expovariate(1 / (10 * 3600)), 7 * DAY)) + 1
                self._email(seen, s, mid, campaign_id, "opened")
                if rng.random() < p.email_click_given_open:
                    seen += rng.randint(5, 600)
                    self._email(seen, s, mid, campaign_id, "clicked")
                    if rng.random() < 0.02:
                        self._one_off(seen + rng.randint(60, 900), s, 2500, "web")
            else:
                seen += rng.randint(3600, 3 * DAY)
            u = rng.random()
            if u < p.email_unsubscribe_rate + p.email_spam_rate:
                action = "unsubscribed" if u < p.email_unsubscribe_rate else "spam_complaint"
                self._email(seen + 1, s, mid, campaign_id, action)
                self._opt_out(seen + 2, s, "email", "email")
        day += max(1, round(p.email_interval_days))
        self._at(self.clock.at(day, 10 * 3600), self._mailing, number + 1, day)

    def _email(self, ts: int, s: Supporter, mid: str, campaign_id: str, action: str) -> None:
        self._emit(
            ts, s, "email_engagement", message_id=mid, campaign_id=campaign_id, action=action
        )

    # --- ground truth ------------------------------------------------------------------------

    def truth(self) -> Iterator[dict[str, Any]]:
        """Per supporter: latent traits, mandates and every churn with its cause.

        Churns after the last released event (a run stopped by ``--limit``) are left out.
        """
        last = self.last_ts if self.last_ts is not None else self.end
        for s in self.people:
            yield {
                "supporter_id": s.sid,
                "segment_at_start": s.segment,
                "traits": {
                    "reachability": round(s.reach, 4),
                    "irritability": round(s.irritability, 4),
                    "email_open_propensity": round(s.open_rate, 4),
                    "has_email": s.has_email,
                    "has_phone": s.has_phone,
                },
                "mandates": [
                    {
                        "mandate_id": m.mandate_id,
                        "frequency": m.frequency,
                        "started_at": rfc3339(m.started_at),
                        "ended_at": rfc3339(m.ended_at) if m.ended_at is not None else None,
                        "end_cause": m.end_cause,
                    }
                    for m in s.mandates
                ],
                "irritating_calls": list(s.irritating_calls),
                "churns": [
                    {k: v for k, v in churn.items() if k != "ts"}
                    for churn in s.churns
                    if isinstance(churn["ts"], int) and churn["ts"] <= last
                ],
            }


def generate(
    params: SimulationParams, seed: int, supporters: int, days: int, start: date
) -> Iterator[Event]:
    """The events of one run, sorted by ``occurred_at``; see :class:`Simulation` for truth."""
    return Simulation(params, seed, supporters, days, start).events()
