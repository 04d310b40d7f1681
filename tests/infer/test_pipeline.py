"""Per-case pipeline and ``flarelib predict``: bad cases skipped, outputs on the input's exact grid."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from flarelib.config import Params, dump_params
from flarelib.errors import FlareInputError
from flarelib.infer.pipeline import (
    STAGES,
    CasePredictor,
    find_inputs,
    load_model,
    main,
    output_name,
    save_model_file,
)
from flarelib.io import Volume, orientation_code, read_image, read_label, write_image
from flarelib.models.unet import unet_from_params
from flarelib.train.checkpoint import save_checkpoint


def tiny_params(**post) -> Params:
    p = Params()
    return dataclasses.replace(
        p,
        unet=dataclasses.replace(p.unet, channels=(4, 8, 16, 16), pool_zyx=((1, 2, 2), (2, 2, 2), (2, 2, 2))),
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(3.0, 3.0, 3.0)),
        infer=dataclasses.replace(p.infer, window_zyx=(8, 16, 16)),
        postprocess=dataclasses.replace(p.postprocess, **({"min_slices": 10} | post)),
    )


def rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.radians(deg_z), np.radians(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def oblique_ras_sphere(shape_zyx=(22, 30, 26), spacing_zyx=(2.5, 2.0, 2.2)) -> tuple[Volume, np.ndarray]:
    """A bright ball in a noisy dark volume; direction = oblique rotation of RAS (non-LPS)."""
    rng = np.random.default_rng(0)
    z, y, x = np.indices(shape_zyx)
    c = [(n - 1) / 2 for n in shape_zyx]
    r = np.sqrt(
        ((z - c[0]) * spacing_zyx[0]) ** 2
        + ((y - c[1]) * spacing_zyx[1]) ** 2
        + ((x - c[2] - 3) * spacing_zyx[2]) ** 2
    )
    ball = r < 16.0
    img = np.where(ball, 100.0, 10.0) + rng.normal(0, 2, shape_zyx)
    direction = rotation(12, 7) @ np.diag([-1.0, -1.0, 1.0])
    return Volume(img.astype(np.float32), spacing_zyx, (40.5, -12.25, 7.0), direction), ball


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    params = tiny_params()
    student = unet_from_params(params.unet)
    teacher = unet_from_params(params.unet)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_model_file(path, params, {"student": student.state_dict(), "teacher": teacher.state_dict()})


def assert_exact_grid(out: Volume, ref: Volume, direction_atol: float = 0.0) -> None:
    """Same shape, spacing and origin bit for bit; direction too (``direction_atol=0``).

    Files: NIfTI stores an oblique direction as a float32 quaternion, so a written-and-read-back
    direction can differ from the one written by ~1e-10; compare files with a 1e-9 tolerance.
    """
    assert out.shape == ref.shape
    assert out.spacing_zyx == ref.spacing_zyx
    assert out.origin_xyz == ref.origin_xyz
    np.testing.assert_allclose(out.direction, ref.direction, rtol=0, atol=direction_atol)


def test_predict_folder_skips_bad_cases(tmp_path, model_file, capsys):
    src = tmp_path / "in"
    vol, _ = oblique_ras_sphere()
    write_image(vol, src / "good_0000.nii.gz")
    good_bytes = (src / "good_0000.nii.gz").read_bytes()
    (src / "truncated.nii.gz").write_bytes(good_bytes[: len(good_bytes) * 2 // 3])
    four_d = sitk.GetImageFromArray(
        np.random.default_rng(1).normal(size=(2, 5, 6, 7)).astype(np.float32), isVector=False
    )
    sitk.WriteImage(four_d, str(src / "fourd.nii.gz"))
    write_image(vol.with_array(np.full(vol.shape, 7.0, np.float32)), src / "constant.nii.gz")

    out = tmp_path / "out"
    timings = tmp_path / "timings.csv"
    rc = main([str(src), str(out), "--model", str(model_file), "--no-progress", "--timings", str(timings)])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 3
    for name, what in (
        ("truncated.nii.gz", "gzip"),
        ("fourd.nii.gz", "4-D"),
        ("constant.nii.gz", "constant"),
    ):
        assert any(name in ln and what in ln for ln in lines), (name, lines)
    assert "predicted 1 of 4 cases" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.nii.gz"]
    pred = read_label(out / "good.nii.gz")
    assert_exact_grid(pred, read_image(src / "good_0000.nii.gz"), direction_atol=1e-9)
    assert pred.array.dtype == np.uint8
    rows = timings.read_text().splitlines()
    assert rows[0].split(",")[: 3 + len(STAGES)] == ["case", "ok", "shape_zyx", *STAGES]
    assert len(rows) == 5


def test_all_good_exit_zero_single_file_output(tmp_path, model_file, capsys):
    vol, _ = oblique_ras_sphere((12, 20, 18))
    write_image(vol, tmp_path / "case.nii")
    rc = main(
        [
            str(tmp_path / "case.nii"),
            str(tmp_path / "seg" / "mask.nii.gz"),
            "--model",
            str(model_file),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert_exact_grid(read_label(tmp_path / "seg" / "mask.nii.gz"), read_image(tmp_path / "case.nii"), 1e-9)


@pytest.mark.parametrize("runtime", ["torch", "auto"])
def test_predict_runtime_option_overrides_the_params(tmp_path, model_file, capsys, runtime):
    from flarelib.infer.sliding import resolve_runtime

    vol, _ = oblique_ras_sphere((12, 20, 18))
    write_image(vol, tmp_path / "case.nii")
    args = [str(tmp_path / "case.nii"), str(tmp_path / "out.nii.gz"), "--model", str(model_file)]
    assert main([*args, "--no-progress", "--runtime", runtime]) == 0
    assert f"cpu {resolve_runtime(runtime, 'cpu')})" in capsys.readouterr().err


class ThresholdNet(nn.Module):
    """Class 1 where the (z-scored) image is above its mean: the prediction is the bright ball."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((x.shape[0], 14, *x.shape[2:]))
        out[:, 1] = 10 * x[:, 0]
        return out


