"""`relmon simulate --to-kafka` against the real broker."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from relmon.settings import Settings
from relmon.simulation import SimulationParams, generate
from relmon.simulation.kafka_sink import produce
from relmon.streaming.admin import create_topics
from relmon.topics import INPUT_TOPICS, TOPIC_OF_TYPE, contract_topics

SIZE = ["--supporters", "150", "--days", "30", "--seed", "9", "--start", "2026-02-01"]


async def _topics(bootstrap: str, prefix: str) -> None:
    await create_topics(
        Settings(kafka_bootstrap=bootstrap), contract_topics(4), replication_factor=1, prefix=prefix
    )


def _simulate(bootstrap: str, prefix: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    return subprocess.Popen(
        [sys.executable, "-m", "relmon.cli", "simulate", *extra, "--to-kafka",
         "--bootstrap", bootstrap, "--prefix", prefix],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def _read_all(
    bootstrap: str, topics: list[str], expected: int, wait_s: float = 45.0
) -> list[Any]:
    """Every record on ``topics`` once ``expected`` arrived, plus a short drain (bounded)."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    found: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(found) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(records)
        batch = await consumer.getmany(timeout_ms=1500)
        for records in batch.values():
            found.extend(records)
    finally:
        await consumer.stop()
    return found


async def test_simulate_to_kafka_matches_the_file_mode(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The CLI produces exactly the file mode's events for the same seed: the same count on
    each input topic, the same event ids, and every key equal to the event's supporter_id."""
    await _topics(kafka_bootstrap, topic_prefix)
    proc = _simulate(kafka_bootstrap, topic_prefix, *SIZE)
    _, stderr = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, stderr

    expected = list(generate(SimulationParams(), 9, 150, 30, date(2026, 2, 1)))
    per_topic = Counter(topic_prefix + TOPIC_OF_TYPE[e["type"]] for e in expected)
    topics = [topic_prefix + name for name in INPUT_TOPICS]
    records = await _read_all(kafka_bootstrap, topics, len(expected))

    assert Counter(r.topic for r in records) == per_topic
    assert len(per_topic) == 4
    values = [orjson.loads(r.value) for r in records]
    assert all(r.key.decode() == v["supporter_id"] for r, v in zip(records, values, strict=True))
    assert sorted(v["event_id"] for v in values) == sorted(e["event_id"] for e in expected)


async def test_rate_paces_the_producer(kafka_bootstrap: str, topic_prefix: str) -> None:
    """At --rate 200, 100 events take about half a second, not a burst."""
    await _topics(kafka_bootstrap, topic_prefix)
    events = list(generate(SimulationParams(), 1, 50, 10, date(2026, 1, 1)))[:100]
    began = time.monotonic()
    counts = await produce(
        events, Settings(kafka_bootstrap=kafka_bootstrap), prefix=topic_prefix, rate=200
    )
    elapsed = time.monotonic() - began
    assert sum(counts.values()) == 100
    assert 0.45 <= elapsed < 10


async def test_ctrl_c_stops_cleanly_and_delivers_what_it_reported(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """SIGINT mid-stream exits 130, and every event it reports as sent is on the topics."""
    await _topics(kafka_bootstrap, topic_prefix)
    proc = _simulate(kafka_bootstrap, topic_prefix, "--supporters", "2000", "--rate", "300")
    await asyncio.sleep(4)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 130, stderr
    match = re.search(r"interrupted after ([\d,]+) events", stderr)
    assert match, stderr
    sent = int(match.group(1).replace(",", ""))
    assert sent > 0
    topics = [topic_prefix + name for name in INPUT_TOPICS]
    records = await _read_all(kafka_bootstrap, topics, sent, wait_s=30)
    assert len(records) == sent
