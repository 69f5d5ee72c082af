"""`relmon replay` reports and what-if, `relmon timeline`, and their errors, via the CLI."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from relmon.cli import main
from relmon.domain import default_policy
from relmon.testing import at, call, consent, donation, email, to_line

LOYAL = at(-900)
STORY = [
    donation(at=at(-30), action="started", started=LOYAL),
    call(at=at(0), outcome="info_requested", partner_id="p-a"),
    call(at=at(1), outcome="declined", partner_id="p-b"),
    donation(at=at(5), action="cancelled", started=LOYAL),
    consent(at=at(6), supporter_id="s-0002"),
    email(at=at(40), action="opened", supporter_id="s-0003"),
]


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_line(e) + b"\n" for e in STORY))
    return path


def _replay(*args: str) -> int:
    return main(["replay", *args, "--no-progress"])


def test_every_replay_writes_the_same_report(tmp_path: Path) -> None:
    """report.html is written next to the outputs, byte-identical for the same input, and
    shows the partner behind the call against a suppression."""
    source = _events(tmp_path)
    for name in ("a", "b"):
        assert _replay("--input", str(source), "--out", str(tmp_path / name)) == 0
    first = (tmp_path / "a" / "report.html").read_bytes()
    assert first == (tmp_path / "b" / "report.html").read_bytes()
    text = first.decode()
    assert str(source) in text
    assert "p-b" in text
    assert "<svg" in text


def test_the_report_shows_calls_outside_calling_hours_by_partner(tmp_path: Path) -> None:
    """A partner's Sunday and late-evening calls appear in the report's calling-hours section
    with their kinds of day; a call inside the window by another partner does not."""
    events = [
        call(at=at(6, 14), partner_id="p-sunday", supporter_id="s-1"),  # Sunday 8 March 2026
        call(at=at(7, 22, 30), partner_id="p-sunday", supporter_id="s-2"),  # Monday 22:30
        call(at=at(8, 11), partner_id="p-daytime", supporter_id="s-3"),
    ]
    source = tmp_path / "calls.jsonl"
    source.write_bytes(b"".join(to_line(e) + b"\n" for e in events))
    assert _replay("--input", str(source), "--out", str(tmp_path / "o")) == 0
    text = (tmp_path / "o" / "report.html").read_text()
    section = text[text.index("Calls outside calling hours, by partner") :]
    section = section[: section.index("<h2>")] if "<h2>" in section else section
    assert "p-sunday" in section
    assert "p-daytime" not in section
    assert "day without hours (Sunday)" in section


def test_compare_policy_prints_and_reports_the_what_if(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare-policy prints one row per policy, then one plain sentence per policy with
    its net figure, and adds the what-if section."""
    text = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")
    strict = tmp_path / "strict.toml"
    strict.write_text(
        text.replace("calls = 3", "calls = 1").replace(default_policy().version, "strict-1")
    )
    out = tmp_path / "o"
    code = _replay(
        "--input", str(_events(tmp_path)), "--out", str(out), "--compare-policy", str(strict)
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-4].startswith("A (default)")
    assert printed[-3].startswith("B (strict.toml)")
    assert "strict-1" in printed[-3]
    assert printed[-2].startswith("Policy A (default) would not have made")
    assert printed[-1].startswith("Policy B (strict.toml) would not have made")
    assert "a month: net EUR" in printed[-1]
    assert "What-if: the policies compared" in (out / "report.html").read_text()


def test_a_binary_file_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not text (a NUL byte) exits 1 saying so, before writing anything."""
    source = tmp_path / "blob.bin"
    source.write_bytes(b'{"type": "x"}\n\x00\x01\x02')
    assert _replay("--input", str(source), "--out", str(tmp_path / "o")) == 1
    assert "not a text file (a NUL byte at offset 14)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_file_with_no_valid_line_still_writes_its_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every line bad: the dead letters and the report are written, and the exit is 1 with
    the first error."""
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b"nope\n{}\n")
    out = tmp_path / "o"
    assert _replay("--input", str(source), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "none of the 2 non-blank lines is a valid event (first: line 1: not valid JSON" in err
    assert len((out / "dead_letters.jsonl").read_bytes().splitlines()) == 2
    assert (out / "report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-01-01"], "--since, --bootstrap only apply with --from-kafka"),
        (["--from-kafka"], "--from-kafka needs --since"),
        (
            ["--from-kafka", "--since", "2026-03-01", "--until", "2026-02-01"],
            "--since 2026-03-01T00:00:00Z is not before --until 2026-02-01T00:00:00Z",
        ),
        (["--from-kafka", "--since", "2026-03-01T10:00"], "needs a UTC offset"),
        (["--from-kafka", "--since", "yesterday"], "expected RFC 3339"),
    ],
)
def test_range_arguments_are_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Kafka range flags without --from-kafka, a missing, malformed or inverted range exit 1."""
    source = ["--input", str(_events(tmp_path))] if "--from-kafka" not in args else []
    assert _replay(*source, *args, "--out", str(tmp_path / "o"), "--bootstrap", "127.0.0.1:1") == 1
    assert message in capsys.readouterr().err


def test_timeline_prints_the_table_and_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relmon timeline` prints one line per event with the alerts, and writes the HTML."""
    page = tmp_path / "t.html"
    code = main(["timeline", "s-0001", "--input", str(_events(tmp_path)), "--out", str(page)])
    assert code == 0
    out = capsys.readouterr().out
    assert "call outbound upgrade by p-b" in out
    assert "ALERT call_while_suppressed (p-b)" in out
    assert "Timeline of supporter s-0001" in page.read_text()


def test_timeline_of_an_unknown_supporter_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown supporter is a clear error naming it and the file."""
    source = _events(tmp_path)
    assert main(["timeline", "S-x", "--input", str(source)]) == 1
    assert f"supporter S-x has no events in {source}" in capsys.readouterr().err
