"""Scenario d: the broker stopped and started again while events stream in."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tests.chaos.conftest import Size
from tests.chaos.harness import Plan, Run, add_events, phone_optouts, population, verify

DAYS = 50


def test_a_broker_outage_mid_stream_loses_nothing(
    new_run: Callable[..., Run], chaos_size: Size
) -> None:
    """Stopping the broker mid-stream and starting it again (the producer retrying meanwhile)
    leaves a suppressed record for every opt-out and the replay's alerts and final decisions."""
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
    run.outage(chaos_size.outage_down_s)
    run.producer.close()
    run.worker.wait_ready(timeout_s=180)
    run.settle(timeout_s=240)
    verdict = verify(run)
    print(verdict.report(run))
    assert run.outages == 1
    assert verdict.ok, verdict.report(run)
