"""A no-op Faust agent: the ceiling for any Faust worker on this setup.

One agent over relmon's input topics that iterates the stream and lets Faust ack each event,
doing nothing else: no table, no RocksDB store, no outputs. Broker and consumer settings are
those of relmon's worker (``relmon.streaming.app.build_worker``): 256 KiB fetches per
partition, producer linger 1 ms, commits every second, at-least-once, earliest reset.

Reads the same ``RELMON_*`` variables as ``relmon worker`` (bootstrap, topic prefix,
partitions, web host and port, state dir, worker id); its consumer group (= app id) is
``<prefix><RELMON_WORKER_ID>`` (``bench_worker.py`` sets ``noop-bench``). ``GET /readyz``
answers 200 once partitions are assigned and Faust's recovery step has completed, like the
worker's. Started by ``bench_worker.py`` as ``python benchmarks/noop_agent.py``.
"""

from __future__ import annotations

from typing import Any

import faust

from relmon.settings import Settings
from relmon.topics import INPUT_TOPICS


def build(settings: Settings) -> faust.App:
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}{settings.worker_id}",
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url(),
        stream_wait_empty=False,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.broker_session_timeout_s / 10),
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        producer_linger_ms=1,
        consumer_max_fetch_size=256 * 1024,
        key_serializer="raw",
        value_serializer="raw",
        logging_config=None,
        loghandlers=[],
    )
    topic = app.topic(*(f"{prefix}{t}" for t in INPUT_TOPICS), key_type=bytes, value_type=bytes)

    @app.agent(topic, concurrency=1)
    async def noop(stream: Any) -> None:
        async for _event in stream.events():  # Faust acks each event when the next is taken
            pass

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def readyz(view: Any, request: Any) -> Any:
        tables: Any = app.tables
        ready = (
            tables.recovery.completed.is_set()
            and not app.rebalancing
            and bool(app.consumer.assignment())
        )
        if ready:
            return view.json({"status": "ready"})
        return view.json({"status": "not_ready"}, status=503)

    return app


def main() -> None:
    settings = Settings()
    app = build(settings)
    faust.Worker(
        app, loglevel=settings.log_level, redirect_stdouts=False, override_logging=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
