"""Scenario e: a restart on an empty state folder: the state comes back from the changelog."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from relmon.testing import call
from tests.chaos.conftest import Size
from tests.chaos.harness import (
    Plan,
    Run,
    add_events,
    event_msg,
    phone_optouts,
    population,
    verify,
)

DAYS = 50


def test_a_restart_on_an_empty_state_folder_restores_from_the_changelog(
    new_run: Callable[..., Run], chaos_size: Size
) -> None:
    """After half the stream the worker is killed and restarted with an empty state folder;
    the second half (calls to opted-out supporters, re-sent opt-outs) gets the replay's answer."""
    rng = random.Random(5150)
    plan = Plan("e-empty-state")
    optouts = phone_optouts(rng, "pe", chaos_size.empty_optouts, DAYS)
    events = sorted(
        population(rng, "pe", chaos_size.empty_population, DAYS) + optouts,
        key=lambda e: e.occurred_at,
    )
    optout_ids = {e.event_id for e in optouts}
    for event in events:
        add_events(plan, [event], dedicated=event.event_id in optout_ids)
    half = len(plan.messages) // 2
    first, second = plan.messages[:half], plan.messages[half:]
    # Second half: what only a restored state answers right. A marketing call to a supporter
    # who opted out in the first half is a call-while-suppressed alert; a re-sent opt-out is a
    # duplicate that must change nothing.
    early = [e for e in optouts if e.event_id in {m.event_id for m in first}][:50]
    calls = [
        event_msg(
            call(
                at=e.occurred_at + timedelta(hours=2),
                outcome="no_answer",
                campaign_purpose="reactivation",
                partner_id="p-telecare",
                supporter_id=e.supporter_id,
                call_id=f"c-{e.supporter_id}-after",
            ),
            label="call after an earlier opt-out",
        )
        for e in early
    ]
    resent = [event_msg(e, label="opt-out sent again") for e in early[:20]]
    second = second + calls + resent
    plan.messages = first + second

    run = new_run(plan)
    run.worker.start().wait_ready()
    run.producer.produce(first, rate=1000)
    run.settle(timeout_s=120)
    run.worker.restart(empty_state=True)
    run.worker.wait_ready(timeout_s=180)
    run.producer.produce(second, rate=1000)
    run.producer.close()
    run.settle(timeout_s=180)
    verdict = verify(run)
    print(verdict.report(run))
    assert run.worker.empty_state_restarts == 1
    assert verdict.ok, verdict.report(run)
