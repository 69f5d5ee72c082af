"""`relmon worker`: the live stream processor and the dialer API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from relmon.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "worker",
        help="run the stream processor and the dialer API",
        description=(
            "Consume relmon.calls, relmon.consents, relmon.emails and relmon.donations, keep "
            "per-supporter state (RocksDB + changelog topic), emit suppression records, alerts "
            "and dead letters, and serve the dialer API on RELMON_WEB_PORT (default 6066). "
            "Run several workers with the same RELMON_WORKER_ID to share the partitions. "
            "Settings come from RELMON_* variables (see README)."
        ),
        epilog=(
            "Example: relmon worker --bootstrap 127.0.0.1:9092   (or RELMON_KAFKA_BOOTSTRAP)\n"
            "         curl localhost:6066/suppressions/S-1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (overrides RELMON_KAFKA_BOOTSTRAP)",
    )
    parser.add_argument("--web-port", type=int, default=None, help="overrides RELMON_WEB_PORT")
    parser.add_argument("--policy", default=None, help="policy TOML (overrides RELMON_POLICY_FILE)")
    parser.set_defaults(handler=_run)


class StartupCoordinatorFilter(logging.Filter):
    """Lowers aiokafka's "Group Coordinator Request failed: GroupCoordinatorNotAvailableError"
    (or CoordinatorLoadInProgressError) from error to info during the first ``window_s``
    seconds of the worker.

    Every healthy start logs it once or twice at error level: the broker elects the consumer
    group's coordinator (a new group, or a broker just started) while the worker first asks,
    and aiokafka retries. After the window the same record stays an error: the coordinator
    going away while the worker runs is worth a look.
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._clock = clock
        self._until = clock() + window_s

    def filter(self, record: logging.LogRecord) -> bool:
        from aiokafka.errors import (
            CoordinatorLoadInProgressError,
            GroupCoordinatorNotAvailableError,
        )

        expected = (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError)
        args = record.args if isinstance(record.args, tuple) else ()
        if (
            record.levelno == logging.ERROR
            and self._clock() < self._until
            and any(isinstance(a, expected) for a in args)
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"{record.msg} (expected while the worker starts: aiokafka retries)"
        return True


def _run(args: argparse.Namespace) -> int:
    import faust

    from relmon.domain import load_policy
    from relmon.observability.logging import configure, get_logger
    from relmon.streaming.admin import create_topics
    from relmon.streaming.app import build_worker, ticks_topic_name
    from relmon.topics import TopicSpec

    overrides: dict[str, Any] = {}
    if args.bootstrap is not None:
        overrides["kafka_bootstrap"] = args.bootstrap
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.policy is not None:
        overrides["policy_file"] = args.policy
    settings = Settings(**overrides)
    configure(settings.log_format, settings.log_level)
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(StartupCoordinatorFilter())
    log = get_logger("relmon.worker")
    policy = load_policy(settings.policy_file)
    log.info("starting worker", policy_version=policy.version, **settings.safe_dict())
    ticks = TopicSpec(ticks_topic_name(settings), settings.partitions, {"retention.ms": "3600000"})
    asyncio.run(
        create_topics(settings, [ticks], replication_factor=settings.replication_factor, prefix="")
    )
    worker = build_worker(settings, policy)
    faust.Worker(
        worker.app,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        override_logging=False,
    ).execute_from_commandline()  # runs until stopped, then exits the process
