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
from typing import Final
from zoneinfo import ZoneInfo

from relmon.domain.facts import ATTEMPTS, DAY, DINNER, Call, Contribution, Stamp, precedes
from relmon.domain.policy import Policy
from relmon.domain.state import NEVER, SupporterState

_new: Final = tuple.__new__  # a fact without its named tuple's __new__ (a Python function)

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
EMAIL_SENT: Final = -1


def call_item(calls: list[Call], i: int, w: Weights) -> Contribution:
    """The fatigue contribution of ``calls[i]``."""
    call = calls[i]
    t, partner, flags = call.t, call.partner_id, call.flags
    lo = t - w.partner_window
    others: set[str] = set()
    j = len(calls) - 1
    while j >= 0:
        c = calls[j]
        if c.t < lo:
            break
        if c.t <= t and c.partner_id != partner:
            others.add(c.partner_id)
        j -= 1
    reached = call.outcome not in ATTEMPTS
    weight = w.reached if reached else w.attempt
    label = int(reached)
    if flags & DINNER:
        weight *= w.dinner_factor
        label |= 2
    if others:
        weight *= 1.0 + w.extra_partner * len(others)
        label |= len(others) << 2
    return _new(Contribution, (t, call.eid, label, weight))


# -- the caches this module owns on a state: ``_fatigue`` (the fatigue contributions of its
# calls and e-mails, with the two lists they were derived from), ``_f_fold`` and ``_i_fold``
# (the folded sums, see :class:`Fold`). Each is valid for the lists it names by identity:
# fact lists are replaced, never changed, so a new list is a new key and nothing else needs
# to invalidate them.


class FatigueCache:
    """``items``: the fatigue contributions derived from ``calls`` and ``emails``.

    The caches are plain classes, not named tuples: compiled, they are native objects (a
    field read is a pointer load; a named tuple's is an attribute lookup, its construction
    a call into Python).
    """

    __slots__ = ("calls", "emails", "items")

    def __init__(self, calls: list[Call], emails: list[Stamp], items: list[Contribution]) -> None:
        self.calls = calls
        self.emails = emails
        self.items = items


def fatigue_items(st: SupporterState, w: Weights) -> list[Contribution]:
    """Every fatigue contribution of ``st``, in canonical order (cached on the state)."""
    cached: FatigueCache | None = st._fatigue
    calls, emails = st.calls, st.emails
    if cached is not None and cached.calls is calls and cached.emails is emails:
        return cached.items
    items = [call_item(calls, i, w) for i in range(len(calls))]
    if emails:
        weight = w.email
        items.extend(_new(Contribution, (t, eid, EMAIL_SENT, weight)) for t, eid in emails)
        items.sort(key=_canonical)
    st._fatigue = FatigueCache(calls, emails, items)
    return items


def carry_fatigue(old: SupporterState, new: SupporterState, item: Contribution | None) -> None:
    """Give ``new`` (``old`` with calls or e-mails added) ``old``'s cached fatigue items and
    ``item``, when ``item`` is the only new contribution and goes after every other one (the
    common, in-order case), also when an e-mail sent at the e-mails' cap pushed out the
    oldest; otherwise ``new`` computes its own when first scored."""
    cached: FatigueCache | None = old._fatigue
    if item is None or cached is None or cached.calls is not old.calls:
        return
    items = cached.items
    if cached.emails is not old.emails or (items and not precedes(items[-1], item)):
        return
    added = len(new.calls) + len(new.emails) - len(old.calls) - len(old.emails)
    if added == 1:  # exactly one call or e-mail more: none dropped
        new._fatigue = FatigueCache(new.calls, new.emails, [*items, item])
    elif (
        added == 0
        and new.calls is old.calls
        and len(new.emails) > 1
        and new.emails[0] is old.emails[1]
        and new.emails[-1].eid == item.eid
    ):  # at the cap, :func:`relmon.domain.update.insert` dropped the oldest e-mail
        kept, new._f_fold = _older_emails_gone(items, new.emails, new._f_fold)
        kept.append(item)
        new._fatigue = FatigueCache(new.calls, new.emails, kept)


def emails_dropped(st: SupporterState, before: list[Stamp]) -> None:
    """``st.emails`` is ``before`` without its oldest (past their retention): the fatigue
    items follow without a rebuild (a rebuild and a fold from scratch, on almost every e-mail
    sent of a long replay, was the biggest cost of an e-mail sent)."""
    cached: FatigueCache | None = st._fatigue
    if cached is None or cached.calls is not st.calls or cached.emails is not before:
        st._fatigue = None
        return
    items, st._f_fold = _older_emails_gone(cached.items, st.emails, st._f_fold)
    st._fatigue = FatigueCache(st.calls, st.emails, items)


def calls_dropped(st: SupporterState) -> None:
    """Calls past their retention left ``st``: its fatigue items are made again when next
    needed (a call's item counts the other partners' calls before it, which may be gone)."""
    st._fatigue = None


