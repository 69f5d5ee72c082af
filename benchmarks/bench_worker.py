"""Worker benchmark: the live worker against a bare aiokafka consumer and a no-op Faust
agent, in one run, over the same topics.

1. Load N events (default 1,000,000) into the input topics of a fresh topic prefix.
2. (b) A bare aiokafka consumer reads all of them (getmany loop, counting) — the ceiling.
3. (c) A no-op Faust agent (`benchmarks/noop_agent.py`, a subprocess with the worker's broker
   and consumer settings, fresh group, no table) iterates and acks all of them; throughput =
   N / (time from /readyz 200 until its committed offsets reach the end offsets). Stopped
   before (a) starts.
4. (a) `relmon worker` (a real subprocess, fresh consumer group and state) processes all of
   them, timed the same way. Printed: ratios (a)/(c) and (a)/(b).
5. Latency: opt-outs for new supporters produced at half the measured worker rate; latency =
   suppression record's timestamp (worker's producer) − input record's timestamp (producer).
6. An opt-out's time to its suppression record when the worker is idle.
7. A 100,000-id POST /suppressions/check.

Run: `make bench` or `python benchmarks/bench_worker.py --events 1000000`. Starts its own
broker unless RELMON_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from relmon import devbroker
from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.topics import INPUT_TOPICS, SUPPRESSIONS, TOPIC_OF_TYPE, contract_topics

PARTITIONS = 4
# Events 0.1 s apart ending about now, as a live backlog would: with event times far in the
# past every suppression would already be due, and the worker's expiry timer would spend the
# run lifting them.
STEP_S = 0.1
OUTCOMES = ["no_answer", "busy", "voicemail", "declined", "converted", "info_requested", "hung_up"]


def event(i: int, supporters: int, rng: random.Random, base: datetime) -> dict[str, Any]:
    sid = f"S-{rng.randrange(supporters):07d}"
    at = (base + timedelta(seconds=i * STEP_S)).isoformat()
    kind = rng.random()
    common = {"event_id": f"b-{i}", "supporter_id": sid, "occurred_at": at}
    if kind < 0.45:
        return {
            "type": "call_outcome",
            **common,
            "call_id": f"c{i}",
            "direction": "outbound",
            "campaign_id": "C1",
            "campaign_purpose": rng.choice(["upgrade", "thank_you", "survey"]),
            "partner_id": f"P-{rng.randrange(4)}",
            "agent_id": f"A-{rng.randrange(40)}",
            "duration_s": rng.randrange(300),
            "outcome": rng.choice(OUTCOMES),
            "amount_delta_cents": None,
            "trigger": None,
            "sentiment": None,
        }
    if kind < 0.85:
        return {
            "type": "email_engagement",
            **common,
            "message_id": f"m{i}",
            "campaign_id": "E1",
            "action": rng.choice(["sent", "delivered", "opened", "clicked"]),
        }
    if kind < 0.95:
        return {
            "type": "donation_change",
            **common,
            "mandate_id": f"M-{sid}",
            "action": rng.choice(["upgraded", "payment_failed", "cancelled"]),
            "frequency": "monthly",
            "amount_cents_before": 1500,
            "amount_cents_after": 2000,
            "currency": "EUR",
            "mandate_started_at": "2023-05-01T00:00:00+00:00",
            "channel": "bank",
            "reason": None,
        }
    return {
        "type": "consent_change",
        **common,
        "channel": rng.choice(["phone", "email"]),
        "action": rng.choice(["opt_out", "opt_in"]),
        "source": "web",
    }


async def load(bootstrap: str, prefix: str, n: int, supporters: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    rng = random.Random(42)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=n * STEP_S)
    try:
        pending = []
        for i in tqdm(range(n), desc="loading events", unit="ev", mininterval=1):
            ev = event(i, supporters, rng, base)
            pending.append(
                await producer.send(
                    f"{prefix}{TOPIC_OF_TYPE[ev['type']]}",
                    json.dumps(ev).encode(),
                    key=ev["supporter_id"].encode(),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def bare_consumer(bootstrap: str, prefix: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        *(f"{prefix}{t}" for t in INPUT_TOPICS),
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}bare",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    start = time.perf_counter()
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    seen += 1
                    _ = record.value
        elapsed = time.perf_counter() - start
        await consumer.commit()
    finally:
        await consumer.stop()
    return elapsed


async def committed_total(admin: AIOKafkaAdminClient, group: str, tps: list[TopicPartition]) -> int:
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    return sum(max(meta.offset, 0) for meta in offsets.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(
    bootstrap: str,
    prefix: str,
    group: str,
    tmp: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    command: Sequence[str] | None = None,
    ready_timeout: float = 120.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """A `relmon worker` subprocess (state and log in `tmp`), returned once /readyz is 200.

    `extra_env` adds to or overrides its environment (e.g. a Faust setting such as
    STREAM_BUFFER_MAXSIZE, which Faust reads from the environment). `command` replaces
    `relmon worker` (the no-op agent takes the same environment)."""
    port = free_port()
    env = {
        **os.environ,
        "RELMON_KAFKA_BOOTSTRAP": bootstrap,
        "RELMON_TOPIC_PREFIX": prefix,
        "RELMON_WORKER_ID": "relmon-bench",
        "RELMON_PARTITIONS": str(PARTITIONS),
        "RELMON_WEB_PORT": str(port),
        "RELMON_WEB_HOST": "127.0.0.1",
        "RELMON_WEB_ADVERTISED_URL": f"http://127.0.0.1:{port}",
        "RELMON_STATE_DIR": str(tmp / "state"),
        "RELMON_LOG_FORMAT": "json",
        "RELMON_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    with (tmp / "worker.log").open("ab") as log:
        proc = subprocess.Popen(
            list(command or [sys.executable, "-m", "relmon.cli", "worker"]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("worker exited before ready; see " + str(tmp / "worker.log"))
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("worker did not become ready; see " + str(tmp / "worker.log"))


NOOP_ID = "noop-bench"  # the no-op agent's RELMON_WORKER_ID (its group: prefix + this)
NOOP_AGENT = Path(__file__).resolve().parent / "noop_agent.py"


async def worker_throughput(
    bootstrap: str, prefix: str, n: int, tmp: Path, *, noop: bool = False
) -> tuple[float, subprocess.Popen[bytes], str]:
    """Start `relmon worker` (or, with `noop`, the no-op Faust agent) on a fresh group and
    time from /readyz 200 until its committed offsets reach `n` (the end offsets)."""
    worker_id = NOOP_ID if noop else "relmon-bench"
    group = f"{prefix}{worker_id}"  # the app id: topic prefix + worker id
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    tps = [TopicPartition(f"{prefix}{t}", p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
    start = time.perf_counter()
    if noop:
        command = [sys.executable, str(NOOP_AGENT)]
        env = {"RELMON_WORKER_ID": NOOP_ID}
        proc, url = await asyncio.to_thread(
            start_worker, bootstrap, prefix, group, tmp, env, command=command
        )
    else:
        proc, url = await asyncio.to_thread(start_worker, bootstrap, prefix, group, tmp)
    ready = time.perf_counter()
    name = "no-op agent" if noop else "worker"
    with tqdm(total=n, desc=name, unit="ev") as bar:
        done = 0
        while done < n:
            await asyncio.sleep(0.5)
            now_done = await committed_total(admin, group, tps)
            bar.update(now_done - done)
            done = now_done
            if proc.poll() is not None:
                raise SystemExit(f"{name} died; see " + str(tmp / "worker.log"))
    elapsed = time.perf_counter() - ready
    await admin.close()
    print(f"{name} start-up until ready: {ready - start:.1f}s (not counted)")
    return elapsed, proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def latency(bootstrap: str, prefix: str, rate: float, seconds: float) -> list[float]:
    """Opt-outs for fresh supporters at `rate`/s; per record: suppression ts − input ts (ms)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(
        f"{prefix}{SUPPRESSIONS}",
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    sent: dict[str, int] = {}
    lat: list[float] = []
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)

    async def produce() -> None:
        total = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(total):
            sid = f"L-{tag}-{i}"
            body = {
                "type": "consent_change",
                "event_id": f"lat-{tag}-{i}",
                "supporter_id": sid,
                "occurred_at": (now + timedelta(milliseconds=i)).isoformat(),
                "channel": "phone",
                "action": "opt_out",
                "source": "web",
            }
            meta = await (
                await producer.send(
                    f"{prefix}relmon.consents", json.dumps(body).encode(), key=sid.encode()
                )
            )
            sent[sid] = meta.timestamp
            delay = t0 + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    task = asyncio.create_task(produce())
    deadline = time.monotonic() + seconds + 30
    expected = int(rate * seconds)
    while len(lat) < expected and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                sid = (record.key or b"").decode()
                if sid in sent:
                    lat.append(float(record.timestamp - sent[sid]))
    await task
    await producer.stop()
    await consumer.stop()
    return lat


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="relmon-bench-"))
    bootstrap = os.environ.get("RELMON_KAFKA_BOOTSTRAP")
    home = None
    if not bootstrap:
        home = devbroker.BrokerHome(tmp / "broker", free_port())
        await asyncio.to_thread(devbroker.start, home)
        bootstrap = home.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    proc = None
    try:
        await create_topics(
            Settings(kafka_bootstrap=bootstrap),
            contract_topics(PARTITIONS),
            replication_factor=1,
            prefix=prefix,
        )
        await load(bootstrap, prefix, args.events, args.supporters)
        bare = await bare_consumer(bootstrap, prefix, args.events)
        (tmp / "noop").mkdir()
        noop, noop_proc, _ = await worker_throughput(
            bootstrap, prefix, args.events, tmp / "noop", noop=True
        )
        await asyncio.to_thread(stop, noop_proc)
        work, proc, url = await worker_throughput(bootstrap, prefix, args.events, tmp)
        bare_rate, noop_rate = args.events / bare, args.events / noop
        work_rate = args.events / work
        print(f"(b) bare aiokafka consumer: {bare:.1f}s  {bare_rate:,.0f} events/s")
        print(f"(c) no-op Faust agent:      {noop:.1f}s  {noop_rate:,.0f} events/s")
        print(f"(a) relmon worker:          {work:.1f}s  {work_rate:,.0f} events/s")
        print(f"ratio (a)/(c) worker/noop: {work_rate / noop_rate:.3f}  (goal >= 0.7)")
        print(f"ratio (a)/(b) worker/bare: {work_rate / bare_rate:.3f}  (goal >= 0.25)")
        print(f"ratio (c)/(b) noop/bare:   {noop_rate / bare_rate:.3f}")
        lat = await latency(bootstrap, prefix, work_rate / 2, args.latency_seconds)
        if lat:
            print(
                f"latency at {work_rate / 2:,.0f} ev/s: n={len(lat)} p50={pct(lat, 0.5):.1f} ms "
                f"p99={pct(lat, 0.99):.1f} ms max={max(lat):.1f} ms (goal p99 <= 25 ms)"
            )
        single = await latency(bootstrap, prefix, 5, 4)
        if single:
            median = statistics.median(single)
            print(f"opt-out to suppression record, idle worker: median {median:.1f} ms")
        ids = [f"S-{i:07d}" for i in range(100_000)]
        async with httpx.AsyncClient(timeout=60) as client:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                response = await client.post(
                    f"{url}/suppressions/check", json={"supporter_ids": ids}
                )
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:200]
        best, median = min(times), statistics.median(times)
        print(f"100,000-id batch check: best {best:.3f}s, median {median:.3f}s (goal <= 1 s)")
    finally:
        if proc is not None:
            stop(proc)
        if home is not None:
            await asyncio.to_thread(devbroker.stop, home)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--supporters", type=int, default=200_000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
