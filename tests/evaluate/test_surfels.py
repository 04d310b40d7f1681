"""Tests for flarelib.evaluate.surfels: neighbour codes and surfel areas equal DeepMind's.

Masks are (z, y, x); DeepMind works on the (x, y, z) transpose, hence the ``.T``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from flarelib.evaluate import surfels

# surface-distance calls scipy.ndimage.filters / .morphology (deprecated namespaces).
pytestmark = pytest.mark.filterwarnings("ignore:Please import:DeprecationWarning")


def test_neighbour_codes_and_areas_match_deepmind():
    lt = pytest.importorskip("surface_distance.lookup_tables")
    rng = np.random.default_rng(7)
    for _ in range(5):
        mask = rng.random((5, 7, 9)) > 0.5
        crop = np.zeros(np.array(mask.T.shape) + 1, np.uint8)  # DeepMind's (x, y, z) crop, padded at the end
        crop[:-1, :-1, :-1] = mask.T
        ref = ndimage.correlate(crop, lt.ENCODE_NEIGHBOURHOOD_3D_KERNEL, mode="constant", cval=0)
        np.testing.assert_array_equal(surfels._neighbour_codes(mask).T, ref)
    for spacing_xyz in [(1.0, 1.0, 1.0), (0.7, 1.3, 3.1), (float(np.float32(1.168945)), 1.168945, 3.0)]:
        np.testing.assert_array_equal(
            surfels._surface_area_table(spacing_xyz),
            lt.create_table_neighbour_code_to_surface_area(spacing_xyz),
        )