def _older_emails_gone(
    items: list[Contribution], emails: list[Stamp], fold: Fold | None
) -> tuple[list[Contribution], Fold | None]:
    """``items`` without the e-mails sent before ``emails[0]`` (every e-mail when it is
    empty), for ``emails`` what is left of the e-mails ``items`` came from once their oldest
    were dropped; and ``fold`` moved to the new positions when every item gone was before it
    (its sum is over the same items then), else None."""
    head_t, head_eid = (emails[0].t, emails[0].eid) if emails else (NEVER, "")
    start = -1 if fold is None else fold.start
    # the common case: the items gone are the first ones (calls are kept as long as
    # e-mails by default, so no older call sits between them): one slice
    n = len(items)
    p = 0
    while p < n and items[p].label == EMAIL_SENT and _older(items[p], head_t, head_eid):
        p += 1
    if p == n or not _older(items[p], head_t, head_eid):
        if fold is None or p > start:
            return items[p:], None
        if p == 0:
            return items[p:], fold
        moved = Fold(fold.first, fold.last, start - p, fold.end - p, fold.acc, fold.ref)
        return items[p:], moved
    kept: list[Contribution] = []
    gone_before = 0
    fold_holds = fold is not None
    for i, item in enumerate(items):
        t = item.t
        if item.label == EMAIL_SENT and (t < head_t or (t == head_t and item.eid < head_eid)):
            if i < start:
                gone_before += 1
            else:
                fold_holds = False
        else:
            kept.append(item)
    if fold is None or not fold_holds:
        return kept, None
    if gone_before == 0:
        return kept, fold
    moved = Fold(
        fold.first, fold.last, start - gone_before, fold.end - gone_before, fold.acc, fold.ref
    )
    return kept, moved


def _older(item: Contribution, t: int, eid: str) -> bool:
    """Whether ``item`` goes before ``(t, eid)`` in the canonical order."""
    return item.t < t or (item.t == t and item.eid < eid)


def fatigue_sum(st: SupporterState, as_of: int, w: Weights) -> tuple[float, int]:
    """Fatigue's ``(acc, ref)`` at ``as_of`` (at or after every fact), from the cached fold."""
    acc, ref, st._f_fold = decayed_sum(fatigue_items(st, w), as_of, w.f_k, w.f_horizon, st._f_fold)
    return acc, ref


def irritation_sum(st: SupporterState, as_of: int, w: Weights) -> tuple[float, int]:
    """Irritation's ``(acc, ref)`` at ``as_of`` (at or after every fact), from the cached fold."""
    acc, ref, st._i_fold = decayed_sum(st.irritation, as_of, w.i_k, w.i_horizon, st._i_fold)
    return acc, ref


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


def _canonical(fact: Contribution) -> tuple[int, str]:
    return fact.t, fact.eid


class Fold:
    """A decayed sum folded over ``items[start:end]``: reusable while they stay in range."""

    __slots__ = ("acc", "end", "first", "last", "ref", "start")

    def __init__(
        self, first: Contribution, last: Contribution, start: int, end: int, acc: float, ref: int
    ) -> None:
        self.first = first
        self.last = last
        self.start = start
        self.end = end
        self.acc = acc
        self.ref = ref


def decayed_sum(
    items: list[Contribution], as_of: int, k: float, horizon: int, cache: Fold | None
) -> tuple[float, int, Fold | None]:
    """``(acc, ref, fold)``: S at ``ref`` (the last item's time) over the items counting at
    ``as_of``, which is at or after every item. S at ``as_of`` is
    ``acc * exp(k * (ref - as_of))``.

    The sum is folded in canonical order, ``acc = acc * exp(k * (ref - t)) + w`` with
    ``ref`` the previous item's time; appending items extends the fold with exactly the
    operations a fold from scratch would do, so ``acc`` is a pure function of the items
    counted, bit for bit, whatever the order they arrived in or the cache's history. The
    fold is reused only if it starts where a fold from scratch would: a fold made at a
    later ``as_of`` may have left out items that count at this one.
    """
    n = len(items)
    lo = as_of - horizon
    if (
        cache is not None
        and cache.end <= n
        and items[cache.start] is cache.first
        and items[cache.end - 1] is cache.last
        and cache.first.t >= lo
        and (cache.start == 0 or items[cache.start - 1].t < lo)
    ):
        if cache.end == n:
            return cache.acc, cache.ref, cache  # nothing new: the fold as it was
        start, acc, ref = cache.start, cache.acc, cache.ref
        for item in items[cache.end :]:
            t = item.t
            acc = acc * math.exp(k * (ref - t)) + item.weight
            ref = t
    else:
        start = 0
        while start < n and items[start].t < lo:
            start += 1
        if start == n:
            return 0.0, 0, None
        acc, ref = 0.0, items[start].t
        for item in items[start:]:
            t = item.t
            acc = acc * math.exp(k * (ref - t)) + item.weight
            ref = t
    return acc, ref, Fold(items[start], items[-1], start, n, acc, ref)


def decayed_sum_before(
    items: list[Contribution], as_of: int, strict: bool, k: float, horizon: int
) -> tuple[float, int]:
    """``(acc, ref)`` at any ``as_of`` (items after it, or at it when ``strict``, left out).

    The reference path: :func:`decayed_sum` must give the same floats, bit for bit, at or
    after the last item (``tests/unit/test_evaluation_paths.py``).
    """
    lo = as_of - horizon
    acc = 0.0
    ref: int | None = None
    for item in items:
        t = item.t
        if t > as_of or (strict and t == as_of):
            break
        if t < lo:
            continue
        if ref is None:
            ref = t
        acc = acc * math.exp(k * (ref - t)) + item.weight
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
    items: list[Contribution], as_of: int, k: float, horizon: int
) -> list[tuple[int, str, int, float, float]]:
    """``(t, event_id, label, weight, current value)`` of the items counting at ``as_of``."""
    return [
        (t, eid, label, weight, weight * math.exp(k * (t - as_of)))
        for t, eid, label, weight in items
        if as_of - horizon <= t <= as_of
    ]
