"""Tests for flarelib.evaluate.scoring: FLARE24-exact DSC/NSD of one case.

Analytic cases first, then equality with DeepMind's surface-distance package driven exactly like the
official FLARE24 script (JunMa11/FLARE ``FLARE24/T2andT3_FLARE24_DSC_NSD_Eval.py``,
tests/evaluate/flare_reference.py) on random perturbed 13-organ volumes.
Arrays are (z, y, x); the official script works on nibabel's (x, y, z) arrays, hence the ``.T``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from flarelib.evaluate import scoring
from flarelib.evaluate.dice import dice
from flarelib.evaluate.scoring import TOLERANCE_MM, normalized_surface_dice, score_case
from flarelib.labels import ORGAN_IDS
from tests.evaluate.flare_reference import LABEL_TOLERANCE
from tests.evaluate.support import (
    METHODS,
    SPACING,
    assert_scores_close,
    cube,
    labels_from,
    official_scores,
    random_case,
)

# surface-distance calls scipy.ndimage.filters / .morphology (deprecated namespaces).
pytestmark = pytest.mark.filterwarnings("ignore:Please import:DeprecationWarning")


# --- analytic cases -------------------------------------------------------------------------------
def test_tolerances_match_the_official_table():
    assert list(TOLERANCE_MM) == list(ORGAN_IDS)
    assert [TOLERANCE_MM[i] for i in ORGAN_IDS] == list(LABEL_TOLERANCE.values())
    assert scoring.Z_RANGE_ORGANS == {5, 6, 10} and scoring.NSD_MIN_DSC == 0.2


@pytest.mark.parametrize("method", METHODS)
def test_identical_masks_score_one(method):
    shape = (12, 20, 20)
    gt = labels_from({1: cube(shape, (2, 2, 2), (9, 10, 12)), 5: cube(shape, (1, 14, 14), (11, 17, 17))})
    scores = score_case(gt, gt.copy(), SPACING, method=method)
    assert scores[1] == (1.0, 1.0) and scores[5] == (1.0, 1.0)
    mask = gt == 1
    assert dice(mask, mask) == 1.0
    assert normalized_surface_dice(mask, mask, SPACING, 2.0, method=method) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_disjoint_masks_score_zero(method):
    shape = (10, 30, 30)
    gt = labels_from({1: cube(shape, (2, 2, 2), (8, 8, 8))})
    pred = labels_from({1: cube(shape, (2, 20, 20), (8, 26, 26))})
    assert score_case(gt, pred, SPACING, organs=[1], method=method) == {1: (0.0, 0.0)}
    assert dice(gt == 1, pred == 1) == 0.0
    # far beyond the tolerance: no surfel within 2 mm
    assert normalized_surface_dice(gt == 1, pred == 1, SPACING, 2.0, method=method) == 0.0


def test_absence_rules():
    shape = (8, 16, 16)
    organ = cube(shape, (2, 2, 2), (6, 8, 8))
    empty = np.zeros(shape, np.uint8)
    only = labels_from({3: organ})
    assert score_case(empty, empty, SPACING, organs=[3]) == {3: (1.0, 1.0)}  # absent in both
    assert score_case(only, empty, SPACING, organs=[3]) == {3: (0.0, 0.0)}  # missed
    assert score_case(empty, only, SPACING, organs=[3]) == {3: (0.0, 0.0)}  # false positive
    # every organ id present in neither volume scores (1, 1)
    scores = score_case(only, only, SPACING)
    assert list(scores) == list(ORGAN_IDS)
    assert all(scores[o] == (1.0, 1.0) for o in ORGAN_IDS)
    # the primitives follow DeepMind: both empty is 0/0
    assert math.isnan(dice(empty == 1, empty == 1))
    assert math.isnan(normalized_surface_dice(empty == 1, empty == 1, SPACING, 2.0))
    assert normalized_surface_dice(organ, empty == 1, SPACING, 2.0) == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_nsd_is_zero_below_dsc_0_2_and_computed_at_0_2(method):
    shape = (30, 12, 12)
    gt = labels_from({1: cube(shape, (5, 2, 2), (15, 10, 10))})  # 10 slices
    low = labels_from({1: cube(shape, (14, 2, 2), (24, 10, 10))})  # 1 slice overlap: DSC 0.1
    at = labels_from({1: cube(shape, (13, 2, 2), (23, 10, 10))})  # 2 slices overlap: DSC 0.2
    spacing = (1.0, 1.0, 1.0)
    dsc, nsd = score_case(gt, low, spacing, organs=[1], method=method)[1]
    assert dsc == pytest.approx(0.1) and nsd == 0.0
    assert normalized_surface_dice(gt == 1, low == 1, spacing, TOLERANCE_MM[1], method=method) > 0.5
    dsc, nsd = score_case(gt, at, spacing, organs=[1], method=method)[1]
    assert dsc == 0.2 and nsd == normalized_surface_dice(gt == 1, at == 1, spacing, 5.0, method=method) > 0


@pytest.mark.parametrize("method", METHODS)
def test_single_voxels_two_mm_apart(method):
    # DeepMind's own example: single voxels 2 mm apart, spacing 1 mm along the shift -> 0.5 at 1 mm.
    gt, pred = np.zeros((8, 3, 3), bool), np.zeros((8, 3, 3), bool)
    gt[2, 1, 1] = pred[4, 1, 1] = True
    spacing = (1.0, 2.0, 3.0)
    assert normalized_surface_dice(gt, pred, spacing, 1.0, method=method) == 0.5
    assert normalized_surface_dice(gt, pred, spacing, 2.0, method=method) == 1.0
    assert normalized_surface_dice(gt, pred, spacing, 0.5, method=method) == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_cube_shifted_by_one_voxel(method):
    n = 6
    shape = (n + 4, n + 4, n + 4)
    gt = labels_from({2: cube(shape, (2, 2, 2), (2 + n, 2 + n, 2 + n))})
    pred = np.roll(gt, 1, axis=2)  # one voxel along x (1.1 mm)
    dsc, nsd = score_case(gt, pred, SPACING, organs=[2], method=method)[2]
    assert dsc == pytest.approx((n - 1) / n)
    assert nsd == 1.0  # every surfel within 1.1 mm <= 3 mm of the other surface
    tight = normalized_surface_dice(gt == 2, pred == 2, SPACING, 1.0, method=method)
    assert 0.5 < tight < 1.0  # the two x faces move 1.1 mm > 1.0 mm
    sd = pytest.importorskip("surface_distance")
    ref = sd.compute_surface_dice_at_tolerance(
        sd.compute_surface_distances((gt == 2).T, (pred == 2).T, SPACING[::-1]), 1.0
    )
    assert tight == pytest.approx(ref, abs=1e-12)


def _aorta_case():
    """Aorta (5) in GT slices 2..6; the prediction matches on 2..5, misses slice 6, and overshoots
    into slices 7..9 (outside the GT z-range, never scored)."""
    shape = (12, 16, 16)
    gt = labels_from({5: cube(shape, (2, 5, 5), (7, 11, 11))})
    pred = labels_from({5: cube(shape, (2, 5, 5), (6, 11, 11)) | cube(shape, (7, 5, 5), (10, 11, 11))})
    return gt, pred


@pytest.mark.parametrize("method", METHODS)
def test_zrange_drops_the_last_gt_slice_like_the_official_slice(method):
    gt, pred = _aorta_case()
    # official [z_lower:z_upper] = slices 2..5: the missed slice 6 and the overshoot are not scored
    assert score_case(gt, pred, SPACING, organs=[5], method=method) == {5: (1.0, 1.0)}
    # inclusive range 2..6: slice 6 is missed -> DSC = 2*4/(5+4)
    dsc, nsd = score_case(gt, pred, SPACING, organs=[5], official_zrange_off_by_one=False, method=method)[5]
    assert dsc == pytest.approx(8 / 9) and nsd < 1.0
    # the same geometry as liver (no z-range rule) counts everything
    liver_gt, liver_pred = (
        np.where(gt == 5, 1, 0).astype(np.uint8),
        np.where(pred == 5, 1, 0).astype(np.uint8),
    )
    assert score_case(liver_gt, liver_pred, SPACING, organs=[1], method=method)[1][0] == pytest.approx(
        2 * 4 * 36 / (5 * 36 + 7 * 36)
    )
    ref = official_scores(gt.T, pred.T, SPACING[::-1])
    assert_scores_close(score_case(gt, pred, SPACING, method=method), ref)


def test_zrange_organ_rules_outside_the_range():
    shape = (12, 16, 16)
    tube = cube(shape, (3, 5, 5), (8, 9, 9))
    empty = np.zeros(shape, np.uint8)
    # GT lacks the organ, prediction has it: 0, 0 (the z-range never applies)
    assert score_case(empty, labels_from({10: tube}), SPACING, organs=[10]) == {10: (0.0, 0.0)}
    # prediction only outside the GT z-range: DSC 0 inside the range, NSD 0
    outside = labels_from({10: cube(shape, (9, 5, 5), (12, 9, 9))})
    assert score_case(labels_from({10: tube}), outside, SPACING, organs=[10]) == {10: (0.0, 0.0)}


def test_zrange_single_slice_gt_is_nan_with_the_official_slice():
    shape = (6, 10, 10)
    gt = labels_from({6: cube(shape, (3, 2, 2), (4, 6, 6))})  # IVC in one slice
    with pytest.warns(RuntimeWarning, match="one slice"):
        dsc, nsd = score_case(gt, gt.copy(), SPACING, organs=[6])[6]
    assert math.isnan(dsc) and math.isnan(nsd)
    assert score_case(gt, gt.copy(), SPACING, organs=[6], official_zrange_off_by_one=False) == {6: (1.0, 1.0)}


def test_not_annotated_organs_are_omitted():
    shape = (8, 16, 16)
    gt = labels_from({1: cube(shape, (1, 1, 1), (5, 6, 6))})
    pred = labels_from({1: cube(shape, (1, 1, 1), (5, 6, 6)), 12: cube(shape, (1, 9, 9), (5, 14, 14))})
    scores = score_case(gt, pred, SPACING, not_annotated={12, 4})
    assert 12 not in scores and 4 not in scores and len(scores) == 11
    assert score_case(gt, pred, SPACING, organs=[12]) == {12: (0.0, 0.0)}  # annotated: a false positive


def test_bad_inputs():
    a = np.zeros((4, 5, 6), np.uint8)
    with pytest.raises(ValueError, match="one shape"):
        score_case(a, np.zeros((4, 5, 7), np.uint8), SPACING)
    with pytest.raises(ValueError, match="spacing"):
        score_case(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="integer"):
        score_case(a.astype(float), a, SPACING)
    with pytest.raises(ValueError, match="method"):
        score_case(a, a, SPACING, method="fast")


# --- random perturbed 13-organ cases vs the official loop -----------------------------------------
def test_random_cases_equal_the_official_loop():
    rng = np.random.default_rng(2024)
    seen = {"both_absent": 0, "one_absent": 0, "low_dsc": 0, "zrange": 0, "general": 0}
    for _ in range(10):
        gt, pred = random_case(rng)
        spacing = tuple(float(np.float32(s)) for s in (rng.uniform(1.0, 5.0), *rng.uniform(0.5, 2.0, 2)))
        ref = official_scores(gt.T, pred.T, spacing[::-1])
        for method in METHODS:
            assert_scores_close(score_case(gt, pred, spacing, method=method), ref)
        for organ, (d, _n) in ref.items():
            in_gt, in_pred = (gt == organ).any(), (pred == organ).any()
            if not in_gt and not in_pred:
                seen["both_absent"] += 1
            elif not (in_gt and in_pred):
                seen["one_absent"] += 1
            elif d < 0.2:
                seen["low_dsc"] += 1
            elif organ in scoring.Z_RANGE_ORGANS:
                seen["zrange"] += 1
            else:
                seen["general"] += 1
    assert min(seen.values()) >= 2, seen
