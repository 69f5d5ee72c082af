"""relmon's pure, deterministic core: events, policy, state, scores, decisions and alerts.

No I/O (except reading the policy file once), no wall clock, no randomness: time comes in
with the events, or as an argument. The worker, the HTTP API and the replays all drive
:class:`Engine`.
"""

from relmon.domain.engine import Engine, Outcome
from relmon.domain.events import (
    CallOutcome,
    ConsentChange,
    DonationChange,
    EmailEngagement,
    Event,
    InputEvent,
    parse_event,
)
from relmon.domain.outputs import (
    Alert,
    DeadLetter,
    Reason,
    SuppressionAnswer,
    SuppressionRecord,
    encode_alert,
    encode_dead_letter,
    encode_record,
    encode_unknown_answer,
)
from relmon.domain.policy import Policy, default_policy, load_policy
from relmon.domain.state import SupporterState

__all__ = [
    "Alert",
    "CallOutcome",
    "ConsentChange",
    "DeadLetter",
    "DonationChange",
    "EmailEngagement",
    "Engine",
    "Event",
    "InputEvent",
    "Outcome",
    "Policy",
    "Reason",
    "SupporterState",
    "SuppressionAnswer",
    "SuppressionRecord",
    "default_policy",
    "encode_alert",
    "encode_dead_letter",
    "encode_record",
    "encode_unknown_answer",
    "load_policy",
    "parse_event",
]
