"""Mandates, churn, gifts and consents: everything that changes without a campaign.

Churn is a competing-risks model: every mandate has a base cancellation clock drawn from the
tenure-dependent hazard (first year / later); every irritating reached call adds a second
clock with hazard ``base × (multiplier − 1)`` for ``irritation_window_days``. Whichever fires
first ends the mandate, so the ground truth knows for each churn whether irritation caused it.
"""

from __future__ import annotations

from relmon.simulation.engine import (
    DURATION,
    INBOUND_CAMPAIGN,
    INBOUND_PARTNER,
    SERVICE_HOURS,
    SimCore,
)
from relmon.simulation.population import (
    DAY,
    MONTH,
    Mandate,
    Supporter,
    amount_for,
    rfc3339,
)

_CANCEL_REASONS = ("no_reason_given", "financial", "other_priorities", "dissatisfied", "deceased")
_CANCEL_REASON_WEIGHTS = (40, 30, 15, 10, 5)
_LIFE_KINDS = (
    "inbound",
    "one_off",
    "signup",
    "phone_opt_out",
    "reversed",
    "payment_failed",
    "paused",
    "downgraded",
    "upgraded",
)


class Donations(SimCore):
    """Donation changes, the churn clocks, life events and consent changes."""

    def _hazard(self, m: Mandate, ts: int) -> float:
        return self._lam_new if ts < m.started_at + 12 * MONTH else self._lam_est

    def _start_churn_clock(self, t0: int, s: Supporter, m: Mandate) -> None:
        e = self.rng.expovariate(1.0)
        boundary = m.started_at + 12 * MONTH
        if t0 < boundary:
            h1 = self._lam_new * (boundary - t0)
            fire = t0 + e / self._lam_new if e < h1 else boundary + (e - h1) / self._lam_est
        else:
            fire = t0 + e / self._lam_est
        self._at(int(fire), self._churn, s, m, None)

    def _churn(
        self, t: int, s: Supporter, m: Mandate, call_id: str | None, channel: str | None = None
    ) -> None:
        """A churn clock fired: cancel through a channel (a phone line only when it is open)."""
        if s.mandate is not m or not m.active:
            return
        if channel is None:
            mix = self.params.cancel_channel_mix
            channel = self.rng.choices(list(mix), list(mix.values()))[0]
        opens = self._service_open(t) if channel == "phone" else t
        if opens > t:
            self._at(opens, self._churn, s, m, call_id, channel)
            return
        if channel == "phone":
            duration = self.rng.randint(*DURATION["cancelled_donation"])
            self._inbound_call(t, s, duration, "cancelled_donation")
            t += duration
        self._end_mandate(t, s, m, call_id, channel)

    def _end_mandate(
        self, t: int, s: Supporter, m: Mandate, call_id: str | None, channel: str
    ) -> None:
        """Cancel ``m`` at ``t`` (a bank cancellation is sometimes preceded by a failed payment)
        and record in the ground truth whether an irritating call caused it."""
        rng = self.rng
        m.active = False
        m.end_cause = "irritation" if call_id else "baseline"
        s.mandate = None
        reason = rng.choices(_CANCEL_REASONS, _CANCEL_REASON_WEIGHTS)[0]
        if channel == "bank" and rng.random() < self.params.share_cancel_after_failed_payment:
            self._donation(t, s, m, "payment_failed", m.amount, m.amount, "bank")
            t += rng.randint(7 * DAY, 21 * DAY)
            reason = "payment_failed"
        m.ended_at = t
        self._donation(t, s, m, "cancelled", 0 if m.paused else m.amount, 0, channel, reason)
        s.churns.append(
            {
                "mandate_id": m.mandate_id,
                "frequency": m.frequency,
                "action": "cancelled",
                "occurred_at": rfc3339(t),
                "ts": t,
                "channel": channel,
                "caused_by_irritation": call_id is not None,
                "irritating_call_id": call_id,
            }
        )

    def _service_open(self, t: int) -> int:
        """``t`` if the charity's phone line is open then (Mon–Sat), else a time soon after
        it next opens."""
        clock, day = self.clock, self.clock.day_of(t)
        if (
            clock.weekday[day] != 6
            and SERVICE_HOURS[0] <= clock.local_seconds(t) < SERVICE_HOURS[1]
        ):
            return t
        if clock.local_seconds(t) >= SERVICE_HOURS[0]:
            day += 1
        if clock.weekday[min(day, clock.days)] == 6:
            day += 1
        return max(t, clock.at(day, SERVICE_HOURS[0] + self.rng.randrange(3 * 3600)))

    def _inbound_call(
        self, t: int, s: Supporter, duration: int, outcome: str, delta: int | None = None
    ) -> None:
        agent = f"A-{INBOUND_PARTNER}-{self.rng.randrange(8):03d}"
        self._call(
            t,
            s,
            "inbound",
            INBOUND_CAMPAIGN,
            "service",
            INBOUND_PARTNER,
            agent,
            duration,
            outcome,
            amount_delta=delta,
        )

    def _donation(
        self,
        ts: int,
        s: Supporter,
        m: Mandate,
        action: str,
        before: int,
        after: int,
        channel: str,
        reason: str | None = None,
    ) -> None:
        self._emit(
            ts,
            s,
            "donation_change",
            mandate_id=m.mandate_id,
            action=action,
            frequency=m.frequency,
            amount_cents_before=before,
            amount_cents_after=after,
            currency="EUR",
            mandate_started_at=rfc3339(m.started_at),
            channel=channel,
            reason=reason,
        )

    def _new_mandate(self, ts: int, s: Supporter, amount: int, channel: str) -> None:
        m = Mandate(f"M{s.idx:07d}-{len(s.mandates) + 1}", "monthly", amount, ts)
        s.mandate, s.ever_donor = m, True
        s.mandates.append(m)
        self._donation(ts, s, m, "started", 0, amount, channel)
        self._start_churn_clock(ts, s, m)

    def _one_off(self, ts: int, s: Supporter, amount: int, channel: str) -> None:
        self._gifts += 1
        gift = Mandate(f"G{s.idx:07d}-{self._gifts}", "one_off", amount, ts, active=False)
        self._donation(ts, s, gift, "one_off", 0, amount, channel)

    def _next_life(self, t: int, s: Supporter) -> None:
        self._at(t + int(self.rng.expovariate(self._life_rate)) + 1, self._life, s)

    def _life(self, t: int, s: Supporter) -> None:
        """Things that happen without a campaign: gifts, sign-ups, pauses, reversals…"""
        rng, p = self.rng, self.params
        kind = rng.choices(_LIFE_KINDS, self._life_weights)[0]
        m = s.mandate
        if kind == "inbound":
            self._at(self._service_open(t), self._inbound, s)
        elif kind == "one_off":
            self._one_off(t, s, rng.choice((1000, 2000, 2500, 5000, 10000)), "web")
        elif kind == "signup" and m is None:
            self._new_mandate(t, s, amount_for(p, rng, "monthly"), "web")
        elif kind == "phone_opt_out" and s.has_phone and s.phone_ok:
            self._opt_out(t, s, "phone", rng.choice(("web", "letter", "other")))
        elif m is not None and m.active and not m.paused:
            if kind in ("reversed", "payment_failed"):
                self._donation(t, s, m, kind, m.amount, m.amount, "bank")
            elif kind == "paused":
                m.paused = True
                self._donation(t, s, m, "paused", m.amount, 0, rng.choice(("web", "phone")))
                self._at(t + rng.randint(30 * DAY, 180 * DAY), self._resume, s, m)
            elif kind == "downgraded" and m.amount > 300:
                after = max(200, (m.amount * rng.choice((50, 60, 75)) // 100) // 50 * 50)
                self._donation(t, s, m, "downgraded", m.amount, after, rng.choice(("web", "post")))
                m.amount = after
            elif kind == "upgraded":
                after = m.amount + rng.choice(p.upgrade_deltas_cents)
                self._donation(t, s, m, "upgraded", m.amount, after, "web")
                m.amount = after
        self._next_life(t, s)

    def _inbound(self, t: int, s: Supporter) -> None:
        """The supporter calls the charity: a question, a complaint, sometimes to give more."""
        rng, p, m = self.rng, self.params, s.mandate
        outcomes = ("info_requested", "converted", "complaint", "declined")
        outcome = rng.choices(outcomes, (60, 10, 10, 20))[0]
        duration = rng.randint(*DURATION[outcome])
        delta = None
        if outcome == "converted":
            if m is not None and m.active and not m.paused and m.frequency == "monthly":
                delta = rng.choice(p.upgrade_deltas_cents)
                self._donation(t + duration, s, m, "upgraded", m.amount, m.amount + delta, "phone")
                m.amount += delta
            elif m is None:
                delta = amount_for(p, rng, "monthly")
                self._new_mandate(t + duration, s, delta, "phone")
            else:
                outcome = "declined"
        self._inbound_call(t, s, duration, outcome, delta)

    def _resume(self, t: int, s: Supporter, m: Mandate) -> None:
        if s.mandate is m and m.active and m.paused:
            m.paused = False
            self._donation(t, s, m, "resumed", 0, m.amount, self.rng.choice(("web", "phone")))

    # --- consents ----------------------------------------------------------------------------

    def _opt_out(self, t: int, s: Supporter, channel: str, source: str) -> None:
        if channel == "phone":
            if not s.phone_ok:
                return
            s.phone_ok = False
        else:
            if not s.email_ok:
                return
            s.email_ok = False
        self._emit(t, s, "consent_change", channel=channel, action="opt_out", source=source)
        if self.rng.random() < self.params.opt_in_after_opt_out:
            self._at(t + self.rng.randint(30 * DAY, 365 * DAY), self._opt_in, s, channel)

    def _opt_in(self, t: int, s: Supporter, channel: str) -> None:
        if channel == "phone":
            s.phone_ok = True
        else:
            s.email_ok = True
        self._emit(t, s, "consent_change", channel=channel, action="opt_in", source="web")
