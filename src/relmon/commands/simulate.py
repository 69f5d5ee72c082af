"""`relmon simulate`: a synthetic donor population as a JSONL file or a Kafka stream."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from relmon.commands._args import positive_int
from relmon.errors import ConfigError

DESCRIPTION = """\
Generate a realistic synthetic donor population as contract input events (call_outcome,
consent_change, email_engagement, donation_change), sorted by occurred_at. The same seed and
parameters give a byte-identical stream.

The population is calibrated to published figures: direct-debit attrition of 3-4.5 % a month
(Rapidata, UK), about 41 % of new monthly givers gone within a year (PFRA attrition survey),
18 % acceptance and 6.6 % objections after telemarketing calls (DDMA Telemarketing Benchmark
2023). Partners differ: one calls at dinner time and chases people who asked for time; P-02
(1 %) and P-03 (4 %) stray outside the calling windows (late evenings, Sundays);
irritating calls raise the churn hazard (an assumption, a setting). `--show-params` prints
every parameter with its source; `--params FILE` overrides any of them.

The ground truth (latent traits, and for each churn whether irritation caused it) goes only
to --truth FILE, never into the events. Active mandates and opt-outs already on file are
emitted before --start (backfill_history), so a replay knows the donor file."""

EPILOG = """\
examples:
  relmon simulate --supporters 10000 --seed 7 --out events.jsonl --truth truth.jsonl
      # a year ending today; --start 2026-01-01 --days 365 for a fixed calendar year
  relmon replay --input events.jsonl --out report/
  relmon simulate --supporters 2000 --days 30 --to-kafka --rate 500 --bootstrap kafka:9092
  relmon simulate --show-params > sim.toml   # edit, then: relmon simulate --params sim.toml ..."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "simulate",
        help="generate a synthetic donor population as events (file or Kafka)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("population")
    what.add_argument(
        "--supporters",
        type=positive_int,
        default=1000,
        metavar="N",
        help="number of supporters (default 1000)",
    )
    what.add_argument(
        "--days",
        type=positive_int,
        default=365,
        metavar="D",
        help="simulated days from --start (default 365)",
    )
    what.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="S",
        help="random seed; same seed, same events (default 1)",
    )
    what.add_argument(
        "--start",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="first simulated day, Europe/Amsterdam (default: D days before today, so the "
        "simulated period ends today at midnight and nothing is dated in the future)",
    )
    what.add_argument(
        "--params",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML overriding simulation parameters (see --show-params)",
    )
    what.add_argument(
        "--show-params",
        action="store_true",
        help="print the parameters with their sources as TOML and exit",
    )
    what.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="stop after N events"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help="write events as JSON lines ('-' = stdout)",
    )
    out.add_argument(
        "--truth",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help="write the ground truth per supporter (JSON lines)",
    )
    out.add_argument(
        "--to-kafka",
        action="store_true",
        help="produce to the contract's input topics, keyed by supporter_id",
    )
    out.add_argument(
        "--rate",
        type=_rate,
        default=None,
        metavar="R",
        help="with --to-kafka: events per second, 0 = as fast as possible (default 0)",
    )
    out.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: RELMON_KAFKA_BOOTSTRAP)",
    )
    out.add_argument(
        "--prefix", default=None, help="topic name prefix (default: RELMON_TOPIC_PREFIX)"
    )
    parser.set_defaults(handler=_run)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected events per second, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a positive number, got {text}")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def default_start(days: int, now: datetime | None = None) -> date:
    """The first day of a period of ``days`` that ends today (local midnight)."""
    from relmon.simulation.population import ZONE

    today = (now or datetime.now(UTC)).astimezone(ZONE).date()
    return today - timedelta(days=days)


def check_not_future(start: date, days: int, now: datetime | None = None) -> None:
    """Refuse to stream a period that ends after now: the worker dead-letters every event
    dated more than a day ahead of its clock, and events from the future are not a history."""
    from relmon.simulation.population import ZONE

    end = start + timedelta(days=days)
    end_at = datetime(end.year, end.month, end.day, tzinfo=ZONE)
    now = now or datetime.now(UTC)
    if end_at > now:
        raise ConfigError(
            f"--start {start} --days {days} runs until {end} (midnight, Europe/Amsterdam), "
            f"after now ({now.astimezone(UTC):%Y-%m-%d %H:%M} UTC): the live worker refuses "
            "events dated more than a day ahead of its clock (dead letters of kind "
            '"future"). Leave out --start (the period then ends today), choose an earlier '
            "--start, or write the events to a file with --out and replay them"
        )


