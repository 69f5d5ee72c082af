"""Topic skew: what the live worker does when one input topic runs far ahead of another.

Two measurements against a real broker and a real `relmon worker` subprocess:

``burst`` — an opt-out stuck behind an e-mail burst (latency, and event-time skew).
  A worker is started idle on a fresh topic prefix; N e-mail events (one per supporter, as a
  campaign send, event times 0.1 s apart ending now) are produced to relmon.emails as fast as
  possible; right behind them, phone opt-outs (consent_change, channel phone, action
  opt_out, for supporters whose e-mails are still waiting in the burst) are produced to
  relmon.consents at a steady rate until the worker has applied the whole burst. An
  independent consumer reads relmon.suppressions and matches each record to its opt-out by
  ``cause_event_id``: latency = record timestamp - opt-out timestamp (both producer
  CreateTime). The worker's ``relmon_events_consumed_total{type="email_engagement"}`` is
  scraped every 0.2 s, so for each opt-out we also know how many burst e-mails were still
  unapplied when it was applied, and the event-time gap between the opt-out and the e-mail
  the worker was at.

``history`` — a simulated period loaded topic by topic vs merged in event time.
  `relmon simulate` writes a period; it is split into the four per-topic files (each still
  in time order) and loaded into a fresh prefix with a fresh worker, three ways:
  ``topic_by_topic``: worker running, all e-mails, then donations, consents, calls;
  ``backfill_live``: worker running, `relmon backfill` of the four files;
  ``backfill_then_worker``: `relmon backfill` first, then the worker (the README's order);
  ``backfill_chunked`` (on request): worker running, the merged file cut into --chunk-days
  of event time, one `relmon backfill` per chunk, each drained before the next.
  Each is compared with `relmon replay` of the same file: late dead letters, other dead
  letters, alert ids, and the suppression records caused by events (exact JSON).

Each run prints one JSON object (also appended to --results) with `uptime`'s load before and
after. Starts its own broker on free ports unless RELMON_KAFKA_BOOTSTRAP is set.

    python benchmarks/bench_skew.py burst --emails 100000 --emails 300000
    python benchmarks/bench_skew.py burst --emails 300000 --worker-env STREAM_BUFFER_MAXSIZE=512
    python benchmarks/bench_skew.py history --supporters 3000 --days 365
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench_worker import committed_total, free_port, pct, start_worker
from relmon import devbroker
from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.topics import ALERTS, DLQ, INPUT_TOPICS, SUPPRESSIONS, TOPIC_OF_TYPE, contract_topics

PARTITIONS = 4
STEP_S = 0.1  # event time between two burst e-mails
LATEST_TIME = re.compile(r"latest time (\S+?)[;,. ]")
GROUP_ID = "relmon-bench"  # the worker id bench_worker.start_worker sets
LOAD_ORDER = ["email_engagement", "donation_change", "consent_change", "call_outcome"]
EMAIL_ACTIONS = ["sent", "delivered", "opened", "clicked"]


def load_avg() -> str:
    """`uptime`'s load averages (1, 5, 15 min): the machine is shared."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.strip().split("load average:")[-1].strip()


# --------------------------------------------------------------------------- helpers


