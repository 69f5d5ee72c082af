"""Two workers, one real Prometheus: the dashboard's own queries give the fleet's true totals.

Each worker exports its gauges only for the partitions it owns, so a dashboard that takes a
``max`` across workers shows one worker's share. Here two ``relmon worker`` processes share a
consumer group over 4-partition topics on the session's broker, Debian's Prometheus scrapes
both every second (with relmon's rules file loaded, for the recorded series), known events
and API requests go in, and the queries read from ``relmon.json`` (not retyped) must return
the totals computed from the events alone by the pure domain engine (``relmon.testing.run``:
no Kafka, no worker, no metrics).

Gauges (suppressed supporters, by reason, workers up, recovering, lag) must match exactly.
Counter panels (``increase``/``rate``) are compared within Prometheus's extrapolation: with
every series starting at 0 before the first event, ``increase`` returns the true delta times
``(S + d) / S``, ``S`` the sampled span and ``d`` < 1.1 scrape interval, so never below the
truth and at most a few percent above it; a ``max`` across two workers that each hold part of
the data falls far outside (the test checks that each worker does hold a strict part).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from relmon.testing import InputEvent, call, consent, email, run, to_line
from relmon.topics import CALLS

from .conftest import PARTITIONS, Cluster, WorkerProcess, free_port
from .test_alerting_live import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "monitoring" / "dashboards" / "relmon.json"
RULES = ROOT / "deploy" / "monitoring" / "rules" / "relmon-alerts.yml"
SCRAPE_S = 1.0
WINDOW = "10m"  # what $__rate_interval becomes: longer than the whole test
WINDOW_S = 600.0
SUPPORTERS = 40
BAD_MESSAGES = 3
SINGLE = "/suppressions/{supporter_id}"


def panel_exprs(title: str) -> list[str]:
    """The queries of the dashboard panel titled ``title``, Grafana variables filled in."""
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (panel,) = [p for p in model["panels"] if p.get("title") == title]
    exprs = [t["expr"] for t in panel["targets"]]
    return [
        e.replace("$__rate_interval", WINDOW).replace("$partner", ".*").replace("${datasource}", "")
        for e in exprs
    ]


def the_events(now: datetime) -> tuple[list[InputEvent], Counter[str]]:
    """The story, four kinds of supporter in turn, and the events by type.

    opted out by phone; asked for time on an upgrade call (DECIDING_IN_OWN_TIME + MIN_GAP);
    opted out, then called anyway by partner P-east (OPTED_OUT + MIN_GAP, a call against a
    suppression); only e-mailed (not suppressed)."""
    events: list[InputEvent] = []
    for i in range(SUPPORTERS):
        sid = f"S-{i:03d}"
        before, at = now - timedelta(minutes=10), now - timedelta(minutes=5)
        kind = i % 4
        if kind == 0:
            events.append(consent(at=at, supporter_id=sid))
        elif kind == 1:
            events.append(call(at=at, outcome="info_requested", supporter_id=sid))
        elif kind == 2:
            events.append(consent(at=before, supporter_id=sid))
            events.append(call(at=at, partner_id="P-east", supporter_id=sid))
        else:
            events.append(email(at=at, supporter_id=sid))
    return events, Counter(e.type for e in events)


def truth_of(events: list[InputEvent], now: datetime) -> dict[str, Any]:
    """What the fleet holds after ``events``, from the pure engine alone."""
    result = run(events)
    by_reason: Counter[str] = Counter()
    suppressed = 0
    for sid, state in result.states.items():
        decision = result.engine.decision(state, sid, now)
        if decision.suppressed:
            suppressed += 1
            by_reason.update(r.code for r in decision.reasons)
    new_reasons: Counter[str] = Counter()  # reasons newly in force, record after record
    previous: dict[str, set[str]] = {}
    for record in result.records:
        assert record.suppressed  # the story lifts nothing
        codes = {r.code for r in record.reasons}
        new_reasons.update(codes - previous.get(record.supporter_id, set()))
        previous[record.supporter_id] = codes
    calls = Counter(
        a.contact.partner_id
        for a in result.alerts
        if a.kind == "call_while_suppressed" and a.contact
    )
    return {
        "suppressed": suppressed,
        "by_reason": dict(by_reason),
        "new_reasons": dict(new_reasons),
        "calls_while_suppressed": dict(calls),
    }


async def scrape(http: httpx.AsyncClient, worker: WorkerProcess) -> str:
    return (await http.get(f"{worker.url}/metrics")).text


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of every sample ``name`` in an exposition text."""
    out = []
    for line in text.splitlines():
        match = re.match(rf"{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            out.append((labels, float(match.group(2))))
    return out


def owned(text: str) -> set[int]:
    return {int(labels["partition"]) for labels, _ in samples(text, "relmon_suppressed_supporters")}


async def settle(http: httpx.AsyncClient, workers: list[WorkerProcess], seconds: float) -> None:
    """Until both workers are ready and split the partitions between them, disjointly."""
    deadline = time.monotonic() + seconds
    parts: list[set[int]] = []
    while time.monotonic() < deadline:
        try:
            ready = [(await http.get(f"{w.url}/readyz")).status_code == 200 for w in workers]
            texts = [await scrape(http, w) for w in workers]
        except httpx.HTTPError:
            ready, texts = [False], []
        parts = [owned(text) for text in texts]
        recovering = [v for t in texts for _, v in samples(t, "relmon_recovery_in_progress")]
        ready.extend(v == 0 for v in recovering)  # the sample timer has seen it too
        split = all(parts) and set().union(*parts) == set(range(PARTITIONS))
        if all(ready) and split and sum(len(p) for p in parts) == PARTITIONS:
            return
        await asyncio.sleep(0.5)
    logs = "\n".join(w.log_tail(20) for w in workers)
    pytest.fail(f"the two workers did not settle on {PARTITIONS} partitions: {parts}\n{logs}")


async def consumed(http: httpx.AsyncClient, workers: list[WorkerProcess]) -> tuple[float, float]:
    """Messages consumed and lag, summed over the workers' own /metrics."""
    total = lag = 0.0
    for worker in workers:
        text = await scrape(http, worker)
        total += sum(v for _, v in samples(text, "relmon_events_consumed_total"))
        lag += sum(v for _, v in samples(text, "relmon_consumer_lag"))
    return total, lag


class Prometheus:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url, self.http = url, http

    async def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        answer = await self.http.get(
            f"{self.url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}
        )
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    async def one(self, expr: str, at: float) -> float:
        result = await self.query(expr, at)
        assert len(result) == 1, (expr, result)
        return result[0][1]

    async def by(self, label: str, expr: str, at: float) -> dict[str, float]:
        return {labels.get(label, ""): v for labels, v in await self.query(expr, at)}


def start_prometheus(
    tmp: Path, workers: list[WorkerProcess]
) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S:g}s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "relmon",
                "static_configs": [{"targets": [f"127.0.0.1:{w.port}" for w in workers]}],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


