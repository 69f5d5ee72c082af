"""Fixtures of the fault suite: the size, a broker of its own, and runs that clean up.

``RELMON_CHAOS`` selects the size: ``reduced`` (the default, part of ``make test``) or
``full`` (``make chaos``). ``RELMON_CHAOS_RESULTS`` names a JSON-lines file that collects the
figures of every scenario run (``make chaos`` sets it). Under ``CI=true`` nothing skips: a
missing kcat or a broker that cannot start fails the run, and so does any skipped chaos test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relmon.devbroker import BrokerStartError, running_pid
from tests.chaos.harness import ChaosBroker, Plan, Run, kcat_path

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class Size:
    """How big each scenario is."""

    name: str
    # a. poison among opt-outs
    poison_optouts: int
    poison_population: int
    poison_rate: float
    oversized: int
    poison_variants: tuple[str, ...]
    # b. topics loaded one after another
    order_optouts: int
    order_population: int
    # c. kill -9 under load
    kill_optouts: int
    kill_population: int
    kill_rate: float
    kills: int
    kill_runs: int
    kill_delay_s: tuple[float, float]  # after the worker is ready (or started)
    kill_in_recovery: float  # share of kills made while it is still recovering
    # d. broker outage
    outage_optouts: int
    outage_population: int
    outage_rate: float
    outage_down_s: float
    # e. restart on an empty state folder
    empty_optouts: int
    empty_population: int


REDUCED = Size(
    name="reduced",
    poison_optouts=400,
    poison_population=60,
    poison_rate=400,
    oversized=2,
    poison_variants=("all",),
    order_optouts=200,
    order_population=150,
    kill_optouts=4000,
    kill_population=60,
    kill_rate=1500,
    kills=2,
    kill_runs=1,
    kill_delay_s=(0.3, 1.2),
    kill_in_recovery=0.0,
    outage_optouts=600,
    outage_population=60,
    outage_rate=150,
    outage_down_s=6,
    empty_optouts=200,
    empty_population=80,
)

FULL = Size(
    name="full",
    poison_optouts=1000,
    poison_population=300,
    poison_rate=200,
    oversized=2,
    poison_variants=("all", "oversized", "huge-integer", "keys", "late", "other-poison"),
    order_optouts=2000,
    order_population=1000,
    kill_optouts=30_000,
    kill_population=500,
    kill_rate=2000,
    kills=5,
    kill_runs=5,
    kill_delay_s=(0.2, 1.0),
    kill_in_recovery=0.2,
    outage_optouts=5000,
    outage_population=300,
    outage_rate=400,
    outage_down_s=15,
    empty_optouts=3000,
    empty_population=500,
)

SIZE = FULL if os.environ.get("RELMON_CHAOS", "reduced").lower() == "full" else REDUCED


@pytest.fixture(scope="session")
def chaos_size() -> Size:
    return SIZE


@pytest.fixture(scope="session")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosBroker]:
    """A broker of the fault suite's own (free ports, temp home): scenarios stop it."""
    if kcat_path() is None:
        message = (
            "kcat is not installed (Debian package `kcat`; `make test` and `make chaos` install it)"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message + "; under CI=true this fails")
    broker = ChaosBroker.create(Path(tmp_path_factory.mktemp("chaos-broker")))
    try:
        broker.start()
    except BrokerStartError as exc:
        if IN_CI:
            pytest.fail(f"could not start the chaos broker: {exc}", pytrace=False)
        pytest.skip(f"could not start the chaos broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def new_run(chaos_broker: ChaosBroker, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """Make a :class:`Run` for a plan; its worker is stopped at the end of the test."""
    runs: list[Run] = []

    def make(plan: Plan, **worker_opts: Any) -> Run:
        if running_pid(chaos_broker.home) is None:
            chaos_broker.start()  # a previous scenario's outage left it down
        run = Run.create(chaos_broker, plan, tmp_path / f"run{len(runs)}", **worker_opts)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.stop()
