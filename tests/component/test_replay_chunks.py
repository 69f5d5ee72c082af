"""A file replay applies its events supporter by supporter, a chunk of items at a time
(:meth:`relmon.replay.file_replay.Replayer.apply_chunk`); every output must be what applying
them one by one in merge order gives (:meth:`Replayer.apply_at`), byte for byte.

The chunk size is made tiny and huge here, so that chunk boundaries fall everywhere: between
two events of one instant, between a supporter's events, before and after the wakes of
supporters with and without events in the chunk. The inputs are the golden cases (late
events, duplicates, redeliveries, the adversarial ones) and a simulated year.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import pytest

from relmon.cli import main
from relmon.replay import file_replay
from relmon.replay.file_replay import Item, Replayer

GOLDEN = sorted((Path(__file__).parent.parent / "golden" / "inputs").glob("*.jsonl*"))
OUTPUTS = (
    "suppressions.jsonl",
    "alerts.jsonl",
    "dead_letters.jsonl",
    "summary.json",
    "report.html",
)


def _one_by_one(
    self: Replayer, chunk: Sequence[Item], sources: Sequence[str] | None = None, **_: object
) -> None:
    """The reference: each item applied alone, in merge order."""
    for at, _, raw, index, number, event in chunk:
        if sources is None:
            self.apply_at(event, int(at))
        else:
            self.apply_at(event, int(at), raw, number, sources[index])


def _replay(out: Path, source: Path | list[Path], *extra: str, jobs: int = 1) -> dict[str, bytes]:
    inputs = [f"--input={path}" for path in (source if isinstance(source, list) else [source])]
    args = ["replay", *inputs, "--out", str(out), "--no-progress", *extra]
    assert main([*args, "--jobs", str(jobs)]) == 0
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated year of 150 supporters (records, alerts, lifts by time alone)."""
    path = tmp_path_factory.mktemp("year") / "year.jsonl"
    args = ["simulate", "--supporters", "150", "--days", "365", "--seed", "11", "--out", str(path)]
    assert main(args) == 0
    return path


@pytest.fixture(scope="module")
def one_by_one(
    year: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path | list[Path], dict[str, bytes]]]:
    """The simulated year, each golden input (as plain JSON lines), and the two inputs of
    the shuffled-duplicates case merged, with the outputs of the replay that applies one
    item at a time, in one process."""
    folder = tmp_path_factory.mktemp("one-by-one")
    sources: list[Path | list[Path]] = [year]
    for case in GOLDEN:  # the replay reads plain JSON lines
        plain = folder / case.name.removesuffix(".gz")
        plain.write_bytes(
            gzip.decompress(case.read_bytes()) if case.suffix == ".gz" else case.read_bytes()
        )
        sources.append(plain)
    assert len(sources) >= 5
    sources.append(sorted(p for p in sources if isinstance(p, Path) and "dups" in p.name))
    assert len(sources[-1]) == 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Replayer, "apply_chunk", _one_by_one)
        cases = [(s, _replay(folder / f"one-{n}", s)) for n, s in enumerate(sources)]
    assert cases[0][1]["suppressions.jsonl"].count(b"\n") > 100
    return cases


@pytest.mark.parametrize("chunk", [1, 7, 500, 10**7])
def test_supporter_by_supporter_equals_one_by_one(
    one_by_one: list[tuple[Path | list[Path], dict[str, bytes]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    """Every output file of the simulated year, and of each golden case, is byte-identical
    whatever the chunk size, to the replay that applies one item at a time."""
    monkeypatch.setattr(file_replay, "CHUNK", chunk)
    for n, (source, expected) in enumerate(one_by_one):
        got = _replay(tmp_path / f"chunk-{n}", source)
        for name in OUTPUTS:
            assert got[name] == expected[name], (source, name)


@pytest.mark.parametrize(("jobs", "chunk"), [(2, 7), (2, 10**7), (3, 500)])
def test_split_by_supporter_over_processes_equals_one_by_one(
    one_by_one: list[tuple[Path | list[Path], dict[str, bytes]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
    chunk: int,
) -> None:
    """``--jobs N`` (relmon.replay.sharded): N processes, each replaying its supporters'
    events, merged by this one. Every output file, the report's HTML included, is
    byte-identical to the one-by-one replay in one process: expiries that one process
    applies at another supporter's event, the end of the replay, bad lines, late events,
    duplicates and redeliveries, two inputs merged, chunk boundaries anywhere."""
    monkeypatch.setattr(file_replay, "CHUNK", chunk)
    for n, (source, expected) in enumerate(one_by_one):
        got = _replay(tmp_path / f"jobs-{n}", source, jobs=jobs)
        for name in OUTPUTS:
            assert got[name] == expected[name], (source, name, jobs)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_the_what_if_engine_too(
    year: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    jobs: int,
) -> None:
    """With --compare-policy the second engine is applied by chunks as well, and in each
    process of --jobs N: every file, the report's what-if section included, and the
    what-if table printed are the same as one by one in one process."""
    strict = tmp_path / "strict.toml"
    default = Path(file_replay.__file__).parent.parent / "domain" / "default_policy.toml"
    strict.write_text(
        default.read_text()
        .replace('version = "', 'version = "strict-', 1)
        .replace("fatigue = 0.7", "fatigue = 0.3", 1)
    )
    extra = ("--compare-policy", str(strict))
    with monkeypatch.context() as patch:
        patch.setattr(Replayer, "apply_chunk", _one_by_one)
        capsys.readouterr()
        expected = _replay(tmp_path / "one", year, *extra)
        table = capsys.readouterr().out.split("\n", 1)[1]  # after the summary (its timing)
    assert "Policy B (strict.toml) would not have made" in table
    monkeypatch.setattr(file_replay, "CHUNK", 97)
    assert _replay(tmp_path / "chunks", year, *extra, jobs=jobs) == expected
    assert capsys.readouterr().out.split("\n", 1)[1] == table
