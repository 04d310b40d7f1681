"""Tiny networks and toy volumes for the training-engine tests (1 CPU thread, seconds each)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flarelib.labels import NUM_CLASSES
from flarelib.models.unet import UNet3D
from flarelib.train.sampling import TrainVolume

TINY_CHANNELS = (4, 8, 16, 16)
TINY_POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2))  # divisor (4, 8, 8)
TINY_PATCH = (8, 32, 32)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_unet(seed: int = 0) -> UNet3D:
    """A 4-stage U-Net with 2 deep-supervision heads (3 outputs in train mode)."""
    return UNet3D(
        1,
        NUM_CLASSES,
        TINY_CHANNELS,
        TINY_POOLS,
        deep_supervision=True,
        num_ds_heads=2,
        generator=torch.Generator().manual_seed(seed),
    )


def toy_volume(seed: int, shape=(12, 40, 40), labeled: bool = True, not_annotated=()) -> TrainVolume:
    """Boxes of a few organs (liver 1, right kidney 2, left kidney 13, adrenals 7/8) in noise, z-scored."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    lab[2:10, 5:25, 2:16] = 1
    lab[3:8, 25:33, 4:10] = 2
    lab[3:8, 25:33, 30:36] = 13
    lab[6:9, 20:23, 12:14] = 7
    lab[6:9, 20:23, 26:28] = 8
    intens = np.array([0, 1.0, 2.0, 0, 0, 0, 0, 3.0, 3.5, 0, 0, 0, 0, 2.5], np.float32)
    img = intens[lab] + rng.normal(0, 0.3, shape).astype(np.float32)
    img = (img - img.mean()) / img.std()
    ann = np.ones(NUM_CLASSES, bool)
    for c in not_annotated:
        ann[c] = False
        lab[lab == c] = 0
    return TrainVolume(img.astype(np.float32), lab if labeled else None, ann, name=f"toy{seed}")


@pytest.fixture
def make_unet():
    """``make_unet(seed=0)`` -> :func:`tiny_unet`."""
    return tiny_unet


@pytest.fixture
def make_volume():
    """``make_volume(seed, shape=..., labeled=True, not_annotated=())`` -> :func:`toy_volume`."""
    return toy_volume
