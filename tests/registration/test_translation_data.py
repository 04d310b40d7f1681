"""flarelib.registration.translation_data: CT and MR aligned onto the MR reference by translations."""

from __future__ import annotations

import numpy as np
import pytest

from flarelib.io import Volume
from flarelib.registration.translation_data import align_domains


def _body(shape, spacing, origin, centre_mm, organ_offset_mm=(0.0, 0.0, 0.0), organ_value=200.0):
    """An ellipsoid body (value 100) with one box 'organ' (label 1, ``organ_value``), both placed by
    world position (LPS mm, x y z); returns (image, label)."""
    z, y, x = np.indices(shape)
    wx = origin[0] + x * spacing[2]
    wy = origin[1] + y * spacing[1]
    wz = origin[2] + z * spacing[0]
    cx, cy, cz = centre_mm
    body = ((wx - cx) / 40) ** 2 + ((wy - cy) / 30) ** 2 + ((wz - cz) / 35) ** 2 <= 1
    ox, oy, oz = cx + organ_offset_mm[0], cy + organ_offset_mm[1], cz + organ_offset_mm[2]
    organ = (abs(wx - ox) < 10) & (abs(wy - oy) < 8) & (abs(wz - oz) < 9)
    label = (organ & body).astype(np.uint8)
    second = (abs(wx - cx + 20) < 6) & (abs(wy - cy) < 6) & (abs(wz - cz - 10) < 6)
    label[second & body] = 2
    image = np.where(body, 100.0, 0.0) + np.where(label > 0, organ_value - 100.0, 0.0)
    vol = Volume(image.astype(np.float32), spacing, origin, np.eye(3))
    return vol, vol.with_array(label)


def test_align_domains_recovers_known_shifts():
    shape, spacing = (30, 36, 40), (3.0, 2.5, 2.5)
    origin = (-50.0, -45.0, -45.0)
    # CT reference "ct_a" centred at 0; "ct_b" shifted by (6, -4, 9) mm; MR reference "mr_a" centred
    # at (10, 5, -3) and "mr_b" shifted from it by (-5, 7.5, 3) mm.
    ct_a = _body(shape, spacing, origin, (0.0, 0.0, 0.0))
    ct_b = _body(shape, spacing, origin, (6.0, -4.0, 9.0))
    mr_a = _body(shape, spacing, origin, (10.0, 5.0, -3.0), organ_value=60.0)
    mr_b = _body(shape, spacing, origin, (5.0, 12.5, 0.0), organ_value=60.0)
    aligned = align_domains(
        [("ct_b", *ct_b), ("ct_a", *ct_a)], [("mr_b", mr_b[0]), ("mr_a", mr_a[0])], levels=1
    )
    assert (aligned.reference_ct, aligned.reference_mr) == ("ct_a", "mr_a")  # first by name, not input order
    # recovered translations (fixed -> moving, mm, x y z)
    t_ct_b = aligned.record["ct_b"]["transform"]
    t_mr_b = aligned.record["mr_b"]["transform"]
    cross = np.array(aligned.record["ct_a->mr_a"]["transform"]["parameters"])
    np.testing.assert_allclose(cross, (-10.0, -5.0, 3.0), atol=1.0)
    np.testing.assert_allclose(np.array(t_ct_b["parameters"]), cross + np.array([6.0, -4.0, 9.0]), atol=1.0)
    np.testing.assert_allclose(np.array(t_mr_b["parameters"]), (-5.0, 7.5, 3.0), atol=1.0)
    # every volume on the MR reference's grid, the CT organs where the MR reference's are
    ref_lab = mr_a[1].array
    for vol, lab in zip(aligned.ct, aligned.ct_labels, strict=True):
        assert vol.shape == shape and np.allclose(vol.origin_xyz, origin)
        inter = np.logical_and(lab.array == 1, ref_lab == 1).sum()
        assert 2 * inter / ((lab.array == 1).sum() + (ref_lab == 1).sum()) > 0.8
    body_ref = mr_a[0].array > 0
    for vol in aligned.mr:
        overlap = np.logical_and(vol.array > 50, body_ref).sum() / body_ref.sum()
        assert overlap > 0.9


def test_align_domains_needs_both_domains():
    ct = _body((8, 8, 8), (3.0, 3.0, 3.0), (0.0, 0.0, 0.0), (12.0, 12.0, 12.0))
    with pytest.raises(ValueError, match="CT and MR"):
        align_domains([("c", *ct)], [])
