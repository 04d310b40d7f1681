"""Patch sampling: foreground oversampling over every present class, padding, batch determinism."""

from __future__ import annotations

import numpy as np
import torch

from flarelib.train.augment import AugmentConfig
from flarelib.train.sampling import BatchLoader, PatchSampler, SegmentationBatches, TrainVolume


def test_class_locations_cover_present_annotated_classes(make_volume):
    vol = make_volume(0, not_annotated=(8,))
    locs = vol.class_locations()
    assert sorted(locs) == [1, 2, 7, 13]
    for c, pts in locs.items():
        assert (vol.label[tuple(pts.T)] == c).all()


def test_foreground_oversampling_picks_every_present_class_not_only_the_largest():
    lab = np.zeros((8, 64, 64), np.uint8)
    lab[:, :40, :40] = 1  # huge liver
    lab[4, 60, 60] = 9  # one gallbladder voxel far away
    vol = TrainVolume(np.zeros(lab.shape, np.float32), lab, name="v")
    sampler = PatchSampler([vol], (4, 8, 8), foreground_oversample=1.0, augment=AugmentConfig.none())
    rng = np.random.default_rng(0)
    hits = sum(int((sampler.sample(rng)[1] == 9).any()) for _ in range(200))
    assert 70 < hits < 130  # about half: class chosen uniformly among {1, 9}


def test_no_oversampling_rarely_hits_a_tiny_class():
    lab = np.zeros((8, 64, 64), np.uint8)
    lab[4, 60, 60] = 9
    vol = TrainVolume(np.zeros(lab.shape, np.float32), lab, name="v")
    sampler = PatchSampler([vol], (4, 8, 8), foreground_oversample=0.0, augment=AugmentConfig.none())
    rng = np.random.default_rng(0)
    hits = sum(int((sampler.sample(rng)[1] == 9).any()) for _ in range(200))
    assert hits < 20


def test_batches_are_a_function_of_index_and_rank(make_volume):
    toy_volume = make_volume
    labeled = [toy_volume(0), toy_volume(1)]
    unlabeled = [toy_volume(2, labeled=False)]
    src = SegmentationBatches(labeled, unlabeled, (8, 32, 32), seed=5)
    a, b = src(3), src(3)
    assert set(a) == {"image_l", "label_l", "annotated_l", "image_u"}
    assert a["image_l"].shape == (2, 1, 8, 32, 32) and a["image_u"].shape == (2, 1, 8, 32, 32)
    assert a["label_l"].dtype == torch.uint8 and a["annotated_l"].shape == (2, 14)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image_l"], src(4)["image_l"])
    other_rank = SegmentationBatches(labeled, unlabeled, (8, 32, 32), seed=5, rank=1)
    assert not torch.equal(a["image_l"], other_rank(3)["image_l"])


def test_background_loader_gives_the_same_batches_as_inline(make_volume):
    toy_volume = make_volume
    src = SegmentationBatches([toy_volume(0)], None, (8, 32, 32), batch_labeled=1, seed=1)
    inline = list(BatchLoader(src, 2, 5, num_workers=0))
    bg = list(BatchLoader(src, 2, 5, num_workers=1, prefetch=2))
    assert len(inline) == len(bg) == 3
    for x, y in zip(inline, bg, strict=True):
        assert torch.equal(x["image_l"], y["image_l"]) and torch.equal(x["label_l"], y["label_l"])


def test_one_slice_patches_oversample_a_slice_through_the_organ():
    """2d configuration: a (1, Y, X) patch centred on a foreground voxel is the slice through it."""
    lab = np.zeros((20, 64, 64), np.uint8)
    lab[3:5, 10:30, 10:30] = 1  # a thin organ: 2 of 20 slices
    lab[15, 50:54, 50:54] = 9
    img = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], lab.shape).copy()
    vol = TrainVolume(img, lab, name="v")
    sampler = PatchSampler([vol], (1, 32, 32), foreground_oversample=1.0, augment=AugmentConfig.none())
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        patch, plab, _ = sampler.sample(rng)
        assert patch.shape == plab.shape == (1, 32, 32)
        assert (plab > 0).any()  # always a slice through an organ
        z = int(patch[0, 0, 0])  # the image holds the slice index
        assert (patch == z).all() and z in (3, 4, 15)
        seen.add(z)
    assert seen == {3, 4, 15}
    random = PatchSampler([vol], (1, 32, 32), foreground_oversample=0.0, augment=AugmentConfig.none())
    assert len({int(random.sample(rng)[0][0, 0, 0]) for _ in range(200)}) == 20  # any slice


def test_one_slice_batches_of_8_plus_8(make_volume):
    src = SegmentationBatches(
        [make_volume(0)], [make_volume(2, labeled=False)], (1, 32, 32), batch_labeled=8, batch_unlabeled=8
    )
    b = src(0)
    assert b["image_l"].shape == b["image_u"].shape == (8, 1, 1, 32, 32) and b["label_l"].shape == (
        8,
        1,
        32,
        32,
    )
