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

Late events (the contract's "apply however late they arrive"). *Applying* an event means
judging each fact it leaves by the same rule as if it had come in time, each fact list
keeping or refusing its own fact by its own retention and cap; it is never all or nothing:

* consent changes (any action, any channel), ``do_not_call`` markers (either direction) and
  mandate statuses are kept without age limit, bounded only by their caps (16, 4, 16), which
  drop superseded facts first: they apply however late they arrive;
* ``complaint`` and ``converted`` markers are kept for their reason's days plus the grace,
  so the reason holds for its days counted from the event's own ``occurred_at``: a
  complaint 100 days late suppresses for 80 more days; one 200 days late has ended, its
  marker is refused (it could not change a decision), but its irritation contribution
  (kept about 313 days) is added, so the event counts as applied and a redelivery of it is
  a duplicate. A ``converted`` 200 days late has no irritation to leave: it keeps no fact
  and is reported late (it has been judged, and its reason is over);
* an outbound call too old for the call facts (about 64 days) still leaves its marker and
  irritation; a consent change or mandate status refused by its cap still leaves its
  irritation, and a mandate's status its loyal churn.

An event none of whose facts is kept changes nothing; :func:`late_reason` says why, and
the engine returns that as ``Outcome.late``.
"""

from __future__ import annotations

import bisect
from typing import Final, TypeVar

from relmon.domain.events import (
    CallOutcomeEvent,
    ConsentChangeEvent,
    DonationChangeEvent,
    EmailEngagementEvent,
    Event,
)
from relmon.domain.facts import (
    ALL,
    ATTEMPTS,
    CHANNEL,
    CONSENT_ACTION,
    DAY,
    DINNER,
    DO_NOT_CALL,
    DONATION_ACTION,
    FREQUENCY,
    INFO_REQUESTED,
    LABEL,
    MARKER_OUTCOMES,
    MARKETING,
    OPT_IN,
    OUTCOME,
    PHONE,
    PURPOSE,
    Call,
    Churn,
    Consent,
    Contribution,
    Fact,
    MandateStatus,
    Stamp,
    precedes,
)
from relmon.domain.loyalty import is_downgrade, is_loyal_churn, loyal_from
from relmon.domain.rules import Rules, utc
from relmon.domain.scoring import EMAIL_SENT, call_item, carry_fatigue
from relmon.domain.state import SupporterState

F = TypeVar("F", bound=Fact)
# builds a named tuple from a tuple without the Python-level constructor (a quarter of a
# microsecond less per fact): for the facts made for almost every event
# Final: compiled, a module constant read in the handlers is a C static, not a look-up in
# the module's dict (about 150 instructions each time)
_new: Final = tuple.__new__
_STAMP: Final = Stamp
_CONTRIBUTION: Final = Contribution
_CALL: Final = Call
_MANDATE_STATUS: Final = MandateStatus
_CHURN: Final = Churn
_BY_LABEL: Final = 3  # contributions are told apart by (t, eid, label)
_BY_CHANNEL: Final = Consent._fields.index("channel")  # consents are superseded per channel
_BY_MANDATE: Final = MandateStatus._fields.index("mandate_id")  # statuses per mandate
ONE_OFF: Final = DONATION_ACTION["one_off"]
CHASED: Final = LABEL["chased_decision"]
DINNER_CALL_REACHED: Final = LABEL["dinner_call_reached"]
NEGATIVE_SENTIMENT: Final = LABEL["negative_sentiment"]
_FOREVER: Final = -(1 << 61)  # before any time (a short int: compiled, compared unboxed)
_EMAIL_FACT_ACTIONS: Final = frozenset({"sent", "unsubscribed", "spam_complaint"})
_OUTCOME_LABELS: Final = {
    OUTCOME[o]: LABEL[o] for o in ("complaint", "do_not_call", "hung_up", "declined")
}


def insert(
    facts: list[F], fact: F, keep_from: int, cap: int, width: int = 2, group: int = -1
) -> list[F] | None:
    """A new sorted list with ``fact`` added, or None if it is already there or too old.

    Over ``cap`` the oldest facts go, or with ``group`` (the index of a key such as the
    consent channel or the mandate id) see :func:`trim`. None also when ``fact`` itself
    is the one that would go. Facts are told apart by their first ``width`` fields
    (``(t, eid)``, or ``(t, eid, label)`` for contributions).
    """
    if fact[0] < keep_from:
        return None
    if not facts or precedes(facts[-1], fact, width):  # after every other: the common case
        new = [*facts, fact]
    else:
        key = fact[:width]
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


def trim(facts: list[F], cap: int, group: int) -> list[F]:
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
    given), so the caches derived from a list, keyed by its identity, are renewed by
    their owners when next read; :meth:`commit` hands the fatigue items on when a call or
    e-mail only extends them. One copy is made per event, not two.
    """

    __slots__ = ("changed", "clock", "fatigue_item", "new", "rules")

    def __init__(self, st: SupporterState, clock: int, rules: Rules) -> None:
        self.rules = rules
        self.clock = clock
        self.changed = False
        self.new = st.copy()
        # the fatigue contribution of a call or e-mail that goes after every other one
        self.fatigue_item: Contribution | None = None

    def irritate(self, t: int, eid: str, label: int, weight: float | None = None) -> None:
        r = self.rules
        if weight is None:
            weight = r.irritation_weights[label]
        if weight > 0.0:
            nst = self.new
            keep = self.clock - r.keep_irritation
            fact = _new(_CONTRIBUTION, (t, eid, label, weight))
            new = insert(nst.irritation, fact, keep, r.max_facts, _BY_LABEL)
            if new is not None:
                nst.irritation = new
                self.changed = True

    def commit(self, st: SupporterState, eid: str, t: int) -> SupporterState | None:
        if not self.changed:
            return None
        nst = self.new
        if nst.calls is not st.calls or nst.emails is not st.emails:
            carry_fatigue(st, nst, self.fatigue_item)
        nst.add_event_id(eid)
        prune_at = t + self.rules.min_keep
        if prune_at < nst.prune_at:
            nst.prune_at = prune_at
        return nst


def call_facts(st: SupporterState, ev: CallOutcomeEvent, t: int, r: Rules) -> SupporterState | None:
    """Facts of a call outcome."""
    clock = max(st.clock, t)
    ch = _Change(st, clock, r)
    eid = ev.event_id
    outcome = OUTCOME[ev.outcome]
    purpose = PURPOSE[ev.campaign_purpose]
    if ev.direction == "outbound":
        flags = DINNER if r.w.is_dinner_time(t) else 0
        cid, campaign, partner, agent = ev.call_id, ev.campaign_id, ev.partner_id, ev.agent_id
        call = _new(_CALL, (t, eid, cid, campaign, purpose, partner, agent, outcome, flags))
        new = insert(st.calls, call, clock - r.keep_calls, r.max_facts)
        if new is not None:
            ch.new.calls = new
            ch.changed = True
            if new[-1] is call and (len(new) == 1 or new[-2].t < t):
                ch.fatigue_item = call_item(new, len(new) - 1, r.w)
        # a call too old to keep still leaves what outlives call facts: its irritation and
        # its marker (a do_not_call, a complaint), as it would had it come in time
        if flags and outcome not in ATTEMPTS:
            ch.irritate(t, eid, DINNER_CALL_REACHED)
        if purpose in MARKETING:
            for info in st.markers[INFO_REQUESTED]:
                if info.t < t <= info.t + r.deciding:
                    ch.irritate(t, eid, CHASED)
                    break
    label = _OUTCOME_LABELS.get(outcome)
    if label is not None:
        ch.irritate(t, eid, label)
    sentiment = ev.sentiment
    if sentiment is not None and sentiment < 0.0:
        ch.irritate(
            t, eid, NEGATIVE_SENTIMENT, -sentiment * r.irritation_weights[NEGATIVE_SENTIMENT]
        )
    kind = MARKER_OUTCOMES.get(outcome)
    if kind is not None:
        if kind == DO_NOT_CALL:
            keep, cap = _FOREVER, r.max_do_not_call
        else:
            keep, cap = clock - r.keep_markers[kind], r.max_facts
        marked = insert(st.markers[kind], _new(_STAMP, (t, eid)), keep, cap)
        if marked is not None:
            ch.new.markers = tuple(marked if i == kind else m for i, m in enumerate(st.markers))
            ch.changed = True
            if kind == INFO_REQUESTED:
                for c in ch.new.calls:
                    if t < c.t <= t + r.deciding and c.purpose in MARKETING:
                        ch.irritate(c.t, c.eid, CHASED)
    return ch.commit(st, eid, t)


def consent_facts(
    st: SupporterState, ev: ConsentChangeEvent, t: int, r: Rules
) -> SupporterState | None:
    """Facts of a consent change."""
    ch = _Change(st, max(st.clock, t), r)
    channel, action = CHANNEL[ev.channel], CONSENT_ACTION[ev.action]
    fact = Consent(t, ev.event_id, channel, action)
    new = insert(st.consents, fact, _FOREVER, r.max_consents, group=_BY_CHANNEL)
    if new is not None:  # None: superseded on its channel, over the cap; its irritation stays
        ch.new.consents = new
        ch.changed = True
    if action != OPT_IN and channel not in (PHONE, ALL):
        ch.irritate(t, ev.event_id, LABEL["opt_out_other_channel"])
    return ch.commit(st, ev.event_id, t)


def email_facts(
    st: SupporterState, ev: EmailEngagementEvent, t: int, r: Rules
) -> SupporterState | None:
    """Facts of an e-mail engagement (most actions leave none)."""
    action = ev.action
    if action not in _EMAIL_FACT_ACTIONS:
        return None
    clock = max(st.clock, t)
    ch = _Change(st, clock, r)
    eid = ev.event_id  # once: an event's attribute is a look-up by name
    if action == "sent":
        sent = _new(_STAMP, (t, eid))
        new = insert(st.emails, sent, clock - r.keep_emails, r.max_facts)
        if new is None:
            return None
        ch.new.emails = new
        ch.changed = True
        ch.fatigue_item = _new(_CONTRIBUTION, (t, eid, EMAIL_SENT, r.w.email))
    elif action in ("unsubscribed", "spam_complaint"):
        ch.irritate(t, eid, LABEL["email_" + action])
    return ch.commit(st, eid, t)


def donation_facts(
    st: SupporterState, ev: DonationChangeEvent, t: int, r: Rules
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
    loyal_at = loyal_from(started, r.tenure_months)
    amount = ev.amount_cents_after
    mandate_id = ev.mandate_id
    status = _new(_MANDATE_STATUS, (t, eid, mandate_id, action, frequency, amount, loyal_at))
    new = insert(st.mandates, status, _FOREVER, r.max_mandates, group=_BY_MANDATE)
    if new is not None:  # None: superseded for its mandate, over the cap; the rest stays
        ch.new.mandates = new
        ch.changed = True
    before, after = ev.amount_cents_before, ev.amount_cents_after
    if is_downgrade(ev):
        ch.irritate(t, eid, LABEL["downgraded"])
    if is_loyal_churn(ev, t, loyal_at):
        churn = _new(
            _CHURN, (t, eid, mandate_id, action, frequency, before, after, ev.currency, started, 0)
        )
        kept = insert(st.churns, churn, clock - r.keep_calls, r.max_facts)
        if kept is not None:
            ch.new.churns = kept
            ch.changed = True
    return ch.commit(st, eid, t)


# -- why an event left no fact -------------------------------------------------------------

# (what the list holds, seconds it is kept or None for ever, cap, whether superseded go first)
_Kept = tuple[str, int | None, int, bool]
_MARKER_NAMES = ("complaint markers", "info_requested markers", "converted markers")


def late_reason(st: SupporterState, ev: Event, t: int, r: Rules) -> str | None:
    """Why an event at ``t``, not after the clock, left no fact: None if it never would.

    The engine calls this only when a handler returned None for an event that is not a
    duplicate and not later than ``st.clock`` (a rare path), so it may take its time. It
    lists the fact lists the event would have added to in time (mirroring the handlers
    above) and says, for each, whether the fact was older than the list's retention or
    older than every fact kept under the list's cap.
    """
    lists = _would_keep(st, ev, t, r)
    if not lists:
        return None
    age = st.clock - t
    why = []
    for what, keep, cap, grouped in sorted(lists, key=lambda k: -1 if k[1] is None else k[1]):
        if keep is not None and age > keep:
            why.append(f"{what} are kept {_days(keep)}")
        else:
            gone = "superseded ones first, then the oldest" if grouped else "the oldest"
            why.append(f"{what} are kept up to {cap} ({gone} go) and it is not among them")
    listed = why[0] if len(why) == 1 else ", ".join(why[:-1]) + " and " + why[-1]
    return (
        f"occurred_at {_stamp(t)} is {_days(age)} before this supporter's latest time "
        f"{_stamp(st.clock)}; {listed}, so it can no longer change a decision"
    )


def _would_keep(st: SupporterState, ev: Event, t: int, r: Rules) -> list[_Kept]:
    """The fact lists the handlers add ``ev`` to (when in time), as :data:`_Kept`."""
    irritation: _Kept = ("irritation contributions", r.keep_irritation, r.max_facts, False)
    weights = r.irritation_weights
    out: list[_Kept] = []
    irritates = False
    if ev.type == "call_outcome":
        outcome, purpose = OUTCOME[ev.outcome], PURPOSE[ev.campaign_purpose]
        if ev.direction == "outbound":
            out.append(("call facts", r.keep_calls, r.max_facts, False))
            if outcome not in ATTEMPTS and r.w.is_dinner_time(t):
                irritates |= weights[DINNER_CALL_REACHED] > 0.0
            if purpose in MARKETING and any(
                ti < t <= ti + r.deciding for ti, _ in st.markers[INFO_REQUESTED]
            ):
                irritates |= weights[CHASED] > 0.0
        label = _OUTCOME_LABELS.get(outcome)
        irritates |= label is not None and weights[label] > 0.0
        negative = ev.sentiment is not None and ev.sentiment < 0.0
        irritates |= negative and weights[NEGATIVE_SENTIMENT] > 0.0
        kind = MARKER_OUTCOMES.get(outcome)
        if kind == DO_NOT_CALL:
            out.append(("do_not_call requests", None, r.max_do_not_call, False))
        elif kind is not None:
            out.append((_MARKER_NAMES[kind], r.keep_markers[kind], r.max_facts, False))
    elif ev.type == "consent_change":
        out.append(("consent changes", None, r.max_consents, True))
        channel = CHANNEL[ev.channel]
        if ev.action != "opt_in" and channel not in (PHONE, ALL):
            irritates = weights[LABEL["opt_out_other_channel"]] > 0.0
    elif ev.type == "email_engagement":
        if ev.action == "sent":
            out.append(("e-mails sent", r.keep_emails, r.max_facts, False))
        elif ev.action in ("unsubscribed", "spam_complaint"):
            irritates = weights[LABEL["email_" + ev.action]] > 0.0
    elif ev.type == "donation_change" and ev.action != "one_off":
        out.append(("mandate statuses", None, r.max_mandates, True))
        irritates = is_downgrade(ev) and weights[LABEL["downgraded"]] > 0.0
        started = int(ev.mandate_started_at.timestamp())
        if is_loyal_churn(ev, t, loyal_from(started, r.tenure_months)):
            out.append(("churns of loyal donors", r.keep_calls, r.max_facts, False))
    if irritates:
        out.append(irritation)
    return out


def _days(seconds: int) -> str:
    if seconds < DAY // 10:
        return f"{seconds} seconds"
    days = f"{seconds / DAY:.1f}".removesuffix(".0")
    return "1 day" if days == "1" else f"{days} days"


def _stamp(t: int) -> str:
    return utc(t).isoformat().replace("+00:00", "Z")
