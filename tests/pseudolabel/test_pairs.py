"""flarelib.pseudolabel.pairs: transfer and anatomy results -> training cases -> TrainVolumes."""

from __future__ import annotations

import numpy as np

from flarelib.config import AnatomyParams, RegistrationParams, TransferParams
from flarelib.io import Volume, write_image
from flarelib.pseudolabel import pairs
from flarelib.pseudolabel import transfer as T

from .conftest import body_phantom, organ_boxes


def test_transfer_cases_from_a_written_table(tmp_path):
    t1w, lab = body_phantom(seed=1)
    pvp, _ = body_phantom((4.0, 0.0, 0.0), seed=2)
    dp, dp_lab = body_phantom((0.0, 4.0, 0.0), seed=3)
    arr = dp.array.copy()
    kid = np.isin(dp_lab.array, (2, 13))
    arr[kid] = 300.0 + np.random.default_rng(4).normal(0, 10, int(kid.sum()))  # no visible kidneys
    files = {"P": {}}
    for seq, vol in (("T1W", t1w), ("PVP", pvp), ("DP", dp.with_array(arr))):
        files["P"][seq] = write_image(vol, tmp_path / f"P_{seq}.nii.gz")
    write_image(lab, tmp_path / "P_label.nii.gz")
    T.transfer_patients(
        files,
        {"P": tmp_path / "P_label.nii.gz"},
        TransferParams(),
        RegistrationParams(levels=2),
        tmp_path / "out",
        workers=1,
        fix_zflip=False,
        progress=False,
    )
    cases = pairs.transfer_cases(tmp_path / "out" / "transfer.json")
    assert [(c.sequence, c.source) for c in cases] == [("T1W", "transfer-reference"), ("PVP", "transfer")]
    assert all(c.annotated.all() and c.annotated.shape == (14,) for c in cases)
    assert cases[1].label == tmp_path / "out" / "labels" / "P_PVP.nii.gz"
    assert [c for c, _ in pairs.unlabelled_images(tmp_path / "out" / "transfer.json")] == ["P_DP"]
    vols = pairs.load_training_volumes(cases, (4.0, 4.0, 4.0))
    assert vols[1].label.shape == vols[1].image.shape and vols[1].annotated.all()
    assert abs(float(vols[1].image.mean())) < 1e-3  # z-scored


def test_anatomy_cases_drop_case_and_drop_organs(tmp_path):
    good = organ_boxes()
    bad = good.copy()
    bad[bad == 4] = 0  # pancreas missing
    grid = Volume(np.zeros(good.shape, np.float32), (3.0, 1.2, 1.2), (0, 0, 0), np.eye(3))
    images = {}
    for case in ("good", "bad"):
        rng = np.random.default_rng(0)
        noise = rng.normal(size=good.shape).astype(np.float32)
        images[case] = write_image(grid.with_array(noise), tmp_path / f"{case}.nii.gz")
    good_file = write_image(grid.with_array(good), tmp_path / "good_label.nii.gz")
    labels = {"good": good_file, "bad": bad}
    kept, results = pairs.anatomy_cases(labels, images, AnatomyParams())
    assert [c.case for c in kept] == ["good"] and not results["bad"].passed
    assert kept[0].label == good_file
    kept, _ = pairs.anatomy_cases(labels, images, AnatomyParams(), on_failure="drop_organs")
    assert [c.case for c in kept] == ["good", "bad"]
    assert not kept[1].annotated[4] and kept[1].annotated.sum() == 13
    vols = pairs.load_training_volumes(kept, (3.0, 1.2, 1.2))
    assert np.array_equal(vols[1].label, bad) and not vols[1].annotated[4]
    assert np.array_equal(vols[0].label, good)


def test_anatomy_cases_check_only_the_organs_a_model_could_learn(tmp_path):
    # a BTCV-trained model never predicts the duodenum: that is no violation, and the duodenum
    # stays unannotated in the case it keeps
    label = organ_boxes()
    label[label == 12] = 0
    grid = Volume(np.zeros(label.shape, np.float32), (3.0, 1.2, 1.2), (0, 0, 0), np.eye(3))
    image = write_image(grid.with_array(np.ones(label.shape, np.float32)), tmp_path / "img.nii.gz")
    _, results = pairs.anatomy_cases({"c": label}, {"c": image}, AnatomyParams())
    assert not results["c"].passed and 12 in results["c"].failing_organs
    learnable = np.ones(14, bool)
    learnable[12] = False
    organs = [o for o in range(1, 14) if o != 12]
    kept, results = pairs.anatomy_cases(
        {"c": label}, {"c": image}, AnatomyParams(), base_annotated={"c": learnable}, organs=organs
    )
    assert results["c"].passed and [c.case for c in kept] == ["c"]
    assert not kept[0].annotated[12] and kept[0].annotated.sum() == 13
