"""Scenario a: poison messages of every kind mixed among phone opt-outs and real stories."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.chaos.conftest import SIZE, Size
from tests.chaos.harness import (
    Plan,
    Run,
    add_events,
    event_msg,
    interleave,
    key_problems,
    late_refusals,
    phone_optouts,
    poison,
    population,
    verify,
)

DAYS = 50


# Which trouble a run mixes in: everything at once, or (full size) one kind at a time, so each
# known loss shows on its own.
ONLY = {
    "all": None,
    "oversized": {"oversized 800 KB"},
    "huge-integer": {"huge integer"},
    "keys": set(),
    "late": set(),
    "other-poison": None,
}
OVERSIZED_OR_HUGE = {"oversized 800 KB", "huge integer"}


@pytest.mark.parametrize("variant", SIZE.poison_variants)
def test_poison_messages_never_make_a_valid_event_vanish(
    new_run: Callable[..., Run], chaos_size: Size, variant: str
) -> None:
    """Poison of every kind among opt-outs leaves every valid event applied, every invalid one a
    dead letter with its coordinates, and alerts and final decisions equal to a replay."""
    rng = random.Random(20261130)
    plan = Plan("a-poison" if variant == "all" else f"a-poison-{variant}")
    optouts = phone_optouts(rng, "pa", chaos_size.poison_optouts, DAYS)
    events = sorted(
        population(rng, "pa", chaos_size.poison_population, DAYS) + optouts,
        key=lambda e: e.occurred_at,
    )
    dedicated = {e.event_id for e in optouts}
    for event in events:
        add_events(plan, [event], dedicated=event.event_id in dedicated)
    duplicates = [
        event_msg(events[i], label="duplicate") for i in rng.sample(range(len(events)), 10)
    ]
    problems, follow, pairs = key_problems("pa", DAYS)
    first, late = late_refusals("pa", DAYS)
    bad = poison(rng, "pa", oversized=chaos_size.oversized)
    only = ONLY[variant]
    if variant == "other-poison":
        bad = [m for m in bad if m.label not in OVERSIZED_OR_HUGE]
    elif only is not None:
        bad = [m for m in bad if m.label in only]
    if variant not in ("all", "keys"):
        problems, follow, pairs = [], [], set()
    if variant not in ("all", "late"):
        first, late = [], []
    plan.messages = interleave(rng, plan.messages, duplicates + bad + problems + first, 0.1)
    plan.messages += follow + late  # opt_ins after their key problems; late refusals last
    plan.key_pairs = pairs
    plan.note_refusals(problems + late)

    run = new_run(plan)
    run.worker.start().wait_ready()
    run.producer.start(plan.messages, chaos_size.poison_rate)
    run.producer.close()
    run.settle(timeout_s=180)
    verdict = verify(run)
    print(verdict.report(run))
    assert verdict.ok, verdict.report(run)
