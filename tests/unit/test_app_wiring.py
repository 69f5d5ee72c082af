"""How the Faust app is wired from the settings (no broker: nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relmon.domain import load_policy
from relmon.settings import Settings
from relmon.streaming.app import build_worker


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - the default
def test_the_web_server_listens_on_relmon_web_host(host: str, tmp_path: Path) -> None:
    """RELMON_WEB_HOST is the interface the API listens on: Faust binds to ``web_bind``
    (default every interface), which ``web_host`` alone does not set."""
    worker = build_worker(Settings(web_host=host, state_dir=tmp_path), load_policy())
    assert worker.app.conf.web_bind == host