def _open(path: Path, flag: str) -> AbstractContextManager[IO[bytes]]:
    if str(path) == "-":
        return nullcontext(sys.stdout.buffer)  # not closed: the interpreter still flushes it
    try:
        return path.open("wb")
    except OSError as exc:
        raise ConfigError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    import orjson

    from relmon.simulation import Simulation, load_params
    from relmon.simulation.params import params_as_toml

    params = load_params(args.params)
    if args.show_params:
        sys.stdout.write(params_as_toml(params))
        return 0
    if args.out is None and not args.to_kafka:
        raise ConfigError("nowhere to write: give --out FILE.jsonl (or '-'), or --to-kafka")
    if args.rate is not None and not args.to_kafka:
        raise ConfigError("--rate paces the Kafka producer; it needs --to-kafka")
    if args.start is None:
        args.start = default_start(args.days)
    if args.to_kafka:
        check_not_future(args.start, args.days)
    sim = Simulation(params, args.seed, args.supporters, args.days, args.start)
    began = time.perf_counter()
    with ExitStack() as stack:
        out = stack.enter_context(_open(args.out, "--out")) if args.out is not None else None
        truth = stack.enter_context(_open(args.truth, "--truth")) if args.truth else None
        progress = stack.enter_context(_Progress(sim))
        events: Iterator[dict[str, Any]] = _limited(sim.events(), args.limit)
        counts: Counter[str] = Counter()
        interrupted = False
        try:
            if args.to_kafka:
                _to_kafka(args, events, counts, out, progress)
            elif out is not None:
                dumps, write = orjson.dumps, out.write
                for event in events:
                    write(dumps(event) + b"\n")
                    counts[event["type"]] += 1
                    progress.tick(event)
        except KeyboardInterrupt:
            interrupted = True
        progress.close(finished=not interrupted and args.limit is None)
        if truth is not None:
            for record in sim.truth():
                truth.write(orjson.dumps(record) + b"\n")
    _report(args, sim, counts, time.perf_counter() - began, interrupted)
    return 130 if interrupted else 0


def _to_kafka(
    args: argparse.Namespace,
    events: Iterator[dict[str, Any]],
    counts: Counter[str],
    out: IO[bytes] | None,
    progress: _Progress,
) -> None:
    import orjson

    from relmon.settings import Settings
    from relmon.simulation.kafka_sink import produce

    settings = Settings(**({"kafka_bootstrap": args.bootstrap} if args.bootstrap else {}))
    prefix = settings.topic_prefix if args.prefix is None else args.prefix

    def on_event(event: dict[str, Any]) -> None:
        if out is not None:
            out.write(orjson.dumps(event) + b"\n")
        progress.tick(event)

    asyncio.run(
        produce(
            events, settings, prefix=prefix, rate=args.rate or 0.0, counts=counts, on_event=on_event
        )
    )


def _limited(events: Iterator[dict[str, Any]], limit: int | None) -> Iterator[dict[str, Any]]:
    for n, event in enumerate(events):
        if limit is not None and n >= limit:
            return
        yield event


class _Progress:
    """A tqdm bar over simulated days (only on a terminal), updated every few thousand events."""

    def __init__(self, sim: Any) -> None:
        from tqdm import tqdm

        self._sim = sim
        self._n = 0
        self._bar = tqdm(
            total=sim.clock.days,
            unit=" day",
            desc="simulate",
            disable=None,  # off when stderr is not a terminal
            file=sys.stderr,
        )

    def tick(self, event: dict[str, Any]) -> None:
        self._n += 1
        if self._n % 4096 == 0 and not self._bar.disable:
            clock = self._sim.clock
            last = self._sim.last_ts or clock.start_ts
            self._bar.n = max(0, min(clock.days, (last - clock.start_ts) // 86_400))
            self._bar.set_postfix(events=f"{self._n:,}", refresh=False)
            self._bar.refresh()

    def close(self, *, finished: bool) -> None:
        if finished and not self._bar.disable:
            self._bar.n = self._sim.clock.days
            self._bar.set_postfix(events=f"{self._n:,}", refresh=False)
        self._bar.close()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _report(
    args: argparse.Namespace, sim: Any, counts: Counter[str], seconds: float, interrupted: bool
) -> None:
    total = sum(counts.values())
    where = []
    if args.out is not None and str(args.out) != "-":
        where.append(str(args.out))
    if args.to_kafka:
        where.append("Kafka")
    state = "interrupted after" if interrupted else "wrote"
    print(
        f"relmon simulate: {state} {total:,} events ({args.supporters:,} supporters, "
        f"{args.days} days from {args.start}, seed {args.seed}) to {' and '.join(where)} "
        f"in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f} events/s)",
        file=sys.stderr,
    )
    width = max((len(name) for name in counts), default=0)
    for name, count in sorted(counts.items()):
        print(f"  {name:{width}} {count:>10,}", file=sys.stderr)
    if args.truth:
        print(f"  ground truth: {args.truth}", file=sys.stderr)
