"""``relmon replay``: run the engine over recorded events without Kafka.

Today the source is a JSONL file (``--input``); the Kafka source (``--from-kafka`` with
``--since``/``--until``) and ``--compare-policy`` join the same verb later: add them to
:func:`register` (the source group is mutually exclusive) and dispatch in :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from relmon.domain import load_policy
from relmon.replay.file_replay import ReplayStats, replay_file


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="run the engine over recorded events and write what it would have emitted",
        description=(
            "Replay recorded input events through the same engine as the worker, in event "
            "time, and write DIR/suppressions.jsonl (every record, in the order emitted), "
            "DIR/alerts.jsonl, DIR/dead_letters.jsonl (each bad line with its number and "
            "error) and DIR/summary.json. A bad line never stops the replay; the same input "
            "and policy always give byte-identical files."
        ),
        epilog="Example: relmon replay --input events.jsonl --out out/ --policy policy.toml",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", metavar="FILE.jsonl", help="a file of input events, one JSON object a line"
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="where to write the outputs")
    parser.add_argument(
        "--policy",
        metavar="FILE.toml",
        default=None,
        help="the policy to apply (default: the policy shipped with relmon)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal anyway)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    progress = not args.no_progress and sys.stderr.isatty()
    stats = replay_file(args.input, args.out, policy, progress=progress)
    print(summary(stats, args.out))
    return 0


def summary(stats: ReplayStats, out: str) -> str:
    """The one-paragraph report printed at the end of a replay."""
    blank = f" ({stats.blank:,} blank lines skipped)" if stats.blank else ""
    return (
        f"relmon replay: {stats.lines:,} lines read{blank}, {stats.valid:,} valid events, "
        f"{stats.dead_letters:,} dead letters; {stats.records:,} suppression records, "
        f"{stats.alerts:,} alerts for {stats.supporters:,} supporters "
        f"(policy {stats.policy_version}); {stats.events_per_second:,.0f} events/s "
        f"in {stats.seconds:.2f} s; written to {out}"
    )
