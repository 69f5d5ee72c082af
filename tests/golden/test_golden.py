"""Golden outputs: each frozen input replays to byte-identical outputs (see ``outputs.py``).

The inputs under ``inputs/`` are frozen files (``make_inputs.py`` says how they were made);
the expected digests and excerpts under ``expected/`` were written by the engine of
2026-11-30 (commit 92d0564) and change only with a change of output that is intended.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.golden.outputs import CASES, EXPECTED, outputs


@pytest.mark.parametrize("case", list(CASES))
def test_replay_and_timeline_outputs_are_byte_identical_to_the_golden_ones(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying a golden input writes the same suppression records, alerts, dead letters,
    summary and report numbers, and the timeline tells the same story, byte for byte."""
    expected = orjson.loads((EXPECTED / f"{case}.json").read_bytes())
    monkeypatch.chdir(tmp_path)
    got = orjson.loads(orjson.dumps(outputs(case, tmp_path, expected["timeline_ids"])))
    assert set(got) == set(expected)
    for name in sorted(expected):
        assert got[name] == expected[name], f"{case}: {name} differs from the golden output"
