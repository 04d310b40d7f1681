"""End to end (``make test-slow``): the 01_stage1 notebook through papermill on the smoke phantom:
CycleGAN, fake T1W, Mean Teacher, validation scores, T1W pseudo-labels on the input grids."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from flarelib import notebook_runner as nr
from flarelib.io import read_image, read_label, same_grid
from flarelib.paths import project_root

pytestmark = pytest.mark.slow


def test_01_stage1_trains_scores_and_writes_pseudo_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path / "outputs"))
    run_file = project_root() / "params" / "runs" / "default.yaml"
    result = nr.run_stage("01_stage1", run_file, "smoke", "phantom", log=lambda *_: None)
    assert result.status == "done", result.error
    folder = result.folder
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["target_sequence"] == "T1W"
    assert metrics["cyclegan_iterations"] == 10  # smoke: 2 epochs x 5
    # stage 1's own settings (train.stage1_*): 12 iterations, not train.iterations' 10
    assert metrics["stage1_iterations"] == 12
    round1_params = yaml.safe_load((folder / "stage1" / "params.yaml").read_text())["train"]
    assert (round1_params["foreground_oversample"], round1_params["batch_unlabeled"]) == (1.0, 1)
    # one refinement round (cyclegan.refine_rounds): 5 iterations warm-started from round 1's model
    assert metrics["refine_rounds"] == 1 and metrics["refine_iterations"] == [5]
    round2 = json.loads((folder / "stage1_round2" / "run.json").read_text())
    assert round2["organ_targets"] and all(0 <= v <= 255 for v in round2["organ_targets"].values())
    round2_params = yaml.safe_load((folder / "stage1_round2" / "params.yaml").read_text())
    assert round2_params["train"]["init_from"].startswith(str(folder / "stage1"))  # warm start: round 1
    assert (round2_params["train"]["iterations"], round2_params["train"]["foreground_oversample"]) == (5, 1.0)
    assert len(list((folder / "pseudo_labels_round1").glob("*.nii.gz"))) == 3
    assert set(metrics["pseudo_label_true_dsc_rounds"]) == {"1", "2"}
    assert metrics["pseudo_label_true_dsc"] == metrics["pseudo_label_true_dsc_rounds"]["2"]
    # one validation case per sequence on the phantom, each named with its sequence
    seqs = [row["sequence"] for row in metrics["val_per_case"]]
    assert len(seqs) == 3 and set(seqs) <= {"T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "OP"}
    scores = pd.read_csv(folder / "val_scores.csv")
    assert scores["dsc"].between(0, 1).all() and len(scores) == 3 * 13
    assert metrics["val_mean_dsc"] == pytest.approx(scores.groupby("case")["dsc"].mean().mean())
    # the stage's product: one pseudo-label per real T1W volume, on that volume's exact grid
    pseudo = sorted((folder / "pseudo_labels").glob("*.nii.gz"))
    assert len(pseudo) == metrics["pseudo_labels"] == 3
    data = project_root() / "data" / "phantom" / "smoke" / "train_MRI_unlabeled" / "LLD-MMRI"
    for path in pseudo:
        image = read_image(data / path.name.replace(".nii.gz", "_0000.nii.gz"))
        assert same_grid(read_label(path), image)
    # scored against the phantom's hidden true labels of those volumes
    assert 0.0 <= metrics["pseudo_label_true_dsc"] <= 1.0
    run = json.loads((folder / "stage1" / "run.json").read_text())
    assert run["cyclegan"]["iteration"] == 10
    html = (folder / "01_stage1.html").read_text()
    assert len(re.findall(r"data:image/png;base64", html)) >= 3  # GAN losses, translation, MT losses
