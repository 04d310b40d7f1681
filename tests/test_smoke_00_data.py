"""End to end (``make test-slow``): the 00_data stage notebook through papermill on the smoke phantom."""

from __future__ import annotations

import json
import re

import pytest

from flarelib import notebook_runner as nr
from flarelib.paths import project_root

pytestmark = pytest.mark.slow


def test_00_data_runs_skips_and_reruns(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path / "outputs"))
    run_file = project_root() / "params" / "runs" / "default.yaml"
    first = nr.run_stage("00_data", run_file, "smoke", "phantom", log=lambda *_: None)
    assert first.status == "done", first.error
    folder = first.folder
    assert folder == tmp_path / "outputs" / "smoke" / "default" / "00_data"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["problems"] == 0 and metrics["subsets"]["lld_mmr"] > 0
    html = (folder / "00_data.html").read_text()
    # the two figures (labelled slices, phantom montage) are embedded in the report
    assert len(re.findall(r"data:image/png;base64", html)) >= 2
    assert (folder / "labelled_slices.png").stat().st_size > 10_000
    assert (folder / "phantom_montage.png").stat().st_size > 10_000

    again = nr.run_stage("00_data", run_file, "smoke", "phantom", log=lambda *_: None)
    assert again.status == "skipped"

    changed = nr.run_stage(
        "00_data", run_file, "smoke", "phantom", overrides={"train": {"iterations": 7}}, log=lambda *_: None
    )
    assert changed.status == "done"
    assert "iterations: 7" in (folder / "params.yaml").read_text()
