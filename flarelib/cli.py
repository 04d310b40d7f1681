"""``flarelib``: the command line. ``flarelib --help`` lists the commands.

Each command lives in the module that does the work; that module's ``add_cli(subparsers)`` registers
it with a handler ``args.func(args) -> int`` (the exit status). Bad input (:class:`FlareInputError`)
is printed as one line without a traceback and exits with status 2.

Only the module of the command being run is imported: several of them import torch, which takes
seconds, so ``flarelib --help`` lists the commands from :data:`COMMANDS` (a test keeps that table
equal to what the modules register).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from flarelib import __version__
from flarelib.errors import FlareInputError

#: Module -> the commands its ``add_cli`` registers, with their one-line help, in ``--help`` order.
COMMANDS: dict[str, dict[str, str]] = {
    "flarelib.data.phantom.generate": {
        "generate": "write the procedural multi-sequence phantom (FLARE24 layout + diagnostics)",
    },
    "flarelib.data.check": {
        "check-data": (
            "check a dataset (files readable, labels present and on the image grid, sequences complete)"
        ),
    },
    "flarelib.notebook_runner": {
        "run": "execute stage notebooks with papermill into outputs/",
    },
    "flarelib.study.reproduce": {
        "reproduce": "every stage notebook of every study run, then the report",
    },
    "flarelib.study.render": {
        "report": "render every executed notebook to HTML (with and without code)",
    },
    "flarelib.train.cli": {
        "train": "train one stage (CycleGAN, Mean Teacher or supervised U-Net); resumes its checkpoint",
    },
    "flarelib.train.translation_check": {
        "translation-check": (
            "a CycleGAN's fake MR vs the true MR of the same phantom anatomy (intensity error, order, SSIM)"
        ),
    },
    "flarelib.infer.pipeline": {
        "predict": "segment MR/CT volumes with a trained model (sliding window + post-processing)",
    },
    "flarelib.evaluate.report": {
        "evaluate": "FLARE24-exact DSC/NSD of predictions against ground-truth labels",
    },
    "flarelib.pseudolabel.diagnostics": {
        "pseudolabel-diagnostics": (
            "accuracy of the label-transfer (kidney-DSC) and anatomy filters on the phantom's hidden truth"
        ),
    },
    "flarelib.params_cli": {
        "params": "print the resolved params of a run (strictly checked)",
    },
}


def _command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: list[str] | None = None, *, load_all: bool = False) -> argparse.ArgumentParser:
    """The parser; imports only the module of the command in ``argv`` (every module: ``load_all``)."""
    parser = argparse.ArgumentParser(
        prog="flarelib",
        description="flare-study: FLARE24 Task 3 (CT-labelled, MR-unlabelled abdominal organ segmentation).",
    )
    parser.add_argument("--version", action="version", version=f"flarelib {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    command = _command_of(sys.argv[1:] if argv is None else argv)
    for module, commands in COMMANDS.items():
        if load_all or command in commands:
            importlib.import_module(module).add_cli(sub)
        else:  # listed for --help; never parsed, since its name is not the command being run
            for name, help_text in commands.items():
                sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
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
