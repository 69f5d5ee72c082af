"""deploy/image/constraints.txt, the versions the image installs, agrees with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version of every ``name[extras]==version`` line (names normalised)."""
    found: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)\s*", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[3]
    return found


def test_every_runtime_pin_of_pyproject_is_the_version_the_image_installs() -> None:
    """A pin bumped in pyproject.toml but not in constraints.txt would make the image build
    fail (or install another version than the tests ran): run deploy/image/lock.sh."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = pins(project["dependencies"])
    locked = pins((ROOT / "deploy" / "image" / "constraints.txt").read_text().splitlines())
    assert len(wanted) == len(project["dependencies"])  # every runtime dependency is pinned
    drift = {name: (v, locked.get(name)) for name, v in wanted.items() if locked.get(name) != v}
    assert not drift, f"pyproject vs constraints.txt: {drift}; run deploy/image/lock.sh"
