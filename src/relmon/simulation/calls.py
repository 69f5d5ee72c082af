"""Outbound call campaigns: who is dialled, when, by whom, and how the calls end.

Partners differ (see :class:`~relmon.simulation.params.PartnerProfile`): how often they call
at dinner time, how often they stray outside the calling windows (``strays``), whether they
respect opt-outs, "asked for time" and contact gaps, and whether they chase. A reached call
is *intrusive* when it comes at dinner time, chases an "asked for time", is the third call
in 30 days or follows another partner's call; an intrusive call irritates with the
supporter's latent irritability, and so does any call that ends in ``hung_up``,
``complaint`` or ``do_not_call``.
"""

from __future__ import annotations

from datetime import time

from relmon.domain.calling import calendar_for
from relmon.domain.policy import default_policy
from relmon.simulation.donations import Donations
from relmon.simulation.engine import DURATION
from relmon.simulation.population import (
    CALL_HOURS,
    DAY,
    DINNER,
    Campaign,
    Supporter,
    amount_for,
)

MARKETING = frozenset({"upgrade", "reactivation", "acquisition", "survey", "other"})
ASKING = frozenset({"upgrade", "reactivation", "acquisition", "other"})
IRRITATING_OUTCOMES = frozenset({"hung_up", "complaint", "do_not_call"})
INBOUND_PARTNER = "P-00"  # the charity's own phone line: supporters calling in
TIME_REQUEST_DAYS = 30
MIN_GAP_DAYS = 14
_SENTIMENT = {
    "converted": 0.5,
    "declined": 0.0,
    "info_requested": 0.2,
    "callback_requested": 0.1,
    "hung_up": -0.6,
    "complaint": -0.8,
    "do_not_call": -0.5,
    "cancelled_donation": -0.3,
}
# Compliant partners keep to the default policy's calling windows (Europe/Amsterdam).
_CALENDAR = calendar_for(default_policy())


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60


_TRIGGERS = ("moved_house", "web_visit", "service_contact", "anniversary", "email_click")


