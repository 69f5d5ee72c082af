"""Turning one input event into facts on a copy of the state.

Each ``*_facts`` function returns the new state, or ``None`` when the event adds no fact
(an e-mail opened, an inbound call with nothing to remember, a fact too old to keep). The
state it was given is never changed.

Modelling choices (weights in the policy's ``[irritation]`` section):

* Outbound calls are kept as call facts (fatigue, CONTACT_CAP, MIN_GAP, alerts); inbound
  calls are not contact pressure and leave only their markers and irritation.
* Outcomes ``complaint``, ``info_requested``, ``converted`` and ``do_not_call`` leave a marker
  (either direction). ``complaint``, ``do_not_call``, ``hung_up``, ``declined`` and a
  negative ``sentiment`` add irritation; so does a reached outbound call at dinner time, and
  an outbound marketing call within the ``info_requested`` window after such a request
  (``chased_decision``), whichever of the two arrives first.
* ``opt_out``/``objection`` on ``email``, ``post`` or ``sms`` add irritation; consent
  changes are kept without age limit, up to 16: over that, a change superseded by a later
  one on the same channel goes first, so the latest change of each channel (an opt-out on
  ``phone``, the ``opt_in`` that ended a ``do_not_call``) is never dropped for others.
* E-mail ``sent`` adds fatigue; ``unsubscribed`` and ``spam_complaint`` add irritation.
* A donation change (not ``one_off``) is kept as the mandate's status with the time its
  tenure reaches the loyalty threshold (up to 16 statuses: superseded ones of a mandate go
  first, so each mandate keeps its latest status unless there are more than 16 mandates);
  a downgrade adds irritation; a churn of a donor who was loyal by the event itself is kept
  for the churn-after-contact alert.
"""

from __future__ import annotations

import bisect

from relmon.domain.events import CallOutcome, ConsentChange, DonationChange, EmailEngagement
from relmon.domain.facts import (
    ALL,
    ATTEMPTS,
    CHANNEL,
    CONSENT_ACTION,
    DINNER,
    DO_NOT_CALL,
    DONATION_ACTION,
    FREQUENCY,
    INFO_REQUESTED,
    LABEL,
    MARKER_OUTCOMES,
    MARKETING,
    MONTHLY,
    OPT_IN,
    OUTCOME,
    PHONE,
    PURPOSE,
)
from relmon.domain.rules import Rules, add_months
from relmon.domain.scoring import EMAIL_SENT, call_item
from relmon.domain.state import _UNKNOWN, Fact, SupporterState

CHURN_ACTIONS = frozenset(DONATION_ACTION[a] for a in ("cancelled", "paused", "reversed"))
DOWNGRADED = DONATION_ACTION["downgraded"]
ONE_OFF = DONATION_ACTION["one_off"]
CHASED = LABEL["chased_decision"]
DINNER_CALL_REACHED = LABEL["dinner_call_reached"]
NEGATIVE_SENTIMENT = LABEL["negative_sentiment"]
_FOREVER = -(1 << 62)
_EMAIL_FACT_ACTIONS = frozenset({"sent", "unsubscribed", "spam_complaint"})
_OUTCOME_LABELS = {
    OUTCOME[o]: LABEL[o] for o in ("complaint", "do_not_call", "hung_up", "declined")
}


def insert(
    facts: list[Fact], fact: Fact, keep_from: int, cap: int, width: int = 2, group: int = -1
) -> list[Fact] | None:
    """A new sorted list with ``fact`` added, or None if it is already there or too old.

    Over ``cap`` the oldest facts go, or with ``group`` (the index of a key such as the
    consent channel or the mandate id) see :func:`trim`. None also when ``fact`` itself
    is the one that would go.
    """
    if fact[0] < keep_from:
        return None
    key = fact[:width]
    if not facts or facts[-1][:width] < key:
        new = [*facts, fact]
    else:
        i = bisect.bisect_left(facts, key, key=lambda f: f[:width])
        if i < len(facts) and facts[i][:width] == key:
            return None
        new = facts.copy()
        new.insert(i, fact)
    if len(new) > cap:
        if group >= 0:
            new = trim(new, cap, group)
            if not any(f is fact for f in new):
                return None
        else:
            if new[0] is fact:
                return None
            del new[: len(new) - cap]
    return new


