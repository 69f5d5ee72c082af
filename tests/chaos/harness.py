"""The fault suite's harness: its own broker, real workers, kcat on both ends, and the checks.

Everything here talks to real processes: a single-node broker started with
:mod:`relmon.devbroker` on free ports in a temp folder (so stopping it hurts no other test),
``relmon worker`` subprocesses with their own state folders (killed with SIGKILL, restarted on
the same or on an empty state folder), and ``kcat`` for producing and for reading every output
topic back. The outputs are never read with aiokafka, the client the worker itself uses: a bug
shared by the worker and its own client library could otherwise hide a loss.

A scenario is a :class:`Plan` (the messages to produce, in order, with what each one must
become) and a :class:`Run` (broker, topics, supervised worker, producer). :func:`verify` reads
every output topic with kcat and checks the promise "nothing lost":

* every valid opt-out (phone or ``all`` opt-out, objection, do-not-call, late ones included)
  has a suppressed record carrying its reason code on the suppressions topic;
* every invalid message has a dead letter naming its source topic, partition and offset;
* a message without a key or with another supporter's key is applied on its supporter's
  partition or dead-lettered, never applied elsewhere and never silently gone;
* the distinct alert ids and every supporter's final decision (suppressed flag and reason
  codes) equal what ``relmon replay`` gives for the same valid events.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka.partitioner import murmur2

from relmon.devbroker import BrokerHome, log_tail
from relmon.devbroker import start as broker_start
from relmon.devbroker import stop as broker_stop
from relmon.testing import call, consent, donation, email, to_line
from relmon.topics import (
    ALERTS,
    CALLS,
    CONSENTS,
    DLQ,
    DONATIONS,
    EMAILS,
    INPUT_TOPICS,
    SUPPRESSIONS,
    TOPIC_OF_TYPE,
)
from tests.integration.conftest import WorkerProcess, free_port

PARTITIONS = 4
ZONE = ZoneInfo("Europe/Amsterdam")
REFUSAL_CODES = frozenset({"OPTED_OUT", "OBJECTION", "DO_NOT_CALL_REQUEST"})
# kcat's producer may send up to 2 MB (the oversized poison is ~800 KB); the broker's own
# default message.max.bytes is 1,048,588 and `relmon topics create` does not lower it.
KCAT_PRODUCER_OPTS = (
    "-E",  # keep going while every broker is down (scenario d): librdkafka retries
    "-X",
    "topic.partitioner=murmur2_random",  # the Java/aiokafka partitioner the worker assumes
    "-X",
    "message.max.bytes=2000000",
    "-X",
    "queue.buffering.max.ms=5",
    "-X",
    "acks=all",
)


def kcat_path() -> str | None:
    return shutil.which("kcat")


def partition_of(supporter_id: str, partitions: int = PARTITIONS) -> int:
    """The partition Kafka's default (murmur2) partitioner gives this key."""
    return (int(murmur2(supporter_id.encode())) & 0x7FFFFFFF) % partitions


