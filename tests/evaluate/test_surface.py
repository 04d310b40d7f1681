"""Tests for flarelib.evaluate.surface: bounding boxes and the probe / EDT tolerance test.

Volumes are (z, y, x) label arrays; spacings (z, y, x) in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from flarelib.evaluate import surface
from flarelib.evaluate.scoring import normalized_surface_dice, score_case
from tests.evaluate.support import assert_scores_close, random_case


def test_label_boxes_match_find_objects():
    rng = np.random.default_rng(3)
    labels = (rng.random((9, 11, 13)) * 20).astype(np.uint8) * (rng.random((9, 11, 13)) > 0.8)
    labels[labels == 7] = 0
    assert surface._label_boxes(labels, 13) == ndimage.find_objects(labels, max_label=13)


def test_probe_hands_far_points_to_the_edt(monkeypatch):
    rng = np.random.default_rng(5)
    gt, pred = random_case(rng)
    spacing = (3.0, 0.9, 0.9)
    expected = score_case(gt, pred, spacing, method="edt")
    monkeypatch.setattr(surface, "_PROBE_TO_EDT", 0)  # switch as soon as allowed
    assert_scores_close(score_case(gt, pred, spacing, method="probe"), expected, atol=1e-12)
    # tolerance boxes too large to probe (tiny voxels) go straight to the EDT
    g, p = gt == 1, np.roll(gt == 1, 2, axis=1)
    assert normalized_surface_dice(g, p, (0.05, 0.04, 0.04), 2.0) == normalized_surface_dice(
        g, p, (0.05, 0.04, 0.04), 2.0, method="edt"
    )
