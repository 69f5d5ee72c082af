"""`make run`'s demo, run as a user runs it: its own broker, a real worker, its output piped
through `tee`, stopped with a terminal's Ctrl-C (SIGINT to the whole process group)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from relmon import devbroker

from .conftest import free_port


def _free_pair() -> int:
    """A port whose successor is free too (the broker's controller listens on port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _reset_signals() -> None:
    # what an interactive shell gives a foreground job: default SIGINT and SIGPIPE
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], limit_s: float) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text):
            return text
        assert proc.poll() is None, text
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not seen within {limit_s:.0f}s:\n{text}")


def test_the_demo_runs_in_the_present_and_ctrl_c_through_tee_stops_everything(
    tmp_path: Path,
) -> None:
    """The demo catches up on a year ending now, points at a supporter the API confirms is
    suppressed, streams live events dated now; a Ctrl-C that also kills `tee` still stops
    the worker and the broker the demo started, and frees their ports."""
    broker_port, web_port = _free_pair(), free_port()
    home = tmp_path / "broker"
    log = tmp_path / "screen.log"
    demo = (
        f"{sys.executable} -m relmon.demo --broker-home {home} --broker-port {broker_port} "
        f"--web-port {web_port} --state-dir {tmp_path / 'state'} --supporters 150 --every 2"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    proc = subprocess.Popen(
        ["bash", "-c", f"{demo} 2>&1 | tee {log} > /dev/null"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        preexec_fn=_reset_signals,  # no threads run here yet
    )
    try:
        text = _wait_for(log, r"live \+\d+ events", proc, 240)
        assert "caught up:" in text
        hinted = re.search(r"curl http://127\.0\.0\.1:\d+/suppressions/(\S+)", text)
        assert hinted is not None, text
        answer = httpx.get(f"http://127.0.0.1:{web_port}/suppressions/{hinted.group(1)}").json()
        assert answer["suppressed"] is True
        now = time.time()
        live_at = re.search(
            r"suppressed (S\d+) .* until (\d{4}-\d\d-\d\d)", text.split("live:")[-1]
        )
        if live_at is not None:  # a suppression decided live lasts from now on
            assert live_at.group(2) >= time.strftime("%Y-%m-%d", time.gmtime(now))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    broker = devbroker.BrokerHome(home, broker_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and devbroker.running_pid(broker) is not None:
        time.sleep(0.5)
    assert devbroker.running_pid(broker) is None
    for port in (broker_port, web_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
