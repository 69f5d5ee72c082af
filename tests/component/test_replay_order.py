"""`relmon replay` gives the same decisions and alert ids for any order of the same lines."""

from __future__ import annotations

import base64
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from relmon.cli import main
from relmon.replay.file_replay import EventTimeMerge, Replayer
from relmon.testing import at, call, consent, to_line

TYPES = ("call_outcome", "consent_change", "donation_change", "email_engagement")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _replay(out: Path, *inputs: Path) -> Path:
    args = ["replay", "--out", str(out), "--no-progress"]
    for path in inputs:
        args += ["--input", str(path)]
    assert main(args) == 0
    return out


def _final_decisions(out: Path) -> dict[str, tuple[bool, list[str], str | None]]:
    final = {}
    for r in _jsonl(out / "suppressions.jsonl"):
        final[r["supporter_id"]] = (r["suppressed"], [x["code"] for x in r["reasons"]], r["until"])
    return final


def _alert_ids(out: Path) -> set[str]:
    return {a["alert_id"] for a in _jsonl(out / "alerts.jsonl")}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[bytes]]]:
    """A simulated year of 300 supporters, and its lines split per event type."""
    folder = tmp_path_factory.mktemp("sim")
    source = folder / "year.jsonl"
    assert (
        main(
            [
                "simulate",
                "--supporters",
                "300",
                "--days",
                "365",
                "--seed",
                "7",
                "--out",
                str(source),
            ]
        )
        == 0
    )
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for line in source.read_bytes().splitlines(keepends=True):
        by_type[orjson.loads(line)["type"]].append(line)
    assert sorted(by_type) == list(TYPES)
    return source, by_type


def test_simulate_output_is_in_event_time(simulated: tuple[Path, dict[str, list[bytes]]]) -> None:
    """`relmon simulate` writes its events in the replay's order, so a replay streams them."""
    source, _ = simulated
    merge = EventTimeMerge([source], lambda *bad: None)
    assert merge.check() == [True]
    keys = [(e.occurred_at, e.event_id) for *_, e in merge]
    assert len(keys) == len(source.read_bytes().splitlines())
    assert keys == sorted(keys)


def test_concatenated_per_type_exports_replay_like_the_original(
    simulated: tuple[Path, dict[str, list[bytes]]], tmp_path: Path
) -> None:
    """Per-type exports concatenated in two orders, or given as four inputs, give the original
    file's final decision per supporter and its alert ids."""
    source, by_type = simulated
    original = _replay(tmp_path / "original", source)
    expected_decisions, expected_alerts = _final_decisions(original), _alert_ids(original)
    assert len(expected_alerts) > 100
    assert len(expected_decisions) > 50
    kinds = {a["kind"] for a in _jsonl(original / "alerts.jsonl")}
    assert "churn_after_contact" in kinds

    orders = {"forward": TYPES, "backward": tuple(reversed(TYPES))}
    for name, order in orders.items():
        concatenated = tmp_path / f"{name}.jsonl"
        concatenated.write_bytes(b"".join(line for t in order for line in by_type[t]))
        out = _replay(tmp_path / f"out-{name}", concatenated)
        assert _final_decisions(out) == expected_decisions, name
        assert _alert_ids(out) == expected_alerts, name
        assert (out / "suppressions.jsonl").read_bytes() == (
            original / "suppressions.jsonl"
        ).read_bytes()

    parts = []
    for t in reversed(TYPES):
        part = tmp_path / f"{t}.jsonl"
        part.write_bytes(b"".join(by_type[t]))
        parts.append(part)
    out = _replay(tmp_path / "out-parts", *parts)
    assert _final_decisions(out) == expected_decisions
    assert _alert_ids(out) == expected_alerts
    assert orjson.loads((out / "summary.json").read_bytes())["lines"] == sum(
        len(v) for v in by_type.values()
    )


