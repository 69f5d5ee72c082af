"""Scenario b: the four input topics loaded one after another, not in event-time order."""

from __future__ import annotations

import random
from collections.abc import Callable

from relmon.topics import CALLS, CONSENTS, DONATIONS, EMAILS
from tests.chaos.conftest import Size
from tests.chaos.harness import Plan, Run, add_events, phone_optouts, population, verify

DAYS = 40  # within the engine's shortest retention (44 days: DECIDING_IN_OWN_TIME 30 + 14 grace)
LOAD_ORDER = (EMAILS, DONATIONS, CONSENTS, CALLS)


def test_topics_loaded_one_after_another_give_the_replays_answer(
    new_run: Callable[..., Run], chaos_size: Size
) -> None:
    """All e-mails, then all donations, then all consents, then all calls (events spanning less
    than 60 days) give every opt-out its record and the replay's alerts and final decisions."""
    rng = random.Random(7001)
    plan = Plan("b-topic-by-topic")
    add_events(plan, population(rng, "pb", chaos_size.order_population, DAYS))
    add_events(plan, phone_optouts(rng, "pb", chaos_size.order_optouts, DAYS), dedicated=True)
    rank = {topic: i for i, topic in enumerate(LOAD_ORDER)}
    plan.messages.sort(key=lambda m: rank[m.topic])  # stable: each topic stays in time order

    run = new_run(plan)
    run.worker.start().wait_ready()
    for topic in LOAD_ORDER:
        run.producer.produce([m for m in plan.messages if m.topic == topic])
    run.producer.close()
    run.settle(timeout_s=180)
    verdict = verify(run)
    print(verdict.report(run))
    assert verdict.ok, verdict.report(run)
