"""Tiny synthetic volumes for the pseudolabel tests."""

from __future__ import annotations

import numpy as np
import pytest

from flarelib.io import Volume


def organ_boxes() -> np.ndarray:
    """A (40, 60, 60) label map, raw voxel counts: 11 organs as 8x10x10 boxes (800 voxels, > 512),
    esophagus -> stomach -> duodenum touching face to face, adrenals 2 x 16 x 2 (64 voxels, an
    anterior-posterior (y) extent of 16 voxels)."""
    lab = np.zeros((40, 60, 60), np.uint8)
    spots = {
        1: (1, 1, 1),
        2: (1, 1, 13),
        3: (1, 1, 25),
        4: (1, 1, 37),
        5: (1, 13, 1),
        6: (1, 13, 13),
        9: (1, 13, 25),
        13: (1, 13, 37),
    }
    for organ, (z, y, x) in spots.items():
        lab[z : z + 8, y : y + 10, x : x + 10] = organ
    # esophagus, stomach, duodenum: a chain of touching boxes along x
    lab[20:28, 30:40, 1:11] = 10
    lab[20:28, 30:40, 11:21] = 11
    lab[20:28, 30:40, 21:31] = 12
    lab[30:32, 30:46, 40:42] = 7
    lab[30:32, 30:46, 50:52] = 8
    return lab


@pytest.fixture
def boxes() -> np.ndarray:
    return organ_boxes()


def ellipsoid(shape, centre_zyx, semi_zyx) -> np.ndarray:
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    c, s = centre_zyx, semi_zyx
    return ((zz - c[0]) / s[0]) ** 2 + ((yy - c[1]) / s[1]) ** 2 + ((xx - c[2]) / s[2]) ** 2 <= 1.0


def body_phantom(shift_mm=(0.0, 0.0, 0.0), *, contrast: str = "bright", seed: int = 0):
    """(image, label) of a small synthetic abdomen on a 4 x 4 x 4 mm grid, 24 x 40 x 48 voxels:
    a body with a notch and a bulge (so every rigid motion is visible), a liver, two kidneys,
    a spleen. ``shift_mm`` (x, y, z) moves the anatomy in world space. ``contrast``: kidneys bright
    (``bright``) or dark (``dark``) against their surroundings."""
    rng = np.random.default_rng(seed)
    shape = (24, 40, 48)
    sp = 4.0
    vol = Volume(np.zeros(shape, np.float32), (sp, sp, sp), (0.0, 0.0, 0.0), np.eye(3))
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    # world coordinates (x, y, z) mm minus the shift: the anatomy moves by +shift
    x = xx * sp - shift_mm[0]
    y = yy * sp - shift_mm[1]
    z = zz * sp - shift_mm[2]

    def ell(c, s):
        return ((x - c[0]) / s[0]) ** 2 + ((y - c[1]) / s[1]) ** 2 + ((z - c[2]) / s[2]) ** 2 <= 1.0

    body = ell((96, 80, 46), (88, 64, 60)) | ell((160, 50, 60), (25, 25, 30))
    body &= ~ell((40, 30, 46), (18, 18, 80))
    label = np.zeros(shape, np.uint8)
    label[ell((70, 70, 50), (28, 24, 22)) & body] = 1
    label[ell((66, 94, 44), (14, 12, 24)) & body] = 2
    label[ell((126, 94, 44), (14, 12, 24)) & body] = 13
    label[ell((130, 70, 56), (14, 14, 14)) & body] = 3
    img = np.where(body, 300.0, 5.0).astype(np.float32)
    img[label == 1] = 450.0
    img[label == 3] = 420.0
    kidney = 900.0 if contrast == "bright" else 80.0
    img[np.isin(label, (2, 13))] = kidney
    img += rng.normal(0, 10, shape).astype(np.float32)
    return vol.with_array(img), vol.with_array(label)