def test_shuffled_lines_with_duplicates_and_ties_give_identical_outputs(tmp_path: Path) -> None:
    """Shuffled lines, exact duplicates and same-instant events replay byte-identically."""
    events: list[Any] = [
        call(at=at(0), outcome="declined", event_id="e-b"),
        call(at=at(0), outcome="complaint", event_id="e-a"),  # same instant, earlier id
        consent(at=at(0.5), supporter_id="s-0002"),
        call(at=at(1), outcome="info_requested", partner_id="p-x"),
        call(at=at(2), outcome="no_answer", supporter_id="s-0002", partner_id="p-y"),
        call(at=at(20), outcome="declined", supporter_id="s-0003"),
    ]
    lines = [to_line(e) for e in events]
    lines.append(lines[3])  # an exact duplicate
    # the same event id with other bytes: which one counts must not depend on the order
    lines.append(lines[0].replace(b'"declined"', b'"converted"'))
    rnd = random.Random(5)
    outputs = []
    for n in range(4):
        shuffled = lines[:]
        rnd.shuffle(shuffled)
        first = tmp_path / f"a{n}.jsonl"
        second = tmp_path / f"b{n}.jsonl"
        first.write_bytes(b"".join(line + b"\n" for line in shuffled[:4]))
        second.write_bytes(b"".join(line + b"\n" for line in shuffled[4:]))
        out = _replay(tmp_path / f"out{n}", first, second)
        outputs.append(
            [(out / f).read_bytes() for f in ("suppressions.jsonl", "alerts.jsonl", "summary.json")]
        )
    assert outputs[0][0]
    assert outputs[0][1]
    assert all(o == outputs[0] for o in outputs[1:])


def test_dead_letters_name_file_and_line_in_input_order(tmp_path: Path) -> None:
    """Undecodable lines of several inputs are dead letters in input order, then line order."""
    good = [to_line(call(at=at(d), outcome="declined")) for d in (0, 3, 1)]
    first = tmp_path / "first.jsonl"
    first.write_bytes(good[0] + b"\n{broken\n" + good[1] + b"\n\nnot json\n")
    second = tmp_path / "second.jsonl"
    second.write_bytes(b'{"type": "call_outcome"}\n' + good[2] + b"\n")
    out = _replay(tmp_path / "out", second, first)
    dead = _jsonl(out / "dead_letters.jsonl")
    assert [(d["source"], d["line"], d["kind"]) for d in dead] == [
        (str(second), 1, "validation"),
        (str(first), 2, "json"),
        (str(first), 5, "json"),
    ]
    assert base64.b64decode(dead[1]["original_base64"]) == b"{broken"
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["lines"], summary["blank"], summary["valid"], summary["dead_letters"]) == (
        7,
        1,
        3,
        3,
    )


def test_an_unsorted_input_is_detected_and_sorted(tmp_path: Path) -> None:
    """The order check tells a file in time order from one that is not, and both merge."""
    ordered = tmp_path / "ordered.jsonl"
    ordered.write_bytes(
        b"".join(to_line(call(at=at(d), outcome="declined")) + b"\n" for d in (0, 0, 2, 5))
    )
    unordered = tmp_path / "unordered.jsonl"
    unordered.write_bytes(
        b"".join(
            to_line(call(at=at(d), outcome="declined", supporter_id="s-0002")) + b"\n"
            for d in (3, 1, 4, 0)
        )
        + b"not json\n"
    )
    bad: list[tuple[int, int]] = []
    merge = EventTimeMerge([ordered, unordered], lambda i, n, raw, exc: bad.append((i, n)))
    assert merge.check() == [True, False]
    times = [item[0] for item in merge]
    assert len(times) == 8
    assert times == sorted(times)
    assert bad == [(1, 5)]


