"""The Faust wiring: topics and the state table declared once, one agent, the timers.

Topology::

    relmon.calls ─┐
    relmon.consents ─┤                      ┌─> relmon.suppressions (compacted, key supporter_id)
    relmon.emails ─┼─> agent `process` ──────┼─> relmon.alerts
    relmon.donations ─┤   (concurrency 1)      └─> relmon.dlq
    relmon.history ─┤        │
    <app>-ticks ──┘        │
                    Table `supporter-state` (RocksDB + changelog topic)

The input topics are co-partitioned by ``supporter_id``; so is the internal ticks topic, to
which a timer sends the wall-clock time every few seconds. A tick for partition *p* makes the
agent emit the expiries (lifts) due in *p*.

The worker's parts, one module each (a newcomer's map):

* :mod:`relmon.streaming.app` (here): the Faust app, its topics, table, agent, timers and
  rebalance hooks, and :class:`Worker`, what the API asks (:class:`relmon.web.api.Backend`).
* :mod:`relmon.streaming.batch_loop`: the agent's body, and the guards that let Faust ack
  and commit only what was finished.
* :mod:`relmon.streaming.pipeline`: the processing protocol per batch, apply → emit →
  persist → ack, and why that order loses nothing.
* :mod:`relmon.streaming.processor`: one message: decode, route, apply the engine, the
  write-back state cache and the expiry index.
* :mod:`relmon.streaming.emitter`: outputs and changelog writes to Kafka, the local store.
* :mod:`relmon.streaming.view`: the current-decision view the API answers from.
* :mod:`relmon.streaming.urgent_first`: opt-outs before bulk e-mails in the consumer.

Delivery is at least once with idempotent processing; the agent's supervisor crashes the
worker rather than restart the agent, since a restarted agent would commit past what it
dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, cast

import faust
import mode
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from relmon.domain import Engine, Policy
from relmon.observability.logging import flush_rate_limit, get_logger, set_rate_limit
from relmon.observability.metrics import (
    RelmonMetrics,
    SuppressionsCollector,
    sample_consumer_lag,
)
from relmon.settings import Settings
from relmon.streaming import kafka_backoff
from relmon.streaming.batch_loop import EXIT_HOLE, ConsumerGuard, OffsetTrack, batch_loop
from relmon.streaming.emitter import Emitter, TableStore
from relmon.streaming.pipeline import BatchPipeline
from relmon.streaming.processor import Processor
from relmon.streaming.urgent_first import read_urgent_first, shorten_fetch_wait
from relmon.topics import ALERTS, BULK_TOPICS, DLQ, INPUT_TOPICS, SUPPRESSIONS
from relmon.web import openapi
from relmon.web.api import Api, install_routes
from relmon.web.server import GuardedWeb, WebLimits

log = get_logger(__name__)
TABLE_NAME = "supporter-state"


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
    pipeline: BatchPipeline | None = None

    # --- what the API needs (relmon.web.api.Backend) --------------------------------------
    @property
    def partitions(self) -> int:
        return self.settings.partitions

    def owners(self) -> dict[int, str]:
        """Partition -> base URL of the worker that owns it (from the last rebalance)."""
        owners: dict[int, str] = {}
        for host, topics in self.app.router.table_metadata(TABLE_NAME).items():
            for partitions in topics.values():
                for partition in partitions:
                    owners[partition] = str(host).rstrip("/")
        return owners

    def answers(self, ids: Iterable[str], now: datetime) -> Iterator[tuple[str, bytes]]:
        return self.processor.view.answers(ids, now)

    def explain(self, supporter_id: str, now: datetime) -> bytes:
        state = self.processor.load(supporter_id)
        return orjson.dumps(self.engine.explain(state, supporter_id, now))

    def metrics_text(self) -> tuple[bytes, str]:
        return generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST

    @property
    def ready(self) -> bool:
        """Recovered, not rebalancing, the batch in hand not stalled on Kafka, and the
        partitions' end offsets at assignment known (see BatchPipeline.reassert)."""
        tables = cast(Any, self.app.tables)  # the TableManager's recovery is not in its type
        recovered = tables.recovery.completed.is_set() and not tables.recovery.in_recovery
        pipeline = self.pipeline
        stalled = pipeline is not None and pipeline.stalled is not None
        settled = pipeline is None or pipeline.redelivery_ends is not None
        return bool(recovered and not self.app.rebalancing and not stalled and settled)


