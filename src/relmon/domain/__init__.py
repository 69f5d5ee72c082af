"""relmon's pure, deterministic core: events, policy, state, scores, decisions and alerts.

No I/O (except reading the policy file once), no wall clock, no randomness: time comes in
with the events, or as an argument. The worker, the HTTP API and the replays all drive
:class:`Engine`.

The engine's modules run compiled with mypyc when ``make compile`` built them from these very
sources, and as Python otherwise: :mod:`relmon.compiled` chooses, here, before they load.
"""

from relmon.compiled import choose

ENGINE = choose()

from relmon.domain.decoding import parse_event  # noqa: E402
from relmon.domain.engine import Engine, Outcome  # noqa: E402
from relmon.domain.events import (  # noqa: E402
    CallOutcome,
    ConsentChange,
    DonationChange,
    EmailEngagement,
    Event,
    InputEvent,
)
from relmon.domain.outputs import (  # noqa: E402
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
from relmon.domain.policy import Policy, default_policy, load_policy  # noqa: E402
from relmon.domain.state import SupporterState  # noqa: E402

__all__ = [
    "ENGINE",
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
