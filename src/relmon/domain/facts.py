"""The facts a supporter's state keeps, and the small integer codes they use.

Facts are named tuples (:class:`typing.NamedTuple`): read by name (``call.outcome``), yet
tuples, so they are cheap to build, compare and serialize (as JSON arrays, in field order).
Every fact starts with ``(t, eid)``: ``t`` is the event time in whole epoch seconds
(fractions dropped). Lists of facts are kept sorted by ``(t, eid)``, the canonical order in
which scores are summed, so the floats do not depend on the order of arrival.

========== ============== =============================================================
list       fact           what
========== ============== =============================================================
calls      :class:`Call`  outbound calls only; ``flags``: ``DINNER`` | ``ALERTED``
irritation :class:`Contribution` one per (event, label), ``label`` an index of ``LABELS``
emails     :class:`Stamp` marketing e-mails sent
markers    :class:`Stamp` in four lists, by kind: complaint, info_requested, converted,
                          do_not_call
consents   :class:`Consent`
mandates   :class:`MandateStatus` the latest statuses of the mandates
churns     :class:`Churn` churns of loyal donors (may still raise an alert)
========== ============== =============================================================

Fatigue contributions (:class:`Contribution` too) are derived from calls and e-mails when
scored, not stored. The order of the fields is part of the serialized state: never change it.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from relmon.domain.events import ATTEMPT_OUTCOMES


class Stamp(NamedTuple):
    """An e-mail sent, or a marker (complaint, info_requested, converted, do_not_call)."""

    t: int
    eid: str


class Call(NamedTuple):
    """An outbound call."""

    t: int
    eid: str
    call_id: str
    campaign_id: str
    purpose: int  # index of PURPOSES
    partner_id: str
    agent_id: str | None
    outcome: int  # index of OUTCOMES
    flags: int  # DINNER | ALERTED (a call_while_suppressed alert was raised for it)


class Contribution(NamedTuple):
    """A weight added to a score at ``t``: irritation (``label`` indexes ``LABELS``) or
    fatigue (``label`` as :func:`relmon.domain.scoring.fatigue_label` reads it)."""

    t: int
    eid: str
    label: int
    weight: float


class Consent(NamedTuple):
    """A consent change."""

    t: int
    eid: str
    channel: int  # index of CHANNELS
    action: int  # OPT_OUT, OBJECTION or OPT_IN


class MandateStatus(NamedTuple):
    """A mandate's status after a donation change (not ``one_off``)."""

    t: int
    eid: str
    mandate_id: str
    action: int  # index of DONATION_ACTIONS
    frequency: int  # index of FREQUENCIES
    amount: int  # amount_cents_after
    loyal_from: int  # when the mandate's tenure makes the donor loyal


class Churn(NamedTuple):
    """A churn of a donor loyal by the churn itself (for churn_after_contact)."""

    t: int
    eid: str
    mandate_id: str
    action: int
    frequency: int
    before: int
    after: int
    currency: str
    started_at: int
    alerted: int  # 1 once its alert was raised


# Any fact, for the code that handles every list alike (sorting, retention, ids)
Fact = tuple[Any, ...]


def precedes(a: Fact, b: Fact, width: int = 2) -> bool:
    """``a[:width] < b[:width]`` for ``width`` 2 (``(t, eid)``) or 3 (and ``label``).

    Field by field: compiled, the slices were two new tuples per comparison, on the path
    of almost every fact added (an e-mail sent going after every other one)."""
    ta: int = a[0]
    tb: int = b[0]
    if ta != tb:
        return ta < tb
    ea: str = a[1]
    eb: str = b[1]
    if width == 2 or ea != eb:
        return ea < eb
    la: int = a[2]
    lb: int = b[2]
    return la < lb


DAY: Final = 86_400

PURPOSES: Final = (
    "upgrade",
    "reactivation",
    "acquisition",
    "thank_you",
    "service",
    "survey",
    "other",
)
PURPOSE: Final = {name: i for i, name in enumerate(PURPOSES)}
MARKETING: Final = frozenset(
    PURPOSE[p] for p in ("upgrade", "reactivation", "acquisition", "survey", "other")
)

# Spelled out rather than taken from the event model's Literal: a fact stores an outcome by
# its index here, so this order is part of the serialized state and must never change
# (tests/unit/test_state.py round-trips every outcome).
OUTCOMES: Final = (
    "no_answer",
    "busy",
    "voicemail",
    "wrong_number",
    "converted",
    "declined",
    "info_requested",
    "callback_requested",
    "hung_up",
    "complaint",
    "do_not_call",
    "cancelled_donation",
)
OUTCOME: Final = {name: i for i, name in enumerate(OUTCOMES)}
# the outcomes that did not reach the supporter, as codes (the rule: events.ATTEMPT_OUTCOMES)
ATTEMPTS: Final = frozenset(OUTCOME[o] for o in ATTEMPT_OUTCOMES)

# call flags
DINNER: Final = 1
ALERTED: Final = 2

# marker kinds
COMPLAINT: Final = 0
INFO_REQUESTED: Final = 1
CONVERTED: Final = 2
DO_NOT_CALL: Final = 3
MARKER_OUTCOMES: Final = {
    OUTCOME["complaint"]: COMPLAINT,
    OUTCOME["info_requested"]: INFO_REQUESTED,
    OUTCOME["converted"]: CONVERTED,
    OUTCOME["do_not_call"]: DO_NOT_CALL,
}

CHANNELS: Final = ("phone", "email", "post", "sms", "all")
CHANNEL: Final = {name: i for i, name in enumerate(CHANNELS)}
PHONE: Final = CHANNEL["phone"]
ALL: Final = CHANNEL["all"]
CONSENT_ACTIONS: Final = ("opt_out", "objection", "opt_in")
CONSENT_ACTION: Final = {name: i for i, name in enumerate(CONSENT_ACTIONS)}
OPT_OUT, OBJECTION, OPT_IN = 0, 1, 2

DONATION_ACTIONS: Final = (
    "started",
    "upgraded",
    "downgraded",
    "paused",
    "resumed",
    "cancelled",
    "reversed",
    "payment_failed",
    "one_off",
)
DONATION_ACTION: Final = {name: i for i, name in enumerate(DONATION_ACTIONS)}
FREQUENCIES: Final = ("monthly", "quarterly", "yearly", "one_off")
FREQUENCY: Final = {name: i for i, name in enumerate(FREQUENCIES)}
MONTHLY: Final = FREQUENCY["monthly"]

# irritation labels (fatigue labels are built from the call in scoring)
LABELS: Final = (
    "complaint",
    "do_not_call",
    "hung_up",
    "declined",
    "negative_sentiment",
    "chased_decision",
    "dinner_call_reached",
    "opt_out_other_channel",
    "email_unsubscribed",
    "email_spam_complaint",
    "downgraded",
)
LABEL: Final = {name: i for i, name in enumerate(LABELS)}
