"""A real Prometheus scrapes a running worker and fires relmon's alerts from its rules file."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import Cluster, free_port
from .test_worker import tell_story

RULES = (
    Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "rules" / "relmon-alerts.yml"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def fast_rules(target: Path) -> None:
    """The production rules with every `for:` shortened to 1s, so the test need not wait."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    target.write_text(yaml.safe_dump(doc))


async def instant(client: httpx.AsyncClient, url: str, query: str) -> list[float]:
    """The values of an instant query (empty while Prometheus is not up or has no data)."""
    try:
        answer = await client.get(f"{url}/api/v1/query", params={"query": query})
    except httpx.HTTPError:
        return []
    return [float(r["value"][1]) for r in answer.json()["data"]["result"]]


async def until(probe: Any, done: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done(await probe()):
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"Prometheus did not reach the expected state within {seconds}s")


async def firing(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(f"{url}/api/v1/alerts")
    alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return [a for a in alerts if a["state"] == "firing"]


async def test_prometheus_fires_churn_and_suppressed_call_alerts_for_a_partner(
    cluster: Cluster, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    """Six loyal donors chased by partner P-south and cancelling make Prometheus, scraping the
    worker every second with relmon's own alert rules, fire RelmonChurnAfterContactHigh and
    RelmonCallsWhileSuppressed for P-south, read back through Prometheus's HTTP API."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    worker = cluster.worker().start()
    await asyncio.to_thread(worker.wait_ready)
    fast_rules(tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "relmon",
                        "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    prom_url = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(  # noqa: ASYNC220 - starting a server, not waiting on it
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # One story first, and the burst only once Prometheus has scraped its counters:
        # increase() counts from the first scraped sample, and Prometheus's first scrape comes
        # a few seconds after start-up.
        await tell_story(cluster, "S-live-0")
        counter = 'relmon_churn_after_contact_alerts_total{partner="P-south",purpose="upgrade"}'
        await until(lambda: instant(http, prom_url, counter), lambda v: v == [1.0], 60)
        for i in range(1, 7):
            await tell_story(cluster, f"S-live-{i}")
        deadline = time.monotonic() + 60
        names: set[tuple[str, str]] = set()
        wanted = {
            ("RelmonChurnAfterContactHigh", "P-south"),
            ("RelmonCallsWhileSuppressed", "P-south"),
        }
        while time.monotonic() < deadline and not wanted <= names:
            await asyncio.sleep(1)
            try:
                alerts = await firing(http, prom_url)
            except httpx.HTTPError:
                continue
            names = {(a["labels"]["alertname"], a["labels"].get("partner", "")) for a in alerts}
        if not wanted <= names:
            seen = {}
            for query in (
                "up",
                "relmon_calls_while_suppressed_total",
                "partner:relmon_churn_after_contact_alerts:increase1d",
            ):
                answer = await http.get(f"{prom_url}/api/v1/query", params={"query": query})
                seen[query] = answer.json()["data"]["result"]
            log_tail = (tmp_path / "prometheus.log").read_text(errors="replace")[-1500:]
            pytest.fail(f"firing: {names}\nqueries: {seen}\nprometheus log:\n{log_tail}")
        churn = next(a for a in alerts if a["labels"]["alertname"] == "RelmonChurnAfterContactHigh")
        assert churn["annotations"]["runbook_url"].endswith("#relmonchurnaftercontacthigh")
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
