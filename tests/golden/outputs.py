"""What the golden tests compare: every output of ``relmon replay`` and ``relmon timeline``.

:func:`outputs` replays one golden case with the real CLI (``relmon replay --out``) in a
temporary directory and returns, per output, a digest and a short readable excerpt:

* ``suppressions.jsonl``, ``alerts.jsonl``, ``dead_letters.jsonl``, ``summary.json``: the
  files as written, byte for byte (sha256, line count, first lines);
* ``report-data``: the numbers the report plots, as :class:`~relmon.replay.report.Analysis`
  computes them (rates, baseline, reasons started and in force, suppressed-by-reason series,
  alert kinds). The HTML itself is not compared: its rendering (wording, colours) is not the
  engine's business and changes on its own;
* ``timeline <id>``: ``relmon timeline``'s text table for a few supporters of the case;
* ``arrival-order``: the live worker's per-message path (:class:`Processor`) over the lines
  in file order, not sorted: late events, duplicates and out-of-order arrivals as the worker
  meets them; states go through their serialized form every 200 messages and expiries are
  ticked at the latest event time seen. Every message sent (topic kind, key, value) in order.

``python -m tests.golden.regen`` writes ``expected/<case>.json`` from the code in the working
tree; only do that for a change of output that is intended, and say why in the commit.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

import relmon.replay.report as report
from relmon.cli import main
from relmon.domain import Engine, default_policy
from relmon.domain.rules import utc
from relmon.replay.timeline import build, events_from_file, text_table
from relmon.streaming.processor import Processor

HERE = Path(__file__).parent
INPUTS = HERE / "inputs"
EXPECTED = HERE / "expected"

# case name -> input files (replayed together, merged in event time)
CASES: dict[str, list[str]] = {
    "sim-year": ["sim-year.jsonl.gz"],
    "bench-mix": ["bench-mix.jsonl.gz"],
    "shuffled-dups": ["shuffled-dups-a.jsonl.gz", "shuffled-dups-b.jsonl.gz"],
    "adversarial": ["adversarial.jsonl"],
}
FILES = ("suppressions.jsonl", "alerts.jsonl", "dead_letters.jsonl", "summary.json")
HEAD = 3


def digest(data: bytes) -> dict[str, Any]:
    lines = data.splitlines()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "lines": len(lines),
        "head": [line.decode("utf-8", "replace")[:400] for line in lines[:HEAD]],
    }


def _unpack(case: str, folder: Path) -> list[str]:
    names = []
    for name in CASES[case]:
        data = (INPUTS / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
            name = name.removesuffix(".gz")
        (folder / name).write_bytes(data)
        names.append(name)
    return names


@contextmanager
def _capture_analysis(into: list[report.Analysis]) -> Iterator[None]:
    original = report.write_report

    def keep(path: Path, meta: Any, analysis: report.Analysis, extra: Any = ()) -> None:
        into.append(analysis)
        original(path, meta, analysis, extra)

    report.write_report = keep  # type: ignore[assignment]
    try:
        yield
    finally:
        report.write_report = original  # type: ignore[assignment]


def report_data(a: report.Analysis) -> dict[str, Any]:
    ex = a.excess_churn()
    days, series = a.suppression_days()
    return {
        "types": dict(sorted(a.types.items())),
        "period": a.period,
        "excess_churn": {
            "window_days": ex.window_days,
            "baseline": list(ex.baseline),
            "contacted": list(ex.contacted),
            "by": {dim: [list(r) for r in rows] for dim, rows in sorted(ex.by.items())},
        },
        "started": dict(sorted(a.started.items())),
        "days_in_force": dict(sorted(a.days_in_force.items())),
        "alert_kinds": dict(sorted(a.alert_kinds.items())),
        "cws": sorted([*k, v] for k, v in a.cws.items()),
        "suppression_days": {
            "days": [days[0], days[-1]] if days else [],
            "series_sha256": hashlib.sha256(orjson.dumps(series)).hexdigest(),
        },
    }


def outputs(case: str, folder: Path, timeline_ids: list[str] | None = None) -> dict[str, Any]:
    """Replay ``case`` in ``folder`` (the current directory must be ``folder``: the input
    names in the dead letters are relative) and describe every output."""
    names = _unpack(case, folder)
    args = ["replay", "--out", "out", "--no-progress"]
    for name in names:
        args += ["--input", name]
    analyses: list[report.Analysis] = []
    with _capture_analysis(analyses):
        assert main(args) == 0
    out: dict[str, Any] = {}
    for name in FILES:
        out[name] = digest((folder / "out" / name).read_bytes())
    data = report_data(analyses[0])
    out["report-data"] = {"sha256": hashlib.sha256(orjson.dumps(data)).hexdigest(), **data}
    if timeline_ids is None:
        timeline_ids = pick_supporters(folder / "out")
    policy = default_policy()
    for sid in timeline_ids:
        events, end = events_from_file(folder / names[0], sid)
        table = text_table(build(events, sid, policy, end, names[0]))
        out[f"timeline {sid}"] = digest(table.encode())
    out["timeline_ids"] = timeline_ids
    out["arrival-order"] = digest(arrival_order([folder / n for n in names]))
    return out


def arrival_order(paths: list[Path]) -> bytes:
    """Every message the worker's processor sends for the lines of ``paths`` in file order."""
    store: dict[str, bytes] = {}
    proc = Processor(Engine(default_policy()), store, partitions=1)
    sent: list[bytes] = []
    latest = 0
    offset = 0

    def keep(emits: Any) -> None:
        for e in emits:
            sent.append(orjson.dumps([e.output, e.key, e.value.decode()], default=bytes.decode))

    for path in paths:
        for line in path.read_bytes().splitlines():
            try:
                doc = orjson.loads(line)
                key = doc["supporter_id"].encode()
            except Exception:  # noqa: BLE001  # not an event: the processor dead-letters it
                key = None
            result = proc.handle("relmon.in", 0, offset, key, line)
            keep(result.emits)
            if result.event is not None:
                latest = max(latest, int(result.event.occurred_at.timestamp()))
            offset += 1
            if offset % 200 == 0:
                store.update({s: st.to_bytes() for s, st in proc.take_dirty().items()})
                keep(proc.expire(0, utc(latest)))
    keep(proc.expire(0, utc(latest)))
    return b"\n".join(sent) + b"\n"


def pick_supporters(out: Path) -> list[str]:
    """Up to three supporters of the first input with records and alerts (for new cases)."""
    counts: dict[str, int] = {}
    for line in (out / "suppressions.jsonl").read_bytes().splitlines():
        sid = orjson.loads(line)["supporter_id"]
        counts[sid] = counts.get(sid, 0) + 1
    alerts = (out / "alerts.jsonl").read_bytes().splitlines()
    alerted = [orjson.loads(line)["supporter_id"] for line in alerts]
    busiest = sorted(counts, key=lambda s: (-counts[s], s))
    return busiest[:2] + [s for s in alerted if s not in busiest[:2]][:1]
