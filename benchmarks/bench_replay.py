"""Replay throughput against plain ``json.loads``, measured in one process.

Generates a deterministic JSONL file of realistic input events (1,000,000 by default) in a
temporary directory, reads its lines into memory, then times over the same ``bytes``:

(a) ``json.loads`` of every line (the baseline: decoding and nothing else);
(b) the replay path of ``relmon replay``: ``parse_event`` (decode + strict validation),
    ``Engine.apply`` on the in-memory state, the event-time expiries, and encoding every
    suppression record and alert, written to /dev/null (no result files are kept).

It prints events/s of both, and the ratio a_time / b_time (goal: >= 0.5, i.e. the replay
takes at most twice the plain decoding), and for reference ``parse_event`` alone. Then:

(d) ``relmon replay --input FILE --out DIR --no-progress`` as a whole process (a fresh
    interpreter: imports, the merge, every output file written and the report made),
    against (a) ``json.loads`` of the same file in this run (issue 12's target:
    a_time / d_time >= 0.25, stretch 0.5). It runs with its default ``--jobs`` (the CPUs
    available, at most 4: split by supporter over that many processes), then with
    ``--jobs 1`` (one process), side by side; with each, the CPU time of all its
    processes, so that what the second CPU buys is plain;
(e) decode + validate + apply per event: ``parse_event`` then ``Engine.apply`` on the
    in-memory state, each event timed alone; the median and p90 in µs over the file's mix.

It writes nothing but the temporary input file and the replay's output directory (removed).

    python benchmarks/bench_replay.py               # 1M events
    python benchmarks/bench_replay.py --events 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from relmon.domain import ENGINE, Engine, SupporterState, default_policy, parse_event
from relmon.replay.file_replay import Replayer, fewer_gc_passes
from relmon.replay.sharded import default_jobs

ZONE = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SPAN_DAYS = 90
PARTNERS = ["p-callfirst", "p-telemarkt", "p-dialogue", "p-voxpop", "p-belbureau"]
PURPOSES = ["upgrade"] * 5 + ["reactivation"] * 2 + ["thank_you"] * 2 + ["service", "survey"]
OUTCOMES = (
    ["no_answer"] * 30 + ["voicemail"] * 10 + ["busy"] * 5 + ["wrong_number"] * 2
    + ["declined"] * 20 + ["converted"] * 8 + ["info_requested"] * 6
    + ["callback_requested"] * 5 + ["hung_up"] * 6 + ["complaint"] * 2
    + ["do_not_call"] * 2 + ["cancelled_donation"] * 4
)  # fmt: skip
EMAIL_ACTIONS = (
    ["sent"] * 40 + ["delivered"] * 30 + ["opened"] * 20 + ["clicked"] * 6
    + ["unsubscribed"] * 2 + ["bounced"] * 1 + ["spam_complaint"] * 1
)  # fmt: skip
FREQUENCIES = ["monthly"] * 8 + ["quarterly", "yearly"]
DONATION_ACTIONS = (
    ["started"] * 10 + ["upgraded"] * 6 + ["downgraded"] * 4 + ["paused"] * 2
    + ["resumed"] * 2 + ["cancelled"] * 4 + ["reversed"] * 1 + ["payment_failed"] * 3
    + ["one_off"] * 8
)  # fmt: skip


def generate(path: Path, events: int, seed: int = 20260501) -> None:
    """Write ``events`` realistic events (about 300 B each), roughly in time order."""
    rnd = random.Random(seed)
    supporters = max(events // 10, 1)
    step = SPAN_DAYS * 86_400 / events
    with path.open("wb") as out:
        for i in range(events):
            when = START + timedelta(seconds=i * step)
            if rnd.random() < 0.02:  # a late event, up to two days behind
                when -= timedelta(seconds=rnd.randrange(172_800))
            sid = f"sup-{rnd.randrange(supporters):08d}"
            out.write(orjson.dumps(_event(rnd, sid, when)) + b"\n")


def _event(rnd: random.Random, sid: str, when: datetime) -> dict[str, Any]:
    common = {
        "event_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        "supporter_id": sid,
        "occurred_at": when.astimezone(ZONE).isoformat(timespec="seconds"),
        "schema_version": 1,
    }
    kind = rnd.random()
    if kind < 0.40:
        purpose = rnd.choice(PURPOSES)
        outcome = rnd.choice(OUTCOMES)
        return {
            "type": "call_outcome",
            **common,
            "call_id": f"call-{rnd.getrandbits(40):012x}",
            "direction": "inbound" if rnd.random() < 0.08 else "outbound",
            "campaign_id": f"cmp-2026-{purpose}-{rnd.randrange(6)}",
            "campaign_purpose": purpose,
            "partner_id": rnd.choice(PARTNERS),
            "agent_id": f"agent-{rnd.randrange(400):04d}",
            "duration_s": rnd.randrange(0, 600),
            "outcome": outcome,
            "amount_delta_cents": 500 if outcome == "converted" else None,
            "trigger": rnd.choice([None, "web_visit", "moved_house"]),
            "sentiment": round(rnd.uniform(-1, 1), 2) if rnd.random() < 0.3 else None,
        }
    if kind < 0.75:
        return {
            "type": "email_engagement",
            **common,
            "message_id": f"msg-{rnd.getrandbits(48):012x}",
            "campaign_id": f"nl-2026-{rnd.randrange(12):02d}",
            "action": rnd.choice(EMAIL_ACTIONS),
        }
    if kind < 0.80:
        return {
            "type": "consent_change",
            **common,
            "channel": rnd.choice(["phone", "email", "email", "post", "sms", "all"]),
            "action": rnd.choice(["opt_out", "opt_out", "opt_in", "objection"]),
            "source": rnd.choice(["call", "web", "email", "letter", "register", "other"]),
        }
    action = rnd.choice(DONATION_ACTIONS)
    before = rnd.choice([500, 1000, 1500, 2500])
    after = {"upgraded": before + 500, "downgraded": before // 2}.get(action, before)
    if action in ("cancelled", "paused", "reversed"):
        after = 0
    started = when - timedelta(days=rnd.randrange(30, 3000))
    return {
        "type": "donation_change",
        **common,
        "mandate_id": f"mnd-{sid[4:]}-{rnd.randrange(2)}",
        "action": action,
        "frequency": "one_off"
        if action == "one_off"
        else rnd.choice(["monthly"] * 8 + ["quarterly", "yearly"]),
        "amount_cents_before": before,
        "amount_cents_after": after,
        "currency": "EUR",
        "mandate_started_at": started.isoformat(timespec="seconds"),
        "channel": rnd.choice(["phone", "web", "bank", "post", "other"]),
        "reason": None,
    }


def time_plain(lines: list[bytes]) -> float:
    loads = json.loads
    started = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - started


def time_parse(lines: list[bytes]) -> float:
    started = time.perf_counter()
    for line in lines:
        parse_event(line)
    return time.perf_counter() - started


def time_replay(lines: list[bytes]) -> tuple[float, Replayer]:
    with open(os.devnull, "wb") as sink, fewer_gc_passes():
        write = sink.write
        replayer = Replayer(default_policy(), "bench", write, write, write)
        feed = replayer.feed
        started = time.perf_counter()
        for number, line in enumerate(lines, start=1):
            feed(line, number)
        return time.perf_counter() - started, replayer


def time_process(path: Path, out: Path, *jobs: str) -> tuple[float, float]:
    """Wall time and CPU time (user and system, of every process it ran) of
    ``relmon replay`` over ``path`` as its own process; ``jobs``: ``--jobs N`` or nothing."""
    relmon = Path(sys.executable).with_name("relmon")
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [str(relmon), "replay", "--input", str(path), "--out", str(out), "--no-progress", *jobs],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def per_event_us(lines: list[bytes]) -> list[float]:
    """Decode + validate + apply of each event alone, in µs (the clock read is included)."""
    engine = Engine(default_policy())
    apply = engine.apply
    states: dict[str, SupporterState] = {}
    clock = time.perf_counter_ns
    out: list[float] = []
    with fewer_gc_passes():
        for line in lines:
            started = clock()
            try:
                event = parse_event(line)
            except Exception:  # noqa: BLE001  # a bad line costs its decode only
                out.append((clock() - started) / 1000)
                continue
            sid = event.supporter_id
            states[sid] = apply(states.get(sid), event).state
            out.append((clock() - started) / 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--input", type=Path, help="use this JSONL file instead of generating")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="relmon-bench-") as tmp:
        path = args.input or Path(tmp) / "events.jsonl"
        if args.input is None:
            print(f"generating {args.events:,} events ...", file=sys.stderr)
            generate(path, args.events)
        lines = path.read_bytes().splitlines()
        gc.collect()
        whole_plain = time_plain(path.read_bytes().splitlines())
        process, process_cpu = time_process(path, Path(tmp) / "out")
        single, single_cpu = time_process(path, Path(tmp) / "out", "--jobs", "1")
    size = sum(len(line) for line in lines) / max(len(lines), 1)
    parse_event(lines[0])  # warm up imports and the validator
    gc.collect()
    plain = time_plain(lines)
    gc.collect()
    parse = time_parse(lines)
    gc.collect()
    replay, replayer = time_replay(lines)
    s = replayer.stats
    n = len(lines)
    print(f"events: {n:,} lines, {size:.0f} B average; python {sys.version.split()[0]}")
    print(ENGINE.describe())  # compiled with mypyc, or the Python sources (RELMON_PURE_PYTHON=1)
    print(f"(a) json.loads:                  {plain:7.2f} s  {n / plain:>10,.0f} events/s")
    print("(b) replay (decode+validate+apply, outputs encoded to /dev/null):")
    print(f"                                 {replay:7.2f} s  {n / replay:>10,.0f} events/s")
    print(f"ratio a_time / b_time: {plain / replay:.3f}  (goal >= 0.5)")
    print(f"(c) parse_event alone, for reference: {parse:7.2f} s  {n / parse:>10,.0f} events/s")
    print(
        f"replay output: {s.records:,} records, {s.alerts:,} alerts, {s.dead_letters:,} dead "
        f"letters, {s.supporters:,} supporters"
    )
    print(
        f"(d) relmon replay as a whole process (outputs and report written), default "
        f"--jobs {default_jobs()}:"
    )
    print(f"                                 {process:7.2f} s  {n / process:>10,.0f} events/s")
    print(f"    CPU time of its processes:   {process_cpu:7.2f} s")
    print(f"    json.loads of the same file: {whole_plain:7.2f} s")
    print(f"ratio a_time / d_time: {whole_plain / process:.3f}  (goal >= 0.25, stretch 0.5)")
    print("(d1) the same with --jobs 1 (one process):")
    print(f"                                 {single:7.2f} s  {n / single:>10,.0f} events/s")
    print(f"    CPU time:                    {single_cpu:7.2f} s")
    print(f"ratio a_time / d1_time: {whole_plain / single:.3f}")
    gc.collect()
    costs = per_event_us(lines)
    deciles = statistics.quantiles(costs, n=10)
    print(
        f"(e) decode + validate + apply per event: median {statistics.median(costs):.2f} µs, "
        f"p90 {deciles[-1]:.2f} µs, mean {statistics.fmean(costs):.2f} µs (n = {len(costs):,})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
