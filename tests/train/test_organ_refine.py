"""Organ-wise refinement of fake MR: targets from pseudo-labelled real MR, shifts per organ."""

import numpy as np
import pytest

from flarelib.train.organ_refine import organ_medians, organ_targets, refine_fake


def _blocks(shape=(3, 20, 20)) -> np.ndarray:
    """Two organs (ids 1 and 3) as boxes in a (z, y, x) label."""
    label = np.zeros(shape, np.uint8)
    label[:, 2:10, 2:10] = 1
    label[:, 12:18, 12:18] = 3
    return label


def test_targets_are_medians_inside_the_eroded_pseudo_labels():
    label = _blocks()
    image = np.full(label.shape, 10.0, np.float32)
    image[label == 1] = 200.0
    image[label == 3] = 50.0
    # the pseudo-label's rim is wrong (background intensity): erosion leaves it out
    image[:, 2, 2:10] = 10.0
    t = organ_targets([image, image], [label, label], erode=1, min_voxels=10)
    assert t == {1: 200.0, 3: 50.0}
    # without erosion the rim counts, still a minority: the median holds
    assert organ_targets([image], [label], erode=0, min_voxels=10)[1] == 200.0
    # an organ under min_voxels pooled voxels has no target
    assert 3 not in organ_targets([image], [label], erode=1, min_voxels=1000)


def test_refine_moves_each_organ_to_its_target_and_keeps_texture():
    label = _blocks()
    rng = np.random.default_rng(0)
    fake = (100.0 + rng.normal(0, 5, label.shape)).astype(np.float32)
    refined = refine_fake(fake, label, {1: 180.0}, erode=0)
    assert np.median(refined[label == 1]) == pytest.approx(180.0, abs=1e-3)
    # texture inside the organ kept: a pure shift
    diff = refined[label == 1] - fake[label == 1]
    assert np.ptp(diff) < 1e-3
    # organs without a target and the background untouched
    assert np.array_equal(refined[label != 1], fake[label != 1])
    # strength 0: unchanged; strength 0.5: halfway
    assert np.array_equal(refine_fake(fake, label, {1: 180.0}, strength=0.0), fake)
    half = refine_fake(fake, label, {1: 180.0}, erode=0, strength=0.5)
    assert np.median(half[label == 1]) == pytest.approx((180.0 + np.median(fake[label == 1])) / 2, abs=1e-3)


def test_refine_clips_to_the_mr_range_and_checks_shapes():
    label = _blocks()
    fake = np.full(label.shape, 250.0, np.float32)
    assert refine_fake(fake, label, {1: 300.0}).max() == 255.0
    with pytest.raises(ValueError, match="differ in shape"):
        refine_fake(fake, label[:, :10], {1: 1.0})
    with pytest.raises(ValueError, match="differ in shape"):
        organ_targets([fake], [label[:, :10]])


def test_organ_medians_counts_the_core():
    label = _blocks()
    m = organ_medians(np.ones(label.shape), label, erode=1)
    assert m[1] == (1.0, 3 * 6 * 6)  # each 8 x 8 slice eroded in-plane by one voxel: 6 x 6
