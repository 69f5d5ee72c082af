"""`relmon topics create`: create the contract's topics, idempotently."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from relmon.commands._args import positive_int
from relmon.settings import Settings
from relmon.topics import contract_topics


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "topics",
        help="create the contract's Kafka topics",
        description="Manage relmon's Kafka topics.",
        epilog="Example: relmon topics create --partitions 12 --replication-factor 3",
    )
    verbs = parser.add_subparsers(dest="topics_verb", metavar="ACTION", required=True)
    create = verbs.add_parser(
        "create",
        help="create the input, suppression, alert and dead-letter topics (idempotent)",
        description=(
            "Create relmon's topics on the cluster at RELMON_KAFKA_BOOTSTRAP: the four input "
            "topics with one shared partition count (they are co-partitioned by supporter_id), "
            "the compacted relmon.suppressions, relmon.alerts and relmon.dlq. Topics that exist "
            "are left as they are; a partition count that differs is reported and exits 1."
        ),
        epilog="Example: RELMON_KAFKA_BOOTSTRAP=kafka:9092 relmon topics create --partitions 12",
    )
    create.add_argument(
        "--partitions",
        type=positive_int,
        default=None,
        help="partitions per topic (default: RELMON_PARTITIONS or 8)",
    )
    create.add_argument(
        "--replication-factor",
        type=positive_int,
        default=None,
        help="replicas per partition (default: RELMON_REPLICATION_FACTOR or 1)",
    )
    create.add_argument(
        "--prefix",
        default=None,
        help="prepended to every topic name (default: RELMON_TOPIC_PREFIX)",
    )
    create.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: RELMON_KAFKA_BOOTSTRAP)",
    )
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    from relmon.streaming.admin import create_topics

    overrides = {"kafka_bootstrap": args.bootstrap} if args.bootstrap else {}
    settings = Settings(**overrides)
    partitions = args.partitions or settings.partitions
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    statuses = asyncio.run(
        create_topics(
            settings,
            contract_topics(partitions),
            replication_factor=args.replication_factor or settings.replication_factor,
            prefix=prefix,
        )
    )
    failed = False
    for status in statuses:
        line = f"{status.action:8} {status.name} ({status.partitions} partitions)"
        if status.problem:
            failed = True
            line += f"  PROBLEM: {status.problem}"
        print(line)
    return 1 if failed else 0
