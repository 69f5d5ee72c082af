"""Every Prometheus metric of relmon, declared once, against an injected registry.

The worker builds one :class:`RelmonMetrics` at start-up and calls its small methods; the
web view serves ``generate_latest(registry)``. Tests build their own ``CollectorRegistry()``.

Metric                                               type       labels
``relmon_events_consumed_total``                     counter    type, result
``relmon_event_processing_seconds``                  histogram  –
``relmon_decisions_total``                           counter    reason
``relmon_suppressions``                              gauge      partition, reason  (at scrape)
``relmon_suppressed_supporters``                     gauge      partition   (read at scrape)
``relmon_churn_after_contact_alerts_total``          counter    partner, purpose
``relmon_churn_monthly_amount_lost_cents_total``     counter    partner, purpose
``relmon_calls_while_suppressed_total``              counter    partner
``relmon_calls_outside_window_total``                counter    partner, day
``relmon_dead_letters_total``                        counter    kind
``relmon_consumer_lag``                              gauge      topic, partition
``relmon_recovery_in_progress``                      gauge      –
``relmon_partners_tracked``                          gauge      –
``relmon_build_info``                                gauge (1)  version, policy_version
``relmon_pipeline_stalled``                          gauge      –
``relmon_pipeline_failures_total``                   counter    step
``relmon_http_request_duration_seconds``             histogram  method, route
``relmon_http_responses_total``                      counter    method, route, status_class
``relmon_http_not_ready_total``                      counter    route

``day`` of ``relmon_calls_outside_window_total`` is ``hours`` (the call's date had a calling
window, the call was outside it), ``no_hours`` (a weekday without hours, e.g. a Sunday) or
``holiday`` (a public holiday, remembrance day or banned date).

Every label set is bounded: event types, results, reasons, purposes and dead-letter kinds
are the contract's enums (an unknown value is counted under ``unknown``/``OTHER``); partners
are the first ``max_partners`` partner ids seen, the rest are counted as ``other``; the lag
gauge and the suppression gauges have one series per assigned input partition (summed
across workers; see :class:`SuppressionsCollector`); HTTP routes are the route templates.
Known label values are created up front, so every series reads 0 before its first event and
``rate()`` sees the first increment.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, get_args

from aiokafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relmon.domain.events import CampaignPurpose
from relmon.domain.outputs import ReasonCode
from relmon.observability.logging import get_logger
from relmon.topics import TOPIC_OF_TYPE

log = get_logger(__name__)

EVENT_TYPES: tuple[str, ...] = tuple(TOPIC_OF_TYPE)
UNKNOWN_TYPE = "unknown"  # a dead letter whose type could not be read
RESULTS = ("ok", "duplicate", "rerouted", "late", "dead_letter")
REASONS: tuple[str, ...] = get_args(ReasonCode)
LIFTED = "LIFTED"  # a decision that lifts a suppression (no reason left in force)
OTHER_REASON = "OTHER"  # a reason code newer than this module
PURPOSES: tuple[str, ...] = get_args(CampaignPurpose)
DEAD_LETTER_KINDS = (
    "encoding",
    "json",
    "validation",
    "future",
    "processing",
    "late",
    "key_mismatch",
)
PIPELINE_STEPS = ("emit", "persist")
OTHER = "other"
DEFAULT_MAX_PARTNERS = 50
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CLASSES = ("2xx", "4xx", "5xx")  # created at 0 per route; 1xx/3xx appear when used
MAX_HTTP_CHILDREN = 1024  # cached (method, route, status) series handles; the rest looked up


class PartnerLabels:
    """Maps partner ids to a bounded label set: the first ``limit`` seen, then ``other``."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the partner label limit must be >= 0")
        self.limit = limit
        self._known: set[str] = set()

    def label(self, partner_id: str | None) -> tuple[str, bool]:
        """The label for ``partner_id`` and whether it was admitted just now."""
        if not partner_id or partner_id == OTHER:
            return OTHER, False
        if partner_id in self._known:
            return partner_id, False
        if len(self._known) >= self.limit:
            return OTHER, False
        self._known.add(partner_id)
        return partner_id, True

    def __len__(self) -> int:
        return len(self._known)


PartitionSuppressions = tuple[int, Mapping[str, int]]  # (suppressed supporters, by reason)


