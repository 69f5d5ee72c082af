"""Live equals replay: the worker on the real broker and the file replay agree.

A simulated stream goes through a live `relmon worker` (produced in file order, keyed by
supporter) and through `relmon replay --input`. What the engine guarantees whatever the
arrival order across the four topics is compared exactly:

* the set of ``churn_after_contact`` alert ids, and every alert's content except, for
  churns, which contact it names (the last reached call *known* when the churn was judged);
* the set of ``call_while_suppressed`` alert ids and their contents;
* each supporter's decision at its last event time: the worker's latest record (it emits
  on events only; its timer, whose lifts would be at wall-clock time, is held off by the
  longest expiry interval) against the replay's last record decided at or before that time
  (the replay also emits event-time lifts in between); a supporter without a record counts
  as not suppressed, as the contract says (which records lead there depends on arrival
  order: a call applied after the supporter's later e-mails may suppress no more);
* the API's answer now (``POST /suppressions/check``) against the engine's decision at the
  API's own ``decided_at`` over the file's events.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from relmon.domain import Engine, default_policy, parse_event
from relmon.topics import ALERTS, SUPPRESSIONS, TOPIC_OF_TYPE

from .conftest import Cluster

SUPPORTERS, DAYS, SEED = 300, 60, 20260523
KEY_FIELDS = ("suppressed", "reasons", "until", "policy_version")
AT_CONTACT = frozenset({"fatigue_at_contact", "irritation_risk_at_contact"})


def _cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "relmon.cli", *args], check=True, capture_output=True, timeout=300
    )


def _simulate(path: Path) -> list[bytes]:
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 10)  # every event in the past
    _cli(
        *("simulate", "--supporters", str(SUPPORTERS), "--days", str(DAYS)),
        *("--seed", str(SEED), "--start", start.isoformat(), "--out", str(path)),
    )
    return path.read_bytes().splitlines()


async def _produce(cluster: Cluster, lines: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for line in lines:
            event = orjson.loads(line)
            topic = cluster.topic(TOPIC_OF_TYPE[event["type"]])
            pending.append(await producer.send(topic, line, key=event["supporter_id"].encode()))
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _consumed(metrics: str) -> int:
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("relmon_events_consumed_total{")
        )
    )


async def _wait_consumed(http: httpx.AsyncClient, url: str, expected: int) -> None:
    deadline = time.monotonic() + 120
    seen = -1
    while time.monotonic() < deadline:
        seen = _consumed((await http.get(f"{url}/metrics")).text)
        if seen >= expected:
            assert seen == expected, f"the worker consumed {seen} events, {expected} were sent"
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker consumed {seen} of {expected} events within 120 s")


def _ts(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp())


def _last_per_supporter(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        out[r["supporter_id"]] = r
    return out


def _key(record: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What a record decides, its policy version included (for exact comparisons)."""
    return None if record is None else tuple(orjson.dumps(record[f]) for f in KEY_FIELDS)


def _decision(record: dict[str, Any] | None) -> tuple[Any, ...]:
    """(suppressed, reasons, until) of a supporter's last record; no record: not suppressed."""
    if record is None:
        return (False, b"[]", b"null")
    return (record["suppressed"], orjson.dumps(record["reasons"]), orjson.dumps(record["until"]))