def trim(facts: list[Fact], cap: int, group: int) -> list[Fact]:
    """The ``cap`` facts to keep of a sorted list longer than that, in the same order.

    Superseded facts go first (a fact of a group, e.g. a channel or a mandate, that has a
    later one in the list), oldest first; the latest fact of a group goes only when the
    groups alone exceed ``cap``, again oldest first. The list is sorted by ``(t, event_id)``,
    so the choice depends on the set of facts only, not on the order they arrived in.
    """
    excess = len(facts) - cap
    latest = {f[group]: i for i, f in enumerate(facts)}
    is_latest = [False] * len(facts)
    for i in latest.values():
        is_latest[i] = True
    drop = [False] * len(facts)
    for i in range(len(facts)):
        if excess == 0:
            break
        if not is_latest[i]:
            drop[i] = True
            excess -= 1
    for i in range(len(facts)):
        if excess == 0:
            break
        if not drop[i]:
            drop[i] = True
            excess -= 1
    return [f for f, gone in zip(facts, drop, strict=True) if not gone]


class _Change:
    """A copy of the state that a handler changes, and what the caches need to know.

    Handlers replace lists on ``new`` (never mutate them: they are shared with the state
    given); :meth:`commit` compares them with the original by identity to invalidate exactly
    the caches whose inputs changed, so one copy is made per event, not two.
    """

    __slots__ = ("changed", "clock", "fatigue_item", "new", "rules")

    def __init__(self, st: SupporterState, clock: int, rules: Rules) -> None:
        self.rules = rules
        self.clock = clock
        self.changed = False
        self.new = st.copy()
        # the fatigue contribution of a call or e-mail that goes after every other one
        self.fatigue_item: Fact | None = None

    def append_fatigue(self, st: SupporterState, item: Fact) -> None:
        """Remember ``item`` if it extends the cached fatigue items (the common, in-order case)."""
        items = st._fatigue
        if items is not None and (not items or items[-1][:2] < item[:2]):
            self.fatigue_item = item

    def irritate(self, t: int, eid: str, label: int, weight: float | None = None) -> None:
        r = self.rules
        if weight is None:
            weight = r.irritation_weights[label]
        if weight > 0.0:
            nst = self.new
            keep = self.clock - r.keep_irritation
            new = insert(nst.irritation, (t, eid, label, weight), keep, r.max_facts, 3)
            if new is not None:
                nst.irritation = new
                self.changed = True

    def commit(self, st: SupporterState, eid: str, t: int) -> SupporterState | None:
        if not self.changed:
            return None
        nst = self.new
        if nst.calls is not st.calls or nst.emails is not st.emails:
            item = self.fatigue_item
            nst._fatigue = None if item is None or st._fatigue is None else [*st._fatigue, item]
        if (
            nst.consents is not st.consents
            or nst.markers[DO_NOT_CALL] is not st.markers[DO_NOT_CALL]
        ):
            nst._consent = None
        if nst.mandates is not st.mandates:
            nst._loyal = _UNKNOWN
        nst.event_ids().add(eid)
        prune_at = t + self.rules.min_keep
        if prune_at < nst.prune_at:
            nst.prune_at = prune_at
        return nst


