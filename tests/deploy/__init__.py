"""Deploy checks: alert rules and promtool tests, the dashboard, the Kubernetes manifests.

They need ``promtool`` (Debian's ``prometheus`` package) and ``kubectl`` (kustomize built in).
Locally a missing tool skips with the reason; under ``CI=true`` it fails: CI must not go green
on checks it did not run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES_FILE = MONITORING / "rules" / "relmon-alerts.yml"
DASHBOARD = MONITORING / "dashboards" / "relmon.json"
K8S = ROOT / "deploy" / "k8s"
DEFAULT_RUNBOOK_BASE_URL = "deploy/monitoring/runbooks.md"  # what the rules file carries
# what generate.py and build.py put in the committed outputs (a fork may set its own)
RUNBOOK_BASE_URL = (
    os.environ.get("RELMON_RUNBOOK_BASE_URL", "").strip().rstrip("/#") or DEFAULT_RUNBOOK_BASE_URL
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; skip (locally) or fail (under CI=true) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH ({install_hint})"
        if IN_CI:
            pytest.fail(f"{message}: required under CI=true", pytrace=False)
        pytest.skip(message)
    return path
