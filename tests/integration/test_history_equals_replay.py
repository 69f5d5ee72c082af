"""Loading history with `relmon backfill` gives the live worker the replay's answers.

A simulated stretch of 120 days (longer than anything the engine's state keeps) is split into
one export per event type, as a CRM would hand it over, and loaded into a running worker with
`relmon backfill`. Loaded topic by topic, the worker would judge calls and e-mails against
supporters' later events and drop them as late; through the history topic each supporter's
events arrive in event time, so the worker must raise exactly the replay's alerts, reach the
replay's decisions and count no late event. The worker's expiry timer runs every second
meanwhile: it must hold off while history is applied, or its lifts would move supporters'
clocks ahead of the history still to come.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from relmon.topics import ALERTS, SUPPRESSIONS

from .conftest import Cluster
from .test_live_equals_replay import _key, _last_per_supporter, _ts, _wait_consumed

SUPPORTERS, DAYS, SEED = 150, 120, 20261130


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "relmon.cli", *args], check=True, capture_output=True, timeout=300
    )


def _exports(tmp: Path) -> tuple[list[bytes], list[Path]]:
    """A simulated period ending 5 days ago, and one export file per event type."""
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 5)
    whole = tmp / "events.jsonl"
    _cli(
        *("simulate", "--supporters", str(SUPPORTERS), "--days", str(DAYS)),
        *("--seed", str(SEED), "--start", start.isoformat(), "--out", str(whole)),
    )
    lines = whole.read_bytes().splitlines()
    by_type: dict[str, list[bytes]] = {}
    for line in lines:
        by_type.setdefault(orjson.loads(line)["type"], []).append(line)
    files = []
    for event_type, rows in sorted(by_type.items()):
        path = tmp / f"{event_type}.jsonl"
        path.write_bytes(b"\n".join(rows) + b"\n")
        files.append(path)
    return lines, files


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_backfilled_history_gives_the_live_worker_the_replays_answers(
    cluster: Cluster, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Per-type exports backfilled into a running worker (expiry timer on) give the same alert
    ids and final decisions as `relmon replay` of the same files, and no late event."""
    lines, files = await asyncio.to_thread(_exports, tmp_path)
    inputs = [arg for path in files for arg in ("--input", str(path))]
    out = tmp_path / "replay"
    await asyncio.to_thread(_cli, "replay", *inputs, "--out", str(out))
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["late"] == 0
    replay_records = [
        orjson.loads(x) for x in (out / "suppressions.jsonl").read_bytes().splitlines()
    ]
    replay_alerts = {
        orjson.loads(x)["alert_id"] for x in (out / "alerts.jsonl").read_bytes().splitlines()
    }
    assert replay_alerts, "the simulated history should raise alerts"

    worker = cluster.worker(RELMON_EXPIRY_INTERVAL_S="1").start()
    await asyncio.to_thread(worker.wait_ready)
    await asyncio.to_thread(
        _cli, "backfill", *inputs, "--bootstrap", cluster.bootstrap, "--prefix", cluster.prefix
    )
    await _wait_consumed(http, worker.url, len(lines))
    await asyncio.sleep(2)  # the metric counts a message just before its outputs are sent

    metrics = (await http.get(f"{worker.url}/metrics")).text
    assert _metric(metrics, "relmon_events_consumed_total", result="late") == 0
    assert _metric(metrics, "relmon_events_consumed_total", result="dead_letter") == 0
    live_alerts = {a["alert_id"] for a in await cluster.read(ALERTS, at_least=len(replay_alerts))}
    assert live_alerts == replay_alerts

    last_at: dict[str, int] = {}
    for line in lines:
        event: dict[str, Any] = orjson.loads(line)
        t = _ts(event["occurred_at"])
        last_at[event["supporter_id"]] = max(t, last_at.get(event["supporter_id"], t))
    live_records = await cluster.read(
        SUPPRESSIONS, at_least=len(_last_per_supporter(replay_records))
    )
    live_last = _last_per_supporter(
        r for r in live_records if _ts(r["decided_at"]) <= last_at[r["supporter_id"]]
    )
    replay_last = _last_per_supporter(
        r for r in replay_records if _ts(r["decided_at"]) <= last_at[r["supporter_id"]]
    )
    assert set(live_last) == set(replay_last)
    differing = [sid for sid in live_last if _key(live_last[sid]) != _key(replay_last[sid])]
    assert not differing, [(live_last[s], replay_last[s]) for s in differing[:3]]