class SuppressionsCollector(Collector):
    """``relmon_suppressions{partition,reason}`` and ``relmon_suppressed_supporters{partition}``:
    supporters currently suppressed, computed at scrape, for the partitions this worker owns.

    ``source`` returns, per partition, the number of suppressed supporters and a count per
    reason code (a supporter with two reasons counts under both). ``owned`` returns the
    partitions this worker holds now: only those are exported, so that a partition moved to
    another worker stops being reported here at once. Totals are therefore a ``sum`` across
    workers; a partition can still appear on two workers for a scrape or so around a
    rebalance (or while a worker cut off from Kafka has not noticed it lost it), so the
    dashboard takes the ``max`` per partition first, then sums.

    Both run on every scrape, so they must be cheap (maintained counters, not a table
    scan). Every known reason is exported for every owned partition, 0 when absent;
    unknown codes add up under ``OTHER``. If a callable fails the families are left out of
    that scrape and the error logged, so one bad read never breaks ``/metrics``.
    """

    NAME = "relmon_suppressions"
    SUPPORTERS = "relmon_suppressed_supporters"

    def __init__(
        self,
        source: Callable[[], Mapping[int, PartitionSuppressions]],
        owned: Callable[[], Iterable[int]],
    ) -> None:
        self.source = source
        self.owned = owned

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        try:
            counts = dict(self.source())
            owned = sorted(set(self.owned()))
        except Exception:  # a scrape must survive a failing source: logged, family left out
            log.exception("suppression counts unavailable for /metrics")
            return []
        by_reason, supporters = self._families()
        for partition in owned:
            suppressed, reasons = counts.get(partition, (0, {}))
            values = dict.fromkeys((*REASONS, OTHER_REASON), 0)
            for reason, count in reasons.items():
                key = reason if reason in values else OTHER_REASON
                values[key] += int(count)
            label = str(partition)
            for reason, value in values.items():
                by_reason.add_metric([label, reason], value)
            supporters.add_metric([label], int(suppressed))
        return [by_reason, supporters]

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                self.NAME,
                "Supporters currently suppressed, by owned partition and reason in force (read "
                "from state at scrape; a supporter with two reasons counts under both).",
                labels=["partition", "reason"],
            ),
            GaugeMetricFamily(
                self.SUPPORTERS,
                "Supporters currently suppressed, for any reason, by owned partition.",
                labels=["partition"],
            ),
        )


class HttpMetrics:
    """The worker's HTTP API, observed by a middleware (:func:`relmon.web.api.install_routes`).

    ``route`` is the route's template (``/suppressions/{supporter_id}``), never the raw path,
    and ``unmatched`` for a path no route serves, so no label value comes from the client;
    ``method`` is one of :data:`HTTP_METHODS` or ``other``. A 503 is also counted in
    ``relmon_http_not_ready_total``: every 503 of the API means "state being recovered or
    rebalanced, retry" (its own, or that of the worker a request was forwarded to).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "relmon_http_request_duration_seconds",
            "Time from a request's arrival at the API to its answer, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.responses = Counter(
            "relmon_http_responses",
            "API responses by route template and status class (2xx, 4xx, 5xx, ...).",
            ["method", "route", "status_class"],
            registry=registry,
        )
        self.not_ready = Counter(
            "relmon_http_not_ready",
            "API requests answered 503 because state was being recovered or rebalanced.",
            ["route"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def known_route(self, method: str, route: str) -> None:
        """Create the route's series at 0, so rate() sees its first request."""
        method = _method(method)
        self.duration.labels(method, route)
        for status_class in STATUS_CLASSES:
            self.responses.labels(method, route, status_class)
        self.not_ready.labels(route)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # once per distinct answer kind (a bounded set): labels() is slow
            label = _method(method)
            children = (
                self.duration.labels(label, route),
                self.responses.labels(label, route, status_class(status)),
                self.not_ready.labels(route) if status == 503 else None,
            )
            if len(self._children) < MAX_HTTP_CHILDREN:
                self._children[key] = children
        duration, responses, not_ready = children
        duration.observe(seconds)
        responses.inc()
        if not_ready is not None:
            not_ready.inc()


def _method(method: str) -> str:
    return method if method in HTTP_METHODS else OTHER


