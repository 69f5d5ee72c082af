"""The engine compiled with mypyc and its Python sources give the same outputs, byte for byte.

This test session's own process runs the compiled engine whenever ``make compile`` built it
from the sources on disk (``make test`` does, first), so ``test_golden.py`` checks the
compiled engine; here each golden case is replayed again in a fresh interpreter with
``RELMON_PURE_PYTHON=1``, which must reproduce the same golden outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import relmon.domain.engine
from relmon.compiled import MODULES, PURE_ENV
from relmon.domain import ENGINE
from tests.conftest import IN_CI
from tests.golden.outputs import CASES, EXPECTED

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = """
import sys, orjson
from pathlib import Path
import relmon.domain.engine
from relmon.domain import ENGINE
from tests.golden.outputs import outputs
case, folder, ids = sys.argv[1], Path(sys.argv[2]), orjson.loads(sys.argv[3])
got = outputs(case, folder, ids)
print(orjson.dumps({"compiled": ENGINE.compiled, "file": relmon.domain.engine.__file__,
                    "outputs": got}).decode())
"""


def test_this_session_runs_the_compiled_engine_under_ci() -> None:
    """Under CI=true the golden and property tests must exercise the compiled engine (the one
    `make run` and the worker use), so a build that silently fell back to Python fails here."""
    if not ENGINE.compiled:
        if IN_CI:
            pytest.fail(f"CI=true but the engine is not compiled: {ENGINE.why}")
        pytest.skip(f"the engine is not compiled here ({ENGINE.why}); `make compile`")
    assert not relmon.domain.engine.__file__.endswith(".py")
    assert len(MODULES) >= 10


@pytest.mark.parametrize("case", list(CASES))
def test_the_python_sources_reproduce_the_golden_outputs(case: str, tmp_path: Path) -> None:
    """The pure-Python engine (RELMON_PURE_PYTHON=1, its modules loaded from their .py files
    even beside the compiled ones) writes the same golden outputs as the compiled engine."""
    expected = orjson.loads((EXPECTED / f"{case}.json").read_bytes())
    env = dict(os.environ, **{PURE_ENV: "1"})
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _SCRIPT,
            case,
            str(tmp_path),
            orjson.dumps(expected["timeline_ids"]).decode(),
        ],
        cwd=tmp_path,
        env=dict(env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = orjson.loads(done.stdout.splitlines()[-1])
    assert result["compiled"] is False
    assert result["file"].endswith("engine.py")
    got = result["outputs"]
    assert set(got) == set(expected)
    for name in sorted(expected):
        assert got[name] == expected[name], f"{case}: {name} differs (pure-Python engine)"
