"""Restart benchmark: a worker holding N supporters (default 1,000,000) restarts.

Measured, in one run, on a fresh topic prefix (own broker on free ports unless
RELMON_KAFKA_BOOTSTRAP is set):

(b) **from the changelog alone**: `relmon worker` started on an empty state directory
    (same group and topics); time from process start until `GET /readyz` answers 200.
(a) **from its own state volume**: that worker stopped (SIGTERM, graceful) and started again
    on the RocksDB directory it left; same timing.
(c) **memory**: the worker's VmRSS and VmHWM (peak) from /proc/<pid>/status, at /readyz 200,
    after the first expiry tick has rebuilt the expiry index from every local state (the
    "expiry index rebuilt" log line), and after a 100,000-id `POST /suppressions/check` of
    held supporters (its time is printed too).

From /readyz 200 until the expiry index is rebuilt, one supporter is read every 0.1 s
(closed loop): the slowest answer shows how long the API stalls after it reports ready.

After each start a few supporters are read back over the API (`GET /suppressions/{id}`,
`GET /supporters/{id}`) and compared with what the engine decides from the state written:
the worker must hold the states, not answer "never seen".

**How the states are made.** Consuming N supporters' events through the worker (~3,500
events/s) would take far too long, so the states are written straight to the worker's
changelog topic (`<prefix><worker id>-supporter-state-changelog`, name read from
`build_worker`'s table; 4 partitions, compacted; key = supporter id bytes, partition =
`relmon.streaming.processor.partition_for`, i.e. as the worker's table partitions it). They
are real engine states: 6 event templates (phone opt-out after e-mails; three irritating
calls; e-mail engagement and a thank-you call; an upgrade and a thank-you call; a failed
payment and an unanswered call; calls then a cancelled mandate) at 4 ages (20 min to 5 h
before now), each applied in-process with `parse_event` + `Engine.apply` for a placeholder
supporter id whose event ids embed it, and serialized with `SupporterState.to_bytes`. Each
supporter `S-<i:07d>` gets template `i mod 24` with the placeholder replaced by its id (same
length; all states are plain orjson, not compressed). A sample of ids is checked to give
byte-identical states when built for that id by the engine directly. All decisions change
by time alone only days ahead, so no expiry is due during the run. States are 170–460 bytes;
about 2/3 are suppressed.

Run: `python benchmarks/bench_restart.py --supporters 1000000` (`make bench`). Use small
values (e.g. `--supporters 20000`) while developing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from bench_worker import PARTITIONS, free_port, start_worker, stop
from relmon import devbroker
from relmon.domain import Engine, SupporterState, default_policy, parse_event
from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.streaming.processor import partition_for
from relmon.topics import TopicSpec, contract_topics

WORKER_ID = "relmon-bench"  # what bench_worker.start_worker sets
PLACEHOLDER = "S-#######"  # as long as S-<i:07d>
Event = dict[str, Any]


def supporter_id(i: int) -> str:
    return f"S-{i:07d}"


# --- the event templates -------------------------------------------------------------------


def _call(n: int, sid: str, at: datetime, outcome: str, purpose: str = "upgrade") -> Event:
    return {
        "type": "call_outcome",
        "event_id": f"{sid}-c{n}",
        "supporter_id": sid,
        "occurred_at": at.isoformat(),
        "call_id": f"{sid}-c{n}",
        "direction": "outbound",
        "campaign_id": "C1",
        "campaign_purpose": purpose,
        "partner_id": "P-1",
        "agent_id": "A-7",
        "duration_s": 60,
        "outcome": outcome,
        "amount_delta_cents": None,
        "trigger": None,
        "sentiment": None,
    }


def _email(n: int, sid: str, at: datetime, action: str) -> Event:
    return {
        "type": "email_engagement",
        "event_id": f"{sid}-e{n}",
        "supporter_id": sid,
        "occurred_at": at.isoformat(),
        "message_id": f"{sid}-m{n}",
        "campaign_id": "E1",
        "action": action,
    }


def _consent(n: int, sid: str, at: datetime, channel: str, action: str) -> Event:
    return {
        "type": "consent_change",
        "event_id": f"{sid}-k{n}",
        "supporter_id": sid,
        "occurred_at": at.isoformat(),
        "channel": channel,
        "action": action,
        "source": "web",
    }


def _donation(n: int, sid: str, at: datetime, action: str) -> Event:
    return {
        "type": "donation_change",
        "event_id": f"{sid}-d{n}",
        "supporter_id": sid,
        "occurred_at": at.isoformat(),
        "mandate_id": f"M-{sid}",
        "action": action,
        "frequency": "monthly",
        "amount_cents_before": 1500,
        "amount_cents_after": 2000,
        "currency": "EUR",
        "mandate_started_at": "2023-05-01T00:00:00+00:00",
        "channel": "bank",
        "reason": None,
    }


def _m(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def _opted_out(sid: str, b: datetime) -> list[Event]:
    return [
        _email(1, sid, b, "delivered"),
        _email(2, sid, b + _m(5), "opened"),
        _consent(1, sid, b + _m(20), "phone", "opt_out"),
    ]


def _irritated(sid: str, b: datetime) -> list[Event]:
    return [
        _call(1, sid, b, "declined"),
        _call(2, sid, b + _m(10), "hung_up"),
        _call(3, sid, b + _m(30), "no_answer"),
        _email(1, sid, b + _m(40), "delivered"),
    ]


def _engaged(sid: str, b: datetime) -> list[Event]:
    actions = ["sent", "delivered", "opened", "sent", "delivered", "clicked"]
    return [_email(n, sid, b + _m(3 * n), a) for n, a in enumerate(actions)] + [
        _call(1, sid, b + _m(30), "converted", "thank_you")
    ]


def _upgraded(sid: str, b: datetime) -> list[Event]:
    return [
        _donation(1, sid, b, "upgraded"),
        _call(1, sid, b + _m(2), "converted", "thank_you"),
        _email(1, sid, b + _m(10), "opened"),
        _email(2, sid, b + _m(11), "clicked"),
    ]


def _failed(sid: str, b: datetime) -> list[Event]:
    return [_donation(1, sid, b, "payment_failed"), _call(1, sid, b + _m(15), "no_answer")]


def _cancelled(sid: str, b: datetime) -> list[Event]:
    return [
        _call(1, sid, b, "busy"),
        _call(2, sid, b + _m(5), "declined"),
        _donation(1, sid, b + _m(30), "cancelled"),
    ]


TEMPLATES: list[Callable[[str, datetime], list[Event]]] = [
    _opted_out,
    _irritated,
    _engaged,
    _upgraded,
    _failed,
    _cancelled,
]
AGES = [_m(20), _m(50), _m(120), _m(300)]


class States:
    """Every supporter's state bytes, made from engine-built templates (module docstring)."""

    def __init__(self, now: datetime) -> None:
        self.now = now.replace(microsecond=0)
        self.engine = Engine(default_policy())
        self.templates = [
            self.build(PLACEHOLDER, template, age) for age in AGES for template in TEMPLATES
        ]
        self._ph = PLACEHOLDER.encode()
        for raw in self.templates:
            if raw[:1] != b"\x01" or self._ph not in raw:
                raise SystemExit("a template state is compressed or does not carry its id")

    def build(
        self, sid: str, template: Callable[[str, datetime], list[Event]], age: timedelta
    ) -> bytes:
        """The engine's state for `sid` after the template's events."""
        state: SupporterState | None = None
        for event in template(sid, self.now - age):
            outcome = self.engine.apply(state, parse_event(json.dumps(event)))
            if outcome.late is not None:
                raise SystemExit(f"template event refused as late: {outcome.late}")
            state = outcome.state
        assert state is not None
        return state.to_bytes()

    def of(self, i: int) -> bytes:
        return self.templates[i % len(self.templates)].replace(self._ph, supporter_id(i).encode())

    def built(self, i: int) -> bytes:
        """The same state built by the engine for this very id (to check `of`)."""
        k = i % len(self.templates)
        return self.build(supporter_id(i), TEMPLATES[k % len(TEMPLATES)], AGES[k // len(TEMPLATES)])

    def check(self, n: int) -> None:
        sample = random.Random(3).sample(range(n), min(n, 200))
        for i in sample:
            if self.of(i) != self.built(i):
                raise SystemExit(f"template state of {supporter_id(i)} differs from the engine's")

    def expected(self, i: int, at: datetime) -> list[dict[str, Any]]:
        """What the API may say of supporter i when asked at `at` (the fields compared): the
        decision at `at`, or the last one emitted (at the state's latest event time), which
        an API answering "as on the topic" gives."""
        state = SupporterState.from_bytes(self.of(i))
        out = []
        for when in (at, datetime.fromtimestamp(state.clock, UTC)):
            record = self.engine.decision(state, supporter_id(i), when)
            out.append(
                {
                    "suppressed": record.suppressed,
                    "reasons": sorted(r.code for r in record.reasons),
                }
            )
        return out


def changelog_topic(prefix: str) -> str:
    """The worker table's changelog topic, as the app names it."""
    from relmon.streaming.app import build_worker

    settings = Settings(
        topic_prefix=prefix,
        worker_id=WORKER_ID,
        partitions=PARTITIONS,
        state_dir=Path(tempfile.gettempdir()) / "relmon-bench-unused",
    )
    worker = build_worker(settings, default_policy())
    return str(worker.table.changelog_topic_name)


async def create_all(bootstrap: str, prefix: str) -> str:
    """The contract's topics and the worker's changelog topic; returns the changelog's name."""
    changelog = changelog_topic(prefix)  # the full name, prefix included
    specs = [
        *contract_topics(PARTITIONS),
        TopicSpec(changelog.removeprefix(prefix), PARTITIONS, {"cleanup.policy": "compact"}),
    ]
    await create_topics(
        Settings(kafka_bootstrap=bootstrap), specs, replication_factor=1, prefix=prefix
    )
    return changelog


async def write_changelog(bootstrap: str, topic: str, states: States, n: int) -> float:
    """Every supporter's state to the changelog, partitioned like the table; seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    start = time.perf_counter()
    try:
        pending = []
        for i in tqdm(range(n), desc="states to changelog", unit="st", mininterval=1):
            sid = supporter_id(i)
            pending.append(
                await producer.send(
                    topic,
                    states.of(i),
                    key=sid.encode(),
                    partition=partition_for(sid, PARTITIONS),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - start


@contextlib.asynccontextmanager
async def broker(tmp: Path) -> AsyncIterator[str]:
    """RELMON_KAFKA_BOOTSTRAP, or a broker of our own on free ports (stopped after)."""
    bootstrap = os.environ.get("RELMON_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield bootstrap
        return
    home = devbroker.BrokerHome(tmp / "broker", free_port())
    await asyncio.to_thread(devbroker.start, home)
    try:
        yield home.bootstrap
    finally:
        await asyncio.to_thread(devbroker.stop, home)


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def load_avg() -> str:
    """`uptime`'s load averages (1, 5, 15 min)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mem_text(pid: int) -> str:
    rss, hwm = memory(pid)
    return f"RSS {rss:,.0f} MiB (peak {hwm:,.0f} MiB)"


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024**2


def probe_gets(
    url: str, sid: str, stop_flag: threading.Event, lat: list[float], bad: list[int]
) -> None:
    """GET one supporter every 0.1 s until `stop_flag`: 200 latencies (ms), other statuses."""
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop_flag.is_set():
            t0 = time.perf_counter()
            status = client.get(f"/suppressions/{sid}").status_code
            took = time.perf_counter() - t0
            if status == 200:
                lat.append(took * 1000)
            else:
                bad.append(status)
            time.sleep(max(0.0, 0.1 - took))


def wait_for_log(log: Path, offset: int, text: str, timeout: float) -> float | None:
    """Seconds until `text` appears in `log` after byte `offset`, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with log.open("rb") as f:
            f.seek(offset)
            if text.encode() in f.read():
                return time.monotonic() - start
        time.sleep(0.2)
    return None


def check_ids(n: int, count: int = 100_000) -> list[str]:
    """Ids of held supporters for a batch check (a seeded sample, all held)."""
    return [supporter_id(i) for i in random.Random(5).sample(range(n), min(n, count))]


def verify(url: str, states: States, n: int) -> int:
    """Read a few held supporters back over the API; raises if one is not the state written.
    Returns how many were checked."""
    ids = sorted({0, n - 1, *random.Random(9).sample(range(n), min(n, 48))})
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in ids:
            sid = supporter_id(i)
            at = datetime.now(UTC)
            response = client.get(f"/suppressions/{sid}")
            if response.status_code != 200:
                raise SystemExit(f"GET /suppressions/{sid}: {response.status_code}")
            body = response.json()
            got = {
                "suppressed": body["suppressed"],
                "reasons": sorted(r["code"] for r in body["reasons"]),
            }
            want = states.expected(i, at)
            if got not in want:
                raise SystemExit(f"{sid}: the worker answered {got}, the state says {want}")
            if "known" in body and body["known"] is not True:
                raise SystemExit(f"{sid}: held, but answered known={body['known']!r}")
            explained = client.get(f"/supporters/{sid}")
            if explained.status_code != 200:
                raise SystemExit(f"GET /supporters/{sid}: {explained.status_code}")
            if f'"{sid}-' not in explained.text:  # the template's event ids embed the id
                raise SystemExit(f"GET /supporters/{sid}: no fact of the state written")
    return len(ids)


async def timed_check(url: str, ids: list[str]) -> float:
    body = json.dumps({"supporter_ids": ids}).encode()
    async with httpx.AsyncClient(timeout=120) as client:
        t0 = time.perf_counter()
        response = await client.post(
            f"{url}/suppressions/check",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise SystemExit(f"check: {response.status_code} {response.text[:200]}")
    return elapsed


def start_timed(
    bootstrap: str, prefix: str, tmp: Path, timeout: float
) -> tuple[subprocess.Popen[bytes], str, float, int]:
    """Start the worker (INFO log, to see the expiry rebuild); (proc, url, seconds to ready,
    log offset at start)."""
    log = tmp / "worker.log"
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.perf_counter()
    proc, url = start_worker(
        bootstrap,
        prefix,
        f"{prefix}{WORKER_ID}",
        tmp,
        {"RELMON_LOG_LEVEL": "INFO"},
        ready_timeout=timeout,
    )
    return proc, url, time.perf_counter() - t0, offset


async def one_start(
    label: str, bootstrap: str, prefix: str, tmp: Path, states: States, n: int, wait_s: float
) -> dict[str, Any]:
    proc, url, ready_s, offset = await asyncio.to_thread(
        start_timed, bootstrap, prefix, tmp, wait_s
    )
    out: dict[str, Any] = {"ready_s": ready_s, "at_ready": memory(proc.pid)}
    try:
        print(f"{label}: /readyz 200 after {ready_s:.1f}s; {mem_text(proc.pid)}")
        probe_stop = threading.Event()
        probe_lat: list[float] = []
        probe_bad: list[int] = []
        probe = threading.Thread(
            target=probe_gets, args=(url, supporter_id(n - 1), probe_stop, probe_lat, probe_bad)
        )
        probe.start()
        try:
            rebuilt = await asyncio.to_thread(
                wait_for_log, tmp / "worker.log", offset, "expiry index rebuilt", 120
            )
        finally:
            probe_stop.set()
            await asyncio.to_thread(probe.join)
        out["rebuilt_s"] = rebuilt
        out["probe"] = (len(probe_lat), max(probe_lat, default=0.0), len(probe_bad))
        print(
            f"{label}: GET /suppressions/<id> every 0.1 s (closed loop) from ready until the "
            f"rebuild: {len(probe_lat)} answered 200, slowest {max(probe_lat, default=0):.0f} "
            f"ms, {len(probe_bad)} other answers ({sorted(set(probe_bad))})"
        )
        out["after_rebuild"] = memory(proc.pid)
        note = "not seen in 120 s" if rebuilt is None else f"{rebuilt:.1f}s after ready"
        print(f"{label}: expiry index rebuilt {note}; {mem_text(proc.pid)}")
        checked = await asyncio.to_thread(verify, url, states, n)
        print(f"{label}: {checked} held supporters read back over the API, as written")
        ids = check_ids(n)
        times = [await timed_check(url, ids) for _ in range(3)]
        out["check"] = (len(ids), min(times), statistics.median(times))
        out["after_check"] = memory(proc.pid)
        print(
            f"{label}: {len(ids):,}-id check best {min(times):.2f}s, median "
            f"{statistics.median(times):.2f}s (3 runs); {mem_text(proc.pid)}"
        )
        out["state_mib"] = du_mib(tmp / "state")
    finally:
        t0 = time.perf_counter()
        await asyncio.to_thread(stop, proc)
        out["stop_s"] = time.perf_counter() - t0
    return out


def mib(pair: tuple[float, float]) -> str:
    return f"{pair[0]:,.0f} MiB (peak {pair[1]:,.0f})"


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="relmon-bench-restart-"))
    n = args.supporters
    states = States(datetime.now(UTC))
    states.check(n)
    sizes = [len(states.of(i)) for i in range(len(states.templates))]
    print(f"{len(states.templates)} template states, {min(sizes)}-{max(sizes)} bytes")
    async with broker(tmp) as bootstrap:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        changelog = await create_all(bootstrap, prefix)
        wrote = await write_changelog(bootstrap, changelog, states, n)
        print(f"{n:,} states written to {changelog} in {wrote:.1f}s")
        print(f"load average: {load_avg()}")
        empty = await one_start("(b) empty state dir", bootstrap, prefix, tmp, states, n, 3600)
        kept = await one_start("(a) own state volume", bootstrap, prefix, tmp, states, n, 3600)
        print(f"load average: {load_avg()}")
    print(f"\nRestart with {n:,} supporters (state dir {kept['state_mib']:,.0f} MiB on disk)")
    for label, r in (("(a) own state volume", kept), ("(b) changelog alone", empty)):
        count, best, median = r["check"]
        rebuilt = r["rebuilt_s"]
        print(
            f"{label}: /readyz 200 after {r['ready_s']:.1f}s; expiry index rebuilt "
            f"{'?' if rebuilt is None else f'{rebuilt:.1f}s'} later; "
            f"{count:,}-id check best {best:.2f}s median {median:.2f}s; stop {r['stop_s']:.1f}s"
        )
        probed, slowest, other = r["probe"]
        print(
            f"    from ready to the rebuild: {probed} single GETs answered, slowest "
            f"{slowest:,.0f} ms, {other} not 200"
        )
        print(
            f"    memory: at ready {mib(r['at_ready'])}, after the rebuild "
            f"{mib(r['after_rebuild'])}, after the checks {mib(r['after_check'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--supporters", type=int, default=1_000_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
