"""API benchmark: the dialer API of a worker holding N supporters (default 200,000).

The worker is loaded as in `bench_restart.py` (engine-built template states written straight
to its changelog topic, see its docstring), started on an empty state directory, and used
once its expiry index is rebuilt (the first tick after /readyz decodes every local state).
A few held supporters are read back first to check it holds what was written. Then:

(a) `POST /suppressions/check` with 100,000 ids of held supporters (a seeded sample; all of
    them when N < 100,000): 5 in a row (best, median), then 4 at once (each one's time and
    the wall time of all four). One answer is checked: every id answered, and, if answers
    carry `known`, every one `known: true`.
(b) single `GET /suppressions/{id}` latency (held ids at random) at a steady rate (default
    100/s, open loop: each request starts on schedule in its own task) for `--seconds`,
    first on the idle worker, then while 100,000-id checks run back to back (from a thread,
    bodies read but not parsed, so the client's event loop stays free; they go on until the
    last GET is answered). Printed with each: GETs issued, when the last was answered, and
    the answer rate (below the request rate: GETs queue, and latency grows with the run).
(c) the same single-GET latency while the worker consumes a backlog: `--backlog` events
    (default 200,000, `bench_worker.py`'s event mix over the same supporter ids, event
    times 0.1 s apart ending now) are produced to the input topics, then GETs run until the
    worker's committed offsets reach the end. What was left of the backlog when the GETs
    started, and how fast the worker went meanwhile, are printed too.

Latency is measured by the client (aiohttp for single GETs, at most 200 connections, kept
alive; httpx for the checks) on the same 2-core machine as the worker and the broker.
Run: `python benchmarks/bench_api.py` (`make bench`); small values (e.g. `--supporters 20000
--backlog 20000 --seconds 5`) while developing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench_restart import (
    WORKER_ID,
    States,
    broker,
    check_ids,
    create_all,
    load_avg,
    mem_text,
    start_timed,
    supporter_id,
    verify,
    wait_for_log,
    write_changelog,
)
from bench_worker import PARTITIONS, committed_total, load, pct, stop
from relmon.topics import INPUT_TOPICS


def check_body(ids: list[str]) -> bytes:
    return json.dumps({"supporter_ids": ids}).encode()


HEADERS = {"Content-Type": "application/json"}


async def post_check(client: httpx.AsyncClient, body: bytes) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    response = await client.post("/suppressions/check", content=body, headers=HEADERS)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise SystemExit(f"check: {response.status_code} {response.text[:200]}")
    return elapsed, response.content


def assert_answers(content: bytes, ids: list[str]) -> str:
    """Every id answered; if answers carry `known`, all true. Returns a note for the report."""
    results: Any = json.loads(content)["results"]
    answers = list(results.values()) if isinstance(results, dict) else list(results)
    if len(answers) != len(ids):
        raise SystemExit(f"check answered {len(answers)} of {len(ids)} ids")
    knowns = [a.get("known") for a in answers if isinstance(a, dict) and "known" in a]
    if not knowns:
        return "answers carry no `known` field"
    if len(knowns) != len(answers) or not all(k is True for k in knowns):
        bad = sum(1 for k in knowns if k is not True) + len(answers) - len(knowns)
        raise SystemExit(f"{bad} held supporters answered without known: true")
    return f"all {len(answers):,} answers known: true"


async def batch_checks(url: str, ids: list[str], runs: int) -> None:
    body = check_body(ids)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        times = []
        content = b""
        for _ in range(runs):
            elapsed, content = await post_check(client, body)
            times.append(elapsed)
        note = assert_answers(content, ids)
        print(
            f"(a) {len(ids):,}-id check x{runs}: best {min(times):.3f}s, median "
            f"{statistics.median(times):.3f}s, all {', '.join(f'{t:.2f}' for t in times)} "
            f"({note})"
        )
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        t0 = time.perf_counter()
        four = await asyncio.gather(*(post_check(client, body) for _ in range(4)))
        wall = time.perf_counter() - t0
    each = sorted(t for t, _ in four)
    print(
        f"(a) 4 at once: all four answered in {wall:.3f}s; each "
        f"{', '.join(f'{t:.2f}' for t in each)}s"
    )


class Gets(list[float]):
    """Latencies (ms) of the GETs answered 200, and how long issuing and draining took."""

    issued = 0
    issue_s = 0.0  # from the first request to the last one issued
    total_s = 0.0  # from the first request to the last answer


async def single_gets(url: str, ids: list[str], rate: float, until: Any) -> Gets:
    """GET /suppressions/{id} at `rate`/s (open loop) until `until()` is true; latencies ms."""
    lat = Gets()
    failed = 0
    rng = random.Random(11)
    # aiohttp, not httpx: httpx's connection pool costs O(queued x connections) per request,
    # so once GETs queue the client itself eats the CPU the worker needs
    connector = aiohttp.TCPConnector(limit=200)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def one(sid: str) -> None:
            nonlocal failed
            t0 = time.perf_counter()
            async with client.get(f"/suppressions/{sid}") as response:
                await response.read()
                ok = response.status == 200
            if ok:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                failed += 1

        tasks = []
        t0 = time.perf_counter()
        k = 0
        while not until():
            tasks.append(asyncio.create_task(one(rng.choice(ids))))
            k += 1
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        lat.issued, lat.issue_s = k, time.perf_counter() - t0
        await asyncio.gather(*tasks)
        lat.total_s = time.perf_counter() - t0
    if failed:
        print(f"    {failed} GETs did not answer 200")
    return lat


def lat_text(lat: Gets) -> str:
    if not lat:
        return "no answers"
    return (
        f"n={len(lat):,} p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
        f"max {max(lat):.1f} ms ({lat.issued:,} issued in {lat.issue_s:.1f}s, last answer "
        f"after {lat.total_s:.1f}s: {len(lat) / lat.total_s:,.0f} answers/s)"
    )


def checks_in_thread(url: str, body: bytes, stop_flag: threading.Event, times: list[float]) -> None:
    """100,000-id checks back to back until `stop_flag` (bodies read, not parsed)."""
    with httpx.Client(base_url=url, timeout=300) as client:
        while not stop_flag.is_set():
            t0 = time.perf_counter()
            response = client.post("/suppressions/check", content=body, headers=HEADERS)
            times.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise SystemExit(f"check: {response.status_code}")


def for_seconds(seconds: float) -> Any:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


async def gets_under_checks(url: str, ids: list[str], rate: float, seconds: float) -> None:
    lat = await single_gets(url, ids, rate, for_seconds(seconds))
    print(f"(b) single GET at {rate:.0f}/s, idle worker, {seconds:.0f}s: {lat_text(lat)}")
    stop_flag = threading.Event()
    times: list[float] = []
    thread = threading.Thread(
        target=checks_in_thread, args=(url, check_body(check_ids(len(ids))), stop_flag, times)
    )
    thread.start()
    try:
        lat = await single_gets(url, ids, rate, for_seconds(seconds))
    finally:
        stop_flag.set()
        await asyncio.to_thread(thread.join)
    checks = f"{len(times)} checks, median {statistics.median(times):.2f}s" if times else "-"
    print(
        f"(b) single GET at {rate:.0f}/s during back-to-back {min(len(ids), 100_000):,}-id "
        f"checks ({checks}), {seconds:.0f}s: {lat_text(lat)}"
    )


async def gets_under_backlog(
    bootstrap: str, prefix: str, url: str, ids: list[str], rate: float, backlog: int
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    group = f"{prefix}{WORKER_ID}"
    tps = [TopicPartition(f"{prefix}{t}", p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
    try:
        before = await committed_total(admin, group, tps)
        t_load = time.perf_counter()
        await load(bootstrap, prefix, backlog, len(ids))
        loaded_s = time.perf_counter() - t_load
        end = before + backlog
        start_done = await committed_total(admin, group, tps)
        done = start_done
        caught_up = asyncio.Event()

        async def watch() -> None:
            nonlocal done
            while done < end:
                await asyncio.sleep(0.5)
                done = await committed_total(admin, group, tps)
            caught_up.set()

        watcher = asyncio.create_task(watch())
        t0 = time.perf_counter()
        lat = await single_gets(url, ids, rate, caught_up.is_set)
        took = time.perf_counter() - t0
        await watcher
    finally:
        await admin.close()
    left = end - start_done
    print(
        f"(c) backlog of {backlog:,} events produced in {loaded_s:.1f}s; {left:,} left when "
        f"the GETs started, consumed in {took:.1f}s ({left / took:,.0f} events/s)"
    )
    print(f"(c) single GET at {rate:.0f}/s while the worker consumes it: {lat_text(lat)}")


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="relmon-bench-api-"))
    n = args.supporters
    states = States(datetime.now(UTC))
    states.check(n)
    ids = [supporter_id(i) for i in range(n)]
    proc: subprocess.Popen[bytes] | None = None
    async with broker(tmp) as bootstrap:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        changelog = await create_all(bootstrap, prefix)
        wrote = await write_changelog(bootstrap, changelog, states, n)
        print(f"{n:,} states written to the changelog in {wrote:.1f}s")
        try:
            proc, url, ready_s, offset = await asyncio.to_thread(
                start_timed, bootstrap, prefix, tmp, 3600
            )
            rebuilt = await asyncio.to_thread(
                wait_for_log, tmp / "worker.log", offset, "expiry index rebuilt", 120
            )
            rebuilt_text = "not seen" if rebuilt is None else f"{rebuilt:.1f}s later"
            print(
                f"worker ready after {ready_s:.1f}s, expiry index rebuilt {rebuilt_text}; "
                f"{mem_text(proc.pid)}"
            )
            checked = await asyncio.to_thread(verify, url, states, n)
            print(f"{checked} held supporters read back over the API, as written")
            print(f"load average before: {load_avg()}")
            await batch_checks(url, check_ids(n), args.checks)
            await gets_under_checks(url, ids, args.rate, args.seconds)
            await gets_under_backlog(bootstrap, prefix, url, ids, args.rate, args.backlog)
            print(f"worker {mem_text(proc.pid)}; load average after: {load_avg()}")
        finally:
            if proc is not None:
                await asyncio.to_thread(stop, proc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--supporters", type=int, default=200_000)
    parser.add_argument("--checks", type=int, default=5, help="100,000-id checks in a row")
    parser.add_argument("--rate", type=float, default=100.0, help="single GETs per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="each single-GET phase (b)")
    parser.add_argument("--backlog", type=int, default=200_000, help="events for (c)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
