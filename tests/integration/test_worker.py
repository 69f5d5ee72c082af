"""The live worker on the real broker: stories end to end, dead letters, crash, API."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from relmon.domain import default_policy
from relmon.domain.calling import next_call_at
from relmon.streaming.processor import partition_for
from relmon.topics import ALERTS, CALLS, CONSENTS, DLQ, SUPPRESSIONS

from .conftest import PARTITIONS, Cluster

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def call(
    sid: str,
    eid: str,
    at: datetime,
    *,
    partner: str = "P-north",
    outcome: str = "declined",
    purpose: str = "upgrade",
) -> dict[str, Any]:
    return {
        "type": "call_outcome",
        "event_id": eid,
        "supporter_id": sid,
        "occurred_at": ts(at),
        "call_id": f"call-{eid}",
        "direction": "outbound",
        "campaign_id": "C-2026-upgrade",
        "campaign_purpose": purpose,
        "partner_id": partner,
        "agent_id": "A-7",
        "duration_s": 140,
        "outcome": outcome,
        "amount_delta_cents": None,
        "trigger": None,
        "sentiment": None,
    }


def cancel(sid: str, eid: str, at: datetime, *, started: datetime) -> dict[str, Any]:
    return {
        "type": "donation_change",
        "event_id": eid,
        "supporter_id": sid,
        "occurred_at": ts(at),
        "mandate_id": f"M-{sid}",
        "action": "cancelled",
        "frequency": "monthly",
        "amount_cents_before": 2000,
        "amount_cents_after": 0,
        "currency": "EUR",
        "mandate_started_at": ts(started),
        "channel": "bank",
        "reason": None,
    }


def opt_out(sid: str, eid: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "consent_change",
        "event_id": eid,
        "supporter_id": sid,
        "occurred_at": ts(at),
        "channel": "phone",
        "action": "opt_out",
        "source": "web",
    }


def loyal_story(sid: str) -> list[dict[str, Any]]:
    """A loyal donor asks for time, is chased next day by another partner, cancels 4 days later."""
    day0 = NOW - timedelta(days=6)
    return [
        call(sid, f"{sid}-c1", day0, partner="P-north", outcome="info_requested"),
        call(sid, f"{sid}-c2", day0 + timedelta(days=1), partner="P-south", outcome="declined"),
        cancel(sid, f"{sid}-d1", day0 + timedelta(days=5), started=NOW - timedelta(days=3 * 365)),
    ]


async def tell_story(cluster: Cluster, sid: str) -> list[dict[str, Any]]:
    """Produce the loyal donor's story in the order it happened: the calls, and once the worker
    has judged them, the cancellation days later. (A churn that arrives before a call it
    follows is covered by the engine's tests; which call an alert names then depends on
    what was known when the churn was judged.)"""
    story = loyal_story(sid)
    await cluster.produce(story[:2])
    await cluster.wait_for(
        ALERTS, lambda a: a["supporter_id"] == sid and a["kind"] == "call_while_suppressed"
    )
    await cluster.produce(story[2:])
    return story


def by_kind(alerts: list[dict[str, Any]], sid: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        if alert["supporter_id"] == sid:
            out.setdefault(alert["kind"], []).append(alert)
    return out


async def test_loyal_donor_chased_and_cancelling_is_suppressed_and_alerted(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """The story relmon exists for: the request for time suppresses calls, the chasing call
    raises call_while_suppressed, the cancellation raises churn_after_contact naming the
    chasing call, and the API answers with the suppression and the contributions."""
    worker = cluster.worker().start()
    await asyncio.to_thread(worker.wait_ready)
    await tell_story(cluster, "S-loyal")

    alerts = by_kind(await cluster.read(ALERTS, at_least=2), "S-loyal")
    assert [a["contact"]["partner_id"] for a in alerts["call_while_suppressed"]] == ["P-south"]
    assert "DECIDING_IN_OWN_TIME" in {
        r["code"] for r in alerts["call_while_suppressed"][0]["reasons"]
    }
    churn = alerts["churn_after_contact"]
    assert len(churn) == 1
    assert churn[0]["contact"]["call_id"] == "call-S-loyal-c2"
    assert churn[0]["contact"]["days_before_churn"] == 4
    assert churn[0]["donation"]["monthly_amount_lost_cents"] == 2000

    records = [
        r for r in await cluster.read(SUPPRESSIONS, at_least=1) if r["supporter_id"] == "S-loyal"
    ]
    assert records[0]["suppressed"] is True
    assert "DECIDING_IN_OWN_TIME" in {r["code"] for r in records[0]["reasons"]}

    answer = (await http.get(f"{worker.url}/suppressions/S-loyal")).json()
    assert answer["suppressed"] is True
    assert {"DECIDING_IN_OWN_TIME", "MIN_GAP"} <= {r["code"] for r in answer["reasons"]}
    never = (await http.get(f"{worker.url}/suppressions/S-never-seen")).json()
    assert never["suppressed"] is False
    detail = await http.get(f"{worker.url}/supporters/S-loyal")
    assert detail.status_code == 200
    assert "S-loyal-c2" in detail.text  # the chasing call is among the contributions

    metrics = (await http.get(f"{worker.url}/metrics")).text
    assert (
        'relmon_churn_after_contact_alerts_total{partner="P-south",purpose="upgrade"} 1.0'
        in metrics
    )
    assert 'relmon_calls_while_suppressed_total{partner="P-south"} 1.0' in metrics
    assert 'relmon_events_consumed_total{result="ok",type="call_outcome"} 2.0' in metrics
    home = partition_for("S-loyal", PARTITIONS)  # exported for the partitions it owns
    assert f'relmon_suppressions{{partition="{home}",reason="DECIDING_IN_OWN_TIME"}} 1.0' in metrics
    assert f'relmon_suppressed_supporters{{partition="{home}"}} 1.0' in metrics


async def test_bad_messages_go_to_the_dead_letter_topic_and_the_worker_keeps_going(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """Malformed JSON and an invalid event each become a dead letter with the reason and the
    original bytes; an opt-out with another key and one with no key are re-routed to their
    supporter's partition and applied there; the valid event after them is processed."""
    worker = cluster.worker().start()
    await asyncio.to_thread(worker.wait_ready)
    invalid = call("S-bad", "e-invalid", NOW)
    invalid["outcome"] = "shouted"
    mismatch = opt_out("S-real", "e-mismatch", NOW)
    keyless = opt_out("S-nokey", "e-nokey", NOW)
    raw: list[tuple[str, bytes | None, bytes]] = [
        (CALLS, b"S-bad", b'{"type": "call_outcome", '),
        (CALLS, b"S-bad", json.dumps(invalid).encode()),
        (CONSENTS, b"S-other", json.dumps(mismatch).encode()),
        (CONSENTS, None, json.dumps(keyless).encode()),
    ]
    await cluster.produce([], raw=raw)
    await cluster.produce([opt_out("S-good", "e-good", NOW)])

    letters = await cluster.read(DLQ, at_least=2)
    assert len(letters) == 2
    originals = [base64.b64decode(letter["original_base64"]) for letter in letters]
    assert originals == [value for _, _, value in raw[:2]]
    assert all(letter["source"] == cluster.topic(CALLS) for letter in letters)
    assert "outcome" in letters[1]["error"]
    logged = [
        json.loads(line)
        for line in worker.log_tail(2000).splitlines()
        if line.startswith("{") and '"dead letter"' in line
    ]
    # JSON log lines that carry the message's coordinates
    assert {(e["topic"], e["error_kind"]) for e in logged} == {
        (cluster.topic(CALLS), "json"),
        (cluster.topic(CALLS), "validation"),
    }
    assert all(isinstance(e["partition"], int) and isinstance(e["offset"], int) for e in logged)
    records = await cluster.read(SUPPRESSIONS, at_least=3)
    assert sorted(r["supporter_id"] for r in records) == ["S-good", "S-nokey", "S-real"]
    assert {r["reasons"][0]["code"] for r in records} == {"OPTED_OUT"}
    metrics = (await http.get(f"{worker.url}/metrics")).text
    assert 'relmon_events_consumed_total{result="rerouted",type="consent_change"} 2.0' in metrics
    assert 'relmon_events_consumed_total{result="ok",type="consent_change"} 3.0' in metrics
    answer = (await http.get(f"{worker.url}/suppressions/S-nokey")).json()
    assert answer["suppressed"] is True


