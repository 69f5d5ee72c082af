"""``relmon replay --jobs N``: the replay split by supporter over N processes
(:mod:`relmon.replay.sharded`). That its files equal the one-process replay's, byte for
byte, is checked in ``test_replay_chunks.py`` (and by the golden tests, which run the CLI
with its default); here: which process a line goes to, and what the user sees when a
worker fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn
from zlib import crc32

import pytest

from relmon.cli import main
from relmon.domain.decoding import shard_of
from relmon.errors import InputFileError
from relmon.replay import sharded
from relmon.testing import at, call, email, to_line


def _shard(sid: str, shards: int) -> int:
    return crc32(sid.encode("utf-8")) % shards


def test_a_valid_events_process_depends_only_on_its_supporter_however_it_is_written() -> None:
    """Every way of writing a valid event's supporter id gives the shard of the decoded id:
    read from the bytes when exact, else decoded (escapes, spaces around the colon, the key
    twice: the last counts, as for the decoder). A line that is not an event goes to 0."""
    line = to_line(email(at=at(0), supporter_id="sé-1"))
    assert b'"supporter_id":"s\xc3\xa9-1"' in line  # the fast form, read from the bytes
    variants = [
        line,
        line.replace(b'"supporter_id":"s\xc3\xa9-1"', b'"supporter_id":"s\\u00e9-1"'),
        line.replace(b'"supporter_id":"', b'"supporter_id" : "'),
        line.replace(b"{", b'{"supporter_id":"other",', 1),  # the later one counts
        line.replace(b"{", b'{"x\\"supporter_id":"other",', 1),  # a key that ends alike
    ]
    for shards in (2, 3, 5):
        assert [shard_of(v, shards) for v in variants] == [_shard("sé-1", shards)] * 5
    assert {shard_of(b"not json", n) for n in (2, 3)} == {0}
    assert shard_of(b"", 3) == 0  # a blank line: counted once, by shard 0
    assert shard_of(line, 1) == 0
    sids = [f"s-{i}" for i in range(200)]
    lines = [to_line(call(at=at(i), supporter_id=sid)) for i, sid in enumerate(sids)]
    counts = [sum(shard_of(x, 2) == k for x in lines) for k in (0, 1)]
    assert min(counts) > 60  # both processes get a share


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [to_line(call(at=at(i), supporter_id=f"s-{i % 7}")) for i in range(50)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_an_error_in_a_worker_stops_the_replay_with_its_message(
    events: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker's exception reaches the user as its own error (exit 1), and no output file
    is written from the parts that did finish."""

    def fail(self: object, merge: object) -> NoReturn:
        raise InputFileError(f"{events}: read failed: Input/output error")

    monkeypatch.setattr(sharded._Worker, "_replay", fail)
    out = tmp_path / "out"
    args = ["replay", "--input", str(events), "--out", str(out), "--jobs", "2", "--no-progress"]
    assert main(args) == 1
    assert f"{events}: read failed: Input/output error" in capsys.readouterr().err
    assert not (out / "suppressions.jsonl").exists()
    assert not list(out.iterdir())  # the workers' spools are gone too


def test_a_worker_that_dies_is_named_and_nothing_is_written(
    events: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker killed mid-way (here it exits at once, as after kill -9 or the OOM killer)
    is reported with what to do; the others are stopped, nothing is written."""
    replay = sharded._Worker._replay

    def die_in_shard_1(self: sharded._Worker, merge: object) -> None:
        if self.shard == 1:
            os._exit(9)
        replay(self, merge)  # type: ignore[arg-type]

    monkeypatch.setattr(sharded._Worker, "_replay", die_in_shard_1)
    out = tmp_path / "out"
    args = ["replay", "--input", str(events), "--out", str(out), "--jobs", "3", "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "replay worker 1 of --jobs ended without finishing" in err
    assert "--jobs 1" in err
    assert not list(out.iterdir())


def test_the_output_folder_holds_the_outputs_only(events: Path, tmp_path: Path) -> None:
    """The workers' spools live in a hidden folder of the output folder, removed at the
    end; the replay writes the same five files as one process."""
    out = tmp_path / "out"
    args = ["replay", "--input", str(events), "--out", str(out), "--jobs", "2", "--no-progress"]
    assert main(args) == 0
    names = {"suppressions.jsonl", "alerts.jsonl", "dead_letters.jsonl", "summary.json"}
    assert {p.name for p in out.iterdir()} == {*names, "report.html"}


@pytest.mark.parametrize(("value", "message"), [("0", "out of range"), ("two", "whole number")])
def test_a_bad_jobs_value_is_refused(
    value: str, message: str, events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["replay", "--input", str(events), "--out", str(tmp_path / "o"), "--jobs", value]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_default_is_the_cpus_available_at_most_four(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, jobs in ((1, 1), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert sharded.default_jobs() == jobs


def test_without_fork_the_default_is_one_process_and_more_is_refused(
    events: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Where worker processes cannot be forked (Windows), the default is --jobs 1, and
    asking for more says so instead of failing in the middle."""
    monkeypatch.setattr(sharded.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert sharded.default_jobs() == 1
    args = ["replay", "--input", str(events), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 1
    assert "cannot fork worker processes; use --jobs 1" in capsys.readouterr().err
