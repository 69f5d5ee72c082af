"""Which engine runs (relmon.compiled.assess): compiled only when built from the sources on
disk; stale, partial or unbuilt extensions and RELMON_PURE_PYTHON=1 give the Python sources."""

from __future__ import annotations

import importlib.machinery
import json
import shutil
from pathlib import Path

import pytest

from relmon.compiled import DOMAIN_DIR, MODULES, PURE_ENV, STAMP, assess, sources_digest

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def domain(tmp_path: Path) -> Path:
    """A copy of the engine's sources with (empty) files where the extensions would be and a
    stamp recording the sources' digest: what a build leaves."""
    for name in MODULES:
        shutil.copy(DOMAIN_DIR / f"{name}.py", tmp_path / f"{name}.py")
        (tmp_path / f"{name}{SUFFIX}").write_bytes(b"")
    (tmp_path / STAMP.name).write_text(json.dumps({"digest": sources_digest(tmp_path)}))
    return tmp_path


def test_a_build_of_these_sources_is_chosen(domain: Path) -> None:
    """Extensions for every module and a stamp matching the sources: compiled."""
    choice = assess(domain, environ={})
    assert choice.compiled, choice.why
    assert "compiled with mypyc" in choice.describe()


def test_an_edited_source_makes_the_build_stale(domain: Path) -> None:
    """Editing one engine source after the build falls back to Python and says to rebuild."""
    path = domain / "decide.py"
    path.write_text(path.read_text() + "\n# edited\n")
    choice = assess(domain, environ={})
    assert not choice.compiled
    assert "older than its sources" in choice.why
    assert "make compile" in choice.why


def test_a_missing_extension_or_stamp_is_not_a_build(domain: Path) -> None:
    """One module without its extension, or no stamp, is not a usable build."""
    (domain / f"engine{SUFFIX}").unlink()
    assert not assess(domain, environ={}).compiled
    (domain / f"engine{SUFFIX}").write_bytes(b"")
    (domain / STAMP.name).unlink()
    assert not assess(domain, environ={}).compiled


def test_no_extensions_means_not_compiled(tmp_path: Path) -> None:
    """A source tree never compiled runs Python and the reason names `make compile`."""
    for name in MODULES:
        shutil.copy(DOMAIN_DIR / f"{name}.py", tmp_path / f"{name}.py")
    choice = assess(tmp_path, environ={})
    assert not choice.compiled
    assert "make compile" in choice.why


@pytest.mark.parametrize(
    ("value", "compiled"), [("1", False), ("yes", False), ("0", True), ("", True)]
)
def test_the_environment_can_ask_for_the_python_sources(
    domain: Path, value: str, compiled: bool
) -> None:
    """RELMON_PURE_PYTHON set to anything but empty or 0 runs the Python sources."""
    assert assess(domain, environ={PURE_ENV: value}).compiled is compiled


def test_a_build_whose_shared_library_is_gone_is_incomplete(domain: Path) -> None:
    """The stamp names the modules' shared library; without it the extensions cannot load,
    so the Python sources run and the reason says the build is incomplete."""
    stamp = json.loads((domain / STAMP.name).read_text())
    (domain / STAMP.name).write_text(json.dumps(dict(stamp, shared="gone__mypyc.so")))
    choice = assess(domain, environ={})
    assert not choice.compiled
    assert "incomplete" in choice.why
