"""The ``relmon`` command.

Each verb lives in its own module under :mod:`relmon.commands` and exposes
``register(subparsers)``; this module only assembles them and turns :class:`RelmonError`
into a clear message and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from relmon.errors import RelmonError

# Verbs in the order `relmon --help` lists them.
_COMMAND_MODULES = (
    "relmon.commands.worker",
    "relmon.commands.topics",
    "relmon.commands.replay",
    "relmon.commands.backfill",
    "relmon.commands.simulate",
    "relmon.commands.timeline",
    "relmon.commands.schemas",
)

EXIT_USAGE = 2
EXIT_ERROR = 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("relmon")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relmon",
        description=(
            "relmon watches every contact with a supporter and its aftermath, scores contact "
            "fatigue and irritation risk, and tells dialers whom not to call, why and until when."
        ),
        epilog="Run `relmon VERB --help` for the options of one verb.",
    )
    from relmon.domain import ENGINE

    parser.add_argument(
        "--version", action="version", version=f"relmon {_version()}; {ENGINE.describe()}"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a verb not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # aiokafka logs its own connection errors; the verbs turn them into one clear message.
    # (`relmon worker` sets up full logging and raises this again to WARNING.)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        result: int = args.handler(args)
    except RelmonError as exc:
        print(f"relmon {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a RELMON_* setting with a bad value
        problems = "; ".join(
            f"RELMON_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"relmon {args.verb}: error: invalid setting: {problems}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"relmon {args.verb}: interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
