"""Stage 1's refinement rounds: organ targets read from real MR files and their pseudo-labels."""

import dataclasses

import numpy as np
import pytest

from flarelib.config import Params
from flarelib.data.layout import Case
from flarelib.io import Volume
from flarelib.io.write import write_image
from flarelib.study.refine_rounds import best_model, round_params, stage1_organ_targets


def _case(tmp_path, name: str, liver: float, spleen: float) -> tuple[Case, object]:
    """An MR volume (z, y, x) = (4, 24, 24) at 4 x 3 x 3 mm with a liver and a spleen of known
    brightness in a dimmer body, and its pseudo-label file."""
    label = np.zeros((4, 24, 24), np.uint8)
    label[:, 2:12, 2:12] = 1
    label[:, 14:22, 14:22] = 3
    image = np.full(label.shape, 50.0, np.float32)
    image[label == 1], image[label == 3] = liver, spleen
    image[0, 0, 0], image[0, 0, 1] = 0.0, 255.0  # the volume's 0..255 range at any percentile
    spacing = (4.0, 3.0, 3.0)
    write_image(Volume(image, spacing, (0.0, 0.0, 0.0), np.eye(3)), tmp_path / f"{name}_0000.nii.gz")
    write_image(Volume(label, spacing, (0.0, 0.0, 0.0), np.eye(3)), tmp_path / "pl" / f"{name}.nii.gz")
    case = Case("LLD", "mr_unlabeled", name, tmp_path / f"{name}_0000.nii.gz", None, "MR", "T1W")
    return case, tmp_path / "pl" / f"{name}.nii.gz"


def test_targets_come_from_the_real_mr_inside_its_pseudo_labels(tmp_path):
    p = Params()
    p = dataclasses.replace(
        p,
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(4.0, 3.0, 3.0)),
    )
    a, la = _case(tmp_path, "a", 200.0, 100.0)
    b, lb = _case(tmp_path, "b", 200.0, 100.0)
    t = stage1_organ_targets(p, [a, b], [la, lb])
    assert set(t) == {1, 3} and t[1] > t[3]
    # the MR domain's 0..255 (percentile scaling of each volume): ordered and inside the range
    assert 0 <= t[3] < t[1] <= 255
    with pytest.raises(ValueError, match="2 MR cases but 1 pseudo-labels"):
        stage1_organ_targets(p, [a, b], [la])


def test_round_params_warm_start_from_the_previous_model(tmp_path):
    p = Params()
    p = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, refine_iterations=7))
    r = round_params(p, tmp_path / "stage1" / "model_best.pt")
    assert r.train.init_from == str(tmp_path / "stage1" / "model_best.pt") and r.train.iterations == 7
    assert r.train.mode == p.train.mode
    # refine_iterations 0: the profile's iterations
    p0 = round_params(Params(), "m.pt")
    assert p0.train.iterations == Params().train.iterations


def test_best_model_prefers_the_validated_best(tmp_path):
    assert best_model(tmp_path) == tmp_path / "checkpoint.pt"
    (tmp_path / "model_best.pt").write_bytes(b"")
    assert best_model(tmp_path) == tmp_path / "model_best.pt"
