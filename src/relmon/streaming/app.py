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

Delivery is at least once with idempotent processing. Each batch goes apply → emit →
persist → ack (:mod:`relmon.streaming.pipeline` says why that order loses nothing); the agent
acks a batch only when the pipeline finished it, and its supervisor crashes the worker
rather than restart the agent, since a restarted agent would commit past what it dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, cast

import faust
import mode
import orjson
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from relmon.domain import Engine, Policy, SupporterState
from relmon.observability.logging import get_logger
from relmon.observability.metrics import (
    RelmonMetrics,
    SuppressionsCollector,
    sample_consumer_lag,
)
from relmon.settings import Settings
from relmon.streaming.pipeline import BatchPipeline
from relmon.streaming.processor import Emit, Processor, partition_for
from relmon.topics import ALERTS, DLQ, INPUT_TOPICS, SUPPRESSIONS
from relmon.web.api import Api, install_routes

log = get_logger(__name__)
TABLE_NAME = "supporter-state"
HOLE_WAIT_S = 30.0  # a partition whose commits wait behind a hole this long: restart


class TableStore:
    """The Faust table seen as a :class:`~relmon.streaming.processor.StateStore`.

    Reads and writes name the supporter's partition explicitly. Faust's RocksDB store would
    otherwise take the partition of the stream's *current event*, which inside a batch is
    whichever message the stream yielded last: a read would look in the wrong partition's
    database and find nothing.
    """

    def __init__(self, table: Any, partitions: int) -> None:
        self.table = table
        self.partitions = partitions

    def _db(self, key: str) -> Any:
        return self.table.data._db_for_partition(partition_for(key, self.partitions))

    def get(self, key: str) -> bytes | None:
        value = self._db(key).get(key.encode())
        return bytes(value) if value is not None else None

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """Write to the local store only (the changelog is the caller's, before this)."""
        self.table.data._db_for_partition(partition).put(key, value)
        self.table.data._key_index[key] = partition

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
        producer_linger_ms=1,  # the pipeline waits for every send: do not wait to batch
        # at most 256 KiB fetched per partition and request (aiokafka's default is 1 MiB):
        # an opt-out waits behind fewer fetched e-mails of a burst. 64 KiB did better there
        # but cut an opt-out flood from 4,300/s to 1,750/s (BENCHMARKS.md, bench_skew.py)
        consumer_max_fetch_size=256 * 1024,
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
    metrics.registry.register(SuppressionsCollector(processor.suppressions.snapshot))
    worker = Worker(app, settings, engine, processor, store, table, outputs, metrics)
    ticks_name = ticks.get_topic_name()

    topic_of = {name: topic.get_topic_name() for name, topic in outputs.items()}
    changelog: str = cast(Any, table).changelog_topic_name  # not in TableT, on every Table
    partitions = settings.partitions

    async def send(emits: Sequence[Emit]) -> None:
        """Step 2: every output on Kafka, acknowledged (raises if any send fails)."""
        producer = app.producer
        pending = [
            await producer.send(
                e.topic or topic_of[e.output], e.key, e.value, e.partition, None, None
            )
            for e in emits
        ]
        if pending:
            await asyncio.gather(*pending)

    async def persist(states: Mapping[str, SupporterState]) -> None:
        """Step 3: each state to the changelog (acknowledged), then to the local store."""
        if not states:
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == ticks_name}
        writes = []
        for sid, state in states.items():
            partition = partition_for(sid, partitions)
            if partition not in owned:
                # revoked while this batch was in hand: its new owner consumes the batch's
                # messages again (they were never acknowledged) and persists them itself
                log.info("state not persisted: partition revoked", partition=partition)
                continue
            writes.append((partition, sid.encode(), state.to_bytes()))
        # straight to the producer, like the outputs (Faust's send_soon buffer drains one
        # message at a time, which the batch would wait for)
        producer = app.producer
        sent = [
            await producer.send(changelog, key, value, part, None, None)
            for part, key, value in writes
        ]
        persisted: dict[int, int] = {}
        for meta in await asyncio.gather(*sent):
            persisted[meta.partition] = max(meta.offset, persisted.get(meta.partition, -1))
        for part, key, value in writes:
            store.put(key, value, part)
        for part, offset in persisted.items():
            # what Faust's own changelog callback records: recovery resumes after it
            cast(Any, table.data).set_persisted_offset(TP(changelog, part), offset)

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
        send=send,
        persist=persist,
        ticks_topic=ticks_name,
        store_items=store.items,
        lagging=lagging,
        on_bug=crash,
    )
    worker.pipeline = pipeline

    offsets = OffsetTrack(ticks_name)
    starts: dict[tuple[str, int], int] = {}  # input partition -> earliest offset, when assigned
    heads: dict[tuple[str, int], float] = {}  # input partition -> since when its head has a hole
    input_names = set(sources.topics)

    @app.agent(
        app.topic(*sources.topics, ticks_name, key_type=bytes, value_type=bytes),
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )
    async def process(stream: Any) -> AsyncIterator[None]:
        # Events are gathered into a batch while more are already waiting in the stream's
        # queue (at most `batch_max`), then the batch goes through relmon.streaming.pipeline
        # (apply → emit → persist) and only then is each of its events acked. Acks are
        # manual (`enable_acks = False`): nothing is acked when the pipeline did not finish,
        # whatever stops the agent. Faust's take_events is not used: it acks its batch in a
        # `finally` even when the body failed, and its event list can disagree with its
        # values (an event listed twice, another never), which lost messages.
        # Faust itself acks a message it skips (one fetched before a rebalance), and a
        # commit could then pass it before its fresh copy is processed: the consumer's ack
        # is guarded so that it takes only messages this loop finished.
        stream.enable_acks = False
        waiting = stream.channel.queue.empty
        finished: set[int] = set()
        consumer = app.consumer
        plain_ack = consumer.ack

        def ack_if_finished(message: Any) -> bool:
            if id(message) not in finished:
                return False
            finished.discard(id(message))
            return bool(plain_ack(message))

        consumer.ack = ack_if_finished  # type: ignore[method-assign]  # the guard above
        # Faust's commit takes the first run of consecutive acked offsets; when the partition
        # has no committed offset yet (or 0), it commits that run even if offsets before it
        # were never acked (a message skipped during recovery and not fetched again).
        # Commit only a run that starts where the partition's reading started.
        private: Any = consumer  # Faust's commit bookkeeping is not in ConsumerT
        plain_new_offset = private._new_offset

        def new_offset(tp: Any) -> int | None:
            if tp.topic in input_names:
                key = (tp.topic, tp.partition)
                committed = private._committed_offset[tp]
                start = committed if committed is not None else starts.get(key)
                acked = private._acked[tp]
                if acked and start is None:
                    return None  # where reading started is not known yet: commit later
                if acked and start is not None and min(acked) > start:
                    heads.setdefault(key, time.monotonic())
                    return None  # a hole at the head: never commit past it
                heads.pop(key, None)
            return cast("int | None", plain_new_offset(tp))

        private._new_offset = new_offset

        async def ack_batch(held_events: list[Any]) -> None:
            """Step 4 of one batch (the pipeline calls it once the batch is persisted)."""
            for held in held_events:
                finished.add(id(held.message))
                await stream.ack(held)
                finished.discard(id(held.message))  # a message acked twice is acked once

        batch: list[Any] = []
        async for event in stream.events():
            batch.append(event)
            if len(batch) < settings.batch_max and not waiting():
                continue
            hole = offsets.hole([held.message for held in batch])
            if hole is not None:
                # Input topics are neither compacted nor transactional: their offsets have
                # no gaps, so a skipped offset is a message the consumer dropped (Faust
                # drops a refetched message below its read offset). Ack nothing past it:
                # stop, and the next start consumes again from the last commit.
                log.critical("offset hole: a message was skipped by the consumer", hole=hole)
                logging.shutdown()
                os._exit(75)
            try:
                await pipeline.run(
                    [held.message for held in batch],
                    datetime.now(UTC),
                    functools.partial(ack_batch, batch),
                )
            except Exception as exc:  # noqa: BLE001  # a bug: see crash()
                crash(exc)
            batch = []
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
        metrics.set_recovery(not worker.ready)
        warm_view()
        if pipeline.redelivery_ends is None:
            await learn_redelivery_ends()
        stuck = [key for key, since in heads.items() if time.monotonic() - since > HOLE_WAIT_S]
        if stuck:
            # messages at the head of these partitions were skipped and are not coming
            # back: stop, and the next start reads them again from the last commit
            log.critical("offset hole at the head of a partition: stopping", partitions=stuck)
            logging.shutdown()
            os._exit(75)
        fresh = await sample_consumer_lag(app.consumer, input_names)
        lags.clear()
        lags.update(fresh)
        metrics.replace_lags(fresh)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types the handler too narrowly
    def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.view.clear()  # answer only from states of the partitions now held
        for warm_task in warming:
            warm_task.cancel()
        warming.clear()
        pipeline.assigned()  # rebuild the expiry index; re-assert what a previous owner sent
        offsets.reset()
        heads.clear()
        task = asyncio.ensure_future(learn_redelivery_ends())
        background.add(task)  # the sample timer retries if this fails
        task.add_done_callback(background.discard)

    web_app = cast(Any, app.web).web_app  # the aiohttp driver's application
    api = Api(worker, token=settings.api_token, self_url=settings.canonical_url())
    install_routes(web_app, api)
    return worker


class OffsetTrack:
    """The last offset processed per input partition since the last rebalance."""

    def __init__(self, ticks_topic: str) -> None:
        self.ticks_topic = ticks_topic
        self.last: dict[tuple[str, int], int] = {}

    def reset(self) -> None:
        self.last.clear()

    def hole(self, messages: Sequence[Any]) -> str | None:
        """The first skipped offset in ``messages`` (in arrival order), if any; records the
        batch as seen otherwise. Redeliveries (offsets at or below the last) are fine."""
        last = self.last
        for m in messages:
            if m.topic == self.ticks_topic:
                continue
            key = (m.topic, m.partition)
            before = last.get(key)
            if before is not None and m.offset > before + 1:
                return f"{m.topic}[{m.partition}]: offsets {before + 1}..{m.offset - 1}"
            if before is None or m.offset > before:
                last[key] = m.offset
        return None


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