async def test_the_live_worker_and_the_file_replay_agree(
    cluster: Cluster, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A simulated stream through the live worker and through a file replay gives the same
    alerts and the same final decisions (see the module docstring for what is compared)."""
    lines = await asyncio.to_thread(_simulate, tmp_path / "events.jsonl")
    events = [parse_event(line) for line in lines]
    last_at: dict[str, int] = {}
    for e in events:
        t = int(e.occurred_at.timestamp())
        last_at[e.supporter_id] = max(t, last_at.get(e.supporter_id, t))
    end = max(last_at.values())

    out = tmp_path / "replay"
    await asyncio.to_thread(
        _cli, "replay", "--input", str(tmp_path / "events.jsonl"), "--out", str(out)
    )
    replay_records = [
        orjson.loads(x) for x in (out / "suppressions.jsonl").read_bytes().splitlines()
    ]
    replay_alerts = {
        a["alert_id"]: a
        for a in (orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines())
    }
    assert replay_alerts, "the simulated stream should raise alerts"

    worker = cluster.worker(RELMON_EXPIRY_INTERVAL_S="60").start()
    await asyncio.to_thread(worker.wait_ready)
    await _produce(cluster, lines)
    await _wait_consumed(http, worker.url, len(lines))
    await asyncio.sleep(2)  # the metric counts a message just before its outputs are sent

    live_alerts = {
        a["alert_id"]: a for a in await cluster.read(ALERTS, at_least=len(replay_alerts))
    }
    live_records = await cluster.read(
        SUPPRESSIONS, at_least=len(_last_per_supporter(replay_records))
    )
    timer = [r for r in live_records if _ts(r["decided_at"]) > end]
    assert not timer, f"the worker's wall-clock timer ran during the test: {timer[:2]}"

    # Alerts: the same ids of both kinds, and the same contents but for what an alert
    # records about the moment of the contact, computed from the facts known when it was
    # raised: events on another topic (an e-mail before the call) may arrive after it.
    assert set(live_alerts) == set(replay_alerts)
    engine = Engine(default_policy())
    calls = {e.call_id: e for e in events if e.type == "call_outcome"}
    differ: Counter[str] = Counter()
    for alert_id, expected in replay_alerts.items():
        got = live_alerts[alert_id]
        names = {k for k in expected if got[k] != expected[k]}
        differ.update(f"{expected['kind']}.{n}" for n in names)
        assert names <= AT_CONTACT | (
            {"contact"} if expected["kind"] != "call_while_suppressed" else set()
        ), (got, expected)
        if "contact" in names:
            _assert_valid_contact(got, calls)
        elif names:
            complete = _scores_before(engine, events, expected)
            for name in names:
                assert abs(expected[name] - complete[name]) < 1e-6, (name, expected)
                assert got[name] <= expected[name] + 1e-6, (name, got, expected)
    print(f"\n{len(replay_alerts)} alerts; fields differing by arrival order: {dict(differ)}")

    # Decisions at each supporter's last event time.
    live_last = _last_per_supporter(live_records)
    replay_at_last = _last_per_supporter(
        r for r in replay_records if _ts(r["decided_at"]) <= last_at[r["supporter_id"]]
    )
    # A supporter without a record is not suppressed (the contract). The worker may emit
    # none where the replay emitted a suppression and its lift: when, in the worker's arrival
    # order, the cause (a call) came after the supporter's later e-mails, its suppression had
    # already ended by the time it was applied (the sequence of records depends on arrival
    # order; the decision does not). So the decisions are compared, "no record" included.
    supporters = set(live_last) | set(replay_at_last)
    assert len(supporters) > 50, "the simulated stream should suppress many supporters"
    differing = [
        sid
        for sid in supporters
        if _decision(live_last.get(sid)) != _decision(replay_at_last.get(sid))
    ]
    assert not differing, [(live_last.get(s), replay_at_last.get(s)) for s in differing[:3]]

    # The API now, against the engine over the same events at the API's own decided_at.
    ids = sorted(last_at)
    answer = await http.post(f"{worker.url}/suppressions/check", json={"supporter_ids": ids})
    assert answer.status_code == 200
    results = answer.json()["results"]
    states: dict[str, Any] = {}
    for e in events:
        states[e.supporter_id] = engine.apply(states.get(e.supporter_id), e).state
    for sid in ids:
        api = results[sid]
        at = datetime.fromisoformat(api["decided_at"]).astimezone(UTC)
        mine = orjson.loads(
            orjson.dumps(engine.decision(states[sid], sid, at).model_dump(mode="json"))
        )
        fields = ("suppressed", "reasons", "until", "loyal")
        assert {f: api[f] for f in fields} == {f: _norm(mine[f], f) for f in fields}, sid
        assert abs(api["fatigue"] - mine["fatigue"]) < 1e-6
        assert abs(api["irritation_risk"] - mine["irritation_risk"]) < 1e-6


def _assert_valid_contact(alert: dict[str, Any], calls: dict[str, Any]) -> None:
    """The contact is a reached outbound call of that supporter in the window before the churn."""
    call = calls[alert["contact"]["call_id"]]
    churn_at = datetime.fromisoformat(alert["occurred_at"])
    assert call.supporter_id == alert["supporter_id"]
    assert call.direction == "outbound"
    assert call.outcome not in ("no_answer", "busy", "voicemail", "wrong_number")
    assert timedelta(0) <= churn_at - call.occurred_at <= timedelta(days=30)


def _scores_before(engine: Engine, events: list[Any], alert: dict[str, Any]) -> dict[str, float]:
    """The scores at the alert's contact from every event of the supporter before it."""
    at = datetime.fromisoformat(alert["contact"]["occurred_at"])
    state = None
    for e in events:
        if e.supporter_id == alert["supporter_id"] and e.occurred_at < at:
            state = engine.apply(state, e).state
    d = engine.decision(state, alert["supporter_id"], at)
    return {"fatigue_at_contact": d.fatigue, "irritation_risk_at_contact": d.irritation_risk}


def _norm(value: Any, name: str) -> Any:
    """pydantic's JSON timestamps (``+00:00``) in the outputs' canonical ``Z`` form."""
    if name == "until" and isinstance(value, str):
        return value.replace("+00:00", "Z")
    if name == "reasons":
        return [{**r, "until": _norm(r["until"], "until")} for r in value]
    return value
