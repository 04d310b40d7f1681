"""The top-level command line: the static command table and lazy imports."""

from __future__ import annotations

import subprocess
import sys

from flarelib.cli import COMMANDS, build_parser


def _subcommands(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action, {c.dest: c.help for c in action._choices_actions}


def test_command_table_matches_what_the_modules_register():
    _, registered = _subcommands(build_parser([], load_all=True))
    listed = {name: text for commands in COMMANDS.values() for name, text in commands.items()}
    assert registered == listed
    assert list(registered) == list(listed)  # --help order


def test_only_the_named_command_module_is_loaded():
    action, _ = _subcommands(build_parser(["params", "--profile", "smoke"]))
    assert action.choices["params"].get_default("func") is not None
    assert action.choices["train"].get_default("func") is None  # a listing stub, module not imported


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from flarelib.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "train one stage" in out
    assert out.strip().endswith("NO-TORCH")
