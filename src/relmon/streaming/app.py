"""The Faust app: topics and the state table declared once, one thin agent, the expiry timer.

Topology::

    relmon.calls ─┐
    relmon.consents ─┤                      ┌─> relmon.suppressions (compacted, key supporter_id)
    relmon.emails ─┼─> agent `process` ──────┼─> relmon.alerts
    relmon.donations ─┤   (concurrency 1)      └─> relmon.dlq
    <app>-ticks ──┘        │
                    Table `supporter-state` (RocksDB + changelog topic)

The input topics are co-partitioned by ``supporter_id``; so is the internal ticks topic, to
which a timer sends the wall-clock time every few seconds. A tick for partition *p* makes the
agent emit the expiries (lifts) due in *p*: table writes happen only inside the agent, on the
partition of the event being processed, as Faust requires.

Delivery is at least once with idempotent processing: a redelivered event is a duplicate
``event_id`` in the restored state and changes nothing; when a message raises alerts, the
producer is flushed (state changelog first) before the alert is sent, so a crash cannot leave
an alert whose state change was lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, cast

import faust
import structlog
from prometheus_client import CollectorRegistry

from relmon.domain import Engine, Policy
from relmon.observability.logging import get_logger
from relmon.observability.metrics import (
    RelmonMetrics,
    SuppressionsCollector,
    sample_consumer_lag,
)
from relmon.settings import Settings
from relmon.streaming.processor import Emit, Processor, Result
from relmon.topics import ALERTS, DLQ, INPUT_TOPICS, SUPPRESSIONS

log = get_logger(__name__)
TABLE_NAME = "supporter-state"


class TableStore:
    """The Faust table seen as a :class:`~relmon.streaming.processor.StateStore`."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        value = self.table.get(key.encode())
        return bytes(value) if value is not None else None

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key, value in self.table.items():
            if value is not None:
                yield bytes(key).decode(), bytes(value)


@dataclass
class Worker:
    """Everything the web views and tests need to reach inside a running worker."""

    app: faust.App
    settings: Settings
    engine: Engine
    processor: Processor
    store: TableStore
    table: Any
    outputs: dict[str, Any]
    metrics: RelmonMetrics

    @property
    def ready(self) -> bool:
        tables = cast(Any, self.app.tables)  # the TableManager's recovery is not in its type
        recovered = tables.recovery.completed.is_set() and not tables.recovery.in_recovery
        return bool(recovered and not self.app.rebalancing)


