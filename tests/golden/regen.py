"""Write ``tests/golden/expected/<case>.json`` from the code in the working tree.

    .venv/bin/python -m tests.golden.regen [CASE ...]

Only for an intended change of output; say in the commit why the outputs changed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import orjson

from tests.golden.outputs import CASES, EXPECTED, outputs


def main(argv: list[str]) -> None:
    EXPECTED.mkdir(exist_ok=True)
    here = Path.cwd()
    for case in argv or list(CASES):
        path = EXPECTED / f"{case}.json"
        ids = orjson.loads(path.read_bytes())["timeline_ids"] if path.exists() else None
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            try:
                result = outputs(case, Path(tmp), ids)
            finally:
                os.chdir(here)
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"{path}: written")


if __name__ == "__main__":
    main(sys.argv[1:])