class Calls(Donations):
    """Campaign starts, dial attempts and reached-call outcomes."""

    def _eligible(self, s: Supporter, purpose: str) -> bool:
        m = s.mandate
        active = m is not None and m.active and not m.paused
        if purpose == "upgrade":
            return active and m is not None and m.frequency == "monthly"
        if purpose in ("thank_you", "service"):
            return active
        if purpose == "reactivation":
            return m is None and s.ever_donor
        if purpose == "acquisition":
            return m is None and not s.ever_donor
        return True

    def _dial_time(self, c: Campaign, day: int) -> int:
        """A local dialling time on ``day``, per the partner's habits.

        Inside the default policy's calling window: a day without one (Sunday, a public
        holiday) moves to the next day with one; the time is drawn from the window, up to
        21:00, at dinner time with the partner's ``dinner_share``. A marketing attempt strays
        with the partner's ``strays`` share: late in the evening (22:00–23:00) or on the
        next Sunday afternoon (14:00–18:00), half each.
        """
        rng = self.rng
        if c.purpose in MARKETING and c.partner.strays and rng.random() < c.partner.strays:
            if rng.random() < 0.5:
                return self.clock.at(day, 22 * 3600 + rng.randrange(3600))
            while self.clock.weekday[min(day, self.clock.days)] != 6 and day < self.clock.days:
                day += 1
            return self.clock.at(day, 14 * 3600 + rng.randrange(4 * 3600))
        rule = _CALENDAR.day(None, self.clock.date_of(day))
        for _ in range(14):
            if rule.opens is not None or day >= self.clock.days:
                break
            day += 1
            rule = _CALENDAR.day(None, self.clock.date_of(day))
        opens, closes = CALL_HOURS
        if rule.opens is not None and rule.closes is not None:
            opens = _seconds(rule.opens)
            closes = min(_seconds(rule.closes), CALL_HOURS[1])
        dinner = (max(DINNER[0], opens), min(DINNER[1], closes))
        if dinner[0] < dinner[1] and rng.random() < c.partner.dinner_share:
            sod = rng.randrange(*dinner)
        else:
            outside = (closes - opens) - max(0, dinner[1] - dinner[0])
            sod = opens + rng.randrange(max(outside, 1))  # e.g. 09:00–17:30, 19:30–21:00
            if dinner[0] < dinner[1] and sod >= dinner[0]:
                sod += dinner[1] - dinner[0]
        return self.clock.at(day, sod)

    def _campaign_start(self, t: int, c: Campaign) -> None:
        rng, share = self.rng, c.partner.target_share
        first, last = self.clock.day_of(c.start_ts), self.clock.day_of(c.end_ts - 1)
        for s in self.people:
            if s.has_phone and rng.random() < share and self._eligible(s, c.purpose):
                self._at(
                    self._dial_time(c, rng.randint(first, last)), self._attempt, s, c, 1, False
                )

    def _retry(
        self, t: int, s: Supporter, c: Campaign, n: int, days: tuple[float, float], chase: bool
    ) -> None:
        day = self.clock.day_of(t + int(self.rng.uniform(*days) * DAY))
        when = self._dial_time(c, day)
        if when < t + 600:  # a retry the same day: ten minutes on, inside a window
            when = _CALENDAR.next_call_at(None, t + 600) or t + 600
        if when < c.end_ts or (chase and when < c.end_ts + 14 * DAY):
            self._at(when, self._attempt, s, c, n, chase)

    def _attempt(self, t: int, s: Supporter, c: Campaign, n: int, chase: bool) -> None:
        rng, p, partner = self.rng, self.params, c.partner
        if not s.has_phone or not self._eligible(s, c.purpose):
            return
        if c.purpose != "service" and s.phone_blocked and rng.random() < partner.respects_opt_out:
            return
        s.recent_calls = recent = [x for x in s.recent_calls if x[0] > t - 30 * DAY]
        asked_time = t - s.asked_time_at < TIME_REQUEST_DAYS * DAY
        marketing = c.purpose in MARKETING
        if marketing and asked_time and not chase and rng.random() < partner.respects_time_request:
            return
        crowded = t - s.last_reached_marketing < MIN_GAP_DAYS * DAY or len(recent) >= 3
        if marketing and crowded and not chase and rng.random() < partner.respects_min_gap:
            self._retry(t, s, c, n, (3.0, 7.0), chase)
            return
        intrusive = (
            self.clock.is_dinner_time(t)
            or (marketing and asked_time)
            or len(recent) >= 2
            or any(pid != partner.partner_id for _, pid in recent)
        )
        recent.append((t, partner.partner_id))
        if rng.random() < p.wrong_number_rate:
            s.has_phone = False
            self._call(
                t,
                s,
                "outbound",
                c.campaign_id,
                c.purpose,
                partner.partner_id,
                None,
                0,
                "wrong_number",
            )
            return
        reach = s.reach * (p.evening_reach_boost if self.clock.local_seconds(t) >= 61200 else 1)
        if rng.random() >= min(reach, 0.95):
            kind = rng.choices(list(p.attempt_weights), list(p.attempt_weights.values()))[0]
            duration = rng.randint(20, 45) if kind == "voicemail" else 0
            self._call(
                t, s, "outbound", c.campaign_id, c.purpose, partner.partner_id, None, duration, kind
            )
            if n < partner.max_attempts:
                self._retry(t, s, c, n + 1, partner.retry_days, chase)
            return
        self._reached(t, s, c, n, intrusive)

    def _reached(self, t: int, s: Supporter, c: Campaign, n: int, intrusive: bool) -> None:
        rng, p, partner = self.rng, self.params, c.partner
        irritated = intrusive and rng.random() < s.irritability
        u = rng.random()
        if c.purpose in ASKING:
            if u < p.acceptance_rate:
                outcome = "converted"
            elif u < p.acceptance_rate + p.objection_rate:
                outcome = "do_not_call"
            else:
                weights = p.ask_outcome_weights
                outcome = rng.choices(list(weights), list(weights.values()))[0]
        elif u < p.objection_rate_non_ask:
            outcome = "do_not_call"
        else:
            weights = p.non_ask_outcome_weights
            outcome = rng.choices(list(weights), list(weights.values()))[0]
        if irritated and outcome == "declined" and rng.random() < p.intrusive_irritation_boost:
            outcome = "complaint" if rng.random() < 0.2 else "hung_up"
        irritating = irritated or outcome in IRRITATING_OUTCOMES
        m = s.mandate
        donor = m is not None and m.active
        if (
            irritating
            and donor
            and outcome not in ("converted", "do_not_call")
            and rng.random() < p.irritation_cancel_on_call
        ):
            outcome = "cancelled_donation"
        duration = rng.randint(*DURATION[outcome])
        delta = None
        if outcome == "converted":
            upgrade = m is not None and m.active and m.frequency == "monthly"
            delta = rng.choice(p.upgrade_deltas_cents) if upgrade else amount_for(p, rng, "monthly")
        sentiment = None
        if rng.random() < p.sentiment_share:
            sentiment = round(max(-1.0, min(1.0, _SENTIMENT[outcome] + rng.gauss(0, 0.25))), 2)
        trigger = rng.choice(_TRIGGERS) if rng.random() < p.trigger_share else None
        agent = f"A-{partner.partner_id}-{rng.randrange(partner.agents):03d}"
        call_id = self._call(
            t,
            s,
            "outbound",
            c.campaign_id,
            c.purpose,
            partner.partner_id,
            agent,
            duration,
            outcome,
            amount_delta=delta,
            trigger=trigger,
            sentiment=sentiment,
        )
        done = t + duration
        if c.purpose in MARKETING:
            s.last_reached_marketing = t
        if outcome == "converted" and delta is not None:
            later = done + rng.randint(DAY, 5 * DAY)
            if m is not None and m.active and m.frequency == "monthly":
                self._donation(later, s, m, "upgraded", m.amount, m.amount + delta, "phone")
                m.amount += delta
            elif m is None:
                self._new_mandate(later, s, delta, "phone")
            else:
                self._one_off(later, s, delta * 3, "phone")
        elif outcome == "do_not_call":
            s.dnc = True
            if rng.random() < p.share_objection_as_consent:
                s.objected = True
                self._emit(
                    done, s, "consent_change", channel="all", action="objection", source="call"
                )
        elif outcome == "info_requested":
            s.asked_time_at = t
            if partner.chases_time_request and c.purpose in MARKETING:
                self._retry(done, s, c, 1, (2.0, 10.0), True)
        elif outcome == "callback_requested":
            self._retry(done, s, c, n + 1, (1.0, 3.0), False)
        elif outcome == "cancelled_donation" and m is not None:
            self._end_mandate(done, s, m, call_id, "phone")
        if irritating:
            self._irritated(t, s, call_id)

    def _irritated(self, t: int, s: Supporter, call_id: str) -> None:
        """The irritating call raises the churn hazard for a while; maybe an opt-out follows."""
        rng, p = self.rng, self.params
        s.irritating_calls.append(call_id)
        m = s.mandate
        extra = (p.irritation_hazard_multiplier - 1.0) * (self._hazard(m, t) if m else 0.0)
        if m is not None and m.active and extra > 0:
            fire = t + rng.expovariate(extra)
            if fire < t + p.irritation_window_days * DAY:
                self._at(int(fire), self._churn, s, m, call_id)
        if s.phone_ok and rng.random() < p.irritation_phone_opt_out:
            self._at(
                t + rng.randint(3600, 7 * DAY),
                self._opt_out,
                s,
                "phone",
                rng.choice(("web", "letter")),
            )