def build_worker(settings: Settings, policy: Policy) -> Worker:
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}{settings.worker_id}",
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_application_options={"client_max_size": 16 * 1024 * 1024},  # 100,000-id checks
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url(),
        stream_wait_empty=False,  # processing is idempotent: do not stall rebalances
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.broker_session_timeout_s / 10),
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        producer_linger_ms=10,
        key_serializer="raw",
        value_serializer="raw",
        logging_config=None,
        loghandlers=[],
    )
    sources = app.topic(*(f"{prefix}{t}" for t in INPUT_TOPICS), key_type=bytes, value_type=bytes)
    ticks = app.topic(ticks_topic_name(settings), key_type=bytes, value_type=bytes)
    outputs = {
        "suppressions": app.topic(f"{prefix}{SUPPRESSIONS}", key_type=bytes, value_type=bytes),
        "alerts": app.topic(f"{prefix}{ALERTS}", key_type=bytes, value_type=bytes),
        "dlq": app.topic(f"{prefix}{DLQ}", key_type=bytes, value_type=bytes),
    }
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options={"block_cache_size": 64 * 1024**2, "block_cache_compressed_size": 16 * 1024**2},
    )
    engine = Engine(policy)
    store = TableStore(table)
    processor = Processor(engine, store, partitions=settings.partitions)
    metrics = RelmonMetrics(CollectorRegistry())
    metrics.set_build_info(version("relmon"), policy.version)
    metrics.registry.register(SuppressionsCollector(processor.suppressions.snapshot))
    worker = Worker(app, settings, engine, processor, store, table, outputs, metrics)
    ticks_name = ticks.get_topic_name()

    topic_of = {name: topic.get_topic_name() for name, topic in outputs.items()}

    async def send(emits: list[Emit]) -> None:
        producer = app.producer
        pending = [
            await producer.send(topic_of[e.output], e.key, e.value, None, None, None) for e in emits
        ]
        if pending:
            await asyncio.gather(*pending)

    def handle(event: Any, now: datetime) -> list[Emit]:
        """One message: an input event, or a tick that makes due expiries lift. ``now`` is
        the wall clock at the start of the batch (future-dated events are refused by it)."""
        message = event.message
        # Every log line written while handling this message carries where it came from.
        structlog.contextvars.bind_contextvars(
            topic=message.topic, partition=message.partition, offset=message.offset
        )
        if message.topic == ticks_name:
            if not processor.expiry.built:
                count = processor.rebuild_expiry(store.items())
                log.info("expiry index rebuilt", supporters_with_expiry=count)
            tick_at = datetime.fromisoformat(bytes(event.value).decode())
            return list(processor.expire(message.partition, tick_at))
        started = time.perf_counter()
        result = processor.handle(
            message.topic,
            message.partition,
            message.offset,
            event.key,
            event.value,
            now=now,
        )
        record_metrics(metrics, result)
        if result.error_kind is not None:
            log.warning("dead letter", error_kind=result.error_kind)
        metrics.observe_latency(time.perf_counter() - started)
        return result.emits

    @app.agent(
        app.topic(*sources.topics, ticks_name, key_type=bytes, value_type=bytes), concurrency=1
    )
    async def process(stream: Any) -> AsyncIterator[None]:
        # Events come in small batches (at most `batch_max`, or what arrived within 5 ms):
        # Faust's per-event hand-off is what limits throughput, not the engine. Each event is
        # made the stream's current event before its table write, so the write lands in that
        # event's partition (store and changelog) as Faust requires. The batch is acked only
        # after its outputs are sent: at-least-once, and redelivery is idempotent.
        async for batch in stream.take_events(settings.batch_max, within=0.005):
            emits: list[Emit] = []
            now = datetime.now(UTC)
            for event in batch:
                stream._set_current_event(event)  # table writes need the current event
                emits += handle(event, now)
            if any(e.output == "alerts" for e in emits):
                await app.producer.flush()  # the state changelog lands before the alert
            structlog.contextvars.clear_contextvars()
            await send(emits)
            yield None

    @app.timer(interval=settings.expiry_interval_s)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        now = datetime.now(UTC).isoformat().encode()
        actives = app.assignor.assigned_actives()
        partitions = sorted({tp.partition for tp in actives if tp.topic == ticks_name})
        for partition in partitions:
            await ticks.send(key=b"tick", value=now, partition=partition)

    input_names = set(sources.topics)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def sample() -> None:
        metrics.set_recovery(not worker.ready)
        metrics.replace_lags(await sample_consumer_lag(app.consumer, input_names))

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types the handler too narrowly
    def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.expiry.built = False  # partitions moved: rebuild from the local table

    from relmon.web.api import install_routes

    install_routes(worker)
    return worker


def record_metrics(metrics: RelmonMetrics, result: Result) -> None:
    """Count one handled message: its result, new reasons, alerts, dead letters."""
    if result.error_kind is not None:
        metrics.event_consumed(None, "dead_letter")
        metrics.dead_letter(result.error_kind)
        return
    event_type = result.event.type if result.event is not None else None
    metrics.event_consumed(event_type, "duplicate" if result.duplicate else "ok")
    for code in result.new_reasons:
        metrics.decision(code)
    for alert in result.outcome.alerts if result.outcome is not None else []:
        partner = alert.contact.partner_id if alert.contact is not None else None
        if alert.kind == "churn_after_contact" and alert.contact is not None:
            lost = alert.donation.monthly_amount_lost_cents if alert.donation else 0
            metrics.churn_alert(partner, alert.contact.campaign_purpose, lost)
        elif alert.kind == "call_while_suppressed":
            metrics.call_while_suppressed(partner)


def ticks_topic_name(settings: Settings) -> str:
    """The worker's internal ticks topic (created by `relmon worker` before Faust starts)."""
    return f"{settings.topic_prefix}{settings.worker_id}-ticks"


def _credentials(settings: Settings) -> Any:
    if not settings.security_protocol.startswith("SASL"):
        if settings.security_protocol == "SSL":
            return faust.SSLCredentials()
        return None
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    return faust.SASLCredentials(
        username=settings.sasl_username or "",
        password=password,
        mechanism=settings.sasl_mechanism,
        ssl_context=faust.SSLCredentials().context
        if settings.security_protocol == "SASL_SSL"
        else None,
    )