async def new_prefix(bootstrap: str, name: str) -> str:
    prefix = f"{name}{uuid.uuid4().hex[:6]}."
    await create_topics(
        Settings(kafka_bootstrap=bootstrap),
        contract_topics(PARTITIONS),
        replication_factor=1,
        prefix=prefix,
    )
    return prefix


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp: int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def wait_drained(bootstrap: str, prefix: str, proc: subprocess.Popen[bytes]) -> float:
    """Wait until the worker's committed offsets reach the input topics' end offsets."""
    group = f"{prefix}{GROUP_ID}"
    inputs = [f"{prefix}{t}" for t in INPUT_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    started = time.perf_counter()
    try:
        while True:
            target = sum((await end_offsets(bootstrap, inputs)).values())
            done = await committed_total(admin, group, list(await_tps(inputs)))
            if done >= target:
                return time.perf_counter() - started
            if proc.poll() is not None:
                raise SystemExit("worker died")
            await asyncio.sleep(1.0)
    finally:
        await admin.close()


def await_tps(topics: Iterable[str]) -> Iterable[TopicPartition]:
    return (TopicPartition(t, p) for t in topics for p in range(PARTITIONS))


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, int]]:
    """Every message of a topic from the beginning to its current end: (key, value, ts)."""
    ends = await end_offsets(bootstrap, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes, int]] = []
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning()
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for record in records:
                    out.append((record.key, record.value or b"", record.timestamp))
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- burst


def email(i: int, base: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "type": "email_engagement",
        "event_id": f"burst-{i}",
        "supporter_id": f"B-{i:07d}",
        "occurred_at": (base + timedelta(seconds=i * STEP_S)).isoformat(),
        "message_id": f"m{i}",
        "campaign_id": "E-BLAST",
        "action": rng.choice(EMAIL_ACTIONS),
    }


