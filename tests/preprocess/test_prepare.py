"""flarelib.preprocess.prepare: the one path training and prediction share."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from flarelib.config import Params
from flarelib.data.layout import Case
from flarelib.infer.pipeline import CasePredictor
from flarelib.io import Volume, read_image, write_image
from flarelib.models.unet import unet_from_params
from flarelib.preprocess import prepare_case
from flarelib.train.stages import load_train_volume


def _params() -> Params:
    p = Params()
    return dataclasses.replace(
        p,
        unet=dataclasses.replace(p.unet, channels=(4, 8, 16), pool_zyx=((1, 2, 2), (2, 2, 2))),
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(3.0, 2.5, 2.5)),
        infer=dataclasses.replace(p.infer, window_zyx=(8, 16, 16), mirror_axes=(), runtime="torch"),
    )


def _y_flipped_anisotropic(
    rng: np.random.Generator, modality: str, spacing_zyx=(2.0, 1.7, 1.3)
) -> tuple[Volume, Volume]:
    """A volume stored y-flipped (as BTCV and CHAOS are), anisotropic voxels, with a blob label."""
    z, y, x = np.indices((10, 24, 20))
    lab = (((z - 5) / 3.5) ** 2 + ((y - 9) / 6) ** 2 + ((x - 11) / 5) ** 2 <= 1).astype(np.uint8)
    if modality == "CT":
        img = np.where(lab > 0, 60.0, -900.0) + rng.normal(0, 20, lab.shape)  # HU
    else:
        img = np.where(lab > 0, 400.0, 120.0) + rng.normal(0, 15, lab.shape)
    direction = np.diag([1.0, -1.0, 1.0])
    vol = Volume(img.astype(np.float32), spacing_zyx, (4.0, 23 * spacing_zyx[1], -3.0), direction)
    return vol, vol.with_array(lab)


@pytest.mark.parametrize("spacing_zyx", [(2.0, 1.7, 1.3), (3.0, 2.5, 2.5)], ids=["resampled", "at_target"])
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_train_loader_and_predictor_agree_on_the_network_input(tmp_path, modality, spacing_zyx):
    """One preprocessing path: the training loader and the predictor's preparation give
    identical arrays for a y-flipped, anisotropic volume (CT windowed, MR not), resampled or
    already at the training spacing."""
    params = _params()
    image, label = _y_flipped_anisotropic(np.random.default_rng(7), modality, spacing_zyx)
    write_image(image, tmp_path / "img.nii.gz")
    write_image(label, tmp_path / "lab.nii.gz")
    case = Case("s", "ct_labeled", "c0", tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz", modality)
    trained_on = load_train_volume(case, params.preprocess.target_spacing_zyx, "zscore", params.preprocess)
    torch.manual_seed(0)
    predictor = CasePredictor(unet_from_params(params.unet), params, device="cpu", modality=modality)
    fed = predictor.prepare(read_image(tmp_path / "img.nii.gz"))
    assert fed.image.dtype == trained_on.image.dtype == np.float32
    np.testing.assert_array_equal(fed.image, trained_on.image)
    # reoriented to LPS: the blob's rows run the other way round from the stored file
    assert fed.grid.direction[1, 1] == pytest.approx(1.0)
    assert trained_on.label is not None and trained_on.label.shape == fed.image.shape


def test_prepare_case_skips_resampling_at_the_target_spacing_and_windows_ct():
    rng = np.random.default_rng(1)
    image, label = _y_flipped_anisotropic(rng, "CT")
    prep = prepare_case(image, label, spacing_zyx=image.spacing_zyx, intensity="ct255", modality="CT")
    # no resampling: the LPS array itself (y reversed), windowed [-160, 240] HU -> 0..255
    expected = np.clip((image.array[:, ::-1] + 160.0) / 400.0, 0, 1) * 255
    np.testing.assert_allclose(prep.image, expected, atol=1e-3)
    np.testing.assert_array_equal(prep.label, label.array[:, ::-1])
    assert prep.orientation != "LPS"


def test_prepare_case_rejects_an_unknown_mode():
    image, _ = _y_flipped_anisotropic(np.random.default_rng(2), "MR")
    with pytest.raises(ValueError, match="intensity mode"):
        prepare_case(image, spacing_zyx=(3.0, 3.0, 3.0), intensity="hu")
