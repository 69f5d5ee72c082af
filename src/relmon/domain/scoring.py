"""Fatigue and irritation risk: exponentially decaying contributions in event time.

For a score with half-life ``h``::

    S(as_of) = sum of w_i * 2 ** (-(as_of - t_i) / h)      over contributions with t_i <= as_of
    score    = 1 - exp(-S)                                  in [0, 1)

* Every weight is >= 0, so a new fact never lowers a score (a complaint never lowers
  irritation risk).
* The sum runs over the contributions sorted by ``(t, event_id)``, so the float result is
  bit-identical whatever order the events arrived in.
* All contributions of one score share the half-life, so S decays as a whole and the time at
  which the score falls below a threshold ``T`` has a closed form:
  ``as_of + h * log2(S / S_T)`` with ``S_T = -ln(1 - T)``; it is rounded up to a whole second.
* A contribution older than ``h * log2(1 / contribution_floor)`` is ignored (and later
  forgotten); that only lowers S, so the closed-form ``until`` is never too early.
* Fatigue contributions are derived from the outbound calls and e-mails when scored, not
  stored: a call weighs ``call_reached`` or ``call_attempt``, times ``dinner_factor`` at
  dinner time, times ``1 + extra_partner_factor * n`` where ``n`` is the number of *other*
  partners with an outbound call in the ``partner_window_days`` up to and including it.
  Because ``n`` is read from the retained calls, it does not depend on arrival order.
* Irritation contributions are stored facts (one per event and label); their weights are
  fixed when the event arrives, except ``chased_decision``, which is added to a marketing call
  by whichever of the call and the ``info_requested`` arrives second.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from relmon.domain.facts import ATTEMPTS, DAY, DINNER
from relmon.domain.policy import Policy
from relmon.domain.state import Fact, SupporterState

LN2 = math.log(2.0)


class Weights:
    """The policy's scoring numbers in seconds, read once (attribute access is hot)."""

    __slots__ = (
        "_offsets",
        "attempt",
        "dinner_end",
        "dinner_factor",
        "dinner_start",
        "email",
        "extra_partner",
        "f_half_life",
        "f_horizon",
        "f_k",
        "i_half_life",
        "i_horizon",
        "i_k",
        "partner_window",
        "reached",
        "zone",
    )

    def __init__(self, policy: Policy) -> None:
        f, i = policy.fatigue, policy.irritation
        self.attempt = f.call_attempt
        self.reached = f.call_reached
        self.email = f.email_sent
        self.dinner_factor = f.dinner_factor
        self.dinner_start = f.dinner_start.hour * 3600 + f.dinner_start.minute * 60
        self.dinner_end = f.dinner_end.hour * 3600 + f.dinner_end.minute * 60
        self.extra_partner = f.extra_partner_factor
        self.partner_window = f.partner_window_days * DAY
        self.f_half_life = f.half_life_days * DAY
        self.i_half_life = i.half_life_days * DAY
        self.f_k = LN2 / self.f_half_life
        self.i_k = LN2 / self.i_half_life
        self.f_horizon = int(policy.horizon_days(f.half_life_days) * DAY)
        self.i_horizon = int(policy.horizon_days(i.half_life_days) * DAY)
        self.zone = ZoneInfo(policy.timezone)
        self._offsets: dict[int, int] = {}

    def local_seconds(self, t: int) -> int:
        """Seconds since local midnight in the supporters' zone (UTC offsets cached per hour)."""
        hour = t // 3600
        offset = self._offsets.get(hour)
        if offset is None:
            start = self._offset(hour * 3600)
            if start != self._offset(hour * 3600 + 3599):
                return (t + self._offset(t)) % DAY  # a transition inside this hour
            if len(self._offsets) > 200_000:
                self._offsets.clear()
            self._offsets[hour] = offset = start
        return (t + offset) % DAY

    def _offset(self, t: int) -> int:
        delta = datetime.fromtimestamp(t, self.zone).utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    def is_dinner_time(self, t: int) -> bool:
        return self.dinner_start <= self.local_seconds(t) < self.dinner_end


# fatigue item labels: bit 0 reached, bit 1 dinner, the rest the number of other partners;
# e-mails have their own label
EMAIL_SENT = -1


def call_item(calls: list[Fact], i: int, w: Weights) -> Fact:
    """The fatigue contribution ``(t, eid, label, weight)`` of ``calls[i]``."""
    t, eid, _cid, _camp, _purpose, partner, _agent, outcome, flags = calls[i]
    lo = t - w.partner_window
    others: set[str] = set()
    j = len(calls) - 1
    while j >= 0:
        c = calls[j]
        if c[0] < lo:
            break
        if c[0] <= t and c[5] != partner:
            others.add(c[5])
        j -= 1
    reached = outcome not in ATTEMPTS
    weight = w.reached if reached else w.attempt
    label = int(reached)
    if flags & DINNER:
        weight *= w.dinner_factor
        label |= 2
    if others:
        weight *= 1.0 + w.extra_partner * len(others)
        label |= len(others) << 2
    return (t, eid, label, weight)