def status_class(status: int) -> str:
    """``2xx`` for 200-299 and so on; ``other`` outside 100-599."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


class RelmonMetrics:
    """The worker's metrics, registered once on ``registry``; see the module docstring."""

    def __init__(
        self, registry: CollectorRegistry, *, max_partners: int = DEFAULT_MAX_PARTNERS
    ) -> None:
        self.registry = registry
        self.events = Counter(
            "relmon_events_consumed",
            "Input events consumed, by event type and result (ok, duplicate, rerouted, late, "
            "dead_letter).",
            ["type", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "relmon_event_processing_seconds",
            "Time to handle one input message: decode, apply, persist, emit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "relmon_decisions",
            "Suppression reasons newly put in force by a decision (LIFTED: a suppression lifted).",
            ["reason"],
            registry=registry,
        )
        self.churn_alerts = Counter(
            "relmon_churn_after_contact_alerts",
            "churn_after_contact alerts raised, by the partner and purpose of the last call.",
            ["partner", "purpose"],
            registry=registry,
        )
        self.amount_lost = Counter(
            "relmon_churn_monthly_amount_lost_cents",
            "Monthly donation amount lost in churn_after_contact alerts, in cents.",
            ["partner", "purpose"],
            registry=registry,
        )
        self.suppressed_calls = Counter(
            "relmon_calls_while_suppressed",
            "Outbound marketing calls made to a supporter who was suppressed, by partner.",
            ["partner"],
            registry=registry,
        )
        self.outside_window_calls = Counter(
            "relmon_calls_outside_window",
            "Outbound marketing calls outside the policy's calling windows, by partner and by "
            "what the call's local date was (hours: outside its window; no_hours: a day "
            "without hours, e.g. Sunday; holiday: a public holiday, remembrance or banned day).",
            ["partner", "day"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "relmon_dead_letters",
            "Input messages sent to the dead-letter topic, by error kind.",
            ["kind"],
            registry=registry,
        )
        self.lag = Gauge(
            "relmon_consumer_lag",
            "Messages not yet processed in an assigned input partition (end offset - position).",
            ["topic", "partition"],
            registry=registry,
        )
        self.recovering = Gauge(
            "relmon_recovery_in_progress",
            "1 while the worker restores its state table or rebalances, else 0.",
            registry=registry,
        )
        self.partners_tracked = Gauge(
            "relmon_partners_tracked",
            "Partner ids with their own label value (the rest are counted as 'other').",
            registry=registry,
        )
        self.build_info = Gauge(
            "relmon_build_info",
            "Always 1: the relmon version and the policy version this worker runs.",
            ["version", "policy_version"],
            registry=registry,
        )
        self.stalled = Gauge(
            "relmon_pipeline_stalled",
            "1 while the batch in hand cannot send its outputs or persist its state (nothing "
            "is acknowledged meanwhile; the worker retries and reports not ready), else 0.",
            registry=registry,
        )
        self.pipeline_failures = Counter(
            "relmon_pipeline_failures",
            "Failed attempts to send a batch's outputs (step emit) or persist its state "
            "(step persist); each is retried, never skipped.",
            ["step"],
            registry=registry,
        )
        self.http = HttpMetrics(registry)
        self._lag_series: set[tuple[str, str]] = set()
        self.partners = PartnerLabels(max_partners)
        self._init_known_labels()

    def _init_known_labels(self) -> None:
        for event_type in (*EVENT_TYPES, UNKNOWN_TYPE):
            for result in RESULTS:
                self.events.labels(event_type, result)
        for reason in (*REASONS, LIFTED, OTHER_REASON):
            self.decisions.labels(reason)
        for kind in (*DEAD_LETTER_KINDS, OTHER):
            self.dead_letters.labels(kind)
        for step in PIPELINE_STEPS:
            self.pipeline_failures.labels(step)
        self._init_partner(OTHER)
        self.recovering.set(0)
        self.stalled.set(0)

    def _init_partner(self, partner: str) -> None:
        for purpose in PURPOSES:
            self.churn_alerts.labels(partner, purpose)
            self.amount_lost.labels(partner, purpose)
        self.suppressed_calls.labels(partner)
        for day in WINDOW_DAYS:
            self.outside_window_calls.labels(partner, day)

    def _partner(self, partner_id: str | None) -> str:
        label, admitted = self.partners.label(partner_id)
        if admitted:
            self._init_partner(label)
            self.partners_tracked.set(len(self.partners))
        return label

    # --- what the worker calls ---------------------------------------------------------
    def event_consumed(self, event_type: str | None, result: str) -> None:
        """Count one input message; ``result`` is one of :data:`RESULTS`."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
        label = event_type if event_type in EVENT_TYPES else UNKNOWN_TYPE
        self.events.labels(label, result).inc()

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def decision(self, reason_code: str) -> None:
        """Count a reason newly in force in an emitted record (``LIFTED`` for a lift)."""
        known = reason_code in REASONS or reason_code == LIFTED
        self.decisions.labels(reason_code if known else OTHER_REASON).inc()

    def churn_alert(
        self, partner_id: str | None, purpose: str, monthly_amount_lost_cents: int
    ) -> None:
        """Count a churn_after_contact alert and the monthly amount it lost."""
        partner = self._partner(partner_id)
        label = purpose if purpose in PURPOSES else OTHER
        self.churn_alerts.labels(partner, label).inc()
        if monthly_amount_lost_cents > 0:
            self.amount_lost.labels(partner, label).inc(monthly_amount_lost_cents)

    def call_while_suppressed(self, partner_id: str | None) -> None:
        self.suppressed_calls.labels(self._partner(partner_id)).inc()

    def call_outside_window(
        self, partner_id: str | None, day_kind: str | None, had_window: bool
    ) -> None:
        """Count a call_outside_window alert: the window's ``day``, and whether that day had
        a window at all (``opens`` not null)."""
        label = window_day(day_kind, had_window)
        self.outside_window_calls.labels(self._partner(partner_id), label).inc()

    def dead_letter(self, kind: str) -> None:
        """Count a dead letter; kinds: :data:`DEAD_LETTER_KINDS` (else other)."""
        self.dead_letters.labels(kind if kind in DEAD_LETTER_KINDS else OTHER).inc()

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag_series.add((topic, str(partition)))
        self.lag.labels(topic, str(partition)).set(max(0, lag))

    def replace_lags(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of every assigned partition and drop partitions no longer assigned.

        After a rebalance a partition that moved to another worker must stop reporting
        here, or its last value would raise a false lag alert forever.
        """
        fresh = {(topic, str(partition)) for topic, partition in lags}
        for series in self._lag_series - fresh:
            self.lag.remove(*series)
        self._lag_series = set()
        for (topic, partition), lag in lags.items():
            self.set_lag(topic, partition, lag)

    def pipeline_failure(self, step: str) -> None:
        """Count a failed attempt of a pipeline step and mark the pipeline stalled."""
        self.pipeline_failures.labels(step if step in PIPELINE_STEPS else OTHER).inc()
        self.stalled.set(1)

    def pipeline_flowing(self) -> None:
        self.stalled.set(0)

    def set_recovery(self, in_recovery: bool) -> None:
        self.recovering.set(1 if in_recovery else 0)

    def set_build_info(self, version: str, policy_version: str) -> None:
        self.build_info.clear()
        self.build_info.labels(version, policy_version).set(1)


WINDOW_DAYS = ("hours", "no_hours", "holiday")
_HOLIDAYS = frozenset({"public_holiday", "remembrance_day", "banned_date"})


def window_day(day_kind: str | None, had_window: bool) -> str:
    """The ``day`` label of a missed window (see the module docstring)."""
    if day_kind in _HOLIDAYS:
        return "holiday"
    return "hours" if had_window else "no_hours"


async def sample_consumer_lag(consumer: Any, topics: Collection[str]) -> dict[tuple[str, int], int]:
    """Lag per assigned partition of ``topics`` from a Faust consumer (``app.consumer``).

    Lag is the partition's high watermark (the end offset the fetcher last saw) minus the
    consumer's position (the next offset it will read), so it counts what is fetched but not
    yet read plus what is not fetched. Partitions with no high watermark yet, or taken away
    by a rebalance meanwhile, are left out. Use it from a timer:
    ``metrics.replace_lags(await sample_consumer_lag(app.consumer, topics))``.
    """
    lags: dict[tuple[str, int], int] = {}
    for tp in sorted(consumer.assignment()):
        if tp.topic not in topics:
            continue
        try:
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
        except (AssertionError, IllegalStateError):
            # a rebalance took the partition away between Faust's assignment and aiokafka's
            # (aiokafka asserts in highwater(), raises in position()): not ours to report,
            # and never a reason to crash the timer, and with it the worker
            continue
        if highwater is None or position is None:
            continue
        lags[(tp.topic, tp.partition)] = max(0, int(highwater) - int(position))
    return lags
