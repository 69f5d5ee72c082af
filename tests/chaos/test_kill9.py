"""Scenario c: kill -9 at random moments under load, restarted on the same state folder."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest

from tests.chaos.conftest import SIZE, Size
from tests.chaos.harness import Plan, Run, add_events, phone_optouts, population, verify

DAYS = 50


@pytest.mark.parametrize("attempt", range(SIZE.kill_runs))
def test_kill9_under_load_loses_no_opt_out(
    new_run: Callable[..., Run], chaos_size: Size, attempt: int
) -> None:
    """SIGKILL of the worker at random moments while opt-outs stream in, each time restarted on
    the same state folder, leaves a suppressed record for every opt-out and the replay's answer."""
    rng = random.Random(9000 + attempt)
    plan = Plan(f"c-kill9-{attempt}")
    events = sorted(
        population(rng, f"pc{attempt}", chaos_size.kill_population, DAYS)
        + phone_optouts(rng, f"pc{attempt}", chaos_size.kill_optouts, DAYS),
        key=lambda e: e.occurred_at,
    )
    optout_ids = {e.event_id for e in events if "-o" in e.supporter_id}
    for event in events:
        add_events(plan, [event], dedicated=event.event_id in optout_ids)

    run = new_run(plan)
    # The moments of the kills are new each run (RELMON_CHAOS_SEED repeats one).
    seed = int(os.environ.get("RELMON_CHAOS_SEED") or time.time_ns() % 10**9)
    run.notes.append(f"kill moments seed {seed} (RELMON_CHAOS_SEED={seed} repeats them)")
    rng = random.Random(seed)
    run.worker.start().wait_ready()
    run.producer.start(plan.messages, chaos_size.kill_rate)
    under_load = 0
    for _ in range(chaos_size.kills):
        # A random moment: mostly while it processes, sometimes while it is still recovering.
        if rng.random() >= chaos_size.kill_in_recovery:
            run.worker.wait_ready()
        time.sleep(rng.uniform(*chaos_size.kill_delay_s))
        lag, sending = run.worker.lag(), not run.producer.done.is_set()
        under_load += bool(sending or lag)
        run.notes.append(f"kill at {run.producer.sent} sent, producer busy {sending}, lag {lag}")
        run.worker.kill9()
        run.worker.start()  # the same state folder
    run.producer.close()
    run.worker.wait_ready()
    run.settle(timeout_s=300 if chaos_size.name == "full" else 150)
    verdict = verify(run, extra={"kills_under_load": under_load})
    print(verdict.report(run))
    assert run.worker.kills == chaos_size.kills
    assert verdict.ok, verdict.report(run)