def fatigue_items(st: SupporterState, w: Weights) -> list[Fact]:
    """``(t, event_id, label, weight)`` of every fatigue contribution, canonical order."""
    cached = st._fatigue
    if cached is not None:
        return cached
    calls = st.calls
    items = [call_item(calls, i, w) for i in range(len(calls))]
    if st.emails:
        items.extend((t, eid, EMAIL_SENT, w.email) for t, eid in st.emails)
        items.sort(key=_canonical)
    st._fatigue = items
    return items


def fatigue_label(label: int) -> str:
    """The explanation's name of a fatigue item label."""
    if label == EMAIL_SENT:
        return "email_sent"
    name = "call_reached" if label & 1 else "call_attempt"
    if label & 2:
        name += "+dinner"
    if label >> 2:
        name += f"+{label >> 2}_other_partners"
    return name


def _canonical(fact: Fact) -> tuple[int, str]:
    return fact[0], fact[1]


class Fold(NamedTuple):
    """A decayed sum folded over ``items[start:count]``: reusable while they stay in range."""

    first: Fact
    last: Fact
    start: int
    end: int
    acc: float
    ref: int


def decayed_sum(
    items: list[Fact], as_of: int, k: float, horizon: int, cache: Fold | None
) -> tuple[float, int, Fold | None]:
    """``(acc, ref, fold)``: S at ``ref`` (the last item's time) over the items counting at
    ``as_of``, which is at or after every item. S at ``as_of`` is
    ``acc * exp(k * (ref - as_of))``.

    The sum is folded in canonical order, ``acc = acc * exp(k * (ref - t)) + w`` with
    ``ref`` the previous item's time; appending items extends the fold with exactly the
    operations a fold from scratch would do, so ``acc`` is a pure function of the items
    counted, bit for bit, whatever the order they arrived in or the cache's history.
    """
    n = len(items)
    lo = as_of - horizon
    exp = math.exp
    if (
        cache is not None
        and cache.end <= n
        and items[cache.start] is cache.first
        and items[cache.end - 1] is cache.last
        and cache.first[0] >= lo
    ):
        if cache.end == n:
            return cache.acc, cache.ref, cache  # nothing new: the fold as it was
        start, acc, ref = cache.start, cache.acc, cache.ref
        for item in items[cache.end :]:
            t = item[0]
            acc = acc * exp(k * (ref - t)) + item[3]
            ref = t
    else:
        start = 0
        while start < n and items[start][0] < lo:
            start += 1
        if start == n:
            return 0.0, 0, None
        acc, ref = 0.0, items[start][0]
        for item in items[start:]:
            t = item[0]
            acc = acc * exp(k * (ref - t)) + item[3]
            ref = t
    return acc, ref, Fold(items[start], items[-1], start, n, acc, ref)


def decayed_sum_before(
    items: list[Fact], as_of: int, strict: bool, k: float, horizon: int
) -> tuple[float, int]:
    """``(acc, ref)`` at any ``as_of`` (items after it, or at it when ``strict``, left out)."""
    lo = as_of - horizon
    exp = math.exp
    acc = 0.0
    ref: int | None = None
    for item in items:
        t = item[0]
        if t > as_of or (strict and t == as_of):
            break
        if t < lo:
            continue
        if ref is None:
            ref = t
        acc = acc * exp(k * (ref - t)) + item[3]
        ref = t
    return (0.0, 0) if ref is None else (acc, ref)


def score(total: float) -> float:
    """``1 - exp(-S)``: the score in [0, 1)."""
    return -math.expm1(-total)


def threshold_sum(threshold: float) -> float:
    """The S at which the score equals ``threshold``."""
    return -math.log1p(-threshold)


def falls_below_at(acc: float, ref: int, s_threshold: float, half_life: float) -> int | None:
    """When S (``acc`` at ``ref``) falls below ``s_threshold``, rounded up to a whole second.

    Computed from the fold, not from the as-of time, so it stays the same second as time
    passes with no new contribution. None when there is nothing to decay.
    """
    if acc <= 0.0:
        return None
    return math.ceil(ref + half_life * math.log2(acc / s_threshold))


def contributions(
    items: list[Fact], as_of: int, k: float, horizon: int
) -> list[tuple[int, str, int, float, float]]:
    """``(t, event_id, label, weight, current value)`` of the items counting at ``as_of``."""
    return [
        (t, eid, label, weight, weight * math.exp(k * (t - as_of)))
        for t, eid, label, weight in items
        if as_of - horizon <= t <= as_of
    ]
