"""DICOM input: a folder holding one series is one volume (geometry kept) for ``predict``,
``evaluate`` and ``check-data``; ``FOLDER::UID`` picks one series of several. The series are made
here with SimpleITK (tests/dicom_support.py)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from flarelib.cli import main
from flarelib.errors import FlareInputError
from flarelib.io import Volume, dicom_series, read_image, read_label, write_image
from tests.dicom_support import UID_ROOT, write_dicom_series

SPACING_ZYX = (3.0, 1.5, 1.25)
ORIGIN = (-20.0, 10.0, 5.0)


def oblique() -> np.ndarray:
    a = np.radians(8.0)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def series_array(shape=(6, 16, 18), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 40, shape)
    arr[1:-1, 4:12, 5:13] += 200
    return arr.astype(np.int16)


def test_a_series_folder_reads_as_one_volume_with_its_geometry(tmp_path):
    arr = series_array()
    write_dicom_series(tmp_path / "s", arr, SPACING_ZYX, ORIGIN, oblique(), f"{UID_ROOT}.7")
    vol = read_image(tmp_path / "s", dtype=None)
    assert vol.shape == arr.shape and np.array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.spacing_zyx, SPACING_ZYX, atol=1e-6)
    np.testing.assert_allclose(vol.origin_xyz, ORIGIN, atol=1e-6)
    np.testing.assert_allclose(vol.direction, oblique(), atol=1e-6)
    assert list(dicom_series(tmp_path / "s")) == [f"{UID_ROOT}.7"]


def test_folder_uid_picks_one_of_several_series(tmp_path):
    write_dicom_series(tmp_path / "d", series_array(), series_uid=f"{UID_ROOT}.1", prefix="a")
    write_dicom_series(tmp_path / "d", series_array((4, 16, 18), 1), series_uid=f"{UID_ROOT}.2", prefix="b")
    with pytest.raises(FlareInputError, match=r"holds 2 DICOM series.*d::"):
        read_image(tmp_path / "d")
    assert read_image(f"{tmp_path / 'd'}::{UID_ROOT}.2").shape == (4, 16, 18)
    assert read_image(f"{tmp_path / 'd'}::{UID_ROOT}.1").shape == (6, 16, 18)


def test_a_missing_slice_is_refused(tmp_path):
    files = write_dicom_series(tmp_path / "s", series_array())
    files[2].unlink()
    with pytest.raises(FlareInputError, match="uneven slice spacing"):
        read_image(tmp_path / "s")


def test_predict_a_dicom_folder_writes_nifti_on_its_grid(tmp_path, capsys):
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
    torch.manual_seed(0)
    model = save_model_file(tmp_path / "m.pt", p, {"teacher": unet_from_params(p.unet).state_dict()})
    write_dicom_series(tmp_path / "patient7", series_array(), SPACING_ZYX, ORIGIN, oblique())
    old = torch.get_num_threads()
    try:
        argv = ["predict", str(tmp_path / "patient7"), str(tmp_path / "out"), "--model", str(model)]
        rc = main([*argv, "--no-progress", "--device", "cpu", "--threads", "1"])
    finally:
        torch.set_num_threads(old)
    assert rc == 0, capsys.readouterr().err
    pred = read_label(tmp_path / "out" / "patient7.nii.gz")
    src = read_image(tmp_path / "patient7")
    assert pred.shape == src.shape
    np.testing.assert_allclose(pred.spacing_zyx, src.spacing_zyx, atol=1e-5)
    np.testing.assert_allclose(pred.origin_xyz, src.origin_xyz, atol=1e-4)
    np.testing.assert_allclose(pred.direction, src.direction, atol=1e-6)


def test_evaluate_against_a_dicom_ground_truth(tmp_path, capsys):
    lab = np.zeros((6, 16, 18), np.int16)
    lab[1:5, 3:9, 4:10] = 1
    lab[1:5, 10:14, 4:10] = 3
    write_dicom_series(tmp_path / "gt_case", lab, SPACING_ZYX, ORIGIN)
    gt = read_label(tmp_path / "gt_case")
    write_image(gt, tmp_path / "pred" / "gt_case.nii.gz")
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt_case"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "gt_case,1,liver,1.0,1.0" in text.replace("Liver", "liver")


def test_check_data_reads_case_folders_as_dicom_series(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FLARE_DATA", raising=False)
    root = tmp_path / "data"
    for i in range(2):
        write_dicom_series(root / "mr" / f"p{i}", series_array(seed=i), series_uid=f"{UID_ROOT}.9{i}")
    params = tmp_path / "params.yaml"
    subsets = {"mr": {"role": "mr_unlabeled", "modality": "MR", "sequence": "T2W", "images": "mr/{case}"}}
    params.write_text(yaml.safe_dump({"data": {"track": "phantom", "root": str(root), "subsets": subsets}}))
    rc = main(["check-data", "--params", str(params), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "No problems found" in out and "| mr " in out


def test_a_volume_written_from_dicom_keeps_the_series_grid(tmp_path):
    arr = series_array()
    write_dicom_series(tmp_path / "s", arr, SPACING_ZYX, ORIGIN, oblique())
    vol = read_image(tmp_path / "s")
    write_image(vol, tmp_path / "v.nii.gz")
    back = read_image(tmp_path / "v.nii.gz")
    assert isinstance(back, Volume) and back.shape == vol.shape
    np.testing.assert_allclose(back.affine_lps, vol.affine_lps, atol=1e-4)