async def test_dashboard_queries_give_the_true_totals_across_two_workers(
    cluster: Cluster, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    """Two workers each hold part of 40 supporters; Prometheus scrapes both. The dashboard's
    queries, read from relmon.json, give: 2 workers up and none recovering, no lag, the
    suppressed supporters and the count per reason exactly as the pure engine computes them
    from the events; and, within Prometheus's extrapolation, the events consumed, the new
    reasons in force, the dead letters and the dialer API's answers by route and status.
    Then worker 1 leaves: once worker 0 holds every partition the same totals come back, and
    at no scrape on the way is "Suppressed now" above the truth (never double counted)."""
    workers = [cluster.worker(state="w0").start(), cluster.worker(state="w1").start()]
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
    await settle(http, workers, 90)
    prometheus, prom_url = start_prometheus(tmp_path, workers)
    prom = Prometheus(prom_url, http)
    try:
        # Every counter's first sample must be 0 (before any event): wait for the scrapes.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if await prom.query('sum(up{job="relmon"}) == 2', time.time()):
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        else:
            pytest.fail(
                "Prometheus never scraped both workers:\n"
                + (tmp_path / "prometheus.log").read_text()[-1500:]
            )
        first_scraped = time.time()

        now = datetime.now(UTC).replace(microsecond=0)
        events, by_type = the_events(now)
        truth = truth_of(events, now)
        bad = [
            (CALLS, f"S-{i:03d}".encode(), b'{"type": "call_outcome", ')
            for i in range(BAD_MESSAGES)
        ]
        await cluster.produce([json.loads(to_line(e)) for e in events], raw=bad)
        messages = len(events) + BAD_MESSAGES

        # The API: single answers asked of both workers (a supporter owned by the other is
        # forwarded, and counted once), bad ids, and one batch check.
        asked = [f"S-{i:03d}" for i in range(10)]
        for i, sid in enumerate(asked):
            assert (await http.get(f"{workers[i % 2].url}/suppressions/{sid}")).status_code == 200
        for worker in workers:
            assert (await http.get(f"{worker.url}/suppressions/{'x' * 65}")).status_code == 400
        checked = await http.post(
            f"{workers[0].url}/suppressions/check", json={"supporter_ids": asked}
        )
        assert checked.status_code == 200

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            total, lag = await consumed(http, workers)
            if total >= messages and lag == 0:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(f"consumed {total} of {messages} messages, lag {lag}")
        assert total == messages  # nothing consumed twice: the counters' truth holds
        texts = [await scrape(http, w) for w in workers]
        shares = [sum(v for _, v in samples(t, "relmon_suppressed_supporters")) for t in texts]
        assert all(0 < share < truth["suppressed"] for share in shares), shares
        assert sum(shares) == truth["suppressed"]
        await asyncio.sleep(3 * SCRAPE_S)  # both scraped since the last event (and recorded)
        at = time.time()
        # increase() = delta * (S + d) / S, d < 1.1 scrape intervals (see the module's doc)
        slack = 1 + 1.1 * SCRAPE_S / (at - 1.1 * SCRAPE_S - first_scraped)

        def near(value: float, expected: float, what: str) -> None:
            assert expected - 1e-6 <= value <= expected * slack + 1e-6, (what, value, expected)

        # --- Health ---------------------------------------------------------------------
        (up,) = panel_exprs("Workers up")
        assert await prom.one(up, at) == 2
        (recovering,) = panel_exprs("Workers recovering")
        assert await prom.one(recovering, at) == 0
        (lag_expr,) = panel_exprs("Consumer lag")
        assert await prom.one(lag_expr, at) == 0
        (suppressed_now,) = panel_exprs("Suppressed now")
        assert await prom.one(suppressed_now, at) == truth["suppressed"] == 30
        (events_per_s,) = panel_exprs("Events / s")
        near(await prom.one(events_per_s, at) * WINDOW_S, messages, "events")

        # --- Pipeline and decisions ---------------------------------------------------------
        (by_type_result,) = panel_exprs("Events consumed by type and result")
        got = {
            (labels["type"], labels["result"]): v * WINDOW_S
            for labels, v in await prom.query(by_type_result, at)
            if v > 0
        }
        expected = {(t, "ok"): float(n) for t, n in by_type.items()}
        expected[("unknown", "dead_letter")] = BAD_MESSAGES
        assert got.keys() == expected.keys()
        for key, n in expected.items():
            near(got[key], n, str(key))
        (dead,) = panel_exprs("Dead letters by kind")
        dead_by_kind = await prom.by("kind", dead, at)
        near(dead_by_kind.pop("json") * WINDOW_S / 60, BAD_MESSAGES, "dead letters")
        assert set(dead_by_kind.values()) == {0.0}
        (reasons_now,) = panel_exprs("Suppressed supporters by reason")
        now_by_reason = {r: v for r, v in (await prom.by("reason", reasons_now, at)).items() if v}
        assert now_by_reason == truth["by_reason"]
        assert truth["by_reason"] == {"OPTED_OUT": 20, "MIN_GAP": 20, "DECIDING_IN_OWN_TIME": 10}
        (new_reasons,) = panel_exprs("New reasons in force per hour")
        got_new = {r: v for r, v in (await prom.by("reason", new_reasons, at)).items() if v}
        assert got_new.keys() == truth["new_reasons"].keys()
        for reason, n in truth["new_reasons"].items():
            near(got_new[reason], n, reason)

        # --- Dialer API (10 single answers, 2 bad ids, 1 check; forwarded ones once) -------
        (answers,) = panel_exprs("API requests by route and status class")
        got_api = {
            (labels["route"], labels["status_class"]): v * WINDOW_S
            for labels, v in await prom.query(answers, at)
            if v > 0
        }
        expected_api = {
            (SINGLE, "2xx"): 10.0,
            (SINGLE, "4xx"): 2.0,
            ("/suppressions/check", "2xx"): 1.0,
        }
        assert got_api.keys() == expected_api.keys()
        for key, n in expected_api.items():
            near(got_api[key], n, str(key))
        (not_ready,) = panel_exprs("Not ready (503) per route, per minute")
        assert set((await prom.by("route", not_ready, at)).values()) == {0.0}
        latency = panel_exprs("API latency by route")
        for expr in latency:
            routes = await prom.by("route", expr, at)
            assert 0 < routes[SINGLE] < 30, routes

        # Every other query of the dashboard runs and answers (values depend on history).
        model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        for panel in model["panels"]:
            for expr in panel_exprs(panel["title"]) if panel.get("targets") else []:
                await prom.query(expr, at)

        # --- A rebalance: worker 1 leaves, worker 0 takes its partitions over ---------------
        left_at = time.time()
        workers[1].stop()
        await settle(http, workers[:1], 90)
        deadline = time.monotonic() + 60
        held = 0.0
        while time.monotonic() < deadline:  # the taken-over partitions' counts rebuilt
            text = await scrape(http, workers[0])
            held = sum(v for _, v in samples(text, "relmon_suppressed_supporters"))
            if held == truth["suppressed"]:
                break
            await asyncio.sleep(0.5)
        assert held == truth["suppressed"], workers[0].log_tail(30)
        await asyncio.sleep(3 * SCRAPE_S)
        end = time.time()
        assert await prom.one(up, end) == 1
        assert await prom.one(suppressed_now, end) == truth["suppressed"]
        after = {r: v for r, v in (await prom.by("reason", reasons_now, end)).items() if v}
        assert after == truth["by_reason"]
        # never doubled on the way, whichever worker reported which partition at each scrape
        answer = await http.get(
            f"{prom_url}/api/v1/query_range",
            params={"query": suppressed_now, "start": left_at - 2, "end": end, "step": "0.5"},
        )
        (curve,) = answer.json()["data"]["result"]
        assert max(float(v) for _, v in curve["values"]) <= truth["suppressed"]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
