"""Outputs are never lost: `replay --out` refuses a folder with files unless --force, a
timeline's page is named after its supporter and goes inside a folder given as --out, and a
spreadsheet export is refused as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from relmon.cli import main
from relmon.testing import at, call, donation, to_line

LOYAL = at(-900)
STORY = [
    donation(at=at(-30), action="started", started=LOYAL),
    call(at=at(0), outcome="info_requested", partner_id="p-a"),
    call(at=at(1), outcome="declined", partner_id="p-b"),
    donation(at=at(5), action="cancelled", started=LOYAL),
]


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_line(e) + b"\n" for e in STORY))
    return path


def _replay(*args: str) -> int:
    return main(["replay", *args, "--no-progress"])


def test_replay_refuses_a_folder_that_holds_files_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second replay into the same folder exits 1 naming what is there and --force, and
    leaves the first outputs as they were; with --force it writes."""
    source, out = _events(tmp_path), tmp_path / "a" / "b" / "out"
    assert _replay("--input", str(source), "--out", str(out)) == 0  # parents created
    alerts = out / "alerts.jsonl"
    alerts.write_text("kept\n")
    capsys.readouterr()
    assert _replay("--input", str(source), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert f"--out {out} is not empty (alerts.jsonl" in err
    assert "--force" in err
    assert alerts.read_text() == "kept\n"
    assert _replay("--input", str(source), "--out", str(out), "--force") == 0
    assert alerts.read_text() != "kept\n"


def test_replay_into_an_empty_folder_or_onto_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing empty folder is fine; a file given as --out is a clear error."""
    source = _events(tmp_path)
    (tmp_path / "empty").mkdir()
    assert _replay("--input", str(source), "--out", str(tmp_path / "empty")) == 0
    assert _replay("--input", str(source), "--out", str(source)) == 1
    assert "is a file; give a folder" in capsys.readouterr().err


def test_timeline_pages_are_named_after_the_supporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out the page is timeline-<id>.html here; a folder as --out gets that file
    inside it; a file in missing folders has them created."""
    source = _events(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["timeline", "s-0001", "--input", str(source)]) == 0
    assert "Timeline of supporter s-0001" in (tmp_path / "timeline-s-0001.html").read_text()
    (tmp_path / "pages").mkdir()
    assert main(["timeline", "s-0001", "--input", str(source), "--out", "pages"]) == 0
    assert (tmp_path / "pages" / "timeline-s-0001.html").is_file()
    assert main(["timeline", "s-0001", "--input", str(source), "--out", "new/"]) == 0
    assert (tmp_path / "new" / "timeline-s-0001.html").is_file()
    assert main(["timeline", "s-0001", "--input", str(source), "--out", "x/y/t.html"]) == 0
    assert (tmp_path / "x" / "y" / "t.html").is_file()
    assert "relmon timeline: written to x/y/t.html" in capsys.readouterr().err


def test_timeline_that_cannot_write_prints_nothing_but_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the page cannot be written (its parent is a file), the command exits 1 with the
    reason before printing the table, so nothing looks done that was not."""
    source = _events(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["timeline", "s-0001", "--input", str(source), "--out", f"{blocker}/t.html"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot write --out {blocker}/t.html" in captured.err


@pytest.mark.parametrize(
    ("text", "kind"), [("a,b,c\n1,2,3\n", "CSV"), ("a;b\n1;2\n", "CSV"), ("a\tb\n1\t2\n", "TSV")]
)
def test_a_spreadsheet_export_is_refused_as_not_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, kind: str
) -> None:
    """A CSV or TSV input gets a message that says so and what is expected, instead of a
    JSON parser's complaint about line 1."""
    path = tmp_path / "export.csv"
    path.write_text(text)
    assert _replay("--input", str(path), "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert f"looks like {kind}" in err
    assert "expected one JSON object a line" in err
    assert "not valid JSON" not in err
