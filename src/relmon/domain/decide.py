"""The decision at a moment: every reason in force, its ``until``, and the scores.

:func:`evaluate` is a pure function of (facts, ``as_of``). With ``strict=True`` it leaves
out facts at ``as_of`` itself: that is how a call is judged "on the events before it".

Modelling choices:

* A reason is in force while ``as_of < until``; reasons are listed in the contract's order.
* Consent per channel is read in ``(t, event_id)`` order: ``opt_out`` on ``phone`` or ``all``
  gives ``OPTED_OUT`` until an ``opt_in`` on ``phone`` or ``all``; ``objection`` on any channel
  gives ``OBJECTION`` until an ``opt_in`` on that channel or on ``all``. ``do_not_call`` holds
  until an ``opt_in`` on ``phone`` or ``all`` after it. The reason's detail names the event
  that started it, so a repeated opt-out does not make a new record.
* ``CONTACT_CAP``: the outbound calls in ``(as_of - window, as_of]``; with ``n >= cap`` it
  lasts until the ``cap``-th most recent one leaves the window.
* ``FATIGUE`` / ``IRRITATION_RISK``: the closed-form time the decaying score falls below the
  threshold (:mod:`relmon.domain.scoring`). The loyal threshold applies when the supporter
  is loyal at ``as_of``.
* ``wake`` is the earliest time at which the decision changes by time alone: the earliest
  ``until``, or the moment a mandate's tenure makes the donor loyal if the irritation risk
  would then be at or above the loyal threshold, or the moment ``RELATIONSHIP_LAPSED``
  starts (:mod:`relmon.domain.legal_basis`; listed after the consent reasons, which have
  no end either).
"""

from __future__ import annotations

import math
from typing import Final

from relmon.domain.facts import (
    ALL,
    ATTEMPTS,
    DO_NOT_CALL,
    MARKETING,
    OBJECTION,
    OPT_IN,
    OPT_OUT,
    PHONE,
    Consent,
    MandateStatus,
    Stamp,
)
from relmon.domain.legal_basis import lapse
from relmon.domain.loyalty import is_active
from relmon.domain.rules import Rules
from relmon.domain.scoring import decayed_sum_before, fatigue_items, fatigue_sum, irritation_sum
from relmon.domain.state import SupporterState

# math.log2 held in a Final name: compiled, a C static, not the math module's attribute looked
# up by name on every decision (mypyc has no native log2)
_log2: Final = math.log2

# (code, until, ref): ``ref`` (the event id behind the reason, a count, or the loyal flag)
# says what the human-readable detail is about; :func:`detail` writes the text on emission.
ReasonTuple = tuple[str, int | None, str | int]


