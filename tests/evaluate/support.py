"""Tiny label volumes and checks shared by the tests of flarelib.evaluate.

Volumes are (z, y, x) uint8 label arrays with FLARE ids; spacings are (z, y, x) in mm. NIfTI files
are written the way nibabel users (and the official FLARE script) read them: (x, y, z) on disk.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from flarelib.evaluate.scoring import Z_RANGE_ORGANS
from flarelib.labels import ORGAN_IDS
from tests.evaluate import flare_reference

METHODS = ("probe", "edt")


def official_scores(
    gt_data: np.ndarray, seg_data: np.ndarray, case_spacing
) -> dict[int, tuple[float, float]]:
    """:func:`tests.evaluate.flare_reference.official_scores` (the official loop on (x, y, z) arrays,
    spacing (x, y, z) in mm); skips the test when surface-distance is not installed."""
    pytest.importorskip("surface_distance")
    return flare_reference.official_scores(gt_data, seg_data, case_spacing)


def assert_scores_close(ours: dict, ref: dict, atol: float = 1e-6) -> None:
    """``{organ: (DSC, NSD)}`` of ours equal the reference's: same organs in order, each within ``atol``."""
    assert list(ours) == list(ref)
    for organ in ref:
        for a, b, what in zip(ours[organ], ref[organ], ("DSC", "NSD"), strict=True):
            assert abs(a - b) <= atol, f"organ {organ} {what}: ours {a!r} vs official {b!r}"


# --- tiny volumes ---------------------------------------------------------------------------------
def cube(shape, lo, hi) -> np.ndarray:
    """A (z, y, x) boolean volume of ``shape``, True on the box ``[lo, hi)`` (voxel indices)."""
    mask = np.zeros(shape, bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


def labels_from(masks: dict[int, np.ndarray]) -> np.ndarray:
    """A uint8 label volume from ``{FLARE id: boolean mask}`` (later ids overwrite earlier ones)."""
    shape = next(iter(masks.values())).shape
    out = np.zeros(shape, np.uint8)
    for organ, mask in masks.items():
        out[mask] = organ
    return out


#: (z, y, x) spacing in mm of the tiny test volumes.
SPACING = (2.5, 0.8, 1.1)


# --- random perturbed 13-organ cases ----------------------------------------------------------------
def random_case(rng: np.random.Generator, shape=(20, 48, 48)):
    """13 smooth blobs on a 4x4 grid of cells, and a prediction with one random perturbation each."""
    gt = np.zeros(shape, np.uint8)
    masks = {}
    cell = shape[1] // 4
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    for organ in ORGAN_IDS:
        cy, cx = divmod(organ - 1, 4)
        centre = (rng.uniform(6, shape[0] - 6), (cy + 0.5) * cell, (cx + 0.5) * cell)
        radii = (rng.uniform(1.5, 7), rng.uniform(2.5, cell / 2 - 1), rng.uniform(2.5, cell / 2 - 1))
        f = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii, strict=True))
        masks[organ] = f + 2.0 * noise < 1.0
    pred_masks = {}
    kinds = [
        "same",
        "dilate",
        "erode",
        "shift",
        "noise",
        "drop",
        "gt_absent",
        "both_absent",
        "far",
        "zextend",
    ]
    for organ, mask in masks.items():
        kind = kinds[rng.integers(len(kinds))]
        pred = mask.copy()
        if kind == "dilate":
            pred = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 3)))
        elif kind == "erode":
            pred = ndimage.binary_erosion(mask)
        elif kind == "shift":
            pred = np.roll(mask, int(rng.choice([-2, -1, 1, 2])), axis=int(rng.integers(3)))
        elif kind == "noise":
            band = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
            pred = mask ^ (band & (rng.random(shape) < 0.4))
        elif kind == "drop":
            pred[:] = False
        elif kind == "gt_absent":
            masks[organ] = np.zeros(shape, bool)
        elif kind == "both_absent":
            masks[organ] = pred = np.zeros(shape, bool)
        elif kind == "far":
            pred = np.roll(mask, int(rng.integers(3, 6)), axis=2)
        elif kind == "zextend":  # overshoot in z and miss the last GT slice
            z = np.flatnonzero(mask.any(axis=(1, 2)))
            if z.size:
                pred = ndimage.binary_dilation(mask, structure=np.ones((5, 1, 1), bool))
                pred[z[-1]] = False
        pred_masks[organ] = pred
    for organ, mask in masks.items():
        gt[mask] = organ
    pred_labels = np.zeros(shape, np.uint8)
    for organ, mask in pred_masks.items():
        pred_labels[mask] = organ
    # keep the official script away from its crash: a z-ranged GT organ in a single slice
    for organ in Z_RANGE_ORGANS:
        z = np.flatnonzero((gt == organ).any(axis=(1, 2)))
        if z.size == 1:
            gt[gt == organ] = 0
    return gt, pred_labels


# --- files --------------------------------------------------------------------------------------------
AFFINE = np.diag([-0.7813, 0.7813, 2.5, 1.0])  # RAS; spacing not exact in float32


def write_nifti(path: Path, labels_zyx: np.ndarray, affine=AFFINE) -> None:
    """Write a (z, y, x) label volume as NIfTI in nibabel's (x, y, z) order (``affine`` in mm)."""
    nib.save(nib.Nifti1Image(np.ascontiguousarray(labels_zyx.T), affine), str(path))
