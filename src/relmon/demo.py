"""`make run`: the main job on a developer machine, end to end.

Starts (or reuses) the local Kafka broker, creates the topics, starts `relmon worker`, feeds
it a simulated population at a modest rate, and prints suppressions and alerts as they
appear, with the API addresses to try. Ctrl-C stops what it started, in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from relmon import devbroker
from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.topics import ALERTS, DLQ, SUPPRESSIONS, contract_topics

BOLD, RED, GREEN, YELLOW, RESET = "\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[0m"


def _say(text: str) -> None:
    print(f"{BOLD}relmon run{RESET} {text}", flush=True)


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relmon.cli", "worker"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RELMON_LOG_FORMAT": "json"},
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"the worker exited ({proc.returncode}); its log:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"the worker was not ready within {timeout:.0f}s; see {log}")


def _start_stream(rate: float, supporters: int, seed: int) -> subprocess.Popen[bytes]:
    """The simulated population, produced live to the input topics. A new seed each run:
    the broker and the worker's state persist between runs, and a rerun of the same
    simulation would be all duplicates (which change nothing, by design)."""
    start = (datetime.now(UTC) - timedelta(days=365)).date().isoformat()
    cmd = [
        sys.executable,
        "-m",
        "relmon.cli",
        "simulate",
        "--to-kafka",
        "--rate",
        str(rate),
        "--supporters",
        str(supporters),
        "--days",
        "365",
        "--seed",
        str(seed),
        "--start",
        start,
    ]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _describe(topic: str, value: bytes) -> str:
    doc = orjson.loads(value)
    if topic.endswith(SUPPRESSIONS):
        if not doc["suppressed"]:
            return f"{GREEN}lifted    {RESET} {doc['supporter_id']}"
        codes = ",".join(r["code"] for r in doc["reasons"])
        until = doc["until"] or "indefinitely"
        return f"{YELLOW}suppressed{RESET} {doc['supporter_id']} {codes} until {until}"
    if topic.endswith(ALERTS):
        contact = doc.get("contact") or {}
        return (
            f"{RED}ALERT {doc['kind']}{RESET} {doc['supporter_id']} "
            f"partner={contact.get('partner_id')} purpose={contact.get('campaign_purpose')}"
        )
    return f"{RED}dead letter{RESET} {doc.get('error', '')[:100]}"


async def _follow(settings: Settings, stop: asyncio.Event) -> None:
    names = [f"{settings.topic_prefix}{t}" for t in (SUPPRESSIONS, ALERTS, DLQ)]
    consumer = AIOKafkaConsumer(
        *names, **settings.kafka_client_kwargs(), auto_offset_reset="latest"
    )
    await consumer.start()
    shown = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=50)
            for tp, records in batch.items():
                for record in records:
                    shown += 1
                    if shown <= 400 or tp.topic.endswith(ALERTS):
                        print("  " + _describe(tp.topic, record.value or b"{}"), flush=True)
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relmon.demo", description=__doc__)
    parser.add_argument("--broker-home", type=Path, default=Path(".broker"))
    parser.add_argument("--rate", type=float, default=100.0, help="simulated events per second")
    parser.add_argument("--supporters", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run")
    args = parser.parse_args(argv)
    settings = Settings()
    home = devbroker.BrokerHome(
        args.broker_home.resolve(), int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    )
    started_broker = devbroker.start(home)
    _say(f"Kafka broker {'started' if started_broker else 'already running'} on {home.bootstrap}")
    statuses = asyncio.run(
        create_topics(
            settings,
            contract_topics(settings.partitions),
            replication_factor=settings.replication_factor,
            prefix=settings.topic_prefix,
        )
    )
    _say(f"topics ready: {', '.join(s.name for s in statuses)}")
    log = Path("relmon-worker.log")
    worker = _start_worker(settings, log)
    url = f"http://127.0.0.1:{settings.web_port}"
    stream: subprocess.Popen[bytes] | None = None
    try:
        _wait_ready(url, worker, log)
        _say(f"worker ready (log: {log})")
        seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
        stream = _start_stream(args.rate, args.supporters, seed)
        _say(
            f"simulated stream: {args.supporters} supporters at {args.rate:g} events/s "
            f"(seed {seed})"
        )
        print(
            f"\n  Try:  curl {url}/suppressions/S0000042\n"
            f"        curl {url}/supporters/S0000042\n"
            f"        curl -X POST {url}/suppressions/check "
            """-d '{"supporter_ids": ["S0000001", "S0000002"]}'\n"""
            f"        curl {url}/metrics\n"
            "  Suppressions and alerts appear below. Ctrl-C stops everything.\n",
            flush=True,
        )
        stop = asyncio.Event()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_follow(settings, stop))
    finally:
        _say("stopping ...")
        for proc in (stream, worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                if proc.poll() is None:
                    proc.kill()
        if started_broker:
            devbroker.stop(home)
            _say("Kafka broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
