"""flarelib.notebook_runner: papermill execution, DONE markers, skip/rerun, failures, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flarelib import notebook_runner as nr
from flarelib.errors import FlareInputError

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOK = """# %% [markdown]
# # Test stage

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"
run_id = "default"
profile = "smoke"

# %%
import json
from pathlib import Path
from flarelib.config import load_stage_params
params = load_stage_params(params_file, profile)
assert Path(params_file).name == "params.yaml"
print("iterations", params.train.iterations)
{extra}
"""


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """Outputs go to tmp; a tiny stage notebook and a run file live in tmp."""
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path / "outputs"))
    run_file = tmp_path / "run.yaml"
    run_file.write_text("run:\n  name: t\n")

    def make(extra: str = "") -> Path:
        nb = tmp_path / "07_test.py"
        nb.write_text(NOTEBOOK.format(extra=extra))
        return nb

    return tmp_path, run_file, make


def test_run_skip_rerun_and_html(sandbox):
    tmp_path, run_file, make = sandbox
    nb = make("Path('marker.txt').exists()")
    logs: list[str] = []
    first = nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append)
    assert first.status == "done"
    folder = tmp_path / "outputs" / "smoke" / "t" / "07_test"
    assert first.folder == folder
    for name in ("07_test.ipynb", "07_test.html", "params.yaml", "run.json", "DONE"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "run.json").read_text())
    assert record["params_hash"] == json.loads((folder / "DONE").read_text())["params_hash"]
    assert "torch" in record["versions"] and record["git_sha"]
    executed = json.loads((folder / "07_test.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "params.yaml" in "".join(injected[0]["source"])
    assert "iterations 10" in (folder / "07_test.html").read_text()

    second = nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append)
    assert second.status == "skipped"
    assert any("[skip]" in line for line in logs)

    run_file.write_text("run:\n  name: t\ntrain:\n  iterations: 12\n")
    third = nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append)
    assert third.status == "done"
    assert "iterations 12" in (folder / "07_test.html").read_text()

    nb.write_text(nb.read_text() + "\nprint('edited')\n")
    fourth = nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append)
    assert fourth.status == "done"
    assert "edited" in (folder / "07_test.html").read_text()


def test_failure_leaves_no_done_and_keeps_notebook(sandbox):
    _tmp_path, run_file, make = sandbox
    nb = make("raise RuntimeError('boom in stage')")
    result = nr.run_stage(nb, run_file, "smoke", "phantom", log=lambda *_: None)
    assert result.status == "failed"
    assert "boom in stage" in (result.error or "")
    assert not (result.folder / "DONE").exists()
    assert (result.folder / "07_test.failed.ipynb").is_file()
    assert not (result.folder / "07_test.ipynb").exists()


def test_unknown_stage_and_missing_parameters_cell(sandbox, tmp_path):
    with pytest.raises(FlareInputError, match="no such stage notebook"):
        nr.find_notebook("99_nothing")
    bare = tmp_path / "08_bare.py"
    bare.write_text("# %%\nx = 1\n")
    with pytest.raises(FlareInputError, match="parameters"):
        nr.load_notebook(bare)


def test_stage_notebooks_have_parameters_cells_with_three_literals():
    notebooks = nr.stage_notebooks()
    assert notebooks, "notebooks/ has no stage notebooks"
    for path in notebooks:
        nb = nr.load_notebook(path)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [
            line.split("=")[0].strip()
            for line in cell.source.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        ]
        assert names == ["params_file", "run_id", "profile"], path.name


def test_changed_params_start_the_stage_clean_same_params_keep_its_products(sandbox):
    """An interrupted stage keeps what it made (a training resumes its checkpoint); one rerun with
    other params starts clean, so no checkpoint of the old params is resumed (or refused)."""
    tmp_path, run_file, make = sandbox
    nb = make("raise RuntimeError('interrupted')")
    folder = tmp_path / "outputs" / "smoke" / "t" / "07_test"
    logs: list[str] = []
    assert nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append).status == "failed"
    (folder / "checkpoint.pt").write_text("old training")
    assert nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append).status == "failed"
    assert (folder / "checkpoint.pt").is_file()  # same params: kept to resume
    run_file.write_text("run:\n  name: t\ntrain:\n  iterations: 12\n")
    nb = make("")
    assert nr.run_stage(nb, run_file, "smoke", "phantom", log=logs.append).status == "done"
    assert not (folder / "checkpoint.pt").exists()
    assert any(line.startswith("[new ]") for line in logs)


def test_run_command_passes_set_overrides(monkeypatch):
    from flarelib.cli import main

    seen = []

    def fake_run_stage(stage, params_file, profile, data, **kw):
        seen.append((stage, kw["overrides"]))
        return nr.StageResult(stage, Path("."), "skipped", 0.0)

    monkeypatch.setattr(nr, "run_stage", fake_run_stage)
    argv = ["run", "06_efficiency", "--profile", "smoke", "--set", "efficiency.cases=1"]
    assert main([*argv, "--set", "efficiency.ram_scope=system"]) == 0
    assert seen == [("06_efficiency", {"efficiency": {"cases": 1, "ram_scope": "system"}})]
    seen.clear()
    assert main(["run", "00_data", "--profile", "smoke"]) == 0
    assert seen == [("00_data", None)]


def test_done_by_params_hash_or_by_stage_key_and_always_by_notebook(tmp_path):
    (tmp_path / "DONE").write_text(json.dumps({"params_hash": "a", "notebook_hash": "n", "stage_key": "k"}))
    assert nr.is_done(tmp_path, "a", "n") and nr.is_done(tmp_path, "a")
    assert not nr.is_done(tmp_path, "b", "n")  # other params, no key to compare
    assert nr.is_done(tmp_path, "b", "n", "k")  # other params, none the stage depends on
    assert not nr.is_done(tmp_path, "b", "n", "other")
    assert not nr.is_done(tmp_path, "a", "edited", "k")  # the notebook changed