async def test_kill_9_and_restart_keeps_state_and_sends_no_duplicate_alert(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """After kill -9 the restarted worker restores the supporter's state from the changelog;
    redelivered events raise no second alert, and an opt-out sent after the crash is applied."""
    worker = cluster.worker(state="crashy").start()
    await asyncio.to_thread(worker.wait_ready)
    story = await tell_story(cluster, "S-crash")
    assert len(await cluster.read(ALERTS, at_least=2)) == 2
    await asyncio.sleep(2)  # let the commit interval pass, as in production
    worker.kill9()

    restarted = cluster.worker(state="crashy").start()  # same volume, as a StatefulSet pod
    await asyncio.to_thread(restarted.wait_ready)
    await cluster.produce([*story, opt_out("S-crash", "S-crash-o1", NOW)])  # redelivery + new

    await cluster.wait_for(  # the opt-out sent after the crash is applied
        SUPPRESSIONS, lambda rec: "OPTED_OUT" in {r["code"] for r in rec["reasons"]}
    )
    alerts = await cluster.read(ALERTS, at_least=2)
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    state = (await http.get(f"{restarted.url}/supporters/S-crash")).text
    assert "S-crash-c1" in state  # the pre-crash call survived in the restored state


async def test_expired_suppression_is_lifted_by_the_worker(cluster: Cluster) -> None:
    """A MIN_GAP that ends a few seconds from now is lifted by the worker's timer: a record with
    suppressed false follows the suppression without any new event."""
    worker = cluster.worker().start()
    await asyncio.to_thread(worker.wait_ready)
    almost_over = datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=8)
    await cluster.produce([call("S-gap", "e-gap", almost_over, outcome="declined")])
    await cluster.wait_for(SUPPRESSIONS, lambda r: r["suppressed"] is False, wait_s=60)
    mine = await cluster.read(SUPPRESSIONS, at_least=2)
    assert mine[0]["suppressed"] is True
    assert [r["code"] for r in mine[0]["reasons"]] == ["MIN_GAP"]
    assert mine[-1]["suppressed"] is False
    assert mine[-1]["cause_event_id"] is None


