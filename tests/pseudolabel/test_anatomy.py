"""flarelib.pseudolabel.anatomy: constraints (6)-(8) on constructed labels, the per-organ option,
threshold scaling and the violation injector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flarelib.config import AnatomyParams
from flarelib.io import Volume
from flarelib.pseudolabel import anatomy as A

from .conftest import organ_boxes

RAW = AnatomyParams(reference_spacing_zyx=None)  # raw voxel counts: 512 / 64 / 15


def constraints(result: A.AnatomyResult) -> set[tuple[str, tuple[int, ...]]]:
    return {(v.constraint, v.organs) for v in result.violations}


def test_clean_case_passes(boxes):
    res = A.check_anatomy(boxes, RAW)
    assert res.passed, [v.message for v in res.violations]
    assert res.stats[1].largest == 800 and res.stats[1].second == 0
    assert res.esd_sizes == (2400,)
    assert A.annotated_mask(res).all()


def test_empty_prediction_fails_eq6_for_every_organ():
    res = A.check_anatomy(np.zeros((10, 10, 10), np.uint8), RAW)
    assert not res.passed
    non_adrenal = [o for o in range(1, 14) if o not in A.ADRENALS]
    assert {v.organs[0] for v in res.violations if v.constraint == "6"} == set(non_adrenal)
    assert {v.organs[0] for v in res.violations if v.constraint == "6-adrenal"} == {7, 8}


def test_eq6_small_organ(boxes):
    lab = boxes.copy()
    lab[(lab == 9)] = 0
    lab[1:5, 13:23, 25:35] = 9  # 400 voxels <= 512
    res = A.check_anatomy(lab, RAW)
    assert constraints(res) == {("6", (9,))}
    lab[1:6, 13:23, 25:36] = 9  # 550 > 512
    assert A.check_anatomy(lab, RAW).passed


def test_adrenals_are_exempt_from_eq6_but_need_presence_and_ap_extent(boxes):
    # the adrenals have 64 voxels, far below Size_exist: exempt
    res = A.check_anatomy(boxes, RAW)
    assert res.stats[7].largest == 64 < RAW.size_exist and res.passed
    short = boxes.copy()
    short[(short == 7)] = 0
    short[30:34, 30:44, 40:42] = 7  # 112 voxels but an anterior-posterior extent of 14 < 15
    assert constraints(A.check_anatomy(short, RAW)) == {("6-adrenal", (7,))}
    gone = boxes.copy()
    gone[gone == 8] = 0
    assert constraints(A.check_anatomy(gone, RAW)) == {("6-adrenal", (8,))}
    # an adrenal still counts its extent along y (anterior-posterior), not along x
    rotated = boxes.copy()
    rotated[rotated == 8] = 0
    rotated[30:32, 48:50, 40:56] = 8  # 16 voxels along x, 2 along y
    assert ("6-adrenal", (8,)) in constraints(A.check_anatomy(rotated, RAW))


def test_eq7_second_component(boxes):
    lab = boxes.copy()
    lab[30:34, 1:5, 1:5] = 9  # a second gallbladder of 64 voxels (not < 64)
    assert constraints(A.check_anatomy(lab, RAW)) == {("7", (9,))}
    lab = boxes.copy()
    lab[30:33, 1:5, 1:5] = 9  # 48 voxels < 64: tolerated
    assert A.check_anatomy(lab, RAW).passed
    lab = boxes.copy()
    lab[34:38, 50:54, 40:44] = 7  # adrenals are subject to (7)
    assert constraints(A.check_anatomy(lab, RAW)) == {("7", (7,))}


def test_eq7_connectivity_from_params(boxes):
    lab = boxes.copy()
    # the liver box is [1:9, 1:11, 1:11]; this 64-voxel box touches it at one corner only
    lab[9:13, 11:15, 11:15] = 1
    six = A.check_anatomy(lab, RAW)
    assert ("7", (1,)) in constraints(six)  # corner contact is no 6-connection
    assert A.check_anatomy(lab, dataclasses.replace(RAW, connectivity=26)).passed


def test_eq8_esophagus_stomach_duodenum_union(boxes):
    lab = boxes.copy()
    lab[20:28, 30:40, 21:31] = 0
    lab[20:28, 30:40, 23:33] = 12  # the duodenum moved 2 voxels away: each organ whole, union split
    res = A.check_anatomy(lab, RAW)
    assert constraints(res) == {("8", (12,))}
    assert res.esd_sizes == (1600, 800)
    # a disconnected esophagus (Fig. 5 column 3 is duodenum/stomach)
    lab = boxes.copy()
    lab[20:28, 30:40, 1:11] = 0
    lab[20:28, 44:54, 1:11] = 10
    assert constraints(A.check_anatomy(lab, RAW)) == {("8", (10,))}


def test_drop_case_and_drop_organs(boxes):
    lab = boxes.copy()
    lab[30:34, 1:5, 1:5] = 9  # (7) gallbladder
    lab[lab == 4] = 0  # (6) pancreas missing
    res = A.check_anatomy(lab, RAW)
    assert res.failing_organs == (4, 9)
    assert res.by_organ() == {4: ["6"], 9: ["7"]}
    assert A.annotated_mask(res, "drop_case") is None
    mask = A.annotated_mask(res, "drop_organs")
    assert mask.shape == (14,) and mask.dtype == bool
    assert not mask[4] and not mask[9]
    assert mask[[0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]].all()
    base = np.ones(14, bool)
    base[12] = False  # a dataset that never annotates the duodenum keeps it unannotated
    assert not A.annotated_mask(res, "drop_organs", base)[12]
    with pytest.raises(ValueError):
        A.annotated_mask(res, "drop_everything")
    assert res.to_dict()["by_organ"] == {"Pancreas": ["6"], "Gallbladder": ["7"]}


def test_thresholds_scale_with_spacing():
    p = AnatomyParams()  # reference 3 x 1.2 x 1.2 mm
    same = A.thresholds(p, (3.0, 1.2, 1.2))
    assert same.size_exist == pytest.approx(512) and same.size_tiny == pytest.approx(64)
    coarse = A.thresholds(p, (6.0, 2.4, 2.4))  # 8x the voxel volume, twice the y spacing
    assert coarse.size_exist == pytest.approx(64) and coarse.size_tiny == pytest.approx(8)
    assert coarse.adrenal_min_ap_extent == pytest.approx(7.5)
    assert A.thresholds(RAW, (6.0, 2.4, 2.4)).size_exist == 512


def test_volume_input_uses_its_spacing_and_ap_axis(boxes):
    vol = Volume(boxes, (3.0, 1.2, 1.2), (0.0, 0.0, 0.0), np.eye(3))
    assert A.ap_axis(vol) == 1
    assert A.check_anatomy(vol, AnatomyParams()).passed
    # the same organs on a grid of 8x bigger voxels: sizes scale, so (6) still passes
    big = Volume(boxes, (6.0, 2.4, 2.4), (0.0, 0.0, 0.0), np.eye(3))
    res = A.check_anatomy(big, AnatomyParams())
    assert res.thresholds.size_exist == pytest.approx(64) and res.passed
    # a grid stored with x and y swapped: the AP axis is found from the direction matrix
    xy_swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    swapped = Volume(np.swapaxes(boxes, 1, 2), (3.0, 1.2, 1.2), (0, 0, 0), xy_swap)
    assert A.ap_axis(swapped) == 2 and A.check_anatomy(swapped, AnatomyParams()).passed


@pytest.mark.parametrize("kind", A.INJECTION_KINDS)
def test_injected_violations_are_caught(kind):
    lab = organ_boxes()
    p = dataclasses.replace(RAW, connectivity=26)
    for seed in range(4):
        bad, info = A.inject_violation(lab, kind, A.injection_rng(seed, 0), p)
        assert info["confirmed"], info
        assert not A.check_anatomy(bad, p).passed, info
    # the same seed gives the same injection
    a, _ = A.inject_violation(lab, kind, A.injection_rng(7), p)
    b, _ = A.inject_violation(lab, kind, A.injection_rng(7), p)
    assert np.array_equal(a, b)


def test_injector_leaves_other_organs_alone_and_rejects_unknown_kinds():
    lab = organ_boxes()
    bad, info = A.inject_violation(lab, "drop", A.injection_rng(1), RAW, organ=3)
    assert info["organ"] == 3 and not (bad == 3).any()
    assert np.array_equal(bad[lab != 3], lab[lab != 3])
    with pytest.raises(ValueError, match="unknown injection kind"):
        A.inject_violation(lab, "melt", A.injection_rng(1), RAW)