class SpyNet(ThresholdNet):
    """ThresholdNet that keeps the windows it was given."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return super().forward(x)


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_ct_inputs_are_windowed_as_in_training(modality):
    from flarelib.preprocess import ct_window, zscore

    rng = np.random.default_rng(3)
    hu = rng.choice([-1000.0, 40.0, 60.0, 3000.0], size=(8, 16, 16)).astype(np.float32)
    vol = Volume(hu, (3.0, 3.0, 3.0), (0.0, 0.0, 0.0), np.eye(3))
    params = tiny_params(enabled=False)
    # torch runtime: the spy records the windows it is called with (an export would trace it once)
    infer = dataclasses.replace(params.infer, mirror_axes=(), runtime="torch")
    params = dataclasses.replace(params, infer=infer)
    spy = SpyNet()
    CasePredictor(spy, params, device="cpu", modality=modality).predict_volume(vol)
    expected = zscore(ct_window(hu, 40.0, 400.0)) if modality == "CT" else zscore(hu)
    assert len(spy.seen) == 1  # the volume is exactly one window
    np.testing.assert_allclose(spy.seen[0][0, 0].numpy(), expected, atol=1e-3)
    with pytest.raises(FlareInputError, match="modality"):
        CasePredictor(spy, params, device="cpu", modality="PET")


def test_oblique_non_lps_round_trip_lands_on_the_input(tmp_path):
    vol, ball = oblique_ras_sphere()
    write_image(vol, tmp_path / "ball.nii.gz")
    vol = read_image(tmp_path / "ball.nii.gz")
    assert orientation_code(vol) != "LPS"
    predictor = CasePredictor(ThresholdNet(), tiny_params(enabled=False), device="cpu")
    in_memory = predictor.predict_volume(vol)
    assert_exact_grid(in_memory, vol)  # bit for bit before writing
    result = predictor.predict_file(tmp_path / "ball.nii.gz", tmp_path / "pred.nii.gz")
    assert result.ok and set(result.seconds) == set(STAGES) and result.shape_zyx == vol.shape
    pred = read_label(tmp_path / "pred.nii.gz")
    assert_exact_grid(pred, vol, direction_atol=1e-9)
    np.testing.assert_array_equal(pred.array, in_memory.array)
    seg = pred.array == 1
    dice = 2 * (seg & ball).sum() / (seg.sum() + ball.sum())
    assert dice > 0.9  # the labels sit where the ball is, not mirrored or shifted


def test_load_model_weights_and_params(tmp_path, model_file):
    model, params, info = load_model(model_file)
    assert info["weights"] == "teacher" and params.unet.channels == (4, 8, 16, 16)
    ckpt = torch.load(model_file, weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["modules"]["teacher"][k])
    student, _, info = load_model(model_file, weights="student")
    assert info["weights"] == "student"
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), student.state_dict().values(), strict=True)
    )
    # a training-loop checkpoint without params: params.yaml beside it, or --params
    bare = tmp_path / "stage" / "checkpoint.pt"
    save_checkpoint(bare, {"format": 1, "stage": "x", "modules": {"student": ckpt["modules"]["student"]}})
    with pytest.raises(FlareInputError, match="--params"):
        load_model(bare)
    dump_params(tiny_params(), tmp_path / "stage" / "params.yaml")
    _, _, info = load_model(bare)  # teacher requested, only a student there: that one is used
    assert info["weights"] == "student"
    best = tmp_path / "stage" / "model_best.pt"
    save_checkpoint(best, {"format": 1, "which": "teacher", "state_dict": ckpt["modules"]["teacher"]})
    assert load_model(best, tmp_path / "stage" / "params.yaml")[2]["weights"] == "teacher"


def test_inputs_and_names(tmp_path):
    (tmp_path / "b_0000.nii.gz").write_bytes(b"")
    (tmp_path / "a.nii").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_inputs(tmp_path)] == ["a.nii", "b_0000.nii.gz"]
    assert output_name("amos_0540_0000.nii.gz") == "amos_0540.nii.gz"
    assert output_name("case.nii") == "case.nii"
    with pytest.raises(FlareInputError):
        find_inputs(tmp_path / "missing")


def test_auto_runtime_is_resolved_recorded_and_agrees_with_torch(model_file):
    """``infer.runtime: auto`` picks the fastest installed runtime on CPU (torch without the
    cpu-runtime extra), records it, and gives torch's labels."""
    from flarelib.infer.sliding import resolve_runtime

    model, params, _ = load_model(model_file)
    vol, _ = oblique_ras_sphere((12, 20, 18))
    torch_params = dataclasses.replace(params, infer=dataclasses.replace(params.infer, runtime="torch"))
    ref = CasePredictor(model, torch_params, device="cpu")
    auto_params = dataclasses.replace(params, infer=dataclasses.replace(params.infer, runtime="auto"))
    auto = CasePredictor(model, auto_params, device="cpu")
    assert ref.runtime == "torch"
    assert auto.runtime == resolve_runtime("auto", "cpu")
    a, b = auto.predict_volume(vol).array, ref.predict_volume(vol).array
    # exported runtimes agree to ~1e-5 in the logits (test_sliding): at most a near-tie voxel may flip
    assert a.shape == b.shape and (a == b).mean() >= 0.999


def test_mirroring_a_model_trained_without_mirrors_warns():
    params = tiny_params(enabled=False)
    unmirrored = dataclasses.replace(params, train=dataclasses.replace(params.train, augmentation="none"))
    with pytest.warns(UserWarning, match="mirror_axes"):
        CasePredictor(ThresholdNet(), unmirrored, device="cpu")
    no_tta = dataclasses.replace(unmirrored, infer=dataclasses.replace(params.infer, mirror_axes=()))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CasePredictor(ThresholdNet(), no_tta, device="cpu")
        CasePredictor(ThresholdNet(), params, device="cpu")  # trained with mirrors: no warning