async def email_counter(url: str) -> int:
    """E-mail events the worker has handled so far (any result), from its /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("relmon_events_consumed_total{") and 'type="email_engagement"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def burst_run(
    bootstrap: str, n: int, rate: float, tmp: Path, extra_env: Mapping[str, str]
) -> dict[str, Any]:
    load_before = load_avg()
    prefix = await new_prefix(bootstrap, "skew")
    proc, url = await asyncio.to_thread(
        start_worker, bootstrap, prefix, f"{prefix}{GROUP_ID}", tmp, extra_env
    )
    samples: list[tuple[float, int]] = []  # (wall time s, e-mails handled)
    records: dict[str, int] = {}  # cause_event_id -> suppression record timestamp (ms)
    sent: dict[str, tuple[int, datetime]] = {}  # opt-out event id -> (produce ts ms, occurred)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    suppressions = AIOKafkaConsumer(
        f"{prefix}{SUPPRESSIONS}", bootstrap_servers=bootstrap, group_id=None
    )
    await producer.start()
    await suppressions.start()
    await suppressions.seek_to_end()
    drained = asyncio.Event()
    finished = asyncio.Event()
    all_recorded = asyncio.Event()  # a record for every opt-out sent so far

    async def sample() -> None:
        while not finished.is_set():
            try:
                count = await email_counter(url)
            except httpx.HTTPError:
                count = samples[-1][1] if samples else 0
            samples.append((time.time(), count))
            if count >= n and not drained.is_set():
                drained.set()
            await asyncio.sleep(0.2)

    async def collect() -> None:
        while not finished.is_set():
            batch = await suppressions.getmany(timeout_ms=300)
            for recs in batch.values():
                for record in recs:
                    cause = json.loads(record.value or b"{}").get("cause_event_id")
                    if cause in sent and cause not in records:
                        records[cause] = record.timestamp
            if len(records) == len(sent):
                all_recorded.set()

    sampler = asyncio.create_task(sample())
    collector = asyncio.create_task(collect())
    rng = random.Random(7)
    base = datetime.now(UTC) - timedelta(seconds=n * STEP_S)
    t_load = time.perf_counter()
    pending = []
    for i in range(n):
        ev = email(i, base, rng)
        pending.append(
            await producer.send(
                f"{prefix}relmon.emails", json.dumps(ev).encode(), key=ev["supporter_id"].encode()
            )
        )
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    load_s = time.perf_counter() - t_load

    # Opt-outs right behind the burst, for supporters whose e-mails are at the burst's end
    # (still unapplied), until the worker has applied the whole burst and 5 s more.
    tag = uuid.uuid4().hex[:6]
    t0 = time.perf_counter()
    k = 0
    drained_at: float | None = None
    while True:
        if drained.is_set() and drained_at is None:
            drained_at = time.perf_counter()
        if drained_at is not None and time.perf_counter() - drained_at > 5:
            break
        if proc.poll() is not None:
            raise SystemExit(f"worker died; see {tmp / 'worker.log'}")
        sid = f"B-{n - 1 - (k % n):07d}"
        occurred = datetime.now(UTC)
        body = {
            "type": "consent_change",
            "event_id": f"oo-{tag}-{k}",
            "supporter_id": sid,
            "occurred_at": occurred.isoformat(),
            "channel": "phone",
            "action": "opt_out",
            "source": "web",
        }
        meta = await (
            await producer.send(
                f"{prefix}relmon.consents", json.dumps(body).encode(), key=sid.encode()
            )
        )
        sent[body["event_id"]] = (meta.timestamp, occurred)
        all_recorded.clear()
        k += 1
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    with contextlib.suppress(TimeoutError):  # reported as optouts_sent > optouts_recorded
        await asyncio.wait_for(all_recorded.wait(), timeout=30)
    finished.set()
    await asyncio.gather(sampler, collector)
    await producer.stop()
    await suppressions.stop()
    dlq = await read_all(bootstrap, f"{prefix}{DLQ}")
    stop(proc)
    late = sum(1 for _k, v, _t in dlq if json.loads(v).get("kind") == "late")

    # Where the worker was in the burst when it applied each opt-out: interpolate the e-mail
    # count at the suppression record's timestamp.
    times = [t for t, _c in samples]
    lat_during: list[float] = []
    lat_after: list[float] = []
    backlog: list[float] = []
    gap_s: list[float] = []
    drain_wall = next((t for t, c in samples if c >= n), None)
    for eid, (ts_ms, occurred) in sent.items():
        if eid not in records:
            continue
        latency = float(records[eid] - ts_ms)
        applied = records[eid] / 1000
        i = bisect.bisect_right(times, applied)
        if i == 0:
            count = samples[0][1]
        elif i >= len(samples):
            count = samples[-1][1]
        else:
            (ta, ca), (tb, cb) = samples[i - 1], samples[i]
            count = int(ca + (cb - ca) * (applied - ta) / max(tb - ta, 1e-9))
        if drain_wall is not None and ts_ms / 1000 >= drain_wall:
            lat_after.append(latency)
            continue
        lat_during.append(latency)
        backlog.append(float(n - count))
        at = base + timedelta(seconds=min(count, n - 1) * STEP_S)
        gap_s.append((occurred - at).total_seconds())
    drain_s = (drain_wall - samples[0][0]) if drain_wall is not None else float("nan")

    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "n": len(values),
            "p50": round(pct(values, 0.5), 1),
            "p99": round(pct(values, 0.99), 1),
            "max": round(max(values), 1),
        }

    first_ts = min(v[0] for v in sent.values()) / 1000 if sent else 0.0
    return {
        "scenario": "burst",
        "emails": n,
        "optout_rate": rate,
        "worker_env": dict(extra_env),
        "load_before": load_before,
        "load_after": load_avg(),
        "burst_produce_s": round(load_s, 1),
        "burst_applied_after_s": round(drain_s, 1),
        "optouts_sent": len(sent),
        "optouts_recorded": len(records),
        "latency_ms_during_backlog": stats(lat_during),
        "latency_ms_after_drain": stats(lat_after),
        "email_backlog_msgs_when_applied": stats(backlog),
        "event_time_gap_s_when_applied": stats(gap_s),
        "optouts_sent_before_drain": sum(
            1 for v in sent.values() if drain_wall is None or v[0] / 1000 < drain_wall
        ),
        "first_optout_after_burst_start_s": round(first_ts - samples[0][0], 1) if samples else None,
        "late_dead_letters": late,
        "dead_letters": len(dlq),
    }


# --------------------------------------------------------------------------- history


def split_by_type(source: Path, folder: Path) -> dict[str, Path]:
    files = {t: folder / f"{TOPIC_OF_TYPE[t].split('.')[-1]}.jsonl" for t in LOAD_ORDER}
    handles = {t: p.open("wb") for t, p in files.items()}
    try:
        with source.open("rb") as lines:
            for line in lines:
                handles[json.loads(line)["type"]].write(line)
    finally:
        for h in handles.values():
            h.close()
    return files


def split_by_time(source: Path, folder: Path, start: str, days: int) -> list[Path]:
    """The merged file cut into files of `days` of event time each (history before `start`
    goes with the first), in order."""
    origin = datetime.fromisoformat(start).replace(tzinfo=UTC)
    paths: dict[int, Path] = {}
    handles: dict[int, Any] = {}
    try:
        with source.open("rb") as lines:
            for line in lines:
                at = datetime.fromisoformat(json.loads(line)["occurred_at"])
                key = max(0, (at - origin).days // days)
                if key not in handles:
                    paths[key] = folder / f"chunk-{key:04d}.jsonl"
                    handles[key] = paths[key].open("wb")
                handles[key].write(line)
    finally:
        for h in handles.values():
            h.close()
    return [paths[k] for k in sorted(paths)]


async def produce_file(bootstrap: str, prefix: str, path: Path) -> int:
    """One per-topic file, line by line (unchanged), keyed by supporter_id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    count = 0
    try:
        pending = []
        with path.open("rb") as lines:
            for line in lines:
                ev = json.loads(line)
                topic = f"{prefix}{TOPIC_OF_TYPE[ev['type']]}"
                pending.append(
                    await producer.send(topic, line.rstrip(b"\n"), key=ev["supporter_id"].encode())
                )
                count += 1
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def run(*parts: list[str]) -> None:
    subprocess.run([x for part in parts for x in part], check=True, stdout=subprocess.DEVNULL)


