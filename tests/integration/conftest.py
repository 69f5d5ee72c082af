"""Fixtures for integration tests: real `relmon worker` processes, a producer and readers.

Every test gets its own topic prefix and consumer group, so tests never share state.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.topics import TOPIC_OF_TYPE, contract_topics

PARTITIONS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    """One `relmon worker` subprocess with its own web port and state folder."""

    env: dict[str, str]
    port: int
    log_path: Path
    token: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relmon.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """A test's slice of the broker: its topic prefix, workers, producer and readers."""

    bootstrap: str
    prefix: str
    tmp: Path
    worker_id: str
    workers: list[WorkerProcess] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def worker(self, *, token: str | None = None, state: str = "w0", **extra: str) -> WorkerProcess:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELMON_")},
            "RELMON_KAFKA_BOOTSTRAP": self.bootstrap,
            "RELMON_TOPIC_PREFIX": self.prefix,
            "RELMON_WORKER_ID": self.worker_id,
            "RELMON_PARTITIONS": str(PARTITIONS),
            "RELMON_WEB_PORT": str(port),
            "RELMON_WEB_HOST": "127.0.0.1",
            "RELMON_WEB_ADVERTISED_URL": f"http://127.0.0.1:{port}",
            "RELMON_STATE_DIR": str(self.tmp / state),
            "RELMON_EXPIRY_INTERVAL_S": "1",
            "RELMON_BROKER_SESSION_TIMEOUT_S": "10",
            "RELMON_LOG_FORMAT": "json",
            **extra,
        }
        if token:
            env["RELMON_API_TOKEN"] = token
        worker = WorkerProcess(env, port, self.tmp / f"worker-{state}-{port}.log", token)
        self.workers.append(worker)
        return worker

    async def produce(
        self, events: list[dict[str, Any]], *, raw: list[tuple[str, bytes | None, bytes]] = ()
    ) -> None:  # type: ignore[assignment]
        """Send events to their contract topics keyed by supporter_id (plus raw messages)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                await producer.send_and_wait(
                    self.topic(TOPIC_OF_TYPE[event["type"]]),
                    json.dumps(event).encode(),
                    key=event["supporter_id"].encode(),
                )
            for topic, key, value in raw:
                await producer.send_and_wait(self.topic(topic), value, key=key)
        finally:
            await producer.stop()

    async def wait_for(
        self, name: str, matches: Callable[[dict[str, Any]], bool], wait_s: float = 45.0
    ) -> None:
        """Wait until a message on an output topic matches (bounded)."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            if any(matches(m) for m in await self.read(name, at_least=1, wait_s=2)):
                return
        raise AssertionError(f"no matching message on {name} within {wait_s}s")

    async def read(self, name: str, *, at_least: int, wait_s: float = 45.0) -> list[dict[str, Any]]:
        """Every message on an output topic once at least ``at_least`` arrived (bounded wait)."""
        consumer = AIOKafkaConsumer(
            self.topic(name),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        found: list[dict[str, Any]] = []
        try:
            deadline = asyncio.get_running_loop().time() + wait_s
            while len(found) < at_least:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                batch = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
                for records in batch.values():
                    found.extend(json.loads(r.value) for r in records)
            # Drain what is already there, so "no duplicate" checks see everything.
            batch = await consumer.getmany(timeout_ms=1500)
            for records in batch.values():
                found.extend(json.loads(r.value) for r in records)
        finally:
            await consumer.stop()
        return found


@pytest.fixture
async def cluster(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """A fresh set of contract topics for one test, and its workers stopped at the end."""
    await create_topics(
        Settings(kafka_bootstrap=kafka_bootstrap),
        contract_topics(PARTITIONS),
        replication_factor=1,
        prefix=topic_prefix,
    )
    c = Cluster(kafka_bootstrap, topic_prefix, tmp_path, f"relmon-{topic_prefix.strip('.')}")
    try:
        yield c
    finally:
        for worker in c.workers:
            worker.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
