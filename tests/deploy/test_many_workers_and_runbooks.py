"""Queries stay right with many workers; the runbook links follow the configured base."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy import DASHBOARD, K8S, MONITORING, ROOT, RULES_FILE

# Gauges each worker exports only for the partitions it owns (relmon.observability.metrics):
# a fleet total is a sum over workers of the max per partition, never a max across workers.
PER_PARTITION_GAUGES = (
    "relmon_suppressions",
    "relmon_suppressed_supporters",
    "relmon_consumer_lag",
)
SOURCES = {
    "dashboard": lambda: [
        t["expr"]
        for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
        for t in panel.get("targets", [])
        if t.get("expr")
    ],
    "rules": lambda: [
        r["expr"]
        for g in yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
    ],
    "keda": lambda: [
        doc["spec"]["triggers"][0]["metadata"]["query"]
        for doc in yaml.safe_load_all((K8S / "base" / "scaledobject.yaml").read_text())
        if doc
    ],
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_per_partition_gauges_are_deduplicated_per_partition_then_summed(source: str) -> None:
    """Every query on a per-partition gauge takes ``max by (..., partition, ...)`` of the raw
    gauge and sums that; none takes a max (or min, avg) across workers of the raw gauge."""
    checked = 0
    for expr in SOURCES[source]():
        flat = " ".join(expr.split())
        for gauge in PER_PARTITION_GAUGES:
            if not re.search(rf"\b{gauge}\b", flat):
                continue
            checked += 1
            dedupe = rf"max by \(([^)]*)\) \({gauge}\{{"
            found = re.findall(dedupe, flat)
            assert found, f"{source}: {gauge} not taken as max by partition in: {flat}"
            assert all("partition" in labels for labels in found), flat
            assert flat.startswith("sum"), f"{source}: the per-partition maxima not summed: {flat}"
            assert len(re.findall(rf"\b{gauge}\b", flat)) == len(found), flat
    assert checked, f"no query of {source} reads a per-partition gauge"


def run(args: list[str], base: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RELMON_RUNBOOK_BASE_URL"}
    if base is not None:
        env["RELMON_RUNBOOK_BASE_URL"] = base
    subprocess.run([sys.executable, *args], env=env, check=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (None, "deploy/monitoring/runbooks.md"),
        (
            "https://wiki.example.org/ops/relmon/runbooks/",
            "https://wiki.example.org/ops/relmon/runbooks",
        ),
    ],
    ids=["default", "configured"],
)
def test_runbook_links_follow_the_configured_base(
    tmp_path: Path, base: str | None, expected: str
) -> None:
    """With RELMON_RUNBOOK_BASE_URL unset every runbook link is the repository-relative
    runbooks.md; set, every alert's runbook_url and the dashboard's link use it (a trailing
    slash dropped), anchored on the alert's name."""
    rules_out = tmp_path / "rules.yml"
    dashboard_out = tmp_path / "relmon.json"
    run([str(K8S / "build.py"), "--rules-out", str(rules_out)], base)
    run([str(MONITORING / "dashboards" / "generate.py"), "--out", str(dashboard_out)], base)
    alerts = [
        r
        for g in yaml.safe_load(rules_out.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    assert len(alerts) >= 10
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{expected}#{alert['alert'].lower()}"
    assert json.loads(dashboard_out.read_text(encoding="utf-8"))["links"][0]["url"] == expected


def test_no_placeholder_repository_is_left() -> None:
    """No runbook link points at the placeholder repository github.com/relmon/relmon."""
    for path in [*(ROOT / "deploy").rglob("*"), ROOT / "docs" / "operations.md"]:
        if path.is_file() and path.suffix in {".yml", ".yaml", ".json", ".md", ".py"}:
            assert "github.com/relmon/relmon" not in path.read_text(encoding="utf-8"), path
