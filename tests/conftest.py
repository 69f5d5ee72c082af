"""Shared fixtures: the real Kafka broker for integration tests.

The session starts its own single-node broker (``relmon.devbroker``) on a free port in a temp
folder, unless ``RELMON_KAFKA_BOOTSTRAP`` points at one, and stops what it started. Under
``CI=true`` a broker that cannot start fails the run, and any skipped integration test turns
the session red: nothing skips for want of a broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relmon.devbroker import BrokerHome, BrokerStartError, log_tail, start, stop
from tests.chaos.harness import free_port_pair

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for this test session."""
    external = os.environ.get("RELMON_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    home = BrokerHome(Path(tmp_path_factory.mktemp("kafka-broker")), free_port_pair())
    try:
        start(home, timeout_s=120)
    except BrokerStartError as exc:
        message = f"could not start the test Kafka broker: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message + " (outside CI integration tests skip; under CI=true they fail)")
    try:
        yield home.bootstrap
    finally:
        if stop(home) is False:
            print("test broker was already gone at teardown:\n" + log_tail(home))


@pytest.fixture
def topic_prefix() -> str:
    """A prefix unique to one test, so tests never see each other's topics."""
    return f"t{uuid.uuid4().hex[:10]}."


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI, a skipped integration or fault-suite test fails the run."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    tiers = ("tests/integration", "tests/chaos")  # they need a broker: never skipped in CI
    skipped = [r for r in reporter.stats.get("skipped", []) if any(t in r.nodeid for t in tiers)]
    if skipped:
        reporter.write_line(
            f"CI=true: {len(skipped)} broker test(s) skipped; that is a failure here",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