class RelmonApp(faust.App):  # faust is untyped (Any)
    """A Faust app whose web server is :class:`relmon.web.server.GuardedWeb`: bounded
    timeouts and connections, and none of Faust's own pages."""

    def __init__(self, *args: Any, web_limits: WebLimits, **kwargs: Any) -> None:
        self.web_limits = web_limits
        super().__init__(*args, **kwargs)

    def _new_web(self) -> GuardedWeb:
        return GuardedWeb(self, limits=self.web_limits)


def build_worker(settings: Settings, policy: Policy) -> Worker:
    prefix = settings.topic_prefix
    web_limits = WebLimits.from_settings(settings)
    # a broker outage leaves a readable log: paced reconnects, rate-limited lines
    kafka_backoff.install(
        settings.kafka_reconnect_backoff_ms, settings.kafka_reconnect_backoff_max_ms
    )
    set_rate_limit(settings.log_rate_limit, settings.log_rate_window_s)
    app = RelmonApp(
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
        web_limits=web_limits,
        web_application_options={"client_max_size": web_limits.max_body_bytes},
        # Faust's own pages show raw table rows and the cluster's layout: off (GuardedWeb
        # serves none of them whatever these say)
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # the interface to listen on (web_host alone is only a name)
        web_port=settings.web_port,
        canonical_url=settings.canonical_url(),
        stream_wait_empty=False,  # processing is idempotent: do not stall rebalances
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.broker_session_timeout_s / 10),
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        producer_linger_ms=1,  # the pipeline waits for every send: do not wait to batch
        # at most 256 KiB fetched per partition and request (aiokafka's default is 1 MiB):
        # an opt-out waits behind fewer fetched e-mails of a burst. 64 KiB did better there
        # but cut an opt-out flood from 4,300/s to 1,750/s (BENCHMARKS.md, bench_skew.py)
        consumer_max_fetch_size=256 * 1024,
        # at most this many fetched records handed out per poll (aiokafka: no limit, i.e.
        # everything fetched): an opt-out fetched meanwhile waits for no more e-mails than
        # this to reach the agent (relmon.streaming.urgent_first)
        broker_max_poll_records=settings.max_poll_records,
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
    store = TableStore(table, settings.partitions)
    processor = Processor(engine, store, partitions=settings.partitions)
    metrics = RelmonMetrics(CollectorRegistry())
    metrics.set_build_info(version("relmon"), policy.version)
    worker = Worker(app, settings, engine, processor, store, table, outputs, metrics)
    ticks_name = ticks.get_topic_name()

    def owned() -> set[int]:
        """The partitions this worker holds now (its ticks topic is co-partitioned)."""
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == ticks_name}

    metrics.registry.register(SuppressionsCollector(processor.suppressions.per_partition, owned))

    emitter = Emitter(
        lambda: app.producer,
        topic_of={name: topic.get_topic_name() for name, topic in outputs.items()},
        changelog=cast(Any, table).changelog_topic_name,  # not in TableT, on every Table
        store=store,
        partitions=settings.partitions,
        owned=owned,
    )

    lags: dict[tuple[str, int], int] = {}  # input (topic, partition) -> lag, sampled

    def lagging(partition: int) -> bool:
        return any(lag > 0 for (_t, p), lag in lags.items() if p == partition)

    def crash(exc: BaseException) -> None:
        # Not a bad message (those are dead letters) nor Kafka failing (retried): a bug.
        # Stop at once, acking nothing more; unacked batches are consumed again on restart.
        log.critical("unexpected error in the batch pipeline: stopping", exc_info=exc)
        logging.shutdown()
        os._exit(70)

    pipeline = BatchPipeline(
        processor,
        metrics,
        send=emitter.send,
        persist=emitter.persist,
        ticks_topic=ticks_name,
        store_items=store.items,
        lagging=lagging,
        on_bug=crash,
    )
    worker.pipeline = pipeline

    offsets = OffsetTrack(ticks_name)
    starts: dict[tuple[str, int], int] = {}  # input partition -> earliest offset, when assigned
    input_names = set(sources.topics)
    guards: list[ConsumerGuard] = []  # installed on the consumer when the agent starts

    @app.agent(
        app.topic(*sources.topics, ticks_name, key_type=bytes, value_type=bytes),
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,  # a restarted agent would commit past
    )  # what it dropped: crash the worker instead
    async def process(stream: Any) -> AsyncIterator[None]:
        if not guards:
            guards.append(ConsumerGuard(app.consumer, input_names, starts))
            if settings.urgent_first:
                read_urgent_first(app.consumer, {f"{prefix}{t}" for t in BULK_TOPICS})
        async for _ in batch_loop(
            stream, pipeline, guards[0], offsets, batch_max=settings.batch_max, crash=crash
        ):
            yield None

    @app.timer(interval=settings.expiry_interval_s)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        now = datetime.now(UTC).isoformat().encode()
        actives = app.assignor.assigned_actives()
        partitions = sorted({tp.partition for tp in actives if tp.topic == ticks_name})
        for partition in partitions:
            await ticks.send(key=b"tick", value=now, partition=partition)

    background: set[asyncio.Future[None]] = set()

    async def learn_redelivery_ends() -> None:
        """The end offsets of the assigned input partitions: what was there when assigned."""
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in input_names]
        if assigned and pipeline.redelivery_ends is None:
            try:
                ends = await app.consumer.highwaters(*assigned)
            except Exception as exc:  # noqa: BLE001  # retried by the sample timer
                log.warning("end offsets not known yet", error=f"{type(exc).__name__}: {exc}")
                return
            earliest = await app.consumer.earliest_offsets(*assigned)
            starts.update({(tp.topic, tp.partition): n for tp, n in earliest.items()})
            pipeline.redelivery_ends = {(tp.topic, tp.partition): n for tp, n in ends.items()}

    warming: list[asyncio.Future[int]] = []  # the view's warm-up since the last rebalance

    def warm_view() -> None:
        """Once ready after a rebalance, decide every held supporter in the background, so
        that the first large check is answered from the view (relmon.streaming.view)."""
        if warming or not worker.ready:
            return
        ids = (sid for sid, _raw in store.items())
        warm_task = asyncio.ensure_future(processor.view.warm(ids, datetime.now(UTC)))
        warming.append(warm_task)

        def done(t: asyncio.Future[int]) -> None:
            if not t.cancelled() and t.exception() is None:
                log.info("current-decision view warmed", supporters=t.result())

        warm_task.add_done_callback(done)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def sample() -> None:
        flush_rate_limit()  # sum up the log lines a flood that has stopped held back
        metrics.set_recovery(not worker.ready)
        warm_view()
        if pipeline.redelivery_ends is None:
            await learn_redelivery_ends()
        stuck = guards[0].stuck() if guards else []
        if stuck:
            # messages at the head of these partitions were skipped and are not coming
            # back: stop, and the next start reads them again from the last commit
            log.critical("offset hole at the head of a partition: stopping", partitions=stuck)
            logging.shutdown()
            os._exit(EXIT_HOLE)
        fresh = await sample_consumer_lag(app.consumer, input_names)
        lags.clear()
        lags.update(fresh)
        metrics.replace_lags(fresh)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types the handler too narrowly
    def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        shorten_fetch_wait(app.consumer, settings.fetch_max_wait_ms)  # the consumer is running
        processor.view.clear()  # answer only from states of the partitions now held
        for warm_task in warming:
            warm_task.cancel()
        warming.clear()
        pipeline.assigned()  # rebuild the expiry index; re-assert what a previous owner sent
        offsets.reset()
        for guard in guards:
            guard.rebalanced()
        task = asyncio.ensure_future(learn_redelivery_ends())
        background.add(task)  # the sample timer retries if this fails
        task.add_done_callback(background.discard)

    web_app = cast(Any, app.web).web_app  # the aiohttp driver's application
    api = Api(worker, token=settings.api_token, self_url=settings.canonical_url())
    install_routes(web_app, api, http=metrics.http)
    openapi.install(web_app)  # GET /openapi.json
    return worker


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
