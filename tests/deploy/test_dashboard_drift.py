"""The committed Grafana dashboard is exactly what its generator produces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.deploy import DASHBOARD, MONITORING, RUNBOOK_BASE_URL

GENERATOR = MONITORING / "dashboards" / "generate.py"


def test_committed_dashboard_matches_the_generator(tmp_path: Path) -> None:
    """Regenerating relmon.json gives the committed file byte for byte (run `make dashboards`)."""
    out = tmp_path / "relmon.json"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, timeout=120)
    assert out.read_text(encoding="utf-8") == DASHBOARD.read_text(encoding="utf-8"), (
        "deploy/monitoring/dashboards/relmon.json is stale: run `make dashboards` and commit it"
    )


def test_check_mode_reports_a_stale_dashboard(tmp_path: Path) -> None:
    """`generate.py --check` exits non-zero when the file differs from the generated one."""
    stale = tmp_path / "relmon.json"
    stale.write_text("{}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(stale)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_dashboard_identity_and_runbook_link() -> None:
    """The dashboard keeps its uid and stable panel ids, picks Prometheus, links the runbooks."""
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert model["uid"] == "relmon-overview"
    assert model["links"][0]["url"] == RUNBOOK_BASE_URL
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in model["panels"]]
    assert ids == list(range(1, len(ids) + 1))