def call_facts(st: SupporterState, ev: CallOutcome, t: int, r: Rules) -> SupporterState | None:
    """Facts of a call outcome."""
    clock = max(st.clock, t)
    ch = _Change(st, clock, r)
    eid = ev.event_id
    outcome = OUTCOME[ev.outcome]
    purpose = PURPOSE[ev.campaign_purpose]
    if ev.direction == "outbound":
        flags = DINNER if r.w.is_dinner_time(t) else 0
        call = (
            t,
            eid,
            ev.call_id,
            ev.campaign_id,
            purpose,
            ev.partner_id,
            ev.agent_id,
            outcome,
            flags,
        )
        new = insert(st.calls, call, clock - r.keep_calls, r.max_facts)
        if new is None:
            return None
        ch.new.calls = new
        ch.changed = True
        if new[-1] is call and (len(new) == 1 or new[-2][0] < t):
            ch.append_fatigue(st, call_item(new, len(new) - 1, r.w))
        if flags and outcome not in ATTEMPTS:
            ch.irritate(t, eid, DINNER_CALL_REACHED)
        if purpose in MARKETING:
            for t_info, _ in st.markers[INFO_REQUESTED]:
                if t_info < t <= t_info + r.deciding:
                    ch.irritate(t, eid, CHASED)
                    break
    label = _OUTCOME_LABELS.get(outcome)
    if label is not None:
        ch.irritate(t, eid, label)
    if ev.sentiment is not None and ev.sentiment < 0.0:
        ch.irritate(
            t, eid, NEGATIVE_SENTIMENT, -ev.sentiment * r.irritation_weights[NEGATIVE_SENTIMENT]
        )
    kind = MARKER_OUTCOMES.get(outcome)
    if kind is not None:
        if kind == DO_NOT_CALL:
            keep, cap = _FOREVER, r.max_do_not_call
        else:
            keep, cap = clock - r.keep_markers[kind], r.max_facts
        new = insert(st.markers[kind], (t, eid), keep, cap)
        if new is not None:
            ch.new.markers = tuple(new if i == kind else m for i, m in enumerate(st.markers))
            ch.changed = True
            if kind == INFO_REQUESTED:
                for c in ch.new.calls:
                    if t < c[0] <= t + r.deciding and c[4] in MARKETING:
                        ch.irritate(c[0], c[1], CHASED)
    return ch.commit(st, eid, t)


def consent_facts(st: SupporterState, ev: ConsentChange, t: int, r: Rules) -> SupporterState | None:
    """Facts of a consent change."""
    ch = _Change(st, max(st.clock, t), r)
    channel, action = CHANNEL[ev.channel], CONSENT_ACTION[ev.action]
    new = insert(st.consents, (t, ev.event_id, channel, action), _FOREVER, r.max_consents, group=2)
    if new is None:
        return None
    ch.new.consents = new
    ch.changed = True
    if action != OPT_IN and channel not in (PHONE, ALL):
        ch.irritate(t, ev.event_id, LABEL["opt_out_other_channel"])
    return ch.commit(st, ev.event_id, t)


def email_facts(st: SupporterState, ev: EmailEngagement, t: int, r: Rules) -> SupporterState | None:
    """Facts of an e-mail engagement (most actions leave none)."""
    action = ev.action
    if action not in _EMAIL_FACT_ACTIONS:
        return None
    clock = max(st.clock, t)
    ch = _Change(st, clock, r)
    if action == "sent":
        new = insert(st.emails, (t, ev.event_id), clock - r.keep_emails, r.max_facts)
        if new is None:
            return None
        ch.new.emails = new
        ch.changed = True
        ch.append_fatigue(st, (t, ev.event_id, EMAIL_SENT, r.w.email))
    elif action in ("unsubscribed", "spam_complaint"):
        ch.irritate(t, ev.event_id, LABEL["email_" + action])
    return ch.commit(st, ev.event_id, t)


def donation_facts(
    st: SupporterState, ev: DonationChange, t: int, r: Rules
) -> SupporterState | None:
    """Facts of a donation change: the mandate's status, a downgrade, a loyal churn."""
    action = DONATION_ACTION[ev.action]
    if action == ONE_OFF:
        return None
    clock = max(st.clock, t)
    ch = _Change(st, clock, r)
    eid = ev.event_id
    frequency = FREQUENCY[ev.frequency]
    started = int(ev.mandate_started_at.timestamp())
    loyal_from = add_months(started, r.tenure_months)
    status = (t, eid, ev.mandate_id, action, frequency, ev.amount_cents_after, loyal_from)
    new = insert(st.mandates, status, _FOREVER, r.max_mandates, group=2)
    if new is None:
        return None
    ch.new.mandates = new
    ch.changed = True
    before, after = ev.amount_cents_before, ev.amount_cents_after
    downgrade = action == DOWNGRADED and after < before
    if downgrade:
        ch.irritate(t, eid, LABEL["downgraded"])
    churn = action in CHURN_ACTIONS or downgrade
    if churn and frequency == MONTHLY and before > 0 and loyal_from <= t:
        fact = (t, eid, ev.mandate_id, action, frequency, before, after, ev.currency, started, 0)
        kept = insert(st.churns, fact, clock - r.keep_calls, r.max_facts)
        if kept is not None:
            ch.new.churns = kept
    return ch.commit(st, eid, t)