async def test_two_workers_share_partitions_and_answer_batch_checks_for_all(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """Two workers split the partitions; a batch check sent to either answers every supporter
    correctly (forwarding to the owner); after one stops, the other takes over with the state."""
    first = cluster.worker(state="a").start()
    await asyncio.to_thread(first.wait_ready)
    second = cluster.worker(state="b").start()
    await asyncio.to_thread(second.wait_ready)
    await asyncio.sleep(3)  # the join rebalance settles
    await asyncio.to_thread(first.wait_ready)
    suppressed = [f"S-{i}" for i in range(24)]
    await cluster.produce([opt_out(sid, f"o-{sid}", NOW) for sid in suppressed])
    assert len(await cluster.read(SUPPRESSIONS, at_least=len(suppressed))) == len(suppressed)

    ids = [*suppressed, "S-unknown-1", "S-unknown-2"]
    for worker in (first, second):
        results = (
            await http.post(f"{worker.url}/suppressions/check", json={"supporter_ids": ids})
        ).json()["results"]
        assert {sid for sid, rec in results.items() if rec["suppressed"]} == set(suppressed)
        assert results["S-unknown-1"]["suppressed"] is False

    second.stop()
    await asyncio.sleep(2)
    await asyncio.to_thread(first.wait_ready, 120)
    results = (
        await http.post(f"{first.url}/suppressions/check", json={"supporter_ids": ids})
    ).json()["results"]
    assert {sid for sid, rec in results.items() if rec["suppressed"]} == set(suppressed)


async def test_api_token_and_request_errors(cluster: Cluster, http: httpx.AsyncClient) -> None:
    """With RELMON_API_TOKEN set, health checks stay open and everything else needs the bearer
    token; bad requests get JSON errors with 4xx statuses."""
    worker = cluster.worker(token="s3cret").start()
    await asyncio.to_thread(worker.wait_ready)
    assert (await http.get(f"{worker.url}/healthz")).status_code == 200
    assert (await http.get(f"{worker.url}/suppressions/S-1")).status_code == 401
    wrong = await http.get(
        f"{worker.url}/suppressions/S-1", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    auth = worker.headers()
    assert (await http.get(f"{worker.url}/suppressions/S-1", headers=auth)).json()[
        "suppressed"
    ] is False

    unknown = await http.get(f"{worker.url}/no/such/route", headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    malformed = await http.post(f"{worker.url}/suppressions/check", content=b"{nope", headers=auth)
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "malformed_json"
    too_many = {"supporter_ids": [f"S-{i}" for i in range(100_001)]}
    big = await http.post(f"{worker.url}/suppressions/check", json=too_many, headers=auth)
    assert big.status_code == 413
    assert "at most 100000" in big.json()["detail"]
    assert "s3cret" not in worker.log_tail(500)  # the secret never reaches the logs


async def test_a_sunday_call_is_flagged_and_answers_say_when_to_call(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """A marketing call on a Sunday afternoon (Amsterdam) raises call_outside_window with
    the window it missed and counts for its partner; the API answers the suppression it
    caused with next_call_at: the first calling moment after its until."""
    ams = ZoneInfo("Europe/Amsterdam")
    day = NOW.astimezone(ams).date() - timedelta(days=1)
    while day.weekday() != 6:
        day -= timedelta(days=1)
    sunday = datetime(day.year, day.month, day.day, 14, 0, tzinfo=ams).astimezone(UTC)
    worker = cluster.worker().start()
    await asyncio.to_thread(worker.wait_ready)
    await cluster.produce([call("S-sunday", "e-sunday", sunday, partner="P-late")])
    await cluster.wait_for(
        ALERTS, lambda a: a["supporter_id"] == "S-sunday" and a["kind"] == "call_outside_window"
    )
    (alert,) = by_kind(await cluster.read(ALERTS, at_least=1), "S-sunday")["call_outside_window"]
    assert alert["contact"]["call_id"] == "call-e-sunday"
    assert alert["window"]["day"] == "sunday"
    assert (alert["window"]["opens"], alert["window"]["closes"]) == (None, None)
    assert alert["window"]["zone"] == "Europe/Amsterdam"

    answer = (await http.get(f"{worker.url}/suppressions/S-sunday")).json()
    checked = (
        await http.post(f"{worker.url}/suppressions/check", json={"supporter_ids": ["S-sunday"]})
    ).json()["results"]["S-sunday"]
    assert answer["next_call_at"] is not None
    if answer["suppressed"]:  # MIN_GAP lasts 14 days: the Sunday was at most 7 days ago
        until = datetime.fromisoformat(answer["until"])
        expected = next_call_at(default_policy(), None, until)
        assert expected is not None
        assert datetime.fromisoformat(answer["next_call_at"]) == expected
        assert checked["next_call_at"] == answer["next_call_at"]
    metrics = (await http.get(f"{worker.url}/metrics")).text
    assert 'relmon_calls_outside_window_total{day="no_hours",partner="P-late"} 1.0' in metrics
