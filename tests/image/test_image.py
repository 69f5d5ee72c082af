"""The worker image as ops will run it: built here by `make image`'s script, started with
podman on the host network against the test session's real broker.

The first run builds the base with mmdebstrap and the image with podman (about 2 minutes);
later runs reuse the cached base and podman's layer cache (seconds). Outside CI the tests skip
when podman is missing and cannot be installed (not root); under CI=true they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from relmon.topics import SUPPRESSIONS
from tests.conftest import IN_CI
from tests.integration.conftest import PARTITIONS, Cluster, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "image" / "build.sh"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "image" / "containers.conf")}
UID = 10001


def podman(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def image() -> str:
    """The image `make image` builds (the script reuses the cached base and layers)."""
    if shutil.which("podman") is None and os.geteuid() != 0:
        message = "podman is missing and only root can install it (apt-get install podman)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    done = subprocess.run(
        [str(BUILD)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{BUILD} failed ({done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


class Container:
    """One `podman run -d` of the image; removed (with its anonymous volume) at the end."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.name = f"relmon-test-{uuid.uuid4().hex[:8]}"
        flags = [f"--env={k}={v}" for k, v in env.items()]
        podman("run", "--detach", "--name", self.name, "--network=host", *flags, image)

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def logs(self) -> str:
        done = subprocess.run(
            ["podman", "logs", "--tail", "60", self.name],
            env=PODMAN_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout + done.stderr

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", self.name, check=False)


@pytest.fixture
def worker_container(image: str, cluster: Cluster) -> Iterator[tuple[Container, str]]:
    """The containerised worker on this test's topics, and the URL of its API."""
    port = free_port()
    env = {
        "RELMON_KAFKA_BOOTSTRAP": cluster.bootstrap,
        "RELMON_TOPIC_PREFIX": cluster.prefix,
        "RELMON_WORKER_ID": cluster.worker_id,
        "RELMON_PARTITIONS": str(PARTITIONS),
        "RELMON_WEB_HOST": "127.0.0.1",
        "RELMON_WEB_PORT": str(port),
        "RELMON_WEB_ADVERTISED_URL": f"http://127.0.0.1:{port}",
        "RELMON_BROKER_SESSION_TIMEOUT_S": "10",
    }
    container = Container(image, env)
    try:
        yield container, f"http://127.0.0.1:{port}"
    finally:
        container.remove()


def wait_ready(container: Container, url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not container.running():
            raise AssertionError(f"the container exited:\n{container.logs()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"/readyz not 200 within {timeout}s:\n{container.logs()}")


async def test_the_containerised_worker_suppresses_an_opt_out_end_to_end(
    worker_container: tuple[Container, str], cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """The image's worker runs as uid 10001, becomes ready against the real broker, turns one
    opt-out into a suppression that an independent Kafka reader sees on the suppression topic
    and the API answers, and stops cleanly (exit 0) on podman's SIGTERM."""
    container, url = worker_container
    await asyncio.to_thread(wait_ready, container, url)

    status = podman("exec", container.name, "cat", "/proc/1/status")
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [str(UID)] * 4  # real, effective, saved and filesystem uid of the worker

    at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    opt_out = {
        "type": "consent_change",
        "event_id": "e-image-1",
        "supporter_id": "S-image",
        "occurred_at": at,
        "channel": "phone",
        "action": "opt_out",
        "source": "web",
    }
    await cluster.produce([opt_out])
    await cluster.wait_for(
        SUPPRESSIONS,
        lambda r: (
            r["supporter_id"] == "S-image"
            and r["suppressed"] is True
            and "OPTED_OUT" in {reason["code"] for reason in r["reasons"]}
        ),
    )
    answer = (await http.get(f"{url}/suppressions/S-image")).json()
    assert answer["suppressed"] is True
    assert "OPTED_OUT" in {reason["code"] for reason in answer["reasons"]}

    podman("stop", "--time", "30", container.name, timeout=60)
    state = json.loads(podman("inspect", "--format", "{{json .State}}", container.name))
    assert state["ExitCode"] == 0, container.logs()


def test_the_image_holds_the_venv_and_nothing_of_the_build(image: str) -> None:
    """The runtime image defaults to uid 10001 and `relmon worker`; it has the app venv without
    pip, and no sources, wheels, build tools or the build's CA secret; no layer is the
    15 MB wheel directory the old Dockerfile copied in and deleted."""
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", image))
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["relmon"]
    assert config["Cmd"] == ["worker"]
    script = (
        "test -x /opt/relmon/bin/relmon && relmon --help >/dev/null"
        " && for p in /src /wheels /opt/tools /opt/relmon/bin/pip /run/secrets/pip-ca; do"
        ' test ! -e "$p" || { echo "found $p"; exit 1; }; done'
    )
    done = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "sh", image, "-c", script],
        env=PODMAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert "/wheels" not in history
