"""The two alert kinds: ``churn_after_contact`` and ``call_while_suppressed``.

Modelling choices:

* ``alert_id`` is the first 32 hex characters of sha256 over
  ``"{kind}|{supporter_id}|{event_id}"``: the churn's event id for ``churn_after_contact``
  (one alert per churn), the call's for ``call_while_suppressed`` (one per call). A replay or
  a redelivery gives the same id.
* Churn after contact: the churn (``cancelled``, ``paused``, ``reversed``, or ``downgraded``
  to a lower amount) of a donor loyal *by the churn event itself* (monthly, amount before
  > 0, tenure >= the policy's months at the churn), at most ``window_days`` after a reached
  outbound call (any purpose, the call at or before the churn). ``contact`` is the last such
  call known when the alert is raised. Churns of loyal donors are remembered as long as
  calls are, so a call that arrives after the churn still raises the alert; each churn
  alerts once. If several qualifying calls exist and the later one arrives after the
  alert, the alert keeps the call known then: the *set* of alert ids does not depend on
  arrival order (but see the next point), the ``contact`` can.
* One lost mandate, one alert: a churn counts only if no other remembered churn of the same
  mandate lies within ``window_days`` before it (in ``(t, event_id)`` order), so
  ``paused`` → ``cancelled`` → ``reversed`` alerts once, for the ``paused``. This is judged
  on the set of churns known when the alert would be raised, and alerts are never
  retracted: an earlier churn that arrives late cannot withdraw an alert already raised
  for a later churn of its run. In time order, or with the whole run known before its
  contact, a run raises at most one alert.
* ``monthly_amount_lost_cents``: ``amount_cents_before`` for cancelled, paused and reversed;
  ``before - after`` for a downgrade; quarterly amounts are divided by 3 and yearly by 12
  (rounded to whole cents). ``tenure_months``: whole calendar months from
  ``mandate_started_at`` to the churn.
* Call while suppressed: an outbound marketing call judged on the facts strictly before its
  ``occurred_at`` (:func:`relmon.domain.decide.evaluate` with ``strict=True``). A call not
  suppressed when it arrives is judged again whenever a fact from before it arrives later;
  alerts are never retracted. The scores ``*_at_contact`` are those before the call.
"""

from __future__ import annotations

import hashlib

from relmon.domain.decide import Decision, ReasonTuple, evaluate
from relmon.domain.facts import (
    ALERTED,
    ATTEMPTS,
    CHANNELS,
    DAY,
    DONATION_ACTIONS,
    FREQUENCIES,
    MARKETING,
    OUTCOMES,
    PURPOSES,
    Call,
    Churn,
)
from relmon.domain.legal_basis import lapsed_detail
from relmon.domain.loyalty import monthly_amount_lost
from relmon.domain.outputs import Alert, Contact, Donation, Reason, construct
from relmon.domain.rules import Rules, utc, whole_months
from relmon.domain.state import SupporterState


def alert_id(kind: str, supporter_id: str, event_id: str) -> str:
    """The deterministic id of an alert."""
    return hashlib.sha256(f"{kind}|{supporter_id}|{event_id}".encode()).hexdigest()[:32]


def reasons_of(st: SupporterState, r: Rules, d: Decision) -> list[Reason]:
    """The output form of a decision's reasons.

    A reason is fully named by (code, until, ref): event ids are unique, so the detail a ref
    leads to never changes. Reason objects are immutable, so they are shared through a
    bounded cache (records repeat most reasons of the record before them).
    """
    cache = r.reason_cache
    out = []
    for reason in d.reasons:
        made = cache.get(reason)
        if made is None:
            if len(cache) >= 100_000:
                cache.clear()
            until = reason[1]
            made = cache[reason] = construct(
                Reason,
                code=reason[0],
                until=None if until is None else utc(until),
                detail=detail(st, r, reason),
            )
        out.append(made)
    return out


def detail(st: SupporterState, r: Rules, reason: ReasonTuple) -> str:
    """The human-readable detail of a reason."""
    code, _until, ref = reason
    if code in ("OPTED_OUT", "OBJECTION"):
        channel = next((CHANNELS[f.channel] for f in st.consents if f.eid == ref), "?")
        action = "opt_out" if code == "OPTED_OUT" else "objection"
        return f"{action} on {channel} (event {ref})"
    if code == "CONTACT_CAP":
        days = r.cap_window // 86_400
        return f"{r.cap_calls} or more outbound calls in {days} days (until event {ref} leaves)"
    if code == "FATIGUE":
        return r.fatigue_detail
    if code == "IRRITATION_RISK":
        return r.irritation_detail_loyal if ref else r.irritation_detail
    if code == "RELATIONSHIP_LAPSED":
        return lapsed_detail(r, ref)
    return f"{_DETAILS[code]} (event {ref})"


