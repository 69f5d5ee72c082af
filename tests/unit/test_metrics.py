"""The metrics container: names, bounded label sets, scrape-time collectors, lag sampling."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from aiokafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, generate_latest

from relmon.observability.metrics import (
    DEAD_LETTER_KINDS,
    EVENT_TYPES,
    PURPOSES,
    REASONS,
    RESULTS,
    RelmonMetrics,
    SuppressionsCollector,
    sample_consumer_lag,
)
from relmon.streaming.processor import SuppressionCounts, partition_for


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RelmonMetrics:
    return RelmonMetrics(registry, max_partners=2)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_known_label_values_exist_at_zero_before_any_event(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """Every event type × result, reason and dead-letter kind is exported as 0 from the start."""
    for event_type in EVENT_TYPES:
        for result in RESULTS:
            assert (
                value(registry, "relmon_events_consumed_total", type=event_type, result=result) == 0
            )
    for reason in REASONS:
        assert value(registry, "relmon_decisions_total", reason=reason) == 0
    for kind in DEAD_LETTER_KINDS:
        assert value(registry, "relmon_dead_letters_total", kind=kind) == 0
    for purpose in PURPOSES:
        labels = {"partner": "other", "purpose": purpose}
        assert value(registry, "relmon_churn_after_contact_alerts_total", **labels) == 0
    assert value(registry, "relmon_calls_while_suppressed_total", partner="other") == 0
    assert value(registry, "relmon_recovery_in_progress") == 0


def test_event_consumed_counts_by_type_and_result(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """Events count under their type and result; an unreadable type counts as unknown."""
    metrics.event_consumed("call_outcome", "ok")
    metrics.event_consumed("call_outcome", "ok")
    metrics.event_consumed("consent_change", "duplicate")
    metrics.event_consumed(None, "dead_letter")
    metrics.event_consumed("bogus", "dead_letter")
    name = "relmon_events_consumed_total"
    assert value(registry, name, type="call_outcome", result="ok") == 2
    assert value(registry, name, type="consent_change", result="duplicate") == 1
    assert value(registry, name, type="unknown", result="dead_letter") == 2
    assert value(registry, name, type="bogus", result="dead_letter") is None


def test_event_consumed_rejects_an_unknown_result(metrics: RelmonMetrics) -> None:
    """A result outside ok|duplicate|dead_letter is a programming error and raises."""
    with pytest.raises(ValueError, match="result must be one of"):
        metrics.event_consumed("call_outcome", "maybe")


def test_latency_histogram_observes_seconds(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """Processing latency lands in the histogram's count, sum and buckets (seconds)."""
    metrics.observe_latency(0.003)
    metrics.observe_latency(0.2)
    assert value(registry, "relmon_event_processing_seconds_count") == 2
    assert value(registry, "relmon_event_processing_seconds_sum") == pytest.approx(0.203)
    assert value(registry, "relmon_event_processing_seconds_bucket", le="0.005") == 1


