"""Calling-window cost benchmark: the engine over a simulated year, and next_call_at in answers.

(a) ``Engine.apply`` over every event of a simulated population (default: 1,500 supporters,
    365 days, seed 1, as ``relmon simulate`` writes it), parsed beforehand: CPU seconds,
    best of ``--repeat``. This includes the calling-window hooks (the supporter's zone, the
    ``call_outside_window`` judgement of each outbound call, ``RELATIONSHIP_LAPSED``).
(b) ``DecisionView.answers`` for 100,000 ids of held supporters (the simulated ones, repeated)
    asked at the end of the simulated period: CPU milliseconds, best of ``--repeat``, and the
    bytes answered. Every answer ends with ``next_call_at``.

CPU time (``time.process_time``) rather than wall time, because the machine is shared; the
figures still move by 10-20 % between runs, so compare the best of several.
Run: ``python benchmarks/bench_calling.py [--input FILE.jsonl]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from relmon.domain import Engine, SupporterState, default_policy, parse_event
from relmon.simulation import SimulationParams, generate
from relmon.streaming.view import DecisionView


def simulated(path: Path, supporters: int, days: int) -> None:
    with path.open("wb") as out:
        for event in generate(SimulationParams(), 1, supporters, days, date(2026, 1, 1)):
            out.write(orjson.dumps(event) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input", type=Path, help="events (default: a simulated year)")
    parser.add_argument("--supporters", type=int, default=1500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.input
        if path is None:
            path = Path(tmp) / "sim.jsonl"
            simulated(path, args.supporters, args.days)
        events = [parse_event(line) for line in path.read_bytes().splitlines() if line]
    engine = Engine(default_policy())
    best = float("inf")
    states: dict[str, SupporterState] = {}
    alerts = 0
    for _ in range(args.repeat):
        states, alerts = {}, 0
        started = time.process_time()
        for ev in events:
            outcome = engine.apply(states.get(ev.supporter_id), ev)
            states[ev.supporter_id] = outcome.state
            alerts += len(outcome.alerts)
        best = min(best, time.process_time() - started)
    print(
        f"(a) engine: {len(events):,} events, {alerts:,} alerts: best CPU {best:.3f} s "
        f"= {len(events) / best:,.0f} events/s"
    )
    view = DecisionView(engine, states.get)
    known = sorted(states)
    ids = (known * (100_000 // len(known) + 1))[:100_000]
    now = max(ev.occurred_at for ev in events).astimezone(UTC) + timedelta(hours=1)
    now = datetime.fromtimestamp(int(now.timestamp()), UTC)
    for sid in known:
        view.answer(sid, now)
    best = float("inf")
    size = 0
    for _ in range(args.repeat):
        started = time.process_time()
        size = sum(len(answer) for _sid, answer in view.answers(ids, now))
        best = min(best, time.process_time() - started)
    print(
        f"(b) view: 100,000 held answers of {len(known):,} supporters: best CPU "
        f"{best * 1000:.1f} ms, {size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