_DETAILS = {
    "DO_NOT_CALL_REQUEST": "asked not to be called",
    "COMPLAINT": "complaint on a call",
    "DECIDING_IN_OWN_TIME": "asked for time to decide (info_requested)",
    "RECENT_UPGRADE": "converted on a call",
    "MIN_GAP": "reached on a marketing call",
}


def judge_calls(st: SupporterState, r: Rules, after: int) -> list[Alert]:
    """Judge again the marketing calls later than ``after`` that have raised no alert.

    Marks the alerted calls on ``st`` (a fresh copy owned by the caller).
    """
    alerts: list[Alert] = []
    for call in st.calls:
        if call.t <= after or call.purpose not in MARKETING or call.flags & ALERTED:
            continue
        d = evaluate(st, r, call.t, strict=True)
        if d.suppressed:
            alerts.append(call_alert(st, r, call.eid, d))
    return alerts


def call_alert(st: SupporterState, r: Rules, call_event_id: str, d: Decision) -> Alert:
    """The call_while_suppressed alert for a call on ``st`` judged ``d``; marks the call."""
    calls = st.calls = st.calls.copy()
    i = next(i for i in range(len(calls) - 1, -1, -1) if calls[i].eid == call_event_id)
    call = calls[i]
    calls[i] = call._replace(flags=call.flags | ALERTED)
    return construct(
        Alert,
        alert_id=alert_id("call_while_suppressed", st.supporter_id, call.eid),
        kind="call_while_suppressed",
        supporter_id=st.supporter_id,
        occurred_at=utc(call.t),
        donation=None,
        contact=_contact(call, None),
        irritation_risk_at_contact=d.irritation,
        fatigue_at_contact=d.fatigue,
        reasons=reasons_of(st, r, d),
        policy_version=r.version,
        cause_event_id=call.eid,
        window=None,
    )


def link_churns(st: SupporterState, r: Rules) -> list[Alert]:
    """Alerts for remembered churns not yet alerted that now have a qualifying contact."""
    alerts: list[Alert] = []
    churns = st.churns
    window = r.churn_window
    for i, churn in enumerate(churns):
        if churn.alerted or _continues_a_run(churns, i, window):
            continue
        contact = _last_reached_call(st.calls, churn.t - r.churn_window, churn.t)
        if contact is None:
            continue
        if churns is st.churns:
            churns = st.churns = churns.copy()
        churns[i] = churn._replace(alerted=1)
        alerts.append(_churn_alert(st, r, churn, contact))
    return alerts


def _continues_a_run(churns: list[Churn], i: int, window: int) -> bool:
    """Whether an earlier churn of the same mandate lies within ``window`` before churn ``i``.

    ``churns`` is sorted by ``(t, event_id)``, so "earlier" is that order (ties included).
    """
    t, mandate_id = churns[i].t, churns[i].mandate_id
    for j in range(i - 1, -1, -1):
        other = churns[j]
        if other.t < t - window:
            return False
        if other.mandate_id == mandate_id:
            return True
    return False


def _last_reached_call(calls: list[Call], lo: int, hi: int) -> Call | None:
    for call in reversed(calls):
        t = call.t
        if t < lo:
            return None
        if t <= hi and call.outcome not in ATTEMPTS:
            return call
    return None


def _churn_alert(st: SupporterState, r: Rules, churn: Churn, call: Call) -> Alert:
    t, eid, mandate_id, action, frequency, before, after, currency, started, _ = churn
    d = evaluate(st, r, call.t, strict=True)
    return construct(
        Alert,
        alert_id=alert_id("churn_after_contact", st.supporter_id, eid),
        kind="churn_after_contact",
        supporter_id=st.supporter_id,
        occurred_at=utc(t),
        donation=construct(
            Donation,
            mandate_id=mandate_id,
            action=DONATION_ACTIONS[action],
            frequency=FREQUENCIES[frequency],
            amount_cents_before=before,
            amount_cents_after=after,
            currency=currency,
            monthly_amount_lost_cents=monthly_amount_lost(
                DONATION_ACTIONS[action], FREQUENCIES[frequency], before, after
            ),
            tenure_months=whole_months(started, t),
        ),
        contact=_contact(call, (t - call.t) // DAY),
        irritation_risk_at_contact=d.irritation,
        fatigue_at_contact=d.fatigue,
        reasons=[],
        policy_version=r.version,
        cause_event_id=eid,
        window=None,
    )


def _contact(call: Call, days_before_churn: int | None) -> Contact:
    return construct(
        Contact,
        call_id=call.call_id,
        campaign_id=call.campaign_id,
        campaign_purpose=PURPOSES[call.purpose],
        partner_id=call.partner_id,
        agent_id=call.agent_id,
        outcome=OUTCOMES[call.outcome],
        occurred_at=utc(call.t),
        days_before_churn=days_before_churn,
    )
