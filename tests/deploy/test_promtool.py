"""The alert rules, their promtool unit tests, runbooks, and the dashboard's PromQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from relmon.observability.metrics import RelmonMetrics, SuppressionsCollector
from tests.deploy import DASHBOARD, DEFAULT_RUNBOOK_BASE_URL, MONITORING, RULES_FILE, require_tool

PROMTOOL_HINT = "apt-get install prometheus"
METRIC_NAME = re.compile(r"\b(relmon_[a-z0-9_]+|[a-z]+:relmon_[a-z0-9_:]+)\b")
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_tool("promtool", PROMTOOL_HINT)
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, timeout=300)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def exported_names() -> set[str]:
    """Every sample name relmon exports, read from a live registry of metrics.py."""
    registry = CollectorRegistry()
    RelmonMetrics(registry).http.known_route("GET", "/suppressions/{supporter_id}")
    registry.register(SuppressionsCollector(dict, lambda: [0]))
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_exprs() -> list[str]:
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in model["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def test_rules_file_passes_promtool_check() -> None:
    """`promtool check rules` accepts the rules file."""
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """Every promtool unit test under deploy/monitoring/tests passes."""
    files = sorted(str(p) for p in (MONITORING / "tests").glob("*.yml"))
    assert files, "no promtool tests found"
    result = promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_on_both_sides_of_its_for_window() -> None:
    """Each alert has a for:, a test where it has not fired yet and one where it fires."""
    silent: set[str] = set()
    firing: set[str] = set()
    for path in (MONITORING / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("for"), f"{name} has no for: window"
        assert name in silent, f"{name}: no test shows it not yet firing"
        assert name in firing, f"{name}: no test shows it firing"


def test_every_alert_has_a_runbook_section_and_severity() -> None:
    """runbook_url is the repository-relative runbooks.md (build.py puts the configured base
    in its place) and its anchor is a heading of runbooks.md."""
    headings = {
        line[3:].strip().lower()
        for line in (MONITORING / "runbooks.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        url = alert["annotations"]["runbook_url"]
        assert url == f"{DEFAULT_RUNBOOK_BASE_URL}#{name.lower()}", url
        assert name.lower() in headings, f"runbooks.md has no section '## {name}'"
        assert alert["annotations"].get("summary"), name


def test_the_required_alerts_exist() -> None:
    """The issue's alerts are all there, including relmon down through absent(up)."""
    by_name = {a["alert"]: a for a in alerts()}
    for name in (
        "RelmonChurnAfterContactHigh",
        "RelmonCallsWhileSuppressed",
        "RelmonComplaintsSpike",
        "RelmonDeadLettersGrowing",
        "RelmonConsumerLagHigh",
        "RelmonDown",
        "RelmonInputSilent",
        "RelmonApiErrors",
    ):
        assert name in by_name
    assert by_name["RelmonDown"]["expr"].replace(" ", "") == 'absent(up{job="relmon"}==1)'


@pytest.mark.parametrize(
    ("source", "exprs"),
    [("rules", [r["expr"] for r in rules()]), ("dashboard", dashboard_exprs())],
    ids=["rules", "dashboard"],
)
def test_queries_use_only_metrics_relmon_exports(source: str, exprs: list[str]) -> None:
    """Every relmon_* name in the rules and dashboard is exported by metrics.py or recorded."""
    known = exported_names() | {r["record"] for r in rules() if "record" in r}
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, f"no relmon metric found in the {source}"
    assert used <= known, f"{source} uses undeclared metrics: {sorted(used - known)}"


def test_dashboard_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Every dashboard query, Grafana variables filled in, is valid PromQL for promtool."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 10

    def fill(expr: str) -> str:
        # $__rate_interval and friends are durations; dashboard variables are regex matchers.
        return GRAFANA_VARIABLE.sub(lambda m: "5m" if m.group(1).startswith("__") else ".*", expr)

    group = {
        "name": "dashboard-queries",
        "rules": [
            {"record": f"dashboard:query_{i}", "expr": fill(expr)} for i, expr in enumerate(exprs)
        ],
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_template_parses() -> None:
    """The scrape config template for a local Prometheus passes `promtool check config`."""
    result = promtool("check", "config", "--syntax-only", str(MONITORING / "prometheus-test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
