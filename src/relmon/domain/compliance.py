"""The engine's calling-window hooks: the supporter's zone, and ``call_outside_window``.

Modelling choices:

* **The supporter's zone** is the ``supporter_timezone`` of their latest event that carries
  one (by ``(occurred_at, zone name)``, so the same events give the same zone in any order),
  kept on the state as ``zone``; without one, the policy's ``[calling] zone``.
  :func:`note_zone` is applied to every event; an event that carries only a zone it already
  gave changes nothing (a redelivery stays a duplicate).
* **A call outside the window**: an outbound marketing call (purposes ``upgrade``,
  ``reactivation``, ``acquisition``, ``survey``, ``other``; any outcome, attempts included)
  whose ``occurred_at`` is outside the calling window of its local date
  (:mod:`relmon.domain.calling`), unless its ``trigger`` is one of the policy's
  ``exempt_triggers`` (a call the supporter asked for). It is judged once, when the call is
  kept, in the call's own ``supporter_timezone``, else the zone known for the supporter at
  that moment, else the policy's. It does not depend on any other event, so the set of these
  alerts is the same in any arrival order (unless a zone arrives after the call).
* ``alert_id`` is ``sha256("call_outside_window|{supporter_id}|{call event_id}")`` (as the
  other kinds); ``reasons`` is empty; the scores are those before the call; ``window`` says
  which rule the call's date had, the window it missed, and when calls were next allowed.
"""

from __future__ import annotations

from datetime import datetime

from relmon.domain.alerts import alert_id
from relmon.domain.calling import calendar_for
from relmon.domain.decide import evaluate
from relmon.domain.events import MARKETING_PURPOSES, CallOutcomeEvent
from relmon.domain.outputs import Alert, CallingWindow, Contact, construct
from relmon.domain.rules import Rules, utc
from relmon.domain.state import SupporterState

KIND = "call_outside_window"


def note_zone(
    st: SupporterState, nst: SupporterState | None, zone: str | None, t: int
) -> SupporterState | None:
    """``nst`` (or a copy of ``st`` when None) with the zone noted, if it is newer."""
    if zone is None:
        return nst
    fact = (t, zone)
    current = st.zone
    if current is not None and (current[0], current[1]) >= fact:
        return nst
    new = nst if nst is not None else st.copy()
    new.zone = fact
    return new


def supporter_zone(st: SupporterState | None) -> str | None:
    """The supporter's zone from their events, or None (the policy's applies)."""
    return None if st is None or st.zone is None else st.zone[1]


def outside_window_alerts(
    st: SupporterState, nst: SupporterState, r: Rules, ev: CallOutcomeEvent, t: int
) -> list[Alert]:
    """``call_outside_window`` for a new outbound call kept on ``nst`` (see the docstring)."""
    if ev.campaign_purpose not in MARKETING_PURPOSES:
        return []
    cal = calendar_for(r.policy)
    if ev.trigger is not None and ev.trigger in cal.exempt_triggers:
        return []
    zone = ev.supporter_timezone or supporter_zone(st)
    if cal.inside(zone, t):
        return []
    tz = cal.tz(zone)
    day = cal.day(zone, cal.local_date(zone, t))
    nxt = cal.next_call_at(zone, t)
    d = evaluate(nst, r, t, strict=True)
    window = construct(
        CallingWindow,
        zone=zone or cal.zone,
        local_time=datetime.fromtimestamp(t, tz).isoformat(),
        day=day.kind,
        detail=day.detail,
        opens=None if day.opens is None else f"{day.opens:%H:%M}",
        closes=None if day.closes is None else f"{day.closes:%H:%M}",
        next_opens_at=None if nxt is None else utc(nxt),
    )
    contact = construct(
        Contact,
        call_id=ev.call_id,
        campaign_id=ev.campaign_id,
        campaign_purpose=ev.campaign_purpose,
        partner_id=ev.partner_id,
        agent_id=ev.agent_id,
        outcome=ev.outcome,
        occurred_at=utc(t),
        days_before_churn=None,
    )
    return [
        construct(
            Alert,
            alert_id=alert_id(KIND, st.supporter_id, ev.event_id),
            kind=KIND,
            supporter_id=st.supporter_id,
            occurred_at=utc(t),
            donation=None,
            contact=contact,
            irritation_risk_at_contact=d.irritation,
            fatigue_at_contact=d.fatigue,
            reasons=[],
            policy_version=r.version,
            cause_event_id=ev.event_id,
            window=window,
        )
    ]
