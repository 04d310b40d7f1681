"""The label-free translation criterion: the histogram distance against scipy's, the validator
against an independent computation, a CycleGAN validator logged with its best generator kept (stage 1
still translating with the last); the generators' optional norm."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from flarelib.config import LATE_KEYS_NEUTRAL, params_to_dict
from flarelib.io import Volume
from flarelib.preprocess.body import body_mask
from flarelib.study.flow import stage_key
from flarelib.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from flarelib.train.fake_mr import ct_body_mask, load_translator
from flarelib.train.sampling import TrainVolume
from flarelib.train.stages import train_cyclegan, training_hash
from flarelib.train.translation_select import (
    SELECT_METRIC,
    body_histogram,
    histogram_w1,
    translation_validator,
)

from .test_stages import params_2d


def test_histogram_w1_is_scipys_wasserstein_distance_of_the_binned_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 5000)
    b = np.clip(rng.normal(170, 30, 3000), 0, 255).astype(int)
    ha = np.bincount(a, minlength=256).astype(float)
    hb = np.bincount(b, minlength=256).astype(float)
    assert histogram_w1(ha, hb) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)
    assert histogram_w1(ha, ha) == 0.0
    narrow = np.zeros(256)
    narrow[100] = 1.0
    assert histogram_w1(narrow, np.roll(narrow, 7)) == pytest.approx(7.0)
    assert np.isnan(histogram_w1(np.zeros(256), hb))


def test_body_histogram_counts_only_the_mask():
    image = np.full((2, 4, 4), 10.5, np.float32)
    image[0] = 200.5
    mask = np.zeros(image.shape, bool)
    mask[0, :2] = True
    h = body_histogram(image, mask)
    assert h.sum() == 8 and h[200] == 8


def _phantomish(rng: np.random.Generator, fat: float, organ: float) -> np.ndarray:
    """A (6, 40, 40) body on black: a 'fat' ring around an 'organ' disc, values at half-integers so
    the [-1, 1] round trip of the translation cannot move a voxel across a bin edge."""
    _, yy, xx = np.mgrid[:6, :40, :40]
    r = np.hypot(yy - 20, xx - 20)
    img = np.where(r < 16, fat, 0.0) + np.where(r < 9, organ - fat, 0.0)
    noise = rng.integers(-3, 4, img.shape)
    return np.where(img > 0, img + noise, 0.0).astype(np.float32)


def test_validator_equals_an_independent_computation_with_an_identity_generator():
    rng = np.random.default_rng(1)
    cts = [_phantomish(rng, 40.5, 170.5) for _ in range(2)]
    mrs = [_phantomish(rng, 210.5, 90.5) for _ in range(3)]
    validate = translation_validator(cts, mrs, (1, 16, 16), extra=lambda fakes: {"n": float(len(fakes))})
    out = validate(nn.Identity())
    fake_values = np.concatenate([ct[ct_body_mask(ct)] for ct in cts])
    real_values = np.concatenate(
        [m[body_mask(Volume(m, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))).array > 0] for m in mrs]
    )
    expect = wasserstein_distance(np.floor(fake_values), np.floor(real_values))
    assert out["body_w1"] == pytest.approx(expect, rel=1e-6)
    assert out[SELECT_METRIC] == -out["body_w1"] and out["n"] == 2.0
    # CT's contrast is far from this MR's: a generator that inverts it comes nearer
    inverted = validate(_Invert())
    assert inverted["body_w1"] < out["body_w1"] / 2


class _Invert(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


def test_a_cyclegan_validator_is_logged_and_its_best_generator_kept(tmp_path):
    p = params_2d()
    p = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, epochs=2, iterations_per_epoch=2))
    rng = np.random.default_rng(2)
    a = [TrainVolume(_phantomish(rng, 40.5, 170.5)) for _ in range(2)]
    b = [TrainVolume(_phantomish(rng, 210.5, 90.5)) for _ in range(2)]
    label_free = translation_validator([v.image for v in a], [v.image for v in b], p.cyclegan.patch_zyx)
    calls = []

    def validate(generator: nn.Module) -> dict[str, float]:  # the label-free figures; the first wins
        calls.append(1)
        return {**label_free(generator), SELECT_METRIC: -float(len(calls))}

    result = train_cyclegan(
        p, tmp_path / "gan", a, b, device="cpu", progress=False, validate=validate, validate_every=1
    )
    assert result.iteration == 4 and len(calls) == 4 and result.best_iteration == 1
    assert [r["iteration"] for r in result.val_history] == [1.0, 2.0, 3.0, 4.0]
    assert all(r["body_w1"] > 0 for r in result.val_history)
    best = load_checkpoint(tmp_path / "gan" / BEST_NAME)
    assert best["which"] == "g_ab" and best["iteration"] == 1
    # stage 1 translates with the last generator, never the kept one
    last = load_checkpoint(tmp_path / "gan" / CHECKPOINT_NAME)["modules"]["g_ab"]
    generator, record = load_translator(tmp_path / "gan" / CHECKPOINT_NAME, p)
    assert record["iteration"] == 4
    assert all(torch.equal(generator.state_dict()[k], last[k]) for k in last)


def test_generator_norm_none_builds_a_generator_without_norms_and_keeps_older_hashes(monkeypatch):
    import flarelib.study.flow as flow
    from flarelib.models.configuration import configuration_of
    from flarelib.models.cyclegan import discriminator_from_params, generator_from_params

    p = params_2d()
    assert params_to_dict(p)["cyclegan"]["generator_norm"] == "instance"
    plain = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, generator_norm="none"))
    conf = configuration_of(plain)
    g = generator_from_params(plain.cyclegan, configuration=conf)
    assert not any(isinstance(m, nn.InstanceNorm3d) for m in g.modules())
    d = discriminator_from_params(plain.cyclegan, configuration=conf)  # the discriminator keeps its norm
    assert any(isinstance(m, nn.InstanceNorm3d) for m in d.modules())
    assert training_hash(plain, "cyclegan") != training_hash(p, "cyclegan")
    assert stage_key(plain, "01_stage1") != stage_key(p, "01_stage1")
    current = stage_key(p, "01_stage1")

    def older(params):  # params as they were before the late keys existed
        d = params_to_dict(params)
        for section, key in LATE_KEYS_NEUTRAL:
            del d[section][key]
        return d

    monkeypatch.setattr(flow, "params_to_dict", older)
    monkeypatch.setattr(flow, "drop_neutral_keys", lambda d: d)
    assert stage_key(p, "01_stage1") == current
