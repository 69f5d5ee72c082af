"""``relmon schemas export|check``: the JSON Schemas in ``schemas/``."""

from __future__ import annotations

import argparse
from typing import Any

from relmon.schemas_export import differences, export_schemas

EXIT_DRIFT = 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schemas",
        help="write or check the JSON Schemas of the input events and outputs",
        description=(
            "The JSON Schemas in schemas/ are generated from relmon's models: one file per "
            "input event type, their union, and each output type."
        ),
    )
    verbs = parser.add_subparsers(dest="schemas_verb", metavar="ACTION", required=True)
    export = verbs.add_parser(
        "export",
        help="write one JSON Schema file per type",
        description="Write one JSON Schema per input event and output type into DIR.",
        epilog="Example: relmon schemas export --dir schemas   (then commit the changes)",
    )
    export.add_argument("--dir", default="schemas", help="output directory (default: schemas)")
    export.set_defaults(handler=run_export)
    check = verbs.add_parser(
        "check",
        help="exit 1 when the schema files differ from the models",
        description="Compare DIR with the models; list every difference and exit 1 if any.",
        epilog="Example: relmon schemas check --dir schemas   (CI runs this through the tests)",
    )
    check.add_argument("--dir", default="schemas", help="directory to check (default: schemas)")
    check.set_defaults(handler=run_check)


def run_export(args: argparse.Namespace) -> int:
    paths = export_schemas(args.dir)
    print(f"relmon schemas export: wrote {len(paths)} schemas to {args.dir}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    problems = differences(args.dir)
    if not problems:
        print(f"relmon schemas check: {args.dir} matches the models")
        return 0
    for problem in problems:
        print(problem)
    print(
        f"relmon schemas check: {len(problems)} difference(s); run `relmon schemas export "
        f"--dir {args.dir}` and commit the result"
    )
    return EXIT_DRIFT
