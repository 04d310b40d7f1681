"""Tests for flarelib.evaluate.metrics: the evaluation's public names, gathered from its modules.

The scores themselves are tested where they are computed: test_surfels, test_surface, test_scoring
and test_report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import flarelib
from flarelib.evaluate import dice, metrics, report, scoring, surface

#: Every public name of flarelib.evaluate.metrics and the module it comes from.
HOME = {
    "NSD_MIN_DSC": scoring,
    "TOLERANCE_MM": scoring,
    "Z_RANGE_ORGANS": scoring,
    "Method": surface,
    "add_cli": report,
    "dice": dice,
    "evaluate_folder": report,
    "format_table_markdown": report,
    "header_spacing": report,
    "main_evaluate": report,
    "normalized_surface_dice": scoring,
    "score_case": scoring,
    "summary_table": report,
}


def test_metrics_reexports_every_public_name_from_its_module():
    assert sorted(metrics.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(metrics, name) is getattr(module, name), name


@pytest.mark.parametrize("module", ["surfels", "surface", "scoring", "report", "metrics"])
def test_each_module_imports_on_its_own(module):
    # a fresh interpreter per module: an import cycle shows only for the module imported first
    root = str(Path(flarelib.__file__).resolve().parents[1])  # this checkout's flarelib
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", f"import flarelib.evaluate.{module}"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
