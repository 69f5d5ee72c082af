"""`make run`: relmon end to end on a developer machine, in the present.

1. Starts (or reuses) the local Kafka broker and creates this run's topics (prefix
   ``demo-<seed>.``; the topics and worker state of earlier demo runs are deleted first).
2. Starts ``relmon worker`` (log in ``relmon-worker.log``) and waits until it is ready.
3. **Catches up** on a simulated past: a year of a simulated population that ends now,
   loaded as history (the ``relmon.history`` topic, like ``relmon backfill``), with a
   progress bar of the events the worker has applied and its rate.
4. Points at supporters who are suppressed now, with the ``curl`` that shows why, and says
   when the next suppression is due to lift.
5. **Streams live events dated now**: the simulation goes on (sped up: weeks of it in a few
   minutes), each event stamped with the time it is sent, paced at ``--rate``. Suppressions
   stand until their ``until``; the worker lifts them when due. Every few seconds one line
   sums up what happened, with a few examples under it.

Ctrl-C (also through ``| tee``, and SIGTERM or SIGHUP) stops the stream, the worker and the
broker if this run started it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from relmon import devbroker
from relmon.domain import default_policy
from relmon.domain.calling import calendar_for
from relmon.domain.events import MARKETING_PURPOSES
from relmon.errors import RelmonError
from relmon.settings import Settings
from relmon.simulation import Simulation, load_params
from relmon.simulation.kafka_sink import produce_messages
from relmon.simulation.population import ZONE
from relmon.streaming.admin import create_topics
from relmon.topics import ALERTS, DLQ, HISTORY, SUPPRESSIONS, TOPIC_OF_TYPE, contract_topics

BOLD, RED, GREEN, YELLOW, DIM, RESET = (
    "\033[1m",
    "\033[31m",
    "\033[32m",
    "\033[33m",
    "\033[2m",
    "\033[0m",
)
DEMO_PREFIX = "demo-"
YEAR_DAYS = 365
LIVE_DAYS = 3 * 365  # simulated days after now, streamed live (sped up)


# -- output that survives a closed pipe ------------------------------------------------------


def out(text: str = "") -> None:
    """Print a line; when stdout is gone (``| tee`` stopped by Ctrl-C) carry on silently, so
    that stopping what the demo started is never cut short by a failed print."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError, OSError):
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def say(text: str) -> None:
    out(f"{BOLD}relmon run{RESET} {text}")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# -- what the output topics say ---------------------------------------------------------------


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _hm(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _in(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def codes(doc: dict[str, Any]) -> str:
    return ",".join(r["code"] for r in doc.get("reasons") or []) or "-"


@dataclass
class Board:
    """The current decision of every supporter and what changed since the last look, from
    the suppression, alert and dead-letter topics."""

    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    due: list[tuple[float, str]] = field(default_factory=list)  # (until, supporter) heap
    alerts: Counter[str] = field(default_factory=Counter)
    dead: int = 0
    # since the last summary
    new: list[dict[str, Any]] = field(default_factory=list)
    lifted: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    new_alerts: list[dict[str, Any]] = field(default_factory=list)
    new_dead: list[dict[str, Any]] = field(default_factory=list)

    def take(self, topic: str, doc: dict[str, Any]) -> None:
        if topic.endswith(SUPPRESSIONS):
            sid = doc["supporter_id"]
            before = self.current.get(sid)
            self.current[sid] = doc
            if doc["suppressed"]:
                if doc.get("until"):
                    heapq.heappush(self.due, (_epoch(doc["until"]), sid))
                if before is None or not before["suppressed"] or codes(before) != codes(doc):
                    self.new.append(doc)
            elif before is not None and before["suppressed"]:
                self.lifted.append((before, doc))
        elif topic.endswith(ALERTS):
            self.alerts[doc["kind"]] += 1
            self.new_alerts.append(doc)
        else:
            self.dead += 1
            self.new_dead.append(doc)

    def clear_recent(self) -> None:
        self.new, self.lifted, self.new_alerts, self.new_dead = [], [], [], []

    def suppressed_now(self, now: float) -> list[dict[str, Any]]:
        return [
            d
            for d in self.current.values()
            if d["suppressed"] and (d.get("until") is None or _epoch(d["until"]) > now)
        ]

    def next_lift(self, now: float) -> tuple[float, dict[str, Any]] | None:
        """The standing suppression due to lift first (stale heap entries are dropped)."""
        while self.due:
            t, sid = self.due[0]
            doc = self.current.get(sid)
            if doc is None or not doc["suppressed"] or not doc.get("until"):
                heapq.heappop(self.due)
                continue
            if _epoch(doc["until"]) != t or t <= now - 60:
                heapq.heappop(self.due)
                continue
            return t, doc
        return None


async def follow(settings: Settings, board: Board) -> None:
    """Read this run's outputs from the beginning into ``board`` until cancelled."""
    names = [f"{settings.topic_prefix}{t}" for t in (SUPPRESSIONS, ALERTS, DLQ)]
    consumer = AIOKafkaConsumer(
        *names, **settings.kafka_client_kwargs(), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                for record in records:
                    board.take(tp.topic, orjson.loads(record.value or b"{}"))
    finally:
        await consumer.stop()


# -- the simulated population ------------------------------------------------------------------


class Stream:
    """One simulation: a year that ends now (the past), then what follows (live)."""

    def __init__(self, supporters: int, seed: int, now: datetime) -> None:
        today = now.astimezone(ZONE).date()
        self.sim = Simulation(
            load_params(None), seed, supporters, YEAR_DAYS + LIVE_DAYS, today - timedelta(YEAR_DAYS)
        )
        self._events = self.sim.events()
        self._now = now.timestamp()
        self._first_live: dict[str, Any] | None = None
        self._started: dict[str, str] = {}  # mandate id -> its start, as dated live
        self._calendar = calendar_for(default_policy())
        self.held = 0  # live marketing calls a compliant dialer held outside calling hours

    def past(self) -> list[dict[str, Any]]:
        """Every event dated up to now (the first later one is kept for :meth:`live`)."""
        past = []
        for event in self._events:
            if (self.sim.last_ts or 0) > self._now:
                self._first_live = event
                break
            past.append(event)
        return past

    def live(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The events after now with their simulated time (epoch seconds), not yet dated."""
        if self._first_live is not None:
            yield int(_epoch(self._first_live["occurred_at"])), self._first_live
        for event in self._events:
            yield self.sim.last_ts or 0, event

    def held_by_calling_hours(self, sim_ts: int, now: float) -> bool:
        """Whether a live marketing call, made inside calling hours in the simulation, would
        now fall outside them (at night, on a Sunday): a compliant dialer waits, so the demo
        does not send it. Calls that strayed in the simulation are sent whenever they come,
        so the ``call_outside_window`` alerts stay those of the straying partners."""
        cal = self._calendar
        return cal.inside(None, sim_ts) and not cal.inside(None, int(now))

    def redate(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event dated now (and a mandate begun in the live part started when it was)."""
        stamp = datetime.now(ZONE).isoformat(timespec="milliseconds")
        event = {**event, "occurred_at": stamp}
        if event["type"] == "donation_change":
            mid = event["mandate_id"]
            if _epoch(event["mandate_started_at"]) > self._now:  # a mandate begun live
                event["mandate_started_at"] = self._started.setdefault(mid, stamp)
        return event


def history_messages(
    events: list[dict[str, Any]], prefix: str
) -> Iterator[tuple[str, bytes, bytes]]:
    topic = f"{prefix}{HISTORY}"
    for event in events:
        yield topic, event["supporter_id"].encode(), orjson.dumps(event)


async def stream_live(
    stream: Stream, settings: Settings, speed: float, sent: list[int], start_timeout_s: float = 15
) -> None:
    """Send the live part, one simulated second every ``1 / speed`` s, each event dated when
    it is sent, to its type's input topic keyed by supporter."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", linger_ms=10)
    await asyncio.wait_for(producer.start(), start_timeout_s)
    loop = asyncio.get_running_loop()
    began, sim0 = loop.time(), time.time()
    try:
        for sim_ts, event in stream.live():
            delay = began + (sim_ts - sim0) / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if (
                event["type"] == "call_outcome"
                and event.get("campaign_purpose") in MARKETING_PURPOSES
                and stream.held_by_calling_hours(sim_ts, time.time())
            ):
                stream.held += 1
                continue
            event = stream.redate(event)
            topic = f"{settings.topic_prefix}{TOPIC_OF_TYPE[event['type']]}"
            await producer.send(topic, orjson.dumps(event), key=event["supporter_id"].encode())
            sent[0] += 1
    finally:
        await producer.stop()


# -- the worker ----------------------------------------------------------------------------------


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "relmon.cli", "worker"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


async def wait_ready(
    http: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 120
) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited ({proc.returncode}); its log:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/readyz", timeout=1)).status_code == 200:
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the worker was not ready within {limit_s:.0f}s; see {log}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


async def consumed(http: httpx.AsyncClient) -> int:
    """Input messages the worker has handled so far (relmon_events_consumed_total)."""
    with contextlib.suppress(httpx.HTTPError):
        text = (await http.get("/metrics", timeout=5)).text
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("relmon_events_consumed_total{")
            )
        )
    return -1


def stop_process(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within 30 s: killing it")
        proc.kill()
        proc.wait(timeout=10)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    settings: Settings
    url: str
    supporters: int
    speed: float
    seed: int
    every: float
    state_dir: Path
    worker: subprocess.Popen[bytes] | None = None
    log: Path = Path("relmon-worker.log")

    def _check_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is not None:
            raise SystemExit(
                f"the worker exited ({self.worker.returncode}); its log:\n{_tail(self.log)}"
            )

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        board = Board()
        async with httpx.AsyncClient(base_url=self.url) as http:
            follower = asyncio.create_task(follow(self.settings, board))
            try:
                await self._run(http, board)
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await follower

    async def _run(self, http: httpx.AsyncClient, board: Board) -> None:
        now = datetime.now(UTC)
        stream = Stream(self.supporters, self.seed, now)
        past = stream.past()
        start = stream.sim.clock.start_ts
        say(
            f"catching up on the simulated past: {len(past):,} events of {self.supporters:,} "
            f"supporters from {_hm(start)[:10]} to now (seed {self.seed}), loaded as history"
        )
        began = time.monotonic()
        loader = asyncio.create_task(
            produce_messages(history_messages(past, self.settings.topic_prefix), self.settings)
        )
        await self._progress(http, len(past), loader)
        await loader
        applied = time.monotonic() - began
        await self._overdue_lifts(board)
        seconds = time.monotonic() - began
        say(
            f"caught up: {len(past):,} events applied in {applied:.1f} s "
            f"({len(past) / max(applied, 1e-9):,.0f} events/s), and the lifts that fell due "
            f"during the year, in {seconds:.1f} s in all"
        )
        self._standing(board)
        await self._hints(http, board)
        board.clear_recent()
        say(
            f"live: the simulation goes on, {self.speed:g} simulated seconds a second "
            f"({_in(self.speed * 60)} a minute), each event dated when it is sent. A line every "
            f"{self.every:g} s; Ctrl-C stops everything."
        )
        if not calendar_for(default_policy()).inside(None, int(now.timestamp())):
            say(
                "it is outside calling hours in Europe/Amsterdam now: the simulated dialers hold "
                "their marketing calls until the window opens, except the partners that stray "
                "(their calls raise call_outside_window alerts)"
            )
        sent = [0]
        producer = asyncio.create_task(stream_live(stream, self.settings, self.speed, sent))
        try:
            await self._live(http, board, sent, producer)
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer

    async def _overdue_lifts(self, board: Board, limit_s: float = 60) -> None:
        """Wait until the worker has lifted every suppression whose ``until`` passed during
        the year: it holds its expiry timer while it applies history, then lifts them all."""
        deadline = time.monotonic() + limit_s
        await asyncio.sleep(1)  # the follower reads what the last events made
        while time.monotonic() < deadline:
            self._check_worker()
            now = time.time()
            overdue = sum(
                1
                for d in board.current.values()
                if d["suppressed"] and d.get("until") and _epoch(d["until"]) <= now - 1
            )
            if not overdue:
                return
            await asyncio.sleep(1)
        say(
            f"{YELLOW}the worker has not lifted every overdue suppression within "
            f"{limit_s:.0f} s{RESET}"
        )

    async def _progress(
        self, http: httpx.AsyncClient, total: int, loader: asyncio.Task[Any]
    ) -> None:
        """A bar of the events the worker applied (on a terminal), else a line every 5 s."""
        from tqdm import tqdm

        tty = sys.stdout.isatty()
        bar = tqdm(
            total=total,
            unit=" events",
            unit_scale=False,
            desc="catch-up (applied by the worker)",
            file=sys.stdout,
            disable=not tty,
            dynamic_ncols=True,
        )
        began, last_line, done = time.monotonic(), time.monotonic(), 0
        try:
            while done < total:
                self._check_worker()
                if loader.done() and loader.exception() is not None:
                    raise loader.exception()  # type: ignore[misc]
                await asyncio.sleep(0.5)
                now_done = min(await consumed(http), total)
                if now_done > done:
                    bar.update(now_done - done)
                    done = now_done
                if not tty and time.monotonic() - last_line >= 5:
                    last_line = time.monotonic()
                    rate = done / max(last_line - began, 1e-9)
                    out(f"  catch-up: {done:,} of {total:,} events applied ({rate:,.0f} events/s)")
        finally:
            bar.close()

    def _standing(self, board: Board) -> None:
        now = time.time()
        standing = board.suppressed_now(now)
        by_reason = Counter(d["reasons"][0]["code"] for d in standing if d.get("reasons"))
        out(
            f"  suppressed now: {len(standing):,} supporters ("
            + ", ".join(f"{c} {n:,}" for c, n in by_reason.most_common())
            + ")"
        )
        out(f"  lifted during the year, each at its due time: {len(board.lifted):,} suppressions")
        out(
            "  alerts so far: "
            + (", ".join(f"{k} {n:,}" for k, n in sorted(board.alerts.items())) or "none")
            + f"; dead letters {board.dead:,}"
        )
        self._next_lift(board)

    def _next_lift(self, board: Board) -> None:
        now = time.time()
        nxt = board.next_lift(now)
        if nxt is not None:
            t, doc = nxt
            out(
                f"  next lift due: {doc['supporter_id']} ({codes(doc)}) at {_hm(t)}, in "
                f"{_in(t - now)}; the worker lifts it then"
            )

    async def _hints(self, http: httpx.AsyncClient, board: Board) -> None:
        """Point at up to three supporters suppressed now (checked against the API)."""
        now = time.time()
        standing = board.suppressed_now(now)
        timed = sorted((d for d in standing if d.get("until")), key=lambda d: _epoch(d["until"]))
        scored = [d for d in standing if codes(d).split(",")[0] in ("FATIGUE", "IRRITATION_RISK")]
        lasting = [d for d in standing if not d.get("until")]
        picks: list[dict[str, Any]] = []
        for group in (timed, scored, lasting):
            for doc in group:
                if doc in picks:
                    continue
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = (await http.get(f"/suppressions/{doc['supporter_id']}")).json()
                    if answer.get("suppressed"):
                        picks.append(doc)
                        break
        url = self.url
        out("\n  Try (these supporters are suppressed now):")
        for doc in picks:
            until = f"until {doc['until']}" if doc.get("until") else "no end"
            sid = doc["supporter_id"]
            out(f"    curl {url}/suppressions/{sid}   {DIM}# {codes(doc)}, {until}: why{RESET}")
        if picks:
            sid = picks[0]["supporter_id"]
            out(f"    curl {url}/supporters/{sid}   {DIM}# scores, facts, contributions{RESET}")
            ids = ", ".join(f'"{d["supporter_id"]}"' for d in picks)
            out(f"""    curl -X POST {url}/suppressions/check -d '{{"supporter_ids": [{ids}]}}'""")
        out(f"    curl {url}/metrics")
        prefix = self.settings.topic_prefix
        out(
            f"    relmon replay --from-kafka --since {datetime.now(UTC).date()} --prefix {prefix} "
            f"--bootstrap {self.settings.kafka_bootstrap} --out demo-replay/"
        )
        out()

    async def _live(
        self,
        http: httpx.AsyncClient,
        board: Board,
        sent: list[int],
        producer: asyncio.Task[Any],
    ) -> None:
        last_sent, last_hint = 0, time.monotonic()
        while True:
            await asyncio.sleep(self.every)
            self._check_worker()
            if producer.done() and producer.exception() is not None:
                raise producer.exception()  # type: ignore[misc]
            now = time.time()
            n = sent[0] - last_sent
            last_sent = sent[0]
            self._summary(board, now, n)
            board.clear_recent()
            if time.monotonic() - last_hint >= 60:
                last_hint = time.monotonic()
                self._next_lift(board)
                await self._hint_recent(http, board, now)

    def _summary(self, board: Board, now: float, n: int) -> None:
        clock = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S")
        kinds = Counter(a["kind"] for a in board.new_alerts)
        alerts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        out(
            f"{BOLD}{clock}{RESET} live +{n:,} events ({n / self.every:,.0f}/s) | suppressed now "
            f"{len(board.suppressed_now(now)):,} ({YELLOW}+{len(board.new)} new{RESET}, "
            f"{GREEN}{len(board.lifted)} lifted{RESET}) | {RED}alerts +{len(board.new_alerts)}"
            f"{RESET}{' (' + alerts + ')' if alerts else ''} | dead letters +{len(board.new_dead)}"
        )
        for before, doc in board.lifted[:5]:
            due = before.get("until")
            when = f"due {_hm(_epoch(due))}" if due else "by an opt-in"
            out(f"    {GREEN}lifted{RESET}     {doc['supporter_id']} ({codes(before)}, {when})")
        if len(board.lifted) > 5:
            out(f"    {GREEN}lifted{RESET}     ... and {len(board.lifted) - 5} more")
        for doc in board.new[-2:]:
            until = f"until {_hm(_epoch(doc['until']))}" if doc.get("until") else "no end"
            out(f"    {YELLOW}suppressed{RESET} {doc['supporter_id']} {codes(doc)} {until}")
        churns = [a for a in board.new_alerts if a["kind"] == "churn_after_contact"]
        others = [a for a in board.new_alerts if a["kind"] != "churn_after_contact"][-1:]
        for a in churns[:3] + others:
            contact = a.get("contact") or {}
            lost = (a.get("donation") or {}).get("monthly_amount_lost_cents")
            money = f", {lost / 100:,.2f}/month lost" if lost else ""
            out(
                f"    {RED}ALERT{RESET} {a['kind']} {a['supporter_id']} after a call by "
                f"{contact.get('partner_id')} ({contact.get('campaign_purpose')}){money}"
            )
        for d in board.new_dead[-1:]:
            out(f"    {RED}dead letter{RESET} {str(d.get('error', ''))[:100]}")

    async def _hint_recent(self, http: httpx.AsyncClient, board: Board, now: float) -> None:
        for doc in reversed(list(board.current.values())[-200:]):
            if not doc["suppressed"] or (doc.get("until") and _epoch(doc["until"]) <= now):
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                sid = doc["supporter_id"]
                if (await http.get(f"/suppressions/{sid}")).json().get("suppressed"):
                    out(f"  try: curl {self.url}/suppressions/{sid}   {DIM}# {codes(doc)}{RESET}")
                    return


# -- setting up and tearing down ---------------------------------------------------------------


def clean_state(state_dir: Path, keep: str) -> None:
    """Delete the worker state of earlier demo runs (one folder per run, named as its prefix)."""
    if state_dir.is_dir():
        for path in state_dir.glob(f"{DEMO_PREFIX}*"):
            if path.name != keep.rstrip("."):
                shutil.rmtree(path, ignore_errors=True)


async def prepare(settings: Settings, keep: str, *, clean: bool) -> None:
    """Create this run's topics; with ``clean`` (the demo started the broker, so no other
    demo uses it) first delete the topics of earlier demo runs."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        old = [
            t
            for t in await admin.list_topics()
            if t.startswith(DEMO_PREFIX) and not t.startswith(keep)
        ]
        if old and clean:
            await admin.delete_topics(old)
            say(f"deleted the {len(old)} topics of earlier demo runs")
    finally:
        await admin.close()
    await create_topics(
        settings,
        contract_topics(settings.partitions),
        replication_factor=settings.replication_factor,
        prefix=settings.topic_prefix,
    )
    say(f"topics ready: {settings.topic_prefix}relmon.* ({settings.partitions} partitions)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relmon.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker-home", type=Path, default=Path(".broker"), help="broker folder")
    parser.add_argument("--broker-port", type=int, default=9092, help="broker port (and +1)")
    parser.add_argument("--web-port", type=int, default=6066, help="the worker's API port")
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".relmon-state"), help="worker state folder"
    )
    parser.add_argument("--supporters", type=int, default=1000, help="simulated supporters")
    parser.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="live part: simulated seconds per second (default 3600: an hour a second)",
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between summaries")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run")
    args = parser.parse_args(argv)
    # aiokafka's own connection warnings would flood the screen; the demo reports failures
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)

    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    prefix = f"{DEMO_PREFIX}{seed}."
    state_dir = args.state_dir.resolve()
    home = devbroker.BrokerHome(args.broker_home.resolve(), args.broker_port)
    was_running = devbroker.running_pid(home) is not None
    settings = Settings(kafka_bootstrap=home.bootstrap, topic_prefix=prefix, web_port=args.web_port)
    env = {
        **os.environ,
        "RELMON_KAFKA_BOOTSTRAP": home.bootstrap,
        "RELMON_TOPIC_PREFIX": prefix,
        "RELMON_WEB_PORT": str(args.web_port),
        "RELMON_STATE_DIR": str(state_dir / prefix.rstrip(".")),
        "RELMON_LOG_FORMAT": "json",
        # lifts within a second of their `until` (the default looks every 5 s)
        "RELMON_EXPIRY_INTERVAL_S": os.environ.get("RELMON_EXPIRY_INTERVAL_S", "1"),
    }
    url = f"http://127.0.0.1:{args.web_port}"
    log = Path("relmon-worker.log")
    worker: subprocess.Popen[bytes] | None = None
    code = 0
    try:
        devbroker.start(home)
        say(f"Kafka broker {'already running' if was_running else 'started'} on {home.bootstrap}")
        if not was_running:
            clean_state(state_dir, prefix)
        asyncio.run(prepare(settings, prefix, clean=not was_running))
        (state_dir / prefix.rstrip(".")).mkdir(parents=True, exist_ok=True)
        worker = start_worker(env, log)

        async def ready() -> None:
            async with httpx.AsyncClient(base_url=url) as http:
                await wait_ready(http, worker, log)

        asyncio.run(ready())
        say(f"worker ready on {url} (log: {log})")
        run = Run(
            settings, url, args.supporters, args.speed, seed, args.every, state_dir, worker, log
        )
        asyncio.run(run.main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = 0  # stopping the demo is how it ends, not a failure
    except SystemExit as exc:  # the worker did not come up: say why before cleaning up
        say(f"{RED}error{RESET}: {exc}")
        code = 1
    except (RelmonError, devbroker.BrokerStartError, OSError) as exc:
        say(f"{RED}error{RESET}: {exc}")
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
        say("stopping ...")
        stop_process(worker, "the worker")
        if worker is not None:
            say("worker stopped")
        if not was_running and devbroker.running_pid(home) is not None:
            devbroker.stop(home)
            say("Kafka broker stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
