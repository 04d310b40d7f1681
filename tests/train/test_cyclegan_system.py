"""CycleGAN system: the cycle loss falls on toy domains, translation by tiles, pool, loop resume."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from flarelib.config import CycleGANParams
from flarelib.models.cyclegan import NLayerDiscriminator3D, ResnetGenerator3D
from flarelib.train.checkpoint import load_checkpoint
from flarelib.train.cyclegan import (
    CycleGAN,
    ImagePool,
    blend_weights,
    gan_loss,
    tile_starts,
    translate_volume,
)
from flarelib.train.loop import LoopConfig, train
from flarelib.train.sampling import TrainVolume, UnpairedBatches

PATCH = (8, 16, 16)


def _params(**kw):
    base = dict(
        ngf=4,
        ndf=4,
        n_blocks=1,
        lr=2e-4,
        patch_zyx=PATCH,
        epochs=4,
        decay_start_epoch=2,
        iterations_per_epoch=5,
        pool_size=3,
    )
    base.update(kw)
    return dataclasses.replace(CycleGANParams(), **base)


def _system(p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return CycleGAN(
        ResnetGenerator3D(1, 1, p.ngf, p.n_blocks, generator=g),
        ResnetGenerator3D(1, 1, p.ngf, p.n_blocks, generator=g),
        NLayerDiscriminator3D(1, p.ndf, n_layers=1, generator=g),
        NLayerDiscriminator3D(1, p.ndf, n_layers=1, generator=g),
        p,
        seed=seed,
    )


def _domains():
    """A: smooth blobs on dark background (0..255); B: the same anatomy with inverted contrast."""
    rng = np.random.default_rng(0)
    vols_a, vols_b = [], []
    for _ in range(2):
        img = np.zeros((12, 24, 24), np.float32)
        for _ in range(4):
            c = rng.uniform([2, 4, 4], [10, 20, 20])
            zz, yy, xx = np.ogrid[:12, :24, :24]
            img += 180 * np.exp(-(((zz - c[0]) / 2) ** 2 + ((yy - c[1]) / 4) ** 2 + ((xx - c[2]) / 4) ** 2))
        img = np.clip(img + 20, 0, 255)
        vols_a.append(TrainVolume(img))
        vols_b.append(TrainVolume(255 - img))
    return vols_a, vols_b


def _loop_cfg(out, iterations, **kw):
    return LoopConfig(
        stage="cyclegan",
        out_dir=out,
        iterations=iterations,
        seed=0,
        checkpoint_every=1000,
        tensorboard=False,
        progress=False,
        device="cpu",
        **kw,
    )


def test_a_few_steps_reduce_the_cycle_loss(tmp_path):
    p = _params()
    a, b = _domains()
    result = train(_system(p), UnpairedBatches(a, b, PATCH, seed=0), _loop_cfg(tmp_path, 20))
    cyc = [r["cycle_l1"] for r in result.history]
    assert np.mean(cyc[-4:]) < 0.7 * np.mean(cyc[:4])
    assert {"loss_g", "loss_d", "gan", "cycle", "identity", "lr_g", "lr_d"} <= set(result.history[0])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert set(ckpt["modules"]) == {"g_ab", "g_ba", "d_a", "d_b"} and set(ckpt["optimizers"]) == {"g", "d"}
    assert len(ckpt["system"]["pool_a"]["images"]) == 3


def test_cyclegan_resume_is_exact(tmp_path):
    p = _params()
    a, b = _domains()
    full = train(_system(p), UnpairedBatches(a, b, PATCH, seed=0), _loop_cfg(tmp_path / "f", 6))
    train(_system(p), UnpairedBatches(a, b, PATCH, seed=0), _loop_cfg(tmp_path / "r", 6), stop_after=4)
    resumed = train(_system(p, seed=0), UnpairedBatches(a, b, PATCH, seed=0), _loop_cfg(tmp_path / "r", 6))
    key = [(r["loss_g"], r["loss_d"]) for r in full.history[4:]]
    assert [(r["loss_g"], r["loss_d"]) for r in resumed.history] == key


@pytest.mark.parametrize("kind", ["lsgan", "bce"])
def test_gan_loss_kinds(kind):
    pred = torch.tensor([[0.0, 2.0]])
    real, fake = gan_loss(pred, True, kind).item(), gan_loss(pred, False, kind).item()
    if kind == "lsgan":
        assert real == pytest.approx((1 + 1) / 2) and fake == pytest.approx((0 + 4) / 2)
    else:
        ref = torch.nn.functional.binary_cross_entropy_with_logits
        assert real == pytest.approx(ref(pred, torch.ones_like(pred)).item())
        assert fake == pytest.approx(ref(pred, torch.zeros_like(pred)).item())


def test_image_pool_returns_history_or_new():
    pool = ImagePool(2, seed=0)
    x = [torch.full((1, 1, 2, 2, 2), float(i)) for i in range(20)]
    out0, out1 = pool.query(x[0]), pool.query(x[1])
    assert torch.equal(out0, x[0]) and torch.equal(out1, x[1])
    values = {float(pool.query(x[i]).flatten()[0]) for i in range(2, 20)}
    assert values - set(range(2, 20))  # some queries returned older images
    assert len(pool.images) == 2
    assert ImagePool(0).query(x[5]) is x[5]


def test_translate_volume_shape_and_identity():
    img = np.random.default_rng(0).uniform(0, 255, (10, 37, 29)).astype(np.float32)
    for blend in ("gaussian", "linear"):
        out = translate_volume(nn.Identity(), img, (8, 16, 16), overlap=0.5, blend=blend)
        assert out.shape == img.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, img, atol=1e-3)
    g = ResnetGenerator3D(1, 1, 2, 1, generator=torch.Generator().manual_seed(0))
    out = translate_volume(g, img, (8, 16, 16), overlap=0.25)
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 255


def test_translation_tiles_cover_and_blend_weights():
    assert tile_starts(10, 16, 0.5) == [0]
    starts = tile_starts(37, 16, 0.5)
    assert starts[0] == 0 and starts[-1] == 21 and all(b - a <= 8 for a, b in itertools.pairwise(starts))
    w = blend_weights((8, 16, 16), "gaussian")
    assert w.max() == pytest.approx(1.0) and w.min() > 0 and w[4, 8, 8] > w[0, 0, 0]
