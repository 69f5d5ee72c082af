"""The small integer codes and tuple shapes of the facts a supporter's state keeps.

Facts are plain tuples (no pydantic, no objects): cheap to build, compare and serialize.
Every fact starts with ``(t, event_id)``: ``t`` is the event time in whole epoch seconds
(fractions dropped). Lists of facts are kept sorted by ``(t, event_id)``, the canonical order
in which scores are summed, so the floats do not depend on the order of arrival.

========== ====================================================================
list       tuple
========== ====================================================================
calls      (t, eid, call_id, campaign_id, purpose, partner_id, agent_id, outcome, flags)
           outbound calls only; ``flags``: ``DINNER`` | ``ALERTED`` (call_while_suppressed)
irritation (t, eid, label, weight)            one per (event, label)
emails     (t, eid)                           marketing e-mails sent
markers    (t, eid) in four lists, by kind    complaint, info_requested, converted, do_not_call
consents   (t, eid, channel, action)
mandates   (t, eid, mandate_id, action, frequency, amount_after, loyal_from)
churns     (t, eid, mandate_id, action, frequency, before, after, currency, started_at,
           alerted)                           churns of loyal donors (may still raise an alert)
========== ====================================================================
"""

from __future__ import annotations

from typing import Final

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
PURPOSE = {name: i for i, name in enumerate(PURPOSES)}
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
OUTCOME = {name: i for i, name in enumerate(OUTCOMES)}
ATTEMPTS: Final = frozenset(OUTCOME[o] for o in ("no_answer", "busy", "voicemail", "wrong_number"))

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
CHANNEL = {name: i for i, name in enumerate(CHANNELS)}
PHONE: Final = CHANNEL["phone"]
ALL: Final = CHANNEL["all"]
CONSENT_ACTIONS: Final = ("opt_out", "objection", "opt_in")
CONSENT_ACTION = {name: i for i, name in enumerate(CONSENT_ACTIONS)}
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
DONATION_ACTION = {name: i for i, name in enumerate(DONATION_ACTIONS)}
ACTIVE_ACTIONS: Final = frozenset(
    DONATION_ACTION[a] for a in ("started", "upgraded", "downgraded", "resumed", "payment_failed")
)
FREQUENCIES: Final = ("monthly", "quarterly", "yearly", "one_off")
FREQUENCY = {name: i for i, name in enumerate(FREQUENCIES)}
MONTHLY: Final = FREQUENCY["monthly"]
# Periods per month, to turn a quarterly or yearly amount into a monthly one.
PER_MONTH: Final = {
    FREQUENCY["monthly"]: 1.0,
    FREQUENCY["quarterly"]: 1 / 3,
    FREQUENCY["yearly"]: 1 / 12,
}

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
LABEL = {name: i for i, name in enumerate(LABELS)}
