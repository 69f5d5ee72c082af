"""Every Kafka topic of the contract, declared once.

Input topics are co-partitioned by ``supporter_id`` and must share one partition count; the
suppression topic is compacted (the latest record per supporter is the current answer).

``relmon.history`` is an input topic for loaded history (``relmon backfill``): events of every
type, in event time, keyed by supporter. One topic keeps each supporter's events in one
partition in event-time order, which four topics consumed side by side cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CALLS = "relmon.calls"
CONSENTS = "relmon.consents"
EMAILS = "relmon.emails"
DONATIONS = "relmon.donations"
HISTORY = "relmon.history"
SUPPRESSIONS = "relmon.suppressions"
ALERTS = "relmon.alerts"
DLQ = "relmon.dlq"

INPUT_TOPICS = (CALLS, CONSENTS, EMAILS, DONATIONS, HISTORY)
# Input topics that come in bulk (campaign sends, loaded history): the worker hands out what
# it fetched of the other topics first (README, "Objections first").
BULK_TOPICS = (EMAILS, HISTORY)

# Which input topic carries which event type (contract section 1).
TOPIC_OF_TYPE = {
    "call_outcome": CALLS,
    "consent_change": CONSENTS,
    "email_engagement": EMAILS,
    "donation_change": DONATIONS,
}


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: its contract name, partitions and topic-level configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)

    def full_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


def contract_topics(partitions: int) -> list[TopicSpec]:
    """The contract's topics; input topics share ``partitions`` so they stay co-partitioned."""
    specs = [TopicSpec(name, partitions) for name in INPUT_TOPICS]
    specs.append(
        TopicSpec(
            SUPPRESSIONS,
            partitions,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"},
        )
    )
    specs.append(TopicSpec(ALERTS, partitions, {"retention.ms": str(90 * 24 * 3600 * 1000)}))
    specs.append(TopicSpec(DLQ, partitions, {"retention.ms": str(30 * 24 * 3600 * 1000)}))
    return specs
