"""Scenario d: the broker stopped and started again while events stream in."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from tests.chaos.conftest import Size
from tests.chaos.harness import Plan, Run, add_events, phone_optouts, population, verify

DAYS = 50
# Log lines the worker may write from the outage's start until it has settled. Without
# reconnect back-off and the log's rate limit a 6 s outage wrote 54,121 (a 40 s one
# 710,473); with them about 100. Per logger and message at most 20 lines a minute pass
# (RELMON_LOG_RATE_LIMIT), and an outage touches some ten of them.
MAX_OUTAGE_LOG_LINES = 1000


def line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def test_a_broker_outage_mid_stream_loses_nothing(
    new_run: Callable[..., Run], chaos_size: Size
) -> None:
    """Stopping the broker mid-stream and starting it again (the producer retrying meanwhile)
    leaves a suppressed record for every opt-out and the replay's alerts and final decisions,
    and a readable log: at most MAX_OUTAGE_LOG_LINES lines from the outage to the end."""
    rng = random.Random(4242)
    plan = Plan("d-broker-outage")
    events = sorted(
        population(rng, "pd", chaos_size.outage_population, DAYS)
        + phone_optouts(rng, "pd", chaos_size.outage_optouts, DAYS),
        key=lambda e: e.occurred_at,
    )
    optout_ids = {e.event_id for e in events if "-o" in e.supporter_id}
    for event in events:
        add_events(plan, [event], dedicated=event.event_id in optout_ids)

    run = new_run(plan)
    run.worker.start().wait_ready()
    run.producer.start(plan.messages, chaos_size.outage_rate)
    time.sleep(len(plan.messages) / chaos_size.outage_rate * 0.3)
    before = line_count(run.worker.log_path)
    t0 = time.monotonic()
    run.outage(chaos_size.outage_down_s)
    broker_away_s = time.monotonic() - t0  # stopping, down, starting again
    run.producer.close()
    run.worker.wait_ready(timeout_s=180)
    run.settle(timeout_s=240)
    logged = line_count(run.worker.log_path) - before
    verdict = verify(run, {"outage_log_lines": logged, "broker_away_s": round(broker_away_s, 1)})
    print(verdict.report(run))
    assert run.outages == 1
    assert verdict.ok, verdict.report(run)
    assert logged <= MAX_OUTAGE_LOG_LINES, run.worker.log_tail(60)
