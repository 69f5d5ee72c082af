"""The engine compiled with mypyc, or the pure-Python engine: which one runs, and building it.

The modules of ``relmon.domain`` listed in :data:`MODULES` (the engine: state, updates,
scores, decisions, alerts, calling windows; the decoding of input events around msgspec;
the replays' event-time driver) are plain, strictly typed Python. ``make
compile`` (which ``make run``, ``make test`` and ``make bench`` call) compiles them with
mypyc into C extensions next to their sources: the same code, decode + apply about 1.6
times as fast per event on a simulated year (BENCHMARKS.md, issue 12). The Python sources
stay the reference: the golden tests run both and compare their outputs byte for byte
(``tests/golden/test_compiled.py``).

Which one runs is decided once, when ``relmon.domain`` is first imported (:func:`choose`):

* the compiled modules, when they were built from exactly the sources on disk (a digest of
  the sources and the Python version are written next to them at build time, and checked);
* the Python sources otherwise: not built, built from other sources (you edited the engine
  and did not run ``make compile``: a one-line note on stderr says so, since a stale
  extension would silently run old rules), or ``RELMON_PURE_PYTHON=1`` in the environment.

``relmon --version`` says which. ``python -m relmon.compiled build`` builds (needs a C
compiler and Python's headers; ``make compile`` installs gcc when missing);
``python -m relmon.compiled status`` prints the choice and why.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# The compiled modules: the per-event engine and everything it calls, the decoder and the
# replays' driver that call it once an event. Left out: events.py,
# outputs.py and policy.py (pydantic models, which mypyc cannot compile) and __init__.py.
MODULES = (
    "alerts",
    "batch",
    "calling",
    "compliance",
    "decide",
    "decoding",
    "engine",
    "expiry",
    "explain",
    "facts",
    "legal_basis",
    "loyalty",
    "rules",
    "scoring",
    "state",
    "update",
)
PURE_ENV = "RELMON_PURE_PYTHON"
DOMAIN_DIR = Path(__file__).resolve().parent / "domain"
SRC_DIR = DOMAIN_DIR.parent.parent
STAMP = DOMAIN_DIR / ".compiled.json"
_PACKAGE = "relmon.domain"


class Choice:
    """The engine in use: ``compiled`` or not, and why, in words for ``--version``."""

    def __init__(self, compiled: bool, why: str) -> None:
        self.compiled = compiled
        self.why = why

    def describe(self) -> str:
        return f"engine: {'compiled with mypyc' if self.compiled else 'pure Python'} ({self.why})"


_choice: Choice | None = None


def sources_digest(directory: Path = DOMAIN_DIR) -> str:
    """A digest of every source the compiled modules were built from, and of this Python's
    version: all of ``relmon/domain/*.py`` (the compiled modules, and the types they were
    compiled against: events, outputs, policy) and ``relmon/errors.py``."""
    h = hashlib.sha256(sys.implementation.cache_tag.encode())
    sources = [*sorted(directory.glob("*.py")), directory.parent / "errors.py"]
    for path in sources:
        if path.exists():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def extensions(directory: Path = DOMAIN_DIR) -> dict[str, Path]:
    """The built extension of each compiled module found in ``directory``."""
    found: dict[str, Path] = {}
    for name in MODULES:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = directory / f"{name}{suffix}"
            if path.exists():
                found[name] = path
                break
    return found


def assess(directory: Path = DOMAIN_DIR, environ: dict[str, str] | None = None) -> Choice:
    """Decide, without importing anything, which engine ``directory`` would run."""
    env = os.environ if environ is None else environ
    built = extensions(directory)
    if env.get(PURE_ENV, "") not in ("", "0"):
        return Choice(False, f"{PURE_ENV} is set")
    if not built:
        return Choice(False, "not compiled: `make compile` builds it")
    try:
        recorded = json.loads((directory / STAMP.name).read_text())
        digest, shared = recorded["digest"], recorded.get("shared")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        digest = shared = None
    missing_shared = shared is not None and not (directory.parent.parent / shared).exists()
    if digest is None or len(built) != len(MODULES) or missing_shared:
        return Choice(False, "the compiled engine is incomplete: `make compile`")
    if digest != sources_digest(directory):
        return Choice(False, "the compiled engine is older than its sources: `make compile`")
    return Choice(True, "built from these sources")


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the compiled modules' ``.py`` sources even where their extensions lie beside
    them (the path finder would prefer the extensions)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE or name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, self.directory / f"{name}.py")


def choose() -> Choice:
    """Pick the engine once per process (``relmon.domain`` calls this before its imports)."""
    global _choice
    if _choice is not None:
        return _choice
    _choice = assess()
    if not _choice.compiled and extensions():
        sys.meta_path.insert(0, _SourceFirst(DOMAIN_DIR))
        if os.environ.get(PURE_ENV, "") in ("", "0"):
            print(f"relmon: {_choice.why}; running the pure-Python engine", file=sys.stderr)
    return _choice


def remove_extensions(src: Path = SRC_DIR) -> None:
    """Delete what a build left: the extensions, the shared library, the stamp."""
    for path in extensions(src / "relmon" / "domain").values():
        path.unlink()
    for path in src.glob("*__mypyc*"):
        path.unlink()
    (src / "relmon" / "domain" / STAMP.name).unlink(missing_ok=True)


def build(src: Path = SRC_DIR, quiet: bool = False) -> None:
    """Compile :data:`MODULES` with mypyc in place, then write the stamp.

    mypyc writes its C files into a temporary build directory (removed after) and copies the
    extensions next to the sources, plus one shared library at the top of ``src``. One build
    at a time (a lock file); the stamp is written last, and only if no source changed while
    mypyc ran (it would otherwise vouch for extensions built from the older text).
    """
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        raise SystemExit(
            "relmon.compiled: no C compiler (cc or gcc) on PATH: `make compile` installs gcc"
        )
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        raise SystemExit(
            f"relmon.compiled: no {include} (Python's headers): on Debian, apt-get install "
            f"python{sys.version_info.major}.{sys.version_info.minor}-dev"
        )
    domain = src / "relmon" / "domain"
    with open(domain / ".compile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_extensions(src)
        digest = sources_digest(domain)
        files = [f"relmon/domain/{name}.py" for name in MODULES]
        with tempfile.TemporaryDirectory(prefix="relmon-mypyc-") as tmp:
            # mypyc names modules from the paths it is given, so it runs in src; it leaves
            # its C files in src/build, moved into the temporary directory (removed with it).
            env = dict(os.environ, MYPYC_OPT_LEVEL=os.environ.get("MYPYC_OPT_LEVEL", "3"))
            cmd = [sys.executable, "-m", "mypyc", f"--cache-dir={tmp}/cache", *files]
            out = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
            leftover = src / "build"
            if leftover.exists():
                shutil.move(str(leftover), str(Path(tmp) / "build"))
        if out.returncode != 0:
            sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
            remove_extensions(src)
            raise SystemExit(f"relmon.compiled: mypyc failed (exit {out.returncode})")
        if sources_digest(domain) != digest:
            remove_extensions(src)
            raise SystemExit("relmon.compiled: a source changed during the build: build again")
        shared = sorted(p.name for p in src.glob("*__mypyc*"))  # the modules' shared library
        stamp = {"digest": digest, "shared": shared[0] if shared else None}
        partial = domain / (STAMP.name + ".tmp")
        partial.write_text(json.dumps(stamp) + "\n")
        os.replace(partial, domain / STAMP.name)
    if not quiet:
        print(f"relmon: compiled {len(MODULES)} engine modules with mypyc")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        build()
        return 0
    if args == ["clean"]:
        remove_extensions()
        return 0
    if args == ["status"]:
        print(assess().describe())
        return 0
    print("usage: python -m relmon.compiled build|clean|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
