"""Post-processing rules, each on a constructed (z, y, x) LPS label volume (superior = larger z)."""

from __future__ import annotations

import dataclasses

import numpy as np

from flarelib.config import PostprocessParams
from flarelib.infer.postprocess import body_orientation, postprocess

LIVER, RK, SPLEEN, PANCREAS, AORTA, RAG, LAG, GB, STOMACH, DUODENUM, LK = 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13
RULES = ("liver_slab", "aorta_component", "kidney_largest", "orientation_rules")
SHAPE = (30, 24, 24)


def only(*rules: str, **kw) -> PostprocessParams:
    """Params with just ``rules`` on; small volumes allowed (min_slices 10), margins 2."""
    flags = {r: r in rules for r in RULES}
    base = {"min_slices": 10, "liver_slab_margin": 2, "spleen_margin": 2, **flags}
    return dataclasses.replace(PostprocessParams(), **{**base, **kw})


def box(
    a: np.ndarray, label: int, z: tuple[int, int], y: tuple[int, int] = (0, 4), x: tuple[int, int] = (0, 4)
):
    """Set an inclusive-z, half-open-y/x box to ``label``."""
    a[z[0] : z[1] + 1, y[0] : y[1], x[0] : x[1]] = label


def anatomy() -> np.ndarray:
    """Liver z 15..22 (main component), left kidney z 5..10: superior is +z."""
    a = np.zeros(SHAPE, np.uint8)
    box(a, LIVER, (15, 22), (0, 8), (0, 8))
    box(a, LK, (5, 10), (16, 20), (16, 20))
    return a


def test_min_slices_and_enabled():
    a = anatomy()
    box(a, LIVER, (2, 2), (20, 22), (20, 22))  # a fragment the slab rule would remove
    rep: dict = {}
    out = postprocess(a, only("liver_slab", min_slices=30), report=rep)  # 30 slices: not > 30
    np.testing.assert_array_equal(out, a)
    assert rep["applied"] is False
    out = postprocess(a, only("liver_slab", min_slices=29))
    assert (out[2] == LIVER).sum() == 0
    np.testing.assert_array_equal(postprocess(a, only("liver_slab", enabled=False)), a)


def test_kidneys_keep_largest_component():
    a = anatomy()
    box(a, LK, (20, 21), (16, 18), (16, 18))  # small stray left-kidney blob
    box(a, RK, (5, 10), (16, 20), (0, 4))  # right kidney
    box(a, RK, (25, 25), (0, 2), (20, 22))  # small stray right-kidney blob
    box(a, SPLEEN, (25, 26), (20, 22), (20, 22))  # another organ, untouched
    rep: dict = {}
    out = postprocess(a, only("kidney_largest"), report=rep)
    assert (out == LK).sum() == 6 * 16 and (out[20:22] == LK).sum() == 0
    assert (out == RK).sum() == 6 * 16 and (out[25] == RK).sum() == 0
    assert (out == SPLEEN).sum() == (a == SPLEEN).sum()
    assert rep["kidney_largest"] == 2 * 4 + 4


def test_liver_slab_bounds_its_organs():
    a = anatomy()  # liver 15..22, margin 2: slab 13..24
    box(a, LIVER, (3, 3), (20, 22), (20, 22))  # liver fragment far below
    box(a, STOMACH, (20, 27), (10, 12), (0, 2))  # stomach crossing the slab's top
    box(a, GB, (5, 5), (10, 12), (4, 6))  # gallbladder below the slab
    box(a, PANCREAS, (24, 26), (12, 14), (8, 10))
    box(a, RAG, (12, 13), (14, 16), (0, 2))
    box(a, LAG, (14, 14), (14, 16), (4, 6))
    box(a, SPLEEN, (1, 2), (0, 2), (20, 22))  # not bounded by the slab
    rep: dict = {}
    out = postprocess(a, only("liver_slab"), report=rep)
    assert rep["slab"] == (13, 24)
    assert (out[3] == LIVER).sum() == 0 and (out == LIVER).sum() == 8 * 64
    assert sorted(np.unique(np.nonzero(out == STOMACH)[0])) == [20, 21, 22, 23, 24]
    assert (out == GB).sum() == 0
    assert sorted(np.unique(np.nonzero(out == PANCREAS)[0])) == [24]
    assert sorted(np.unique(np.nonzero(out == RAG)[0])) == [13]
    assert (out == LAG).sum() == 4
    assert (out == SPLEEN).sum() == (a == SPLEEN).sum()
    assert (out == LK).sum() == (a == LK).sum()  # kidneys are not slab organs


def test_aorta_keeps_component_with_most_voxels_in_slab():
    a = anatomy()  # slab 13..24
    box(a, AORTA, (0, 11), (10, 16), (10, 16))  # the largest aorta piece, below the slab (12*36)
    box(a, AORTA, (12, 20), (20, 22), (10, 12))  # smaller, mostly inside the slab (9*4)
    rep: dict = {}
    out = postprocess(a, only("aorta_component"), report=rep)
    assert (out == AORTA).sum() == 9 * 4 and (out[:12] == AORTA).sum() == 0
    assert rep["aorta_component"] == 12 * 36
    # without a liver there is no slab: the largest component stays
    b = a.copy()
    b[b == LIVER] = 0
    out = postprocess(b, only("aorta_component"))
    assert (out == AORTA).sum() == 12 * 36


def orientation_case() -> np.ndarray:
    a = anatomy()  # liver top z 22, left kidney bottom z 5, spleen margin 2: spleen kept in 5..24
    box(a, DUODENUM, (12, 25), (10, 12), (10, 12))  # crosses above the liver's top
    box(a, PANCREAS, (20, 24), (12, 14), (16, 18))
    box(a, SPLEEN, (3, 26), (20, 22), (0, 2))
    return a


def test_orientation_rules_superior_is_plus_z():
    a = orientation_case()
    assert body_orientation(a) == 1
    rep: dict = {}
    out = postprocess(a, only("orientation_rules"), report=rep)
    assert rep["orientation"] == 1
    assert sorted(np.unique(np.nonzero(out == DUODENUM)[0])) == list(range(12, 23))
    assert sorted(np.unique(np.nonzero(out == PANCREAS)[0])) == list(range(20, 23))
    assert sorted(np.unique(np.nonzero(out == SPLEEN)[0])) == list(range(5, 25))
    assert rep["orientation_duodenum_pancreas"] == 3 * 4 + 2 * 4
    assert rep["orientation_spleen"] == 4 * 4


def test_orientation_rules_follow_a_z_flipped_body():
    a = orientation_case()
    flipped = np.ascontiguousarray(a[::-1])
    assert body_orientation(flipped) == -1
    out = postprocess(flipped, only("orientation_rules"))
    np.testing.assert_array_equal(out, postprocess(a, only("orientation_rules"))[::-1])


def test_missing_organs_leave_the_volume_alone():
    a = np.zeros(SHAPE, np.uint8)
    box(a, SPLEEN, (0, 29))
    box(a, DUODENUM, (0, 29), (10, 12), (10, 12))
    out = postprocess(a, PostprocessParams(min_slices=10))
    np.testing.assert_array_equal(out, a)
    assert body_orientation(a) == 0


def test_all_rules_together_and_input_untouched():
    a = orientation_case()
    box(a, LK, (20, 21), (16, 18), (16, 18))
    keep = a.copy()
    out = postprocess(a, only(*RULES))
    np.testing.assert_array_equal(a, keep)
    assert out.dtype == np.uint8 and out.shape == a.shape
    assert (out[20:22, 16:18, 16:18] == LK).sum() == 0
