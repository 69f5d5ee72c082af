"""The legal basis to call: ``RELATIONSHIP_LAPSED`` when a donorship ended too long ago.

A charity may call a former donor on the relationship basis for a limited term after the
donorship ends (NL: 3 years, policy ``[legal_basis] relationship_term_months``); after that
only an opt-in allows it. Modelling choices:

* The donorship *ended* when every mandate relmon knows of has ``cancelled`` as its latest
  status; it ended at the latest of those cancellations. ``paused`` and ``reversed`` (a
  bank reversal of one gift) are not an end, and a supporter without any mandate status
  never has the reason: relmon must have *seen* the relationship end.
* The reason starts at the end plus the term (whole calendar months, UTC, as the loyalty
  tenure) and has no end (``until`` null): it holds until an ``opt_in`` on ``phone`` or
  ``all`` later than the end, or a new or resumed mandate. An opt-in given before the end
  does not count (the issue's rule: "no phone opt-in since").
* Its start is a change by time alone: :func:`lapse` returns it as a wake time, so the
  engine's expiry (``Engine.expire``, the worker's timer, the replay's lifts) emits the
  record when the term passes, as it does for an ``until``.
* Mandate statuses and consent changes are kept without age limit (see
  :mod:`relmon.domain.update`), so the rule sees years-old ends, and a late cancellation
  or opt-in decides the same as one in time.
* A one-off gift after the end is not seen (relmon keeps no one-off gifts), so it does not
  renew the basis: the reason errs on the side of not calling.
"""

from __future__ import annotations

from relmon.domain.facts import ALL, DONATION_ACTION, OPT_IN, PHONE
from relmon.domain.rules import Rules, add_months
from relmon.domain.state import SupporterState

CANCELLED = DONATION_ACTION["cancelled"]
CODE = "RELATIONSHIP_LAPSED"

# (code, until, ref) as in relmon.domain.decide; ref = the event id of the ending cancellation
LapseReason = tuple[str, None, str]


def lapse(
    st: SupporterState, r: Rules, as_of: int, strict: bool = False
) -> tuple[LapseReason | None, int | None]:
    """The reason in force at ``as_of``, or else the time it will start (a wake), or neither.

    Reads the facts at or before ``as_of`` (before it when ``strict``).
    """
    months = r.lapse_months
    mandates = st.mandates
    if not months or not mandates:
        return None, None
    last = mandates[-1]
    if last.action != CANCELLED and last.t <= as_of and not strict:
        return None, None  # the latest status of some mandate is not a cancellation
    latest: dict[str, tuple[int, str, int]] = {}
    for fact in mandates:
        t = fact.t
        if t > as_of or (t == as_of and strict):
            break
        latest[fact.mandate_id] = (t, fact.eid, fact.action)
    if not latest or any(action != CANCELLED for _t, _e, action in latest.values()):
        return None, None
    ended, eid, _ = max(latest.values())
    for consent in reversed(st.consents):
        t = consent.t
        if t <= ended:
            break
        known = t < as_of or (t == as_of and not strict)
        if known and consent.action == OPT_IN and consent.channel in (PHONE, ALL):
            return None, None
    starts = add_months(ended, months)  # integer arithmetic: no memo needed
    if starts <= as_of:
        return (CODE, None, eid), None
    return None, starts


def lapsed_detail(r: Rules, ref: object) -> str:
    """The reason's human-readable detail."""
    months = r.lapse_months
    term = f"{months // 12} years" if months % 12 == 0 else f"{months} months"
    return (
        f"donorship ended (cancellation, event {ref}) more than {term} ago "
        "and no phone opt-in since: no legal basis to call"
    )