def test_decisions_count_by_reason_with_unknown_codes_bounded(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """Decisions count per reason code; LIFTED is a reason; unknown codes count as OTHER."""
    metrics.decision("COMPLAINT")
    metrics.decision("LIFTED")
    metrics.decision("SOMETHING_NEW")
    assert value(registry, "relmon_decisions_total", reason="COMPLAINT") == 1
    assert value(registry, "relmon_decisions_total", reason="LIFTED") == 1
    assert value(registry, "relmon_decisions_total", reason="OTHER") == 1
    assert value(registry, "relmon_decisions_total", reason="SOMETHING_NEW") is None


def test_churn_alert_counts_alert_and_amount_by_partner_and_purpose(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """A churn alert adds one alert and its monthly amount lost under partner and purpose."""
    metrics.churn_alert("P1", "upgrade", 1500)
    metrics.churn_alert("P1", "upgrade", 500)
    labels = {"partner": "P1", "purpose": "upgrade"}
    assert value(registry, "relmon_churn_after_contact_alerts_total", **labels) == 2
    assert value(registry, "relmon_churn_monthly_amount_lost_cents_total", **labels) == 2000
    # a newly admitted partner gets every purpose up front
    assert (
        value(registry, "relmon_churn_after_contact_alerts_total", partner="P1", purpose="survey")
        == 0
    )


def test_partner_labels_are_capped_then_other(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """Only the first max_partners partner ids get a label; later ones count as other."""
    for partner in ("P1", "P2", "P3", "P1", None):
        metrics.call_while_suppressed(partner)
    name = "relmon_calls_while_suppressed_total"
    assert value(registry, name, partner="P1") == 2
    assert value(registry, name, partner="P2") == 1
    assert value(registry, name, partner="P3") is None
    assert value(registry, name, partner="other") == 2
    assert value(registry, "relmon_partners_tracked") == 2


def test_dead_letters_count_by_kind(registry: CollectorRegistry, metrics: RelmonMetrics) -> None:
    """Dead letters count per kind; a kind outside the known four counts as other."""
    metrics.dead_letter("json")
    metrics.dead_letter("key_mismatch")
    metrics.dead_letter("weird")
    assert value(registry, "relmon_dead_letters_total", kind="json") == 1
    assert value(registry, "relmon_dead_letters_total", kind="key_mismatch") == 1
    assert value(registry, "relmon_dead_letters_total", kind="other") == 1


def test_replace_lags_drops_partitions_no_longer_assigned(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """After a rebalance a partition that moved away stops reporting lag here."""
    metrics.replace_lags({("relmon.calls", 0): 5, ("relmon.calls", 1): 7})
    metrics.replace_lags({("relmon.calls", 1): 3})
    assert value(registry, "relmon_consumer_lag", topic="relmon.calls", partition="1") == 3
    assert value(registry, "relmon_consumer_lag", topic="relmon.calls", partition="0") is None
    metrics.set_lag("relmon.emails", 2, -4)
    assert value(registry, "relmon_consumer_lag", topic="relmon.emails", partition="2") == 0


def test_recovery_and_build_info(registry: CollectorRegistry, metrics: RelmonMetrics) -> None:
    """The recovery gauge follows set_recovery; build info carries one labelled series of 1."""
    metrics.set_recovery(True)
    assert value(registry, "relmon_recovery_in_progress") == 1
    metrics.set_recovery(False)
    assert value(registry, "relmon_recovery_in_progress") == 0
    metrics.set_build_info("0.1.0", "p1")
    metrics.set_build_info("0.1.0", "p2")
    assert value(registry, "relmon_build_info", version="0.1.0", policy_version="p2") == 1
    assert value(registry, "relmon_build_info", version="0.1.0", policy_version="p1") is None


def test_suppressions_collector_reads_the_source_at_scrape_time(
    registry: CollectorRegistry,
) -> None:
    """The gauges reflect the source at each scrape, per owned partition: missing reasons
    are 0, unknown ones OTHER, and the suppressed supporters are counted once each."""
    counts: dict[int, tuple[int, dict[str, int]]] = {0: (2, {"COMPLAINT": 2})}
    registry.register(SuppressionsCollector(lambda: counts, lambda: [0]))
    assert value(registry, "relmon_suppressions", partition="0", reason="COMPLAINT") == 2
    assert value(registry, "relmon_suppressions", partition="0", reason="FATIGUE") == 0
    counts[0] = (4, {"COMPLAINT": 3, "MIN_GAP": 2, "NEW_CODE": 4, "BRAND_NEW": 1})
    assert value(registry, "relmon_suppressions", partition="0", reason="COMPLAINT") == 3
    assert value(registry, "relmon_suppressions", partition="0", reason="OTHER") == 5
    assert value(registry, "relmon_suppressed_supporters", partition="0") == 4


def test_suppressions_collector_exports_only_the_partitions_owned_now(
    registry: CollectorRegistry,
) -> None:
    """A partition that moved away stops being exported at once, even while its counts are
    still held (until the rebuild after the rebalance); an owned partition with nothing
    suppressed reads 0, so Prometheus's sum across workers sees every partition once."""
    counts = {0: (1, {"OPTED_OUT": 1}), 1: (3, {"MIN_GAP": 3})}
    owned = [0, 1]
    registry.register(SuppressionsCollector(lambda: counts, lambda: owned))
    assert value(registry, "relmon_suppressed_supporters", partition="1") == 3
    owned[:] = [0, 2]
    assert value(registry, "relmon_suppressed_supporters", partition="1") is None
    assert value(registry, "relmon_suppressions", partition="1", reason="MIN_GAP") is None
    assert value(registry, "relmon_suppressed_supporters", partition="2") == 0
    assert value(registry, "relmon_suppressions", partition="2", reason="MIN_GAP") == 0


def test_suppressions_collector_survives_a_failing_source(registry: CollectorRegistry) -> None:
    """A source that raises leaves the families out of the scrape instead of breaking it."""

    def broken() -> Mapping[int, tuple[int, Mapping[str, int]]]:
        raise RuntimeError("state store closed")

    RelmonMetrics(registry)
    registry.register(SuppressionsCollector(broken, lambda: [0]))
    text = generate_latest(registry).decode()
    assert "relmon_events_consumed_total" in text
    assert "relmon_suppressions{" not in text
    assert "relmon_suppressed_supporters{" not in text


def test_metrics_are_declared_once_per_registry(registry: CollectorRegistry) -> None:
    """A second container on the same registry is refused (duplicate time series)."""
    RelmonMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        RelmonMetrics(registry)


@dataclass(frozen=True, order=True)
class FakeTP:
    topic: str
    partition: int


class FakeConsumer:
    """The three consumer calls the lag sampler uses, over fixed offsets."""

    def __init__(self, highwaters: dict[FakeTP, int | None], positions: dict[FakeTP, int]) -> None:
        self.highwaters = highwaters
        self.positions = positions

    def assignment(self) -> set[FakeTP]:
        return set(self.highwaters)

    def highwater(self, tp: FakeTP) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: FakeTP) -> int | None:
        return self.positions.get(tp)


def test_sample_consumer_lag_reads_highwater_minus_position() -> None:
    """Lag is high watermark minus position for assigned partitions of the given topics only."""
    consumer = FakeConsumer(
        {
            FakeTP("relmon.calls", 0): 110,
            FakeTP("relmon.calls", 1): None,
            FakeTP("relmon-ticks", 0): 99,
            FakeTP("relmon.donations", 3): 5,
        },
        {
            FakeTP("relmon.calls", 0): 100,
            FakeTP("relmon-ticks", 0): 1,
            FakeTP("relmon.donations", 3): 7,
        },
    )
    lags = asyncio.run(sample_consumer_lag(consumer, {"relmon.calls", "relmon.donations"}))
    assert lags == {("relmon.calls", 0): 10, ("relmon.donations", 3): 0}


def test_suppression_counts_are_kept_per_partition() -> None:
    """SuppressionCounts (what the collector reads) files each supporter under its own
    partition: a supporter with two reasons is one suppressed supporter counted under both
    reasons, a change of reasons moves the counts, and a lift takes the supporter out."""
    counts = SuppressionCounts(partitions=4)
    a, b = "S-a", next(f"S-{i}" for i in range(100) if partition_for(f"S-{i}", 4) != 0)
    while partition_for(a, 4) == partition_for(b, 4):
        a += "x"
    pa, pb = partition_for(a, 4), partition_for(b, 4)
    counts.set(a, frozenset({"OPTED_OUT", "MIN_GAP"}))
    counts.set(b, frozenset({"MIN_GAP"}))
    assert counts.per_partition() == {
        pa: (1, {"OPTED_OUT": 1, "MIN_GAP": 1}),
        pb: (1, {"MIN_GAP": 1}),
    }
    assert counts.snapshot() == {"OPTED_OUT": 1, "MIN_GAP": 2}
    counts.set(a, frozenset({"OPTED_OUT"}))
    counts.set(b, frozenset())
    assert counts.per_partition() == {pa: (1, {"OPTED_OUT": 1}), pb: (0, {})}


class MovingConsumer(FakeConsumer):
    """A rebalance in the middle of sampling: Faust still lists partitions that aiokafka no
    longer holds (its highwater() asserts, its position() raises)."""

    def highwater(self, tp: FakeTP) -> int | None:
        if tp.partition == 1:
            raise AssertionError("Partition is not assigned")
        return super().highwater(tp)

    async def position(self, tp: FakeTP) -> int | None:
        if tp.partition == 2:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        return await super().position(tp)


def test_sample_consumer_lag_skips_partitions_a_rebalance_took_away() -> None:
    """A partition that moved away while the lag was sampled is left out instead of failing
    the sample (which crashed the worker's timer, and the worker, in a two-worker test)."""
    tps = [FakeTP("relmon.calls", p) for p in range(3)]
    consumer = MovingConsumer(dict.fromkeys(tps, 10), dict.fromkeys(tps, 4))
    lags = asyncio.run(sample_consumer_lag(consumer, {"relmon.calls"}))
    assert lags == {("relmon.calls", 0): 6}


def test_calls_outside_the_window_count_by_partner_and_kind_of_day(
    registry: CollectorRegistry, metrics: RelmonMetrics
) -> None:
    """A call_outside_window alert counts under its partner and the kind of day it missed:
    hours (a day with a window), no_hours (e.g. Sunday), holiday (holidays, remembrance and
    banned days); every kind of day reads 0 for a partner before its first such call."""
    metrics.call_outside_window("P1", "monday", True)
    metrics.call_outside_window("P1", "sunday", False)
    metrics.call_outside_window("P1", "public_holiday", False)
    metrics.call_outside_window("P1", "banned_date", False)
    name = "relmon_calls_outside_window_total"
    assert value(registry, name, partner="P1", day="hours") == 1
    assert value(registry, name, partner="P1", day="no_hours") == 1
    assert value(registry, name, partner="P1", day="holiday") == 2
    assert value(registry, name, partner="other", day="hours") == 0