def test_bad_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same file twice, or one missing among several inputs, exits 1 naming it."""
    source = tmp_path / "events.jsonl"
    source.write_bytes(to_line(call(at=at(0), outcome="declined")) + b"\n")
    args = ["replay", "--out", str(tmp_path / "o"), "--input", str(source)]
    assert main([*args, "--input", str(source)]) == 1
    assert "given twice" in capsys.readouterr().err
    assert main([*args, "--input", str(tmp_path / "nope.jsonl")]) == 1
    assert "nope.jsonl: cannot read it" in capsys.readouterr().err


def test_late_events_are_dead_letters_and_counted_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event the engine marks late is a dead letter of kind late, counted, never applied."""
    lines = [to_line(call(at=at(d), outcome="declined", event_id=f"e-{d}")) for d in (0, 1, 2)]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in lines))
    real_init = Replayer.__init__

    class LateClock:
        """The replayer's real event-time driver, except that it reports event e-1 late,
        as the engine reports an event older than everything a state keeps (a time-ordered
        file replay gives none; a compiled class cannot be patched, so the replayer gets
        this stand-in). Its records and alerts were emitted; only the counting and the
        dead letter are under test."""

        def __init__(self, clock: Any) -> None:
            self.clock = clock

        def __getattr__(self, name: str) -> Any:
            return getattr(self.clock, name)

        def apply_chunk(self, items: Any, *hooks: Any) -> Any:
            done = self.clock.apply_chunk(items, *hooks)
            done.late = [
                (p, "older than the retention")
                for p, item in enumerate(items)
                if item[5].event_id == "e-1"
            ]
            return done

    def late_engine(self: Replayer, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self._clock = LateClock(self._clock)  # type: ignore[assignment]

    monkeypatch.setattr(Replayer, "__init__", late_engine)
    out = _replay(tmp_path / "out", source)
    dead = _jsonl(out / "dead_letters.jsonl")
    assert [(d["kind"], d["line"], d["source"]) for d in dead] == [("late", 2, str(source))]
    assert "older than the retention" in dead[0]["error"]
    assert base64.b64decode(dead[0]["original_base64"]) == lines[1]
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["valid"], summary["applied"], summary["late"], summary["dead_letters"]) == (
        3,
        2,
        1,
        0,
    )
    assert "1 late event had no effect" in capsys.readouterr().out
    assert "1 late event had no effect" in (out / "report.html").read_text()


def test_a_step_back_in_time_replays_again_sorted_with_nothing_written_twice(
    simulated: tuple[Path, dict[str, list[bytes]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A replay streams its inputs on trust; when one goes back in time late in the file
    (after records, alerts and dead letters were written), it starts again with that input
    sorted, says so, and every output file is byte-identical to a replay that read the
    inputs' order first: nothing written twice, nothing left out, counted once."""
    source, _ = simulated
    lines = source.read_bytes().splitlines(keepends=True)
    cut = len(lines) * 3 // 4
    assert orjson.loads(lines[cut])["occurred_at"] < orjson.loads(lines[-1])["occurred_at"]
    # a bad line early, then the file in order but for one early line moved near the end
    shuffled = tmp_path / "late-step-back.jsonl"
    moved = lines[10]
    shuffled.write_bytes(
        b"".join([*lines[:5], b"not json\n", *lines[5:10], *lines[11:cut]])
        + moved
        + b"".join(lines[cut:])
    )
    other = tmp_path / "other.jsonl"  # a second input, in order, merged with it
    other.write_bytes(to_line(call(at=at(0), outcome="declined", supporter_id="s-x")) + b"\n")

    trusted = _replay(tmp_path / "trusted", shuffled, other)
    err = capsys.readouterr().err
    assert f"{shuffled} goes back in time at line {cut + 1}" in err
    assert "replaying again from the start" in err

    scan = EventTimeMerge.check
    monkeypatch.setattr(EventTimeMerge, "check", lambda self, **_: scan(self))
    scanned = _replay(tmp_path / "scanned", shuffled, other)
    assert "goes back in time" not in capsys.readouterr().err
    for name in (
        "suppressions.jsonl",
        "alerts.jsonl",
        "dead_letters.jsonl",
        "summary.json",
        "report.html",
    ):
        assert (trusted / name).read_bytes() == (scanned / name).read_bytes(), name
    summary = orjson.loads((trusted / "summary.json").read_bytes())
    assert (summary["lines"], summary["dead_letters"]) == (len(lines) + 2, 1)
    assert len(_jsonl(trusted / "dead_letters.jsonl")) == 1
