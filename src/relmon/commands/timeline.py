"""``relmon timeline SUPPORTER_ID``: one supporter's story, as a table and a plot."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relmon.errors import ConfigError, InputFileError

EPILOG = """\
examples:
  relmon timeline S0001147 --input events.jsonl     # writes timeline-S0001147.html
  relmon timeline S0001147 --input events.jsonl --out pages/   # pages/timeline-S0001147.html
  relmon timeline S0001147 --from-kafka --since "$(date -u +%F)" --bootstrap kafka:9092
      # the supporter's events produced since midnight UTC today

--since/--until select messages by their Kafka timestamp: the time each message was
produced, not the event's occurred_at (see relmon replay --help)."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "timeline",
        help="one supporter's story: every event, the scores after it, decisions and alerts",
        description=(
            "Run the engine over one supporter's events (from a file, or from a time range "
            "of the input topics) and print every event with the fatigue and irritation risk "
            "after it, the suppression decisions (and the expiries between events) and the "
            "alerts; write the same as an HTML page with a plot (self-contained, offline). "
            "--from-kafka reads only the supporter's partition, with no consumer group: it "
            "never touches the live worker's offsets."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("supporter_id", metavar="SUPPORTER_ID")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE.jsonl", help="a file of input events")
    source.add_argument(
        "--from-kafka", action="store_true", help="read the input topics for --since/--until"
    )
    parser.add_argument(
        "--out",
        metavar="FILE.html|DIR",
        default=None,
        help="the HTML page to write, or a folder to write timeline-SUPPORTER_ID.html into "
        "(default: timeline-SUPPORTER_ID.html here); missing parent folders are created",
    )
    parser.add_argument("--policy", metavar="FILE.toml", default=None, help="the policy")
    kafka = parser.add_argument_group("with --from-kafka")
    kafka.add_argument(
        "--since",
        metavar="T",
        help="first message time, inclusive: RFC 3339 or a date (midnight UTC); messages are "
        "selected by when they were produced, not by occurred_at",
    )
    kafka.add_argument("--until", metavar="T", help="exclusive (default: now); same forms")
    kafka.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka brokers")
    kafka.add_argument("--prefix", help="topic name prefix (default: RELMON_TOPIC_PREFIX)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from relmon.domain import load_policy
    from relmon.replay import timeline

    policy = load_policy(args.policy)
    sid = args.supporter_id
    if args.from_kafka:
        events, end, source = _from_kafka(args, sid)
    else:
        stray = [f for f in ("since", "until", "bootstrap", "prefix") if getattr(args, f)]
        if stray:
            raise ConfigError(f"{', '.join('--' + f for f in stray)} only apply with --from-kafka")
        source = args.input
        events, end = timeline.events_from_file(Path(args.input), sid)
    tl = timeline.build(events, sid, policy, end, source)
    out = out_path(args.out, sid)
    write_page(out, timeline.html(tl))  # first: nothing is printed if the page cannot be written
    print(timeline.text_table(tl))
    print(f"relmon timeline: written to {out}", file=sys.stderr)
    return 0


def out_path(given: str | None, supporter_id: str) -> Path:
    """Where the page goes: ``timeline-<id>.html`` in the current folder, in a given folder
    (one that exists, or a path ending in ``/``), or the file given."""
    name = f"timeline-{_safe(supporter_id)}.html"
    if given is None:
        return Path(name)
    path = Path(given)
    if path.is_dir() or given.endswith(("/", "\\")):
        return path / name
    return path


def _safe(supporter_id: str) -> str:
    """The supporter id as a file name part (ids are opaque: keep letters, digits, -_.)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in supporter_id)


def write_page(out: Path, text: str) -> None:
    """Write the page, creating missing parent folders; a precise error otherwise."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from None


def _from_kafka(args: argparse.Namespace, sid: str) -> tuple[list[Any], int, str]:
    from relmon.replay.kafka_source import check_range, describe, parse_time, read_range
    from relmon.settings import Settings

    if not args.since:
        raise ConfigError("--from-kafka needs --since T (and optionally --until T)")
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until") if args.until else datetime.now(UTC)
    check_range(since, until)
    try:
        settings = Settings(**({"kafka_bootstrap": args.bootstrap} if args.bootstrap else {}))
    except ValueError as exc:
        raise ConfigError(f"--bootstrap / RELMON_* settings: {exc}") from None
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    progress = not args.no_progress and sys.stderr.isatty()
    read = read_range(settings, prefix, since, until, progress=progress, only_key=sid)
    source = describe(settings, prefix, since, until)
    events = [e[4] for e in read.events if e[4].supporter_id == sid]
    if not events:
        raise InputFileError(f"supporter {sid} has no events in {source}")
    end = max(int(e[0]) for e in read.events)
    return events, end, source
