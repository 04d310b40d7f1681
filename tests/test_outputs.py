"""Outputs: atomic, with the usual permissions, never an input; temp files of killed runs are
cleaned; what evaluate tells about organs absent from both files; params files still load under
the range checks. (The refusals themselves are in tests/test_bad_inputs.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flarelib.cli import main
from flarelib.io import Volume, write_image
from flarelib.paths import (
    TMP_TAG,
    InputSet,
    atomic_write_text,
    atomic_writer,
    check_output_file,
    remove_stale_temps,
    temp_path,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def label_file(path: Path, organs=(1,)) -> Path:
    lab = np.zeros((6, 16, 16), np.uint8)
    for i, organ in enumerate(organs):
        lab[1:5, 2 + 4 * i : 5 + 4 * i, 3:9] = organ
    return write_image(Volume(lab, (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3)), path)


def test_atomic_files_get_the_umask_permissions_not_0600(tmp_path, umask_022):
    path = atomic_write_text(tmp_path / "a.csv", "x\n")
    assert path.stat().st_mode & 0o777 == 0o644
    os.umask(0o027)
    assert atomic_write_text(tmp_path / "b.csv", "x\n").stat().st_mode & 0o777 == 0o640


def test_evaluate_csv_has_the_umask_permissions(tmp_path, umask_022, capsys):
    label_file(tmp_path / "gt" / "c.nii.gz")
    label_file(tmp_path / "pred" / "c.nii.gz")
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_failed_atomic_write_leaves_the_target_and_no_temp(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_stale_temps_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".checkpoint.pt{TMP_TAG}{dead_pid}-0a1b2c3d"
    stale_nii = tmp_path / f".case{TMP_TAG}{dead_pid}-deadbeef.nii.gz"
    live = temp_path(tmp_path / "x.csv")  # this process: alive
    other = tmp_path / ".notes.tmp"  # not ours: never touched
    for p in (stale, stale_nii, live, other):
        p.write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale, stale_nii])
    assert live.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_output_checks_see_through_other_names_of_an_input(tmp_path):
    src = label_file(tmp_path / "in" / "case.nii.gz")
    (tmp_path / "link.nii.gz").symlink_to(src)
    inputs = InputSet([src])
    from flarelib.errors import FlareInputError

    with pytest.raises(FlareInputError, match="same file as the input"):
        check_output_file(tmp_path / "link.nii.gz", inputs)
    with pytest.raises(FlareInputError, match="same file as the input"):
        check_output_file(tmp_path / "in" / ".." / "in" / "case.nii.gz", inputs)
    with pytest.raises(FlareInputError, match="is the input:"):
        check_output_file(src, inputs)
    assert check_output_file(tmp_path / "new" / "deeper" / "out.nii.gz", inputs)


def test_evaluate_overwrite_replaces_an_existing_csv(tmp_path, capsys):
    label_file(tmp_path / "gt.nii.gz")
    label_file(tmp_path / "pred.nii.gz")
    out = tmp_path / "r.csv"
    out.write_text("old\n")
    argv = ["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz"), "--out", str(out)]
    assert main(argv) == 2 and out.read_text() == "old\n"
    assert main([*argv, "--overwrite"]) == 0
    assert out.read_text().startswith("case,organ,")


def test_evaluate_says_how_many_organs_were_scored_absent_in_both(tmp_path, capsys):
    label_file(tmp_path / "gt" / "c.nii.gz", organs=(1, 2, 3))
    write_image(
        Volume(np.zeros((6, 16, 16), np.uint8), (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3)),
        tmp_path / "pred" / "c.nii.gz",
    )
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # 13 organs, 3 in the ground truth, none predicted: 10 absent from both count as 100%
    assert "note: 10 of 13 organ scores (1 of 1 cases) are of organs absent from both" in printed
    assert "| Average | 76.92 |" in printed


def test_every_params_file_and_composition_passes_the_range_checks():
    from flarelib.config import compose_params, load_params

    for f in sorted((REPO / "params").rglob("*.yaml")):
        load_params(f)
    for profile in ("smoke", "quick", "full"):
        for data in ("phantom", "real", "flare24"):
            for run in sorted((REPO / "params" / "runs").glob("*.yaml")):
                compose_params(run, profile, data, params_dir=REPO / "params")


def test_predict_timings_csv_has_the_umask_permissions(tmp_path, umask_022, capsys):
    import dataclasses

    import torch

    from flarelib.checkpoint import save_model_file
    from flarelib.config import Params
    from flarelib.models.unet import unet_from_params

    p = Params()
    p = dataclasses.replace(
        p,
        unet=dataclasses.replace(p.unet, channels=(4, 8), pool_zyx=((1, 2, 2),)),
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(3.0, 3.0, 3.0)),
        infer=dataclasses.replace(p.infer, window_zyx=(4, 8, 8), mirror_axes=(), runtime="torch"),
    )
    model = save_model_file(tmp_path / "m.pt", p, {"teacher": unet_from_params(p.unet).state_dict()})
    img = np.random.default_rng(0).normal(0, 1, (6, 16, 16)).astype(np.float32)
    write_image(Volume(img, (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3)), tmp_path / "c.nii.gz")
    timings = tmp_path / "t.csv"
    old = torch.get_num_threads()
    try:
        argv = ["predict", str(tmp_path / "c.nii.gz"), str(tmp_path / "out"), "--model", str(model)]
        rc = main([*argv, "--no-progress", "--device", "cpu", "--threads", "1", "--timings", str(timings)])
    finally:
        torch.set_num_threads(old)
    assert rc == 0, capsys.readouterr().err
    assert timings.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out" / "c.nii.gz").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_evaluate_refuses_an_unwritable_folder_before_scoring(tmp_path, capsys):
    label_file(tmp_path / "gt.nii.gz")
    label_file(tmp_path / "pred.nii.gz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        argv = ["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz")]
        assert main([*argv, "--out", str(locked / "r.csv")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not writable" in err and str(locked) in err
    finally:
        locked.chmod(0o700)


def test_display_path_is_relative_to_the_outputs_root_wherever_it_lies(tmp_path, monkeypatch):
    from flarelib.paths import display_path, project_root

    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path / "elsewhere"))
    assert display_path(tmp_path / "elsewhere" / "smoke" / "run" / "x.pt") == "outputs/smoke/run/x.pt"
    assert display_path(project_root() / "notebooks" / "05_evaluate.py") == "notebooks/05_evaluate.py"
    assert display_path(tmp_path / "other.pt") == str(tmp_path / "other.pt")