def backfill(bootstrap: str, prefix: str, files: Iterable[Path]) -> float:
    started = time.perf_counter()
    args = [sys.executable, "-m", "relmon.cli", "backfill", "--bootstrap", bootstrap]
    args += ["--prefix", prefix, "--no-progress"]
    for f in files:
        args += ["--input", str(f)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def canonical(value: bytes | str) -> str:
    return json.dumps(json.loads(value), sort_keys=True)


def outputs_of_replay(folder: Path) -> dict[str, Any]:
    def lines(name: str) -> list[str]:
        return [x for x in (folder / name).read_text().splitlines() if x.strip()]

    dead = [json.loads(x) for x in lines("dead_letters.jsonl")]
    return {
        "records": [canonical(x) for x in lines("suppressions.jsonl")],
        "alerts": {json.loads(x)["alert_id"] for x in lines("alerts.jsonl")},
        "late": sum(1 for d in dead if d.get("kind") == "late"),
        "dead": Counter(str(d.get("kind")) for d in dead),
    }


async def outputs_of_worker(bootstrap: str, prefix: str) -> dict[str, Any]:
    records = await read_all(bootstrap, f"{prefix}{SUPPRESSIONS}")
    alerts = await read_all(bootstrap, f"{prefix}{ALERTS}")
    dead = [json.loads(v) for _k, v, _t in await read_all(bootstrap, f"{prefix}{DLQ}")]
    # A late event's reason names the supporter's latest time: after the simulated period
    # it can only come from the expiry timer, which re-decides at the wall clock.
    clocks = [LATEST_TIME.search(str(d.get("error"))) for d in dead if d.get("kind") == "late"]
    return {
        "late_clocks": [datetime.fromisoformat(m.group(1)) for m in clocks if m],
        "records": [canonical(v) for _k, v, _t in records],
        "alerts": {json.loads(v)["alert_id"] for _k, v, _t in alerts},
        "late": sum(1 for d in dead if d.get("kind") == "late"),
        "dead": Counter(str(d.get("kind")) for d in dead),
    }


def compare(
    worker: dict[str, Any], replay: dict[str, Any], event_ids: set[str], period_end: datetime
) -> dict[str, Any]:
    """Decisions caused by events (lifts depend on the wall clock, so they are left out)."""

    def decisions(records: list[str]) -> set[str]:
        return {r for r in records if json.loads(r).get("cause_event_id") in event_ids}

    def supporters(records: set[str]) -> set[str]:
        return {json.loads(r)["supporter_id"] for r in records}

    def final(records: list[str]) -> dict[str, tuple[Any, ...]]:
        """Each supporter's last decision caused by an event: (suppressed, reasons, until)."""
        last: dict[str, tuple[Any, ...]] = {}
        for line in records:
            r = json.loads(line)
            if r.get("cause_event_id") in event_ids:
                last[r["supporter_id"]] = (r["suppressed"], json.dumps(r["reasons"]), r["until"])
        return last

    fw, fr = final(worker["records"]), final(replay["records"])
    w, r = decisions(worker["records"]), decisions(replay["records"])
    wa, ra = worker["alerts"], replay["alerts"]
    return {
        "late_dead_letters": worker["late"],
        "late_behind_wall_clock": sum(1 for c in worker["late_clocks"] if c > period_end),
        "late_in_replay": replay["late"],
        "dead_letters_by_kind": dict(worker["dead"]),
        "decisions_worker": len(w),
        "decisions_replay": len(r),
        "decisions_identical": len(w & r),
        "decisions_only_worker": len(w - r),
        "decisions_only_replay": len(r - w),
        "supporters_with_a_differing_decision": len(supporters(w ^ r)),
        "final_decision_differs": sum(1 for k in fw.keys() | fr.keys() if fw.get(k) != fr.get(k)),
        "supporters_decided": len(fw.keys() | fr.keys()),
        "alerts_worker": len(wa),
        "alerts_replay": len(ra),
        "alerts_common": len(wa & ra),
        "alerts_only_worker": len(wa - ra),
        "alerts_only_replay": len(ra - wa),
    }


async def history(
    bootstrap: str, args: argparse.Namespace, tmp: Path, extra_env: Mapping[str, str]
) -> list[dict[str, Any]]:
    sim = tmp / "simulated.jsonl"
    cmd = [sys.executable, "-m", "relmon.cli", "simulate", "--supporters", str(args.supporters)]
    cmd += ["--days", str(args.days), "--seed", str(args.seed), "--start", args.start]
    await asyncio.to_thread(run, [*cmd, "--out", str(sim)])
    files = split_by_type(sim, tmp)
    event_ids = set()
    period_end = datetime.min.replace(tzinfo=UTC)
    with sim.open("rb") as lines:
        for line in lines:
            ev = json.loads(line)
            event_ids.add(ev["event_id"])
            period_end = max(period_end, datetime.fromisoformat(ev["occurred_at"]))
    period_end += timedelta(days=1)
    t0 = time.perf_counter()
    replay_dir = tmp / "replay"
    await asyncio.to_thread(
        run,
        [sys.executable, "-m", "relmon.cli", "replay", "--input", str(sim)],
        ["--out", str(replay_dir), "--no-progress"],
    )
    replay_s = time.perf_counter() - t0
    replay = outputs_of_replay(replay_dir)
    counts = {t: sum(1 for _ in p.open("rb")) for t, p in files.items()}
    results = []
    for scenario in args.scenarios:
        load_before = load_avg()
        prefix = await new_prefix(bootstrap, scenario.replace("_", "")[:10])
        run_tmp = tmp / scenario
        run_tmp.mkdir()
        group = f"{prefix}{GROUP_ID}"
        proc = None
        started = time.perf_counter()
        try:
            if scenario == "backfill_then_worker":
                await asyncio.to_thread(backfill, bootstrap, prefix, files.values())
            proc, _url = await asyncio.to_thread(
                start_worker, bootstrap, prefix, group, run_tmp, extra_env
            )
            if scenario == "topic_by_topic":
                for t in LOAD_ORDER:
                    await produce_file(bootstrap, prefix, files[t])
            elif scenario == "backfill_live":
                await asyncio.to_thread(backfill, bootstrap, prefix, files.values())
            elif scenario == "backfill_chunked":
                chunks = await asyncio.to_thread(
                    split_by_time, sim, run_tmp, args.start, args.chunk_days
                )
                for chunk in chunks:
                    await asyncio.to_thread(backfill, bootstrap, prefix, [chunk])
                    await wait_drained(bootstrap, prefix, proc)
            await wait_drained(bootstrap, prefix, proc)
            elapsed = time.perf_counter() - started
            worker = await outputs_of_worker(bootstrap, prefix)
        finally:
            stop(proc)
        result = {
            "scenario": f"history/{scenario}",
            "simulate": f"--supporters {args.supporters} --days {args.days} "
            f"--seed {args.seed} --start {args.start}",
            "events": sum(counts.values()),
            "events_per_topic": counts,
            "worker_env": dict(extra_env),
            "load_before": load_before,
            "load_after": load_avg(),
            "load_and_drain_s": round(elapsed, 1),
            **({"chunk_days": args.chunk_days} if scenario == "backfill_chunked" else {}),
            "replay_s": round(replay_s, 1),
            **compare(worker, replay, event_ids, period_end),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


# --------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> None:
    extra_env = dict(kv.split("=", 1) for kv in args.worker_env)
    tmp = Path(tempfile.mkdtemp(prefix="relmon-skew-"))
    bootstrap = os.environ.get("RELMON_KAFKA_BOOTSTRAP")
    home = None
    if not bootstrap:
        home = devbroker.BrokerHome(tmp / "broker", free_port())
        await asyncio.to_thread(devbroker.start, home)
        bootstrap = home.bootstrap
    results: list[dict[str, Any]] = []
    try:
        if args.command == "burst":
            for n in args.emails or [100_000]:
                run_tmp = tmp / f"burst-{n}-{uuid.uuid4().hex[:4]}"
                run_tmp.mkdir()
                result = await burst_run(bootstrap, n, args.rate, run_tmp, extra_env)
                print(json.dumps(result), flush=True)
                results.append(result)
        else:
            results = await history(bootstrap, args, tmp, extra_env)
    finally:
        if home is not None:
            await asyncio.to_thread(devbroker.stop, home)
        if args.results:
            await asyncio.to_thread(append_results, Path(args.results), results)


def append_results(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for r in results:
            out.write(json.dumps({"at": datetime.now(UTC).isoformat(), **r}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="build/skew-results.jsonl", help="JSONL to append")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the worker (e.g. STREAM_BUFFER_MAXSIZE=512); repeatable",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    burst = sub.add_parser("burst", help="opt-outs behind an e-mail burst")
    burst.add_argument("--emails", type=int, action="append", help="burst size; repeatable")
    burst.add_argument("--rate", type=float, default=20.0, help="opt-outs per second")
    hist = sub.add_parser("history", help="a simulated period: topic by topic vs backfill")
    hist.add_argument("--supporters", type=int, default=3000)
    hist.add_argument("--days", type=int, default=365)
    hist.add_argument("--seed", type=int, default=7)
    hist.add_argument("--start", default="2025-06-01", help="before the worker's clock")
    hist.add_argument(
        "--scenarios",
        nargs="+",
        default=["topic_by_topic", "backfill_live", "backfill_then_worker"],
        choices=["topic_by_topic", "backfill_live", "backfill_then_worker", "backfill_chunked"],
    )
    hist.add_argument(
        "--chunk-days",
        type=int,
        default=7,
        help="backfill_chunked: days of event time per `relmon backfill`, drained in between",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
