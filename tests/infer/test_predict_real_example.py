"""`flarelib predict` with a real-track checkpoint on the real MR example of ``../shared/data/totalseg``
(issue 18): the output lies on the input's grid and the organs land on the patient's correct sides
in world space.

The checkpoint is a tiny 2-D U-Net trained here, with the real track's params (smoke profile), on
that MR volume and its TotalSegmentator labels (a model trained for seconds on CT would segment
nothing on MR). The volume is stored LPS while the pipeline computes in its own orientation, so
a flip or a lost affine anywhere between reading, resampling, predicting and writing back puts
the liver on the wrong side. World positions are read with nibabel, not with flarelib's own I/O.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from flarelib.cli import main
from flarelib.config import compose_params, dump_params
from flarelib.data.layout import Case
from flarelib.data.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
LIVER, RIGHT_KIDNEY, SPLEEN, LEFT_KIDNEY = 1, 2, 3, 13  # FLARE24 ids
ORGANS = {"liver": LIVER, "spleen": SPLEEN, "right kidney": RIGHT_KIDNEY, "left kidney": LEFT_KIDNEY}


@pytest.fixture(scope="module")
def example(shared_data: Path):
    (mc,) = [
        c for c in load_manifest(shared_data / "dataset.json").cases("totalseg") if c.id == "example_mr_sm"
    ]
    return mc


@pytest.fixture(scope="module")
def checkpoint(example, tmp_path_factory) -> Path:
    from flarelib.train.stages import load_train_volume, train_segmentation

    overrides = {
        "unet": {
            "configuration": "2d",
            "channels": [16, 32, 64, 128],
            "pool_zyx": [[1, 2, 2], [1, 2, 2], [1, 2, 2]],
        },
        "preprocess": {"target_spacing_zyx": [3.0, 3.0, 3.0]},
        "train": {
            "patch_zyx": [1, 96, 96],
            "batch_labeled": 8,
            "iterations": 400,
            "optimizer": "adam",
            "lr": 0.003,
            "augmentation": "none",
            "checkpoint_every": 400,
            "validate_every": 0,
            "num_workers": 0,
        },
        "infer": {"window_zyx": [1, 96, 96], "mirror_axes": []},
        "postprocess": {"min_slices": 1},
    }
    params = compose_params(REPO / "params/runs/baseline.yaml", "smoke", "real", overrides=overrides)
    case = Case(
        "totalseg", "mr_val", example.id, example.image, example.label, "MR", "T2W", None, example.label_map
    )
    volume = load_train_volume(case, params.preprocess.target_spacing_zyx, "zscore", params.preprocess)
    out = tmp_path_factory.mktemp("real_example_model")
    train_segmentation(params, "stage2", out, [volume], [], progress=False)
    dump_params(params, out / "params.yaml")  # what `flarelib predict` finds beside a checkpoint
    return out / "checkpoint.pt"


def _centroids_ras(path: Path, to_flare: dict[int, int] | None = None) -> dict[str, np.ndarray]:
    """Each organ's centroid in world RAS (mm); ``to_flare`` maps the file's ids to FLARE ids first."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).astype(np.int64)
    if to_flare is not None:
        lut = np.zeros(max(data.max(), *to_flare) + 1, np.int64)
        for src, dst in to_flare.items():
            lut[src] = dst
        data = lut[data]
    out = {}
    for name, organ in ORGANS.items():
        ijk = np.argwhere(data == organ)
        if len(ijk):
            out[name] = nib.affines.apply_affine(img.affine, ijk.mean(axis=0))
    return out


@pytest.mark.slow  # trains for about a minute on 2 cores: runs in make test-slow
def test_predict_real_mr_example_grid_and_sides(example, checkpoint, tmp_path) -> None:
    out = tmp_path / "seg.nii.gz"
    rc = main(["predict", str(example.image), str(out), "--model", str(checkpoint), "--no-progress"])
    assert rc == 0
    src, seg = nib.load(str(example.image)), nib.load(str(out))
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)

    pred = _centroids_ras(out)
    truth = _centroids_ras(example.label, dict(example.label_map.to_flare))
    assert set(pred) == set(ORGANS), f"organs missing from the prediction: {set(ORGANS) - set(pred)}"
    # RAS+: x grows toward the patient's right, where the liver and the right kidney lie
    assert pred["liver"][0] > pred["spleen"][0]
    assert pred["right kidney"][0] > pred["left kidney"][0]
    for name in ORGANS:  # and where TotalSegmentator put them (mm)
        assert np.linalg.norm(pred[name] - truth[name]) < 20.0, (name, pred[name], truth[name])
