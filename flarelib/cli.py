"""``flarelib``: the command line. ``flarelib --help`` lists the commands.

Each command lives in the module that does the work; that module's ``add_cli(subparsers)`` registers
it with a handler ``args.func(args) -> int`` (the exit status). Bad input (:class:`FlareInputError`)
is printed as one line without a traceback and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from flarelib import __version__
from flarelib.errors import FlareInputError

#: Modules that register commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "flarelib.data.phantom.generate",
    "flarelib.data.check",
    "flarelib.notebook_runner",
    "flarelib.train.cli",
    "flarelib.infer.pipeline",
    "flarelib.evaluate.metrics",
    "flarelib.params_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flarelib",
        description="flare-study: FLARE24 Task 3 (CT-labelled, MR-unlabelled abdominal organ segmentation).",
    )
    parser.add_argument("--version", action="version", version=f"flarelib {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FlareInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
