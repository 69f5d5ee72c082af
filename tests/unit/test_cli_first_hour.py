"""What a new user meets first: `relmon --version`, the worker's Kafka error naming a flag it
accepts, and a healthy start that logs no error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, NodeNotReadyError

from relmon.cli import main
from relmon.commands.worker import StartupCoordinatorFilter


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`relmon --version` prints "relmon <version>; engine: ..." (compiled or pure Python, and
    why) and exits 0."""
    from importlib.metadata import version

    from relmon.domain import ENGINE

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"relmon {version('relmon')}; {ENGINE.describe()}"


def test_the_worker_accepts_the_bootstrap_flag_its_kafka_error_names() -> None:
    """`relmon worker --bootstrap` with no broker there exits 1 with one line that names the
    address and tells to pass --bootstrap or set RELMON_KAFKA_BOOTSTRAP, both of which the
    worker accepts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    result = subprocess.run(
        [sys.executable, "-m", "relmon.cli", "worker", "--bootstrap", "127.0.0.1:1"],
        env={**env, "RELMON_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "relmon worker: error: cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "pass --bootstrap / set RELMON_KAFKA_BOOTSTRAP" in result.stderr
    assert (
        "--bootstrap HOST:PORT"
        in subprocess.run(
            [sys.executable, "-m", "relmon.cli", "worker", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )


def _record(err: Exception, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        level,
        "group_coordinator.py",
        566,
        "Group Coordinator Request failed: %s",
        (err,),
        None,
    )


def test_the_coordinator_election_at_start_is_not_an_error() -> None:
    """During the start-up window GroupCoordinatorNotAvailableError is lowered to info (and
    says why); after it, and for other errors at any time, the level stays error."""
    now = [0.0]
    flt = StartupCoordinatorFilter(window_s=60, clock=lambda: now[0])
    early = _record(GroupCoordinatorNotAvailableError())
    assert flt.filter(early)
    assert (early.levelno, early.levelname) == (logging.INFO, "INFO")
    assert "expected while the worker starts" in early.getMessage()
    other = _record(NodeNotReadyError("node 1"))
    assert flt.filter(other)
    assert other.levelno == logging.ERROR
    now[0] = 61.0
    late = _record(GroupCoordinatorNotAvailableError())
    assert flt.filter(late)
    assert late.levelno == logging.ERROR
