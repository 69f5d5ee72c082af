"""`relmon backfill` against the real broker, read back with an independent consumer."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from relmon.domain import parse_event
from relmon.testing import at, call, consent, to_line
from relmon.topics import CALLS, CONSENTS, HISTORY
from tests.integration.conftest import Cluster


def _backfill(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    return subprocess.run(
        [sys.executable, "-m", "relmon.cli", "backfill", *args, "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _read(bootstrap: str, topics: list[str], expected: int) -> list[Any]:
    """Every record on ``topics`` once ``expected`` arrived, plus a short drain (bounded)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + 45
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(records)
        for records in (await consumer.getmany(timeout_ms=1500)).values():
            found.extend(records)
    finally:
        await consumer.stop()
    return found


def _key(value: bytes) -> tuple[float, str, bytes]:
    event = parse_event(value)
    return event.occurred_at.timestamp(), event.event_id, value


async def test_backfill_produces_two_exports_in_event_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two per-topic files (one out of order, with bad lines) land on the history topic keyed
    by supporter_id, every valid line once, each partition in event time."""
    supporters = [f"s-{n:04d}" for n in range(12)]
    calls = [
        call(at=at(day / 4), outcome="declined", supporter_id=sid, partner_id=f"p-{day}")
        for day in range(20)
        for sid in supporters[day % 3 :: 3]
    ]
    consents = [
        consent(at=at(day / 4 + 0.1), supporter_id=sid, channel="email")
        for day in range(20)
        for sid in supporters[day % 4 :: 4]
    ]
    calls_file = tmp_path / "calls.jsonl"
    calls_file.write_bytes(b"".join(to_line(e) + b"\n" for e in calls))
    consents_file = tmp_path / "consents.jsonl"  # newest first: sorted in memory
    consents_file.write_bytes(
        b"".join(to_line(e) + b"\n" for e in reversed(consents)) + b"\n{not json\n"
    )
    dead = tmp_path / "rejected.jsonl"

    done = _backfill(
        cluster,
        "--input", str(calls_file),
        "--input", str(consents_file),
        "--bootstrap", cluster.bootstrap,
        "--prefix", cluster.prefix,
        "--dead-letters", str(dead),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    history = cluster.topic(HISTORY)
    total = len(calls) + len(consents)
    assert f"{total:,} events produced in event time" in done.stdout
    assert re.search(rf"^  {re.escape(history)} +{total}$", done.stdout, re.M)
    assert f"{consents_file} line {len(consents) + 2}: not valid JSON" in done.stdout
    assert "1 invalid lines skipped" in done.stdout
    letters = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert [(d["line"], d["kind"]) for d in letters] == [(len(consents) + 2, "json")]

    records = await _read(
        cluster.bootstrap, [cluster.topic(CALLS), cluster.topic(CONSENTS), history], total
    )
    assert Counter(r.topic for r in records) == {history: total}
    assert all(r.key == orjson.loads(r.value)["supporter_id"].encode() for r in records)
    expected = {to_line(e) for e in calls} | {to_line(e) for e in consents}
    assert {r.value for r in records} == expected

    # Within each partition the offsets follow event time, so every supporter's events reach
    # the worker in event time; the producer's timestamps never go back along event time.
    by_partition: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for r in records:
        by_partition[(r.topic, r.partition)].append(r)
    for rs in by_partition.values():
        rs.sort(key=lambda r: r.offset)
        keys = [_key(r.value) for r in rs]
        assert keys == sorted(keys)
    in_event_time = sorted(records, key=lambda r: _key(r.value))
    stamps = [r.timestamp for r in in_event_time]
    assert stamps == sorted(stamps)
    first_two = [orjson.loads(r.value)["type"] for r in in_event_time[:2]]
    assert first_two == ["call_outcome", "call_outcome"]  # day 0 calls come first


async def test_backfill_refuses_missing_topics_and_bad_files(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A prefix without topics, a missing file or an unreachable broker exits 1, precisely."""
    source = tmp_path / "calls.jsonl"
    source.write_bytes(to_line(call(at=at(0))) + b"\n")
    base = ["--input", str(source), "--bootstrap", cluster.bootstrap]

    no_topics = _backfill(cluster, *base, "--prefix", "nothing-here.")
    assert no_topics.returncode == 1
    assert "nothing-here.relmon.history" in no_topics.stderr
    assert "relmon topics create" in no_topics.stderr

    missing = _backfill(cluster, *base, "--prefix", cluster.prefix, "--input", "nope.jsonl")
    assert missing.returncode == 1
    assert "nope.jsonl: cannot read it" in missing.stderr

    down = _backfill(cluster, "--input", str(source), "--bootstrap", "127.0.0.1:1")
    assert down.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in down.stderr

    assert not await _read(cluster.bootstrap, [cluster.topic(CALLS)], 0)