class Decision:
    """A decision at one time: suppressed, its reasons and end, the scores, and ``wake``
    (when time alone can change it). A plain class (compiled, a native object); equal when
    every field is."""

    __slots__ = ("fatigue", "irritation", "loyal", "reasons", "suppressed", "until", "wake")

    def __init__(
        self,
        suppressed: bool,
        reasons: tuple[ReasonTuple, ...],
        until: int | None,
        fatigue: float,
        irritation: float,
        loyal: bool,
        wake: int | None,
    ) -> None:
        self.suppressed = suppressed
        self.reasons = reasons
        self.until = until
        self.fatigue = fatigue
        self.irritation = irritation
        self.loyal = loyal
        self.wake = wake

    def fields(self) -> tuple[object, ...]:
        return (
            self.suppressed,
            self.reasons,
            self.until,
            self.fatigue,
            self.irritation,
            self.loyal,
            self.wake,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Decision{self.fields()!r}"


def evaluate(st: SupporterState, r: Rules, as_of: int, strict: bool = False) -> Decision:
    """The decision at ``as_of`` from the facts (before ``as_of`` when ``strict``).

    At or after the state's clock (every fact counts: no fact is later than the clock) it
    takes :func:`_evaluate_now`, which uses the caches kept on the state; otherwise (or for
    a check) :func:`evaluate_scan`.
    """
    if not strict and as_of >= st.clock:
        return _evaluate_now(st, r, as_of)
    return evaluate_scan(st, r, as_of, strict)


def evaluate_scan(st: SupporterState, r: Rules, as_of: int, strict: bool = False) -> Decision:
    """The reference path of :func:`evaluate`: every fact read, no cached fold or reasons.

    At or after the clock the cached path must give the same decision, floats bit for bit
    (``tests/unit/test_evaluation_paths.py`` checks it).
    """
    reasons: list[ReasonTuple] = []
    markers = st.markers
    if st.consents or markers[DO_NOT_CALL]:
        reasons.extend(_consent_reasons(st, as_of, strict))
    for kind, code, duration in r.timed_markers:
        facts = markers[kind]
        if facts:
            for fact in reversed(facts):
                t = fact.t
                if t < as_of or (t == as_of and not strict):
                    if t + duration > as_of:
                        reasons.append((code, t + duration, fact.eid))
                    break
    if st.calls:
        _call_reasons(st, r, as_of, strict, reasons)
    w = r.w
    f_acc, f_ref = decayed_sum_before(fatigue_items(st, w), as_of, strict, w.f_k, w.f_horizon)
    i_acc, i_ref = decayed_sum_before(st.irritation, as_of, strict, w.i_k, w.i_horizon)
    loyal, onset = (False, None) if not st.mandates else _loyalty(st, as_of, strict)
    if not st.mandates:
        return _decide(r, reasons, as_of, f_acc, f_ref, i_acc, i_ref, loyal, onset)
    return _with_lapse(st, r, as_of, strict, reasons, f_acc, f_ref, i_acc, i_ref, loyal, onset)


def _evaluate_now(st: SupporterState, r: Rules, as_of: int) -> Decision:
    """:func:`evaluate` at or after the clock: every fact is at or before ``as_of``.

    That makes each part cheap: the consent reasons and the loyalty onset do not depend on
    ``as_of`` (cached on the state), the latest marker of a kind is the last one, the calls
    in the CONTACT_CAP window are a suffix of the sorted calls, and the score sums extend
    the folds cached on the state. The result equals the general path's, bit for bit.
    """
    reasons: list[ReasonTuple] = []
    markers = st.markers
    if st.consents or markers[DO_NOT_CALL]:
        consent = _consent_now(st, as_of)
        if consent:
            reasons.extend(consent)
    for kind, code, duration in r.timed_markers:
        facts = markers[kind]
        if facts:
            fact = facts[-1]
            until = fact.t + duration
            if until > as_of:
                reasons.append((code, until, fact.eid))
    calls = st.calls
    if calls:
        cap = r.cap_calls
        if len(calls) >= cap:
            # the calls in (as_of - window, as_of] are a suffix: the cap-th most recent
            # call counts only if all the later ones do
            c = calls[-cap]
            if c.t > as_of - r.cap_window:
                reasons.append(("CONTACT_CAP", c.t + r.cap_window, c.eid))
        min_gap = r.min_gap
        for call in reversed(calls):
            t = call.t
            if t + min_gap <= as_of:
                break
            if call.purpose in MARKETING and call.outcome not in ATTEMPTS:
                reasons.append(("MIN_GAP", t + min_gap, call.eid))
                break
    w = r.w
    f_acc, f_ref = fatigue_sum(st, as_of, w)
    i_acc, i_ref = irritation_sum(st, as_of, w)
    if not st.mandates:
        loyal, onset = False, None
    else:
        since = loyal_since(st)
        loyal = since is not None and since <= as_of
        onset = since if since is not None and since > as_of else None
        return _with_lapse(st, r, as_of, False, reasons, f_acc, f_ref, i_acc, i_ref, loyal, onset)
    return _decide(r, reasons, as_of, f_acc, f_ref, i_acc, i_ref, loyal, onset)


def keeps_decision_with_more_fatigue(
    st: SupporterState, prev: SupporterState, r: Rules, as_of: int
) -> bool:
    """Whether the decision at ``as_of`` (at or after ``prev.clock``) is ``prev``'s, for a
    state ``st`` that only adds fatigue contributions to ``prev`` (an e-mail sent).

    ``prev``'s decision holds until its ``wake`` (no reason ends before it), except what
    time alone changes between evaluations: a score's ``until`` moves when an old
    contribution leaves the horizon, and so does the loyalty onset's weight. So the answer is
    True only when ``prev`` has no score reason and no loyalty onset ahead, and the new
    fatigue does not reach the threshold at ``as_of``: then a full evaluation would give
    ``prev``'s decision and wake exactly. The fold is kept on ``st``, so a full
    :func:`evaluate` after a False answer sums exactly the same way.
    """
    if prev.wake is not None and as_of >= prev.wake:
        return False
    last = prev.last
    if last is not None:
        for code, _until, _ref in last[1]:
            if code == "FATIGUE" or code == "IRRITATION_RISK":
                return False
    if st.mandates:
        since = loyal_since(st)
        if since is not None and prev.clock < since:
            return False
    w = r.w
    f_acc, f_ref = fatigue_sum(st, as_of, w)
    if f_acc > 0.0:
        until = math.ceil(f_ref + w.f_half_life * _log2(f_acc / r.s_fatigue))
        if until > as_of:
            return False
    return True


def _decide(
    r: Rules,
    reasons: list[ReasonTuple],
    as_of: int,
    f_acc: float,
    f_ref: int,
    i_acc: float,
    i_ref: int,
    loyal: bool,
    onset: int | None,
) -> Decision:
    """The score reasons, ``until`` and ``wake``, from the other reasons and the folds."""
    w = r.w
    # the closed form of scoring.falls_below_at, inlined (this runs for every event)
    if f_acc > 0.0:
        until = math.ceil(f_ref + w.f_half_life * _log2(f_acc / r.s_fatigue))
        if until > as_of:
            reasons.append(("FATIGUE", until, 0))
    if i_acc > 0.0:
        s_threshold = r.s_irritation_loyal if loyal else r.s_irritation
        until = math.ceil(i_ref + w.i_half_life * _log2(i_acc / s_threshold))
        if until > as_of:
            reasons.append(("IRRITATION_RISK", until, int(loyal)))
    # an empty sum is exactly 0.0 (0.0 times the finite factor)
    s_fatigue = f_acc * math.exp(w.f_k * (f_ref - as_of)) if f_acc else 0.0
    s_irritation = i_acc * math.exp(w.i_k * (i_ref - as_of)) if i_acc else 0.0
    wake = None
    until_all = None
    if reasons:
        untils = [u for _c, u, _d in reasons if u is not None]
        if untils:
            wake = min(untils)
            if len(untils) == len(reasons):
                until_all = max(untils)
        if onset is not None and s_irritation > 0.0:
            at_onset = s_irritation * math.exp(-w.i_k * (onset - as_of))
            if at_onset >= r.s_irritation_loyal and (wake is None or onset < wake):
                wake = onset
        return Decision(
            True,
            tuple(reasons),
            until_all,
            -math.expm1(-s_fatigue),
            -math.expm1(-s_irritation),
            loyal,
            wake,
        )
    if onset is not None and s_irritation > 0.0:
        at_onset = s_irritation * math.exp(-w.i_k * (onset - as_of))
        if at_onset >= r.s_irritation_loyal:
            wake = onset
    return Decision(
        False, (), None, -math.expm1(-s_fatigue), -math.expm1(-s_irritation), loyal, wake
    )


def _with_lapse(
    st: SupporterState,
    r: Rules,
    as_of: int,
    strict: bool,
    reasons: list[ReasonTuple],
    f_acc: float,
    f_ref: int,
    i_acc: float,
    i_ref: int,
    loyal: bool,
    onset: int | None,
) -> Decision:
    """:func:`_decide` with the legal-basis reason (:mod:`relmon.domain.legal_basis`): its
    reason when in force, its start as a wake when it lies ahead."""
    lapsed, starts = lapse(st, r, as_of, strict)
    if lapsed is not None:  # in the contract's order: after the reasons with no end
        i = 0
        while i < len(reasons) and reasons[i][1] is None:
            i += 1
        reasons.insert(i, lapsed)
    d = _decide(r, reasons, as_of, f_acc, f_ref, i_acc, i_ref, loyal, onset)
    if starts is not None and (d.wake is None or starts < d.wake):
        return Decision(d.suppressed, d.reasons, d.until, d.fatigue, d.irritation, d.loyal, starts)
    return d


def _before(t: int, as_of: int, strict: bool) -> bool:
    return t < as_of or (t == as_of and not strict)


# -- the caches this module owns on a state: ``_consent`` (the consent reasons, which at or
# after the clock do not depend on the time) and ``_loyal`` (when the donor is or becomes
# loyal); each keyed by the identity of the lists it was derived from.


class ConsentCache:
    __slots__ = ("consents", "do_not_call", "reasons")

    def __init__(
        self, consents: list[Consent], do_not_call: list[Stamp], reasons: tuple[ReasonTuple, ...]
    ) -> None:
        self.consents = consents
        self.do_not_call = do_not_call
        self.reasons = reasons


class LoyaltyCache:
    __slots__ = ("mandates", "since")

    def __init__(self, mandates: list[MandateStatus], since: int | None) -> None:
        self.mandates = mandates
        self.since = since


def _consent_now(st: SupporterState, as_of: int) -> tuple[ReasonTuple, ...]:
    """The consent reasons at ``as_of``, at or after every fact (cached on the state: they
    do not depend on the time then)."""
    cached: ConsentCache | None = st._consent
    consents, dnc = st.consents, st.markers[DO_NOT_CALL]
    if cached is None or cached.consents is not consents or cached.do_not_call is not dnc:
        cached = st._consent = ConsentCache(consents, dnc, _consent_reasons(st, as_of, False))
    return cached.reasons


def loyal_since(st: SupporterState) -> int | None:
    """When the donor is (or will be) loyal by the mandates' latest statuses (cached)."""
    cached: LoyaltyCache | None = st._loyal
    if cached is None or cached.mandates is not st.mandates:
        cached = st._loyal = LoyaltyCache(st.mandates, _loyal_since(st))
    return cached.since


def _consent_reasons(st: SupporterState, as_of: int, strict: bool) -> tuple[ReasonTuple, ...]:
    out: list[ReasonTuple] = []
    opted_out: Consent | None = None
    objections: dict[int, Consent] = {}
    last_opt_in: tuple[int, str] | None = None
    for fact in st.consents:
        t, eid, channel, action = fact
        if not _before(t, as_of, strict):
            break
        if action == OPT_IN:
            if channel in (PHONE, ALL):
                opted_out = None
                last_opt_in = (t, eid)
            if channel == ALL:
                objections.clear()
            else:
                objections.pop(channel, None)
        elif action == OPT_OUT:
            if channel in (PHONE, ALL) and opted_out is None:
                opted_out = fact
        elif action == OBJECTION:
            objections.setdefault(channel, fact)
    if opted_out is not None:
        out.append(("OPTED_OUT", None, opted_out.eid))
    if objections:
        out.append(("OBJECTION", None, min(objections.values()).eid))
    for request in st.markers[DO_NOT_CALL]:
        if not _before(request.t, as_of, strict):
            break
        if last_opt_in is None or request > last_opt_in:
            out.append(
                ("DO_NOT_CALL_REQUEST", None, request.eid)
            )  # the first request after an opt-in
            break
    return tuple(out)


def _call_reasons(
    st: SupporterState, r: Rules, as_of: int, strict: bool, out: list[ReasonTuple]
) -> None:
    lo = as_of - r.cap_window
    cap = r.cap_calls
    calls = st.calls
    if len(calls) >= cap:
        counted = [c for c in calls if c.t > lo and (c.t < as_of or (c.t == as_of and not strict))]
        if len(counted) >= cap:
            # ends when the cap-th most recent call leaves the window
            out.append(("CONTACT_CAP", counted[-cap].t + r.cap_window, counted[-cap].eid))
    min_gap = r.min_gap
    for call in reversed(calls):
        t = call.t
        if t > as_of or (t == as_of and strict):
            continue
        if t + min_gap <= as_of:
            break
        if call.purpose in MARKETING and call.outcome not in ATTEMPTS:
            out.append(("MIN_GAP", t + min_gap, call.eid))
            break


def _loyal_since(st: SupporterState) -> int | None:
    """When the donor is (or will be) loyal by the mandates' latest statuses, or None."""
    latest: dict[str, MandateStatus] = {}
    for fact in st.mandates:
        latest[fact.mandate_id] = fact
    since = None
    for status in latest.values():
        if is_active(status) and (since is None or status.loyal_from < since):
            since = status.loyal_from
    return since


def _loyalty(st: SupporterState, as_of: int, strict: bool) -> tuple[bool, int | None]:
    """Loyal at ``as_of``, and when a mandate active then will make the donor loyal."""
    latest: dict[str, MandateStatus] = {}
    for fact in st.mandates:
        t = fact.t
        if t > as_of or (t == as_of and strict):
            break
        latest[fact.mandate_id] = fact
    loyal = False
    onset: int | None = None
    for status in latest.values():
        if is_active(status):
            if status.loyal_from <= as_of:
                return True, None
            if onset is None or status.loyal_from < onset:
                onset = status.loyal_from
    return loyal, onset