def free_port_pair() -> int:
    """A port p such that p and p+1 are free (the broker's client and controller ports)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65000 or port == 9092:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports found")


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 0.5
) -> None:
    """Poll ``check`` until it holds; raise naming ``what`` after ``timeout_s`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


# --------------------------------------------------------------------------------------------
# The broker


@dataclass
class ChaosBroker:
    """A broker of the fault suite's own: free ports, temp home, stoppable mid-stream."""

    home: BrokerHome

    @classmethod
    def create(cls, folder: Path) -> ChaosBroker:
        return cls(BrokerHome(folder, free_port_pair()))

    @property
    def bootstrap(self) -> str:
        return self.home.bootstrap

    def start(self, timeout_s: float = 120.0) -> None:
        broker_start(self.home, timeout_s=timeout_s)

    def stop(self) -> None:
        broker_stop(self.home)

    def outage(self, down_s: float) -> None:
        """Stop the broker, keep it down for ``down_s`` seconds, start it again (same data)."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.home, lines)


def create_topics(bootstrap: str, prefix: str) -> None:
    """The contract's topics under ``prefix``, with the CLI users run (`relmon topics create`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "relmon.cli",
            "topics",
            "create",
            "--partitions",
            str(PARTITIONS),
            "--prefix",
            prefix,
            "--bootstrap",
            bootstrap,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"relmon topics create failed:\n{result.stdout}{result.stderr}")


# --------------------------------------------------------------------------------------------
# Messages and plans


@dataclass
class Msg:
    """One message to produce and what it must become.

    ``expect`` is ``apply`` (a valid event: its effect must show on the outputs), ``dead``
    (invalid: a dead letter with its coordinates) or ``route`` (valid, but without a key or
    with another supporter's key: applied on its supporter's partition, or dead-lettered).
    """

    topic: str  # contract name, e.g. relmon.calls
    key: bytes | None
    value: bytes
    label: str  # what kind of message, for reports
    expect: str = "apply"
    partition: int | None = None  # forced partition (key-less messages)
    supporter_id: str | None = None
    event_id: str | None = None
    ident: str = ""  # how it is found again when the input topics are read back

    def line(self) -> bytes:
        if b"\n" in self.value or (
            self.key is not None and (b"\t" in self.key or b"\n" in self.key)
        ):
            raise ValueError(f"{self.label}: kcat reads one message a line, key up to a tab")
        if self.partition is not None:
            return self.value + b"\n"  # a lane with a fixed partition and no key
        assert self.key is not None, "a key-less message needs a forced partition"
        return self.key + b"\t" + self.value + b"\n"


def event_msg(event: Any, *, label: str = "event") -> Msg:
    """A valid event keyed by its supporter, on its contract topic."""
    value = to_line(event)
    return Msg(
        TOPIC_OF_TYPE[event.type],
        event.supporter_id.encode(),
        value,
        label,
        supporter_id=event.supporter_id,
        event_id=event.event_id,
        ident=event.event_id,
    )


@dataclass
class Plan:
    """A scenario's input: messages in produce order plus what the checks need to know."""

    name: str
    messages: list[Msg] = field(default_factory=list)
    # dedicated phone opt-outs (one supporter each): checked one by one
    optouts: dict[str, str] = field(default_factory=dict)  # supporter_id -> event_id
    # every valid refusal: the supporter's final decision must carry these codes
    refusals: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # supporters whose key-less/wrong-key opt-out is followed by a keyed opt_in
    key_pairs: set[str] = field(default_factory=set)

    def note_refusals(self, messages: Iterable[Msg]) -> None:
        """Remember the refusal codes that hand-made valid messages must leave in force."""
        for msg in messages:
            if msg.expect != "dead" and msg.supporter_id:
                codes = refusal_codes(json.loads(msg.value))
                if codes:
                    self.refusals[msg.supporter_id] |= codes

    def valid_events(self) -> list[dict[str, Any]]:
        """The valid, correctly keyed events, for the replay (in event-time order)."""
        events = [json.loads(m.value) for m in self.messages if m.expect == "apply"]
        return sorted(events, key=lambda e: datetime.fromisoformat(e["occurred_at"]))

    def counts(self) -> dict[str, int]:
        return dict(Counter(m.label for m in self.messages))


def local(day0: datetime, day: float, hour: int, minute: int = 0) -> datetime:
    base = (day0 + timedelta(days=int(day))).replace(hour=hour, minute=minute, tzinfo=ZONE)
    return base + timedelta(days=day - int(day))


def window_start(days: int) -> datetime:
    """Local midnight ``days + 1`` days ago: every generated event lies in the past."""
    today = datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days + 1)


MARKETING = ("upgrade", "reactivation", "acquisition", "survey", "other")
OUTCOMES = (
    ("declined", 25),
    ("no_answer", 14),
    ("voicemail", 9),
    ("busy", 4),
    ("wrong_number", 2),
    ("converted", 8),
    ("info_requested", 9),
    ("callback_requested", 5),
    ("hung_up", 7),
    ("complaint", 4),
    ("do_not_call", 4),
    ("cancelled_donation", 3),
)
ATTEMPTS = frozenset({"no_answer", "busy", "voicemail", "wrong_number"})


def population(rng: random.Random, tag: str, supporters: int, days: int) -> list[Any]:
    """Realistic stories for ``supporters`` supporters over ``days`` days (validated events).

    Loyal and new monthly donors, newsletters, outbound calls by three partners (some at
    dinner time, some chasing), churns shortly after reached calls (churn alerts), calls after
    refusals (call-while-suppressed alerts), opt-outs on phone, all and e-mail, objections.
    No supporter ever opts back in, so every refusal must show in the final decision. No call
    follows a churn (a fact that lowers suppression), so alert ids do not depend on arrival
    order across topics.
    """
    day0 = window_start(days)
    out: list[Any] = []
    outcomes = [o for o, _ in OUTCOMES]
    weights = [w for _, w in OUTCOMES]
    for i in range(supporters):
        sid = f"{tag}-g{i:05d}"
        events: list[Any] = []
        loyal = rng.random() < 0.6
        mandate = f"m-{sid}"
        amount = rng.choice((500, 1000, 1500, 2500))
        if loyal or rng.random() < 0.5:
            at0 = local(day0, rng.uniform(0, 2), rng.randint(6, 22))
            started = at0 - timedelta(days=rng.randint(400, 3000)) if loyal else at0
            events.append(
                donation(
                    at=at0,
                    action="started",
                    started=started,
                    amount_cents_before=0,
                    amount_cents_after=amount,
                    mandate_id=mandate,
                    supporter_id=sid,
                )
            )
        for _ in range(rng.randint(0, 6)):
            when = local(day0, rng.uniform(0, days), rng.randint(7, 20), rng.randint(0, 59))
            action = rng.choices(
                ("sent", "delivered", "opened", "clicked", "unsubscribed", "spam_complaint"),
                (40, 25, 20, 8, 5, 2),
            )[0]
            events.append(email(at=when, action=action, supporter_id=sid))
        churned_at: datetime | None = None
        calls = sorted(rng.uniform(2, days) for _ in range(rng.choice((0, 1, 1, 2, 3, 4, 5))))
        for c, day in enumerate(calls):
            dinner = rng.random() < 0.25
            hour = rng.choice((17, 18)) if dinner else rng.randint(9, 20)
            when = local(day0, day, hour, rng.randint(0, 59))
            direction = "inbound" if rng.random() < 0.1 else "outbound"
            outcome = rng.choices(outcomes, weights)[0]
            purpose = rng.choice((*MARKETING, "thank_you", "service"))
            events.append(
                call(
                    at=when,
                    outcome=outcome,
                    direction=direction,
                    campaign_purpose=purpose,
                    partner_id=rng.choice(("p-callfirst", "p-dialright", "p-telecare")),
                    supporter_id=sid,
                    call_id=f"c-{sid}-{c}",
                    sentiment=round(rng.uniform(-1, 1), 2) if rng.random() < 0.3 else None,
                )
            )
            reached = direction == "outbound" and outcome not in ATTEMPTS
            if loyal and reached and churned_at is None and rng.random() < 0.45:
                churned_at = when + timedelta(days=rng.uniform(1, 25))
                if churned_at < local(day0, days, 0):
                    action = rng.choice(("cancelled", "paused", "downgraded", "reversed"))
                    after = amount // 2 if action == "downgraded" else None
                    events.append(
                        donation(
                            at=churned_at,
                            action=action,
                            started=events[0].mandate_started_at,
                            amount_cents_before=amount,
                            amount_cents_after=after,
                            mandate_id=mandate,
                            supporter_id=sid,
                        )
                    )
                    break  # no call after a churn (see the docstring)
        roll = rng.random()
        if roll < 0.15:
            channel, action = rng.choice(
                (("phone", "opt_out"), ("all", "opt_out"), ("phone", "objection"))
            )
            if channel == "phone" and action == "objection":
                channel = "all"
            when = local(day0, rng.uniform(0, days), rng.randint(8, 21))
            events.append(consent(at=when, channel=channel, action=action, supporter_id=sid))
            # a marketing call after the refusal: a call-while-suppressed alert
            if rng.random() < 0.5 and churned_at is None:
                later = when + timedelta(days=rng.uniform(0.5, 5))
                if later < local(day0, days, 0):
                    events.append(
                        call(
                            at=later.replace(hour=11),
                            outcome="declined",
                            campaign_purpose="upgrade",
                            partner_id="p-dialright",
                            supporter_id=sid,
                            call_id=f"c-{sid}-after",
                        )
                    )
        elif roll < 0.22:
            when = local(day0, rng.uniform(0, days), rng.randint(8, 21))
            events.append(consent(at=when, channel="email", action="opt_out", supporter_id=sid))
        out.extend(events)
    out.sort(key=lambda e: e.occurred_at)
    return out


def refusal_codes(event: dict[str, Any]) -> set[str]:
    """The reason codes a valid event must leave in force for good (no opt_in follows)."""
    if event["type"] == "consent_change":
        if event["action"] == "objection":
            return {"OBJECTION"}
        if event["action"] == "opt_out" and event["channel"] in ("phone", "all"):
            return {"OPTED_OUT"}
    if event["type"] == "call_outcome" and event["outcome"] == "do_not_call":
        return {"DO_NOT_CALL_REQUEST"}
    return set()


def phone_optouts(rng: random.Random, tag: str, count: int, days: int) -> list[Any]:
    """``count`` phone opt-outs, each for a supporter of its own, spread over ``days`` days."""
    day0 = window_start(days)
    return [
        consent(
            at=local(day0, rng.uniform(0, days), rng.randint(8, 21), rng.randint(0, 59)),
            channel="phone",
            action="opt_out",
            source=rng.choice(("call", "web", "letter")),
            supporter_id=f"{tag}-o{i:06d}",
        )
        for i in range(count)
    ]


def add_events(plan: Plan, events: Iterable[Any], *, dedicated: bool = False) -> None:
    for event in events:
        msg = event_msg(event, label="phone opt-out" if dedicated else "event")
        plan.messages.append(msg)
        codes = refusal_codes(json.loads(msg.value))
        if codes:
            plan.refusals[event.supporter_id] |= codes
        if dedicated:
            plan.optouts[event.supporter_id] = event.event_id


def interleave(
    rng: random.Random, base: list[Msg], extra: list[Msg], start: float = 0.05
) -> list[Msg]:
    """``base`` in order with each of ``extra`` put at a random place after ``start`` of it."""
    out = list(base)
    for msg in extra:
        out.insert(rng.randint(int(len(out) * start), len(out)), msg)
    return out


# --------------------------------------------------------------------------------------------
# Poison, key problems and late refusals


def poison(rng: random.Random, tag: str, *, oversized: int = 2) -> list[Msg]:
    """Invalid messages of every kind, each keyed by an id of its own so it can be found."""
    day0 = window_start(30)
    now_ok = local(day0, 10, 11)
    base = json.loads(to_line(consent(at=now_ok, supporter_id="x")))
    out: list[Msg] = []

    def add(label: str, value: bytes, topic: str = CONSENTS, key: bytes | None = None) -> None:
        k = key if key is not None else f"{tag}-p{len(out):03d}".encode()
        ident = k.decode("utf-8", "surrogateescape")
        out.append(Msg(topic, k, value, label, expect="dead", ident=ident, supporter_id=ident))

    def as_event(label: str, topic: str = CONSENTS, **changes: Any) -> None:
        sid = f"{tag}-p{len(out):03d}"
        event = {**base, "supporter_id": sid, "event_id": f"{sid}-e", **changes}
        for name, value in list(event.items()):
            if value is _DROP:
                del event[name]
        add(label, json.dumps(event).encode(), topic, sid.encode())

    noise = bytes(b for b in (rng.randrange(256) for _ in range(600)) if b not in (9, 10))
    add("random bytes", noise[:300], CALLS)
    add("random bytes", noise[300:], DONATIONS)
    for _ in range(oversized):
        add("oversized 800 KB", b"A" * 800_000, CALLS)
    money = json.loads(
        to_line(donation(at=now_ok, action="downgraded", amount_cents_before=2500, started=day0))
    )
    for amount in (2**64, 10**30):
        sid = f"{tag}-p{len(out):03d}"
        event = {**money, "supporter_id": sid, "event_id": f"{sid}-e", "amount_cents_after": amount}
        add("huge integer", json.dumps(event).encode(), DONATIONS, sid.encode())
    add("deeply nested JSON", b"[" * 50_000 + b"]" * 50_000, EMAILS)
    add("deeply nested JSON", b'{"type":' * 20_000 + b"1" + b"}" * 20_000, CONSENTS)
    as_event("wrong type", occurred_at=1767225600)
    as_event("wrong type", supporter_id=12345)
    as_event("wrong type", channel=["phone"])
    as_event("wrong enum value", channel="fax")
    as_event("wrong enum value", action="unsubscribe_maybe")
    as_event("wrong enum value", type="consent_changed")
    as_event("missing field", action=_DROP)
    as_event("far-future timestamp", occurred_at="2199-12-31T23:00:00Z")
    as_event("far-future timestamp", occurred_at="9999-12-31T23:59:59Z")
    as_event("ancient timestamp", occurred_at="1969-12-31T23:59:59Z")
    as_event("ancient timestamp", occurred_at="0001-01-01T00:00:00Z")
    as_event("timestamp without offset", occurred_at="2026-03-02T11:00:00")
    add("not JSON", b'{"type": "consent_change", "supporter_id": ', CONSENTS)
    add("JSON null", b"null", EMAILS)
    add("empty value", b"", CALLS)
    add("key not UTF-8", b'{"type": "consent_change"}', CONSENTS, b"\xff\xfe" + tag.encode())
    return out


_DROP = object()


def key_problems(tag: str, days: int) -> tuple[list[Msg], list[Msg], set[str]]:
    """Key-less and wrong-key phone opt-outs.

    Returns (the problem messages, the keyed ``opt_in`` that follows two of them, the
    supporters of those two pairs). A pair's key-less opt-out applied on a partition other than
    its supporter's would leave that partition's state suppressed while the opt_in lifts
    nothing on the right one: the final record would say suppressed, where the right answer
    (routed, or dead-lettered) is "not suppressed".
    """
    day0 = window_start(days)
    problems: list[Msg] = []
    follow: list[Msg] = []
    pairs: set[str] = set()
    for n, (kind, paired) in enumerate(
        (("no key", False), ("no key", True), ("wrong key", False), ("wrong key", True))
    ):
        sid = f"{tag}-k{n}"
        out_at = local(day0, 5 + n, 10)
        event = consent(at=out_at, channel="phone", action="opt_out", supporter_id=sid)
        msg = event_msg(event, label=f"opt-out with {kind}")
        msg.expect = "route"
        right = partition_of(sid)
        if kind == "no key":
            msg.key = None
            msg.partition = (right + 1) % PARTITIONS
        else:
            other = next(
                f"{tag}-other{j}" for j in range(100) if partition_of(f"{tag}-other{j}") != right
            )
            msg.key = other.encode()
        problems.append(msg)
        if paired:
            pairs.add(sid)
            back = consent(
                at=out_at + timedelta(days=3), channel="phone", action="opt_in", supporter_id=sid
            )
            follow.append(event_msg(back, label="opt-in after a key problem"))
    return problems, follow, pairs


def late_refusals(tag: str, days: int) -> tuple[list[Msg], list[Msg]]:
    """Refusals that arrive long after the supporter's later events (they apply however late).

    Returns (recent events sent first, the late refusals sent after them).
    """
    day0 = window_start(days)
    recent = local(day0, days - 1, 10)
    first: list[Msg] = []
    late: list[Msg] = []
    a, b, c = f"{tag}-late-dnc", f"{tag}-late-optout", f"{tag}-ancient-new"
    first.append(event_msg(email(at=recent, action="sent", supporter_id=a)))
    first.append(event_msg(email(at=recent, action="opened", supporter_id=b)))
    dnc = call(
        at=recent - timedelta(days=200),
        outcome="do_not_call",
        campaign_purpose="upgrade",
        supporter_id=a,
        call_id=f"c-{a}",
    )
    late.append(event_msg(dnc, label="do_not_call 200 days late"))
    ancient = datetime(1971, 1, 4, 10, 0, tzinfo=UTC)
    late.append(
        event_msg(
            consent(at=ancient, channel="phone", action="opt_out", supporter_id=b),
            label="opt-out from 1971 (late)",
        )
    )
    late.append(
        event_msg(
            consent(at=ancient, channel="all", action="opt_out", supporter_id=c),
            label="opt-out from 1971 (new supporter)",
        )
    )
    return first, late


# --------------------------------------------------------------------------------------------
# Producing with kcat


class KcatProducer:
    """Produces messages with kcat, one long-lived kcat per lane (topic and forced partition),
    paced at ``rate`` messages a second (0: as fast as the pipes take them)."""

    def __init__(self, bootstrap: str, prefix: str, log_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.log_path = log_dir / "kcat-producer.log"
        self.lanes: dict[tuple[str, int | None], subprocess.Popen[bytes]] = {}
        self.sent = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _lane(self, msg: Msg) -> subprocess.Popen[bytes]:
        lane = (msg.topic, msg.partition)
        proc = self.lanes.get(lane)
        if proc is None:
            kcat = kcat_path()
            assert kcat is not None
            cmd = [kcat, "-P", "-b", self.bootstrap, "-t", self.prefix + msg.topic]
            cmd += list(KCAT_PRODUCER_OPTS)
            cmd += ["-p", str(msg.partition)] if msg.partition is not None else ["-K", "\t"]
            with self.log_path.open("ab") as log:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log)
            self.lanes[lane] = proc
        return proc

    def produce(self, messages: list[Msg], rate: float = 0.0) -> None:
        """Send ``messages`` in order (blocking); kcat delivers them when its stdin closes."""
        t0 = time.monotonic()
        for i, msg in enumerate(messages):
            if rate > 0:
                ahead = t0 + i / rate - time.monotonic()
                if ahead > 0:
                    for proc in self.lanes.values():
                        assert proc.stdin is not None
                        proc.stdin.flush()
                    time.sleep(ahead)
            proc = self._lane(msg)
            assert proc.stdin is not None
            proc.stdin.write(msg.line())
            self.sent += 1
        for proc in self.lanes.values():
            assert proc.stdin is not None
            proc.stdin.flush()

    def start(self, messages: list[Msg], rate: float) -> None:
        """Produce in a background thread; :meth:`close` waits for it."""

        def body() -> None:
            try:
                self.produce(messages, rate)
            except BaseException as exc:  # noqa: BLE001 - handed to the test by close()
                self.error = exc
            finally:
                self.done.set()

        self._thread = threading.Thread(target=body, name="kcat-producer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 180.0) -> None:
        """Wait for the producing thread, then for every kcat to deliver what it was given."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise AssertionError("the producing thread did not finish in time")
        for proc in self.lanes.values():
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        for lane, proc in self.lanes.items():
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"kcat producing to {lane} did not finish") from None
            if code != 0:
                raise AssertionError(f"kcat producing to {lane} exited {code}:\n{self.log()}")
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """End every kcat still running (a test that failed half-way)."""
        for proc in self.lanes.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


# --------------------------------------------------------------------------------------------
# Reading with kcat


def kcat_read(bootstrap: str, topic: str, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """Every message of ``topic`` from the start, as kcat's JSON envelopes (an independent
    client: librdkafka, not the worker's aiokafka)."""
    kcat = kcat_path()
    assert kcat is not None
    cmd = [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"]
    cmd += ["-X", "fetch.message.max.bytes=4000000"]
    result = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"kcat could not read {topic} (exit {result.returncode}): "
            + result.stderr.decode(errors="replace")[-2000:]
        )
    out = []
    for raw in result.stdout.split(b"\n"):
        if raw.strip():
            out.append(json.loads(raw.decode("utf-8", "surrogateescape")))
    return out


def payloads(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JSON values of output messages, in partition-then-offset order."""
    ordered = sorted(envelopes, key=lambda m: (m["partition"], m["offset"]))
    return [json.loads(m["payload"]) for m in ordered if m.get("payload")]


# --------------------------------------------------------------------------------------------
# The worker, supervised


class ChaosWorker:
    """A `relmon worker` subprocess that can be killed with SIGKILL and restarted on the same
    (or an empty) state folder; a crashed process is restarted as an orchestrator would."""

    def __init__(
        self, bootstrap: str, prefix: str, folder: Path, *, batch_max: int | None = None
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.state_dir = folder / "state"
        self.log_path = folder / "worker.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELMON_")},
            "RELMON_KAFKA_BOOTSTRAP": bootstrap,
            "RELMON_TOPIC_PREFIX": prefix,
            "RELMON_WORKER_ID": f"relmon-{prefix.strip('.')}",
            "RELMON_PARTITIONS": str(PARTITIONS),
            "RELMON_WEB_PORT": str(self.port),
            "RELMON_WEB_HOST": "127.0.0.1",
            "RELMON_WEB_ADVERTISED_URL": f"http://127.0.0.1:{self.port}",
            "RELMON_STATE_DIR": str(self.state_dir),
            # The expiry timer emits wall-clock lifts; hold it off (its longest interval) so
            # decisions compare at event time. Records it makes anyway are filtered out.
            "RELMON_EXPIRY_INTERVAL_S": "60",
            "RELMON_BROKER_SESSION_TIMEOUT_S": "6",
            "RELMON_LOG_FORMAT": "json",
        }
        if batch_max is not None:
            self.env["RELMON_BATCH_MAX"] = str(batch_max)
        self.proc: WorkerProcess | None = None
        self.kills = 0
        self.crashes = 0
        self.empty_state_restarts = 0
        self._http = httpx.Client(timeout=2.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChaosWorker:
        self.proc = WorkerProcess(self.env, self.port, self.log_path).start()
        return self

    def alive(self) -> bool:
        return (
            self.proc is not None and self.proc.proc is not None and self.proc.proc.poll() is None
        )

    def supervise(self) -> None:
        """Restart the worker if it exited on its own (counted as a crash)."""
        if self.proc is not None and not self.alive():
            self.crashes += 1
            self._note(f"worker exited by itself (crash {self.crashes}); restarting it")
            self.start()

    def ready(self) -> bool:
        try:
            return self._http.get(f"{self.url}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.supervise()
            if self.ready():
                return
            time.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout_s:.0f}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        assert self.proc.proc is not None
        self.kills += 1
        self._note(f"SIGKILL {self.kills}")
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait(timeout=30)

    def restart(self, *, empty_state: bool = False) -> None:
        if self.alive():
            self.kill9()
        if empty_state:
            self.empty_state_restarts += 1
            self._note("restart on an empty state folder")
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.start()

    def lag(self) -> int | None:
        """Total consumer lag over every input partition from /metrics, None if unknown."""
        try:
            text = self._http.get(f"{self.url}/metrics").text
        except httpx.HTTPError:
            return None
        series = [line for line in text.splitlines() if line.startswith("relmon_consumer_lag{")]
        if len(series) < PARTITIONS * len(INPUT_TOPICS):
            return None
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in series))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self._http.close()

    def _note(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"### chaos harness {datetime.now(UTC).isoformat()}: {text}\n")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no worker log)"
        kept = [
            line[:400]
            for line in self.log_path.read_text(errors="replace").splitlines()
            if '"level": "debug"' not in line
        ]
        return "\n".join(kept[-lines:])


# --------------------------------------------------------------------------------------------
# A run: topics, worker, producer, settling, checks


@dataclass
class Outputs:
    inputs: list[dict[str, Any]]
    suppressions: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    dlq: list[dict[str, Any]]


@dataclass
class Run:
    """One scenario's slice of the chaos broker: its own topic prefix, folder and worker."""

    broker: ChaosBroker
    plan: Plan
    folder: Path
    prefix: str
    worker: ChaosWorker
    producer: KcatProducer
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)
    outages: int = 0

    @classmethod
    def create(cls, broker: ChaosBroker, plan: Plan, folder: Path, **worker_opts: Any) -> Run:
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"c{random.getrandbits(40):010x}."
        create_topics(broker.bootstrap, prefix)
        worker = ChaosWorker(broker.bootstrap, prefix, folder, **worker_opts)
        producer = KcatProducer(broker.bootstrap, prefix, folder)
        return cls(broker, plan, folder, prefix, worker, producer)

    def topic(self, name: str) -> str:
        return self.prefix + name

    def read_outputs(self) -> Outputs:
        b = self.broker.bootstrap
        inputs = [m for name in INPUT_TOPICS for m in kcat_read(b, self.topic(name))]
        return Outputs(
            inputs,
            payloads(kcat_read(b, self.topic(SUPPRESSIONS))),
            payloads(kcat_read(b, self.topic(ALERTS))),
            payloads(kcat_read(b, self.topic(DLQ))),
        )

    def settle(self, *, timeout_s: float, quiet_s: float = 4.0, stall_s: float = 25.0) -> None:
        """Wait (bounded) until the worker has taken everything in.

        Done when the worker reports no lag on any input partition and the output topics have
        not grown for ``quiet_s``; or when they have not grown for ``stall_s`` whatever the
        lag says (a worker that stopped processing: the checks will say what is missing).
        """
        deadline = time.monotonic() + timeout_s
        last: tuple[int, ...] | None = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            self.worker.supervise()
            b = self.broker.bootstrap
            counts = tuple(len(kcat_read(b, self.topic(n))) for n in (SUPPRESSIONS, ALERTS, DLQ))
            if counts != last:
                last, since = counts, time.monotonic()
            quiet = time.monotonic() - since
            lag = self.worker.lag()
            no_metric = lag is None and quiet >= 3 * quiet_s and self.worker.ready()
            if quiet >= quiet_s and (lag == 0 or no_metric):
                return  # no lag (or a ready worker without the lag metric, quiet for longer)
            if quiet >= stall_s:
                self.notes.append(
                    f"outputs stopped growing for {stall_s:.0f}s with lag {self.worker.lag()}"
                )
                return
            time.sleep(1.0)
        self.notes.append(f"did not settle within {timeout_s:.0f}s")

    def replay(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """`relmon replay` over the plan's valid events: (suppression records, alerts)."""
        path = self.folder / "valid-events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in self.plan.valid_events()))
        out = self.folder / "replay"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "relmon.cli",
                "replay",
                "--input",
                str(path),
                "--out",
                str(out),
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"relmon replay failed:\n{result.stdout}{result.stderr}")

        def lines(name: str) -> list[dict[str, Any]]:
            return [json.loads(x) for x in (out / name).read_text().splitlines() if x.strip()]

        return lines("suppressions.jsonl"), lines("alerts.jsonl")

    def outage(self, down_s: float) -> None:
        """Stop the broker for ``down_s`` seconds, then start it again (same data)."""
        self.outages += 1
        self.broker.outage(down_s)

    def stop(self) -> None:
        self.producer.abort()
        self.worker.stop()


@dataclass
class Verdict:
    """What the checks found: figures for RELIABILITY.md and the problems, if any."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, title: str, items: list[str], limit: int = 25) -> None:
        if items:
            shown = "\n    ".join(items[:limit])
            more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
            self.problems.append(f"{title} ({len(items)}):\n    {shown}{more}")

    def report(self, run: Run) -> str:
        head = f"chaos scenario {self.scenario}: " + json.dumps(self.figures, sort_keys=True)
        if self.ok:
            return head
        notes = "\n".join(f"  note: {n}" for n in run.notes)
        return (
            head
            + "\n"
            + "\n".join(self.problems)
            + ("\n" + notes if notes else "")
            + f"\n--- worker log tail ({run.worker.log_path}) ---\n"
            + run.worker.log_tail()
        )


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _decision(record: dict[str, Any] | None) -> tuple[bool, tuple[str, ...]]:
    if record is None:
        return (False, ())
    return (bool(record["suppressed"]), tuple(sorted(r["code"] for r in record["reasons"])))


def verify(run: Run, extra: dict[str, Any] | None = None) -> Verdict:
    """Check "nothing lost" on everything the topics hold (read with kcat)."""
    plan = run.plan
    out = run.read_outputs()
    verdict = Verdict(plan.name)
    valid = plan.valid_events()

    # -- where every produced message landed (input topics read back)
    landed: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    poison_keys = {m.ident for m in plan.messages if m.expect == "dead"}
    for env in out.inputs:
        key = env.get("key")
        ident = key if key in poison_keys else None
        if ident is None and env.get("payload"):
            with contextlib.suppress(Exception):
                value = json.loads(env["payload"])
                if isinstance(value, dict) and isinstance(value.get("event_id"), str):
                    ident = value["event_id"]
        if ident is not None:
            landed[ident].append((env["topic"], env["partition"], env["offset"]))
    planned = Counter(m.ident for m in plan.messages)
    undelivered = [
        f"{ident}: produced {n}, found {len(landed.get(ident, []))}"
        for ident, n in planned.items()
        if len(landed.get(ident, [])) < n
    ]
    verdict.problem(
        "messages kcat did not deliver (a producer problem, not the worker's)", undelivered
    )

    # -- dead letters
    dead_at: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for d in out.dlq:
        source = str(d.get("source"))  # the topic's full name; the contract name also counts
        full = source if source.startswith(run.prefix) else run.prefix + source
        dead_at[(full, d.get("partition"), d.get("offset"))] = d
    no_letter = []
    for msg in plan.messages:
        if msg.expect != "dead":
            continue
        for coord in landed.get(msg.ident, []):
            letter = dead_at.get(coord)
            if letter is None or not letter.get("error"):
                no_letter.append(f"{msg.label}: {coord[0]}[{coord[1]}]@{coord[2]} key {msg.ident}")
    verdict.problem("invalid messages without a dead letter naming their coordinates", no_letter)

    # -- suppression records by supporter (topic order: one supporter is on one partition)
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in out.suppressions:
        records[r["supporter_id"]].append(r)
    last_at: dict[str, datetime] = {}
    for e in valid:
        t = _ts(e["occurred_at"])
        sid = e["supporter_id"]
        last_at[sid] = max(t, last_at.get(sid, t))

    def final(recs: Iterable[dict[str, Any]], sid: str) -> dict[str, Any] | None:
        """The last record caused by an event (not a wall-clock expiry after the last one)."""
        limit = last_at.get(sid)
        kept = [r for r in recs if limit is None or _ts(r["decided_at"]) <= limit]
        return kept[-1] if kept else None

    # -- dedicated phone opt-outs, one by one
    lost_optouts = [
        f"{sid} (event {eid})"
        for sid, eid in sorted(plan.optouts.items())
        if not any(
            r["suppressed"] and "OPTED_OUT" in {x["code"] for x in r["reasons"]}
            for r in records.get(sid, [])
        )
    ]
    verdict.problem("phone opt-outs with no suppressed OPTED_OUT record (lost)", lost_optouts)

    # -- every refusal (generated, late, ancient): the final decision carries its code
    lost_refusals = []
    routed = {m.supporter_id for m in plan.messages if m.expect == "route"}
    for sid, codes in sorted(plan.refusals.items()):
        if sid in plan.optouts or sid in routed:
            continue  # checked one by one above / in the key checks below
        suppressed, have = _decision(final(records.get(sid, []), sid))
        missing = codes - set(have)
        if not suppressed or missing:
            lost_refusals.append(
                f"{sid}: expected {sorted(codes)} in force, final record "
                f"{'suppressed' if suppressed else 'not suppressed'} {list(have)}"
            )
    verdict.problem("refusals missing from the final decision (lost)", lost_refusals)

    # -- key problems: routed to the supporter's partition, or a dead letter; never elsewhere
    key_issues = []
    for msg in plan.messages:
        if msg.expect != "route":
            continue
        sid = msg.supporter_id or ""
        coords = landed.get(msg.ident, [])
        lettered = [c for c in coords if c in dead_at]
        if sid in plan.key_pairs:
            if _decision(final(records.get(sid, []), sid))[0]:
                key_issues.append(
                    f"{msg.label} for {sid} at {coords}: applied on a partition other than the "
                    f"supporter's ({partition_of(sid)}): the later keyed opt_in did not lift it"
                )
        elif not lettered and not any(r["suppressed"] for r in records.get(sid, [])):
            key_issues.append(
                f"{msg.label} for {sid} at {coords}: neither applied nor a dead letter"
            )
    verdict.problem("key-less / wrong-key opt-outs mishandled", key_issues)

    # -- equal to a replay of the valid events: alert ids and final decisions
    replay_records, replay_alerts = run.replay()
    excluded = plan.key_pairs | {m.supporter_id for m in plan.messages if m.expect == "route"}
    rrec: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in replay_records:
        rrec[r["supporter_id"]].append(r)
    differ = []
    for sid in sorted((set(records) | set(rrec)) - excluded):
        if sid not in last_at:
            continue
        live, want = (
            _decision(final(records.get(sid, []), sid)),
            _decision(final(rrec.get(sid, []), sid)),
        )
        if live != want:
            last = final(records.get(sid, []), sid)
            seen = (
                f"; its last of {len(records.get(sid, []))} records decided_at "
                f"{last['decided_at']} by {last.get('cause_event_id')}"
                if last
                else ""
            )
            differ.append(f"{sid}: live {live}, replay {want}{seen}")
    verdict.problem("final decisions that differ from `relmon replay`", differ)
    live_ids = {a["alert_id"] for a in out.alerts if a["supporter_id"] not in excluded}
    want_ids = {a["alert_id"]: a for a in replay_alerts if a["supporter_id"] not in excluded}
    live_by_id = {a["alert_id"]: a for a in out.alerts}
    verdict.problem(
        "alerts of the replay missing on the alerts topic",
        [
            f"{i} ({want_ids[i]['kind']}, {want_ids[i]['supporter_id']})"
            for i in sorted(set(want_ids) - live_ids)
        ],
    )
    verdict.problem(
        "alerts on the topic that the replay does not raise",
        [
            f"{i} ({live_by_id[i]['kind']}, {live_by_id[i]['supporter_id']})"
            for i in sorted(live_ids - set(want_ids))
        ],
    )

    verdict.figures = {
        "messages": len(plan.messages),
        "valid_events": len(valid),
        "invalid": sum(1 for m in plan.messages if m.expect == "dead"),
        "phone_optouts": len(plan.optouts),
        "refusing_supporters": len(plan.refusals),
        "supporters": len(last_at),
        "replay_alerts": len(want_ids),
        "live_alerts_distinct": len(live_ids),
        "suppression_records": len(out.suppressions),
        "dead_letters": len(out.dlq),
        "lost_optouts": len(lost_optouts),
        "lost_refusals": len(lost_refusals),
        "missing_dead_letters": len(no_letter),
        "decision_mismatches": len(differ),
        "key_problems": len(key_issues),
        "kills": run.worker.kills,
        "crash_restarts": run.worker.crashes,
        "empty_state_restarts": run.worker.empty_state_restarts,
        "broker_outages": run.outages,
        "seconds": round(time.monotonic() - run.started, 1),
        **(extra or {}),
    }
    record_figures(verdict)
    return verdict


def record_figures(verdict: Verdict) -> None:
    """Append the run's figures to $RELMON_CHAOS_RESULTS (JSON lines) when it is set."""
    path = os.environ.get("RELMON_CHAOS_RESULTS")
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    row = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenario": verdict.scenario,
        "size": os.environ.get("RELMON_CHAOS", "reduced"),
        "ok": verdict.ok,
        **verdict.figures,
    }
    with Path(path).open("a") as f:
        f.write(json.dumps(row) + "\n")
