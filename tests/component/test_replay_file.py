"""`relmon replay --input FILE --out DIR` end to end, through the real CLI."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from relmon.cli import main
from relmon.domain import default_policy
from relmon.testing import at, call, consent, donation, email, to_line


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


STORY = [
    donation(at=at(-30), action="started", started=at(-900)),
    call(at=at(0), outcome="info_requested", partner_id="p-a"),
    call(at=at(1), outcome="declined", partner_id="p-b"),
    donation(at=at(5), action="cancelled", started=at(-900)),
    consent(at=at(6), supporter_id="s-0002"),
    email(at=at(40), action="opened", supporter_id="s-0003"),
]


def test_replay_writes_records_alerts_and_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records, alerts and dead letters land in their files; bad lines do not stop the replay."""
    lines = [to_line(e) for e in STORY]
    lines.insert(2, b'{"type": "call_outcome", "event_id": "x"')  # broken JSON
    lines.insert(4, b"")  # a blank line is skipped, not a dead letter
    bad_ts = orjson.loads(lines[0])
    bad_ts["occurred_at"] = "2026-03-01T18:05:00"
    lines.append(orjson.dumps(bad_ts))
    source = _write(tmp_path / "events.jsonl", lines)
    out = tmp_path / "out"

    assert main(["replay", "--input", str(source), "--out", str(out), "--no-progress"]) == 0

    records = _jsonl(out / "suppressions.jsonl")
    alerts = _jsonl(out / "alerts.jsonl")
    dead = _jsonl(out / "dead_letters.jsonl")
    assert [a["kind"] for a in alerts] == ["call_while_suppressed", "churn_after_contact"]
    assert [(r["supporter_id"], [x["code"] for x in r["reasons"]]) for r in records] == [
        ("s-0001", ["DECIDING_IN_OWN_TIME", "MIN_GAP"]),
        ("s-0001", ["DECIDING_IN_OWN_TIME", "MIN_GAP"]),  # MIN_GAP restarted by the day-1 call
        ("s-0002", ["OPTED_OUT"]),
        ("s-0001", ["DECIDING_IN_OWN_TIME"]),  # expiries, emitted as the day-40 event passes them
        ("s-0001", []),
    ]
    min_gap, deciding = records[1]["reasons"][1]["until"], records[1]["reasons"][0]["until"]
    assert [r["decided_at"] for r in records[3:]] == [min_gap, deciding]
    assert [r["cause_event_id"] for r in records[3:]] == [None, None]
    assert records[-1]["suppressed"] is False
    assert [(d["line"], d["kind"], d["field"]) for d in dead] == [
        (3, "json", None),
        (9, "validation", "occurred_at"),
    ]
    assert base64.b64decode(dead[0]["original_base64"]) == lines[2]
    assert dead[1]["error"].startswith("occurred_at: timestamp must have a UTC offset")
    assert all(d["source"] == str(source) and d["partition"] is None for d in dead)
    version = default_policy().version
    assert {r["policy_version"] for r in [*records, *alerts, *dead]} == {version}
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["lines"] == 9
    assert (summary["valid"], summary["dead_letters"], summary["blank"]) == (6, 2, 1)
    assert (summary["records"], summary["alerts"]) == (5, 2)
    printed = capsys.readouterr().out
    assert "9 lines read" in printed
    assert "2 dead letters" in printed
    assert "events/s" in printed


def test_two_replays_are_byte_identical(tmp_path: Path) -> None:
    """The same input and policy give byte-identical output files."""
    source = _write(tmp_path / "events.jsonl", [to_line(e) for e in STORY] + [b"nope"])
    for name in ("a", "b"):
        assert (
            main(["replay", "--input", str(source), "--out", str(tmp_path / name), "--no-progress"])
            == 0
        )
    for filename in ("suppressions.jsonl", "alerts.jsonl", "dead_letters.jsonl", "summary.json"):
        first, second = (
            (tmp_path / "a" / filename).read_bytes(),
            (tmp_path / "b" / filename).read_bytes(),
        )
        assert first == second
        assert first


def test_missing_and_empty_inputs_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing or empty input file exits 1 with a message naming it."""
    missing = tmp_path / "missing.jsonl"
    assert main(["replay", "--input", str(missing), "--out", str(tmp_path / "o")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err
    empty = _write(tmp_path / "empty.jsonl", [])
    assert main(["replay", "--input", str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "empty" in capsys.readouterr().err


def test_a_bad_policy_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--policy with an invalid file exits 1 naming the problem."""
    source = _write(tmp_path / "events.jsonl", [to_line(STORY[0])])
    policy = tmp_path / "p.toml"
    policy.write_text('version = "x"\n')
    assert (
        main(
            [
                "replay",
                "--input",
                str(source),
                "--out",
                str(tmp_path / "o"),
                "--policy",
                str(policy),
            ]
        )
        == 1
    )
    assert "loyalty: missing" in capsys.readouterr().err


def test_the_installed_command_runs_in_a_subprocess(tmp_path: Path) -> None:
    """The installed `relmon` console script runs replay as a separate process and reports."""
    command = Path(sys.executable).parent / "relmon"
    assert command.is_file(), f"console script not installed next to {sys.executable}"
    source = _write(tmp_path / "events.jsonl", [to_line(e) for e in STORY])
    out = tmp_path / "out"
    done = subprocess.run(
        [str(command), "replay", "--input", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "6 lines read" in done.stdout
    assert "replay" not in done.stderr  # no progress bar when stderr is not a terminal
    assert len(_jsonl(out / "alerts.jsonl")) == 2
