"""RandConv, GIN and label-driven (synth) intensity randomisation: deterministic given the
Generator, statistics kept, labels untouched, CT and fake MR only, in-plane kernels for one-slice
patches, a params error for unknown kinds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flarelib.config import params_from_dict
from flarelib.errors import FlareInputError
from flarelib.train.intensity_aug import (
    GIN,
    LabelSynth,
    RandConv,
    RandConvParams,
    make_intensity_aug,
)
from flarelib.train.sampling import FAKE_MR, PatchSampler, SegmentationBatches


def _patch(shape=(8, 24, 24), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    img[:, 4:16, 6:18] = 2.0
    img[:, 10:20, 12:22] += 1.0
    img += rng.normal(0, 0.2, shape).astype(np.float32)
    return (img - img.mean()) / img.std()


@pytest.mark.parametrize("aug", [RandConv(), GIN(), RandConv(in_plane=True), GIN(in_plane=True)])
def test_deterministic_given_the_generator_state(aug):
    img = _patch()
    a = aug.apply(img, aug.draw_params(np.random.default_rng(7)))
    b = aug.apply(img, aug.draw_params(np.random.default_rng(7)))
    np.testing.assert_array_equal(a, b)
    others = [aug.apply(img, aug.draw_params(np.random.default_rng(s))) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("aug", [RandConv(), GIN()])
@pytest.mark.parametrize("shape", [(8, 24, 24), (1, 32, 32)])
def test_output_finite_with_the_input_mean_and_std(aug, shape):
    img = _patch(shape) * 3.0 + 5.0  # not z-scored: the statistics are the input's, whatever they are
    aug = dataclasses.replace(aug, in_plane=shape[0] == 1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = aug.apply(img, aug.draw_params(rng))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.isfinite(out).all()
        assert out.mean() == pytest.approx(img.mean(), abs=1e-4)
        assert out.std() == pytest.approx(img.std(), rel=1e-4)


def test_randconv_size_one_kernel_is_a_gain():
    img = _patch()
    neg = RandConv().apply(img, RandConvParams(np.full((1, 1, 1), -0.3, np.float32), alpha=0.0))
    np.testing.assert_allclose(neg, 2 * img.mean() - img, atol=1e-5)  # a contrast inversion
    pos = RandConv().apply(img, RandConvParams(np.full((1, 1, 1), 4.0, np.float32), alpha=0.3))
    np.testing.assert_allclose(pos, img, atol=1e-5)  # a positive gain, re-normalised: unchanged


def test_kernel_shapes_follow_the_patch():
    rng = np.random.default_rng(0)
    cubic = [RandConv().draw_params(rng).weight.shape for _ in range(30)]
    assert {s[0] for s in cubic} == {1, 3, 5, 7} and all(len(set(s)) == 1 for s in cubic)
    assert RandConv().draw_params(rng).weight.std() < 1.5  # N(0, 1 / fan_in)
    flat = make_intensity_aug("randconv", (1, 64, 64))
    assert isinstance(flat, RandConv) and flat.in_plane
    assert all(flat.draw_params(rng).weight.shape[0] == 1 for _ in range(10))
    gin = make_intensity_aug("gin", (1, 64, 64))
    p = gin.draw_params(rng)
    assert [w.shape[:2] for w in p.weights] == [(2, 1), (2, 2), (2, 2), (1, 2)]
    assert all(w.shape[2] == 1 and w.shape[3] in (1, 3) for w in p.weights)
    assert make_intensity_aug("gin", (8, 64, 64)).in_plane is False
    assert make_intensity_aug("none", (8, 64, 64)) is None


def test_unknown_kind_is_a_params_error():
    with pytest.raises(
        FlareInputError, match=r"train\.intensity_aug' must be one of .*did you mean 'randconv'"
    ):
        params_from_dict({"train": {"intensity_aug": "randconvv"}})
    assert params_from_dict({"train": {"intensity_aug": "gin"}}).train.intensity_aug == "gin"
    assert params_from_dict({}).train.intensity_aug == "none"
    with pytest.raises(FlareInputError, match=r"train\.intensity_aug.*unknown.*'blur'"):
        make_intensity_aug("blur")


def _volumes(make_volume):
    ct = dataclasses.replace(make_volume(0), modality="CT")
    mr = dataclasses.replace(make_volume(1), modality="MR")
    return ct, mr


def test_sampler_remaps_ct_and_fake_mr_images_only_and_never_the_label(make_volume):
    ct, mr = _volumes(make_volume)
    fake = dataclasses.replace(make_volume(2), modality=FAKE_MR)  # stage 1: CT translated to MR
    for vol, changed in ((ct, True), (fake, True), (mr, False)):
        plain = PatchSampler([vol], (8, 32, 32))
        randomised = PatchSampler([vol], (8, 32, 32), intensity_aug=GIN())
        for seed in range(3):
            img0, lab0, _ = plain.sample(np.random.default_rng(seed))
            img1, lab1, _ = randomised.sample(np.random.default_rng(seed))
            np.testing.assert_array_equal(lab0, lab1)
            assert (not np.array_equal(img0, img1)) is changed


def test_batches_with_intensity_aug_are_a_function_of_the_index(make_volume):
    """Reproducible under the checkpoint's state: batch i is the same whenever it is built; the
    patches (labels, unlabelled images) are a run's without it, only the labelled images change;
    ``none`` (None) leaves the batches bit-identical."""
    ct, _ = _volumes(make_volume)
    unl = make_volume(2, labeled=False)
    kw = {"batch_labeled": 2, "batch_unlabeled": 1, "seed": 3}
    plain = SegmentationBatches([ct], [unl], (8, 32, 32), **kw)
    none = SegmentationBatches([ct], [unl], (8, 32, 32), intensity_aug=make_intensity_aug("none"), **kw)
    aug = SegmentationBatches([ct], [unl], (8, 32, 32), intensity_aug=make_intensity_aug("randconv"), **kw)
    a, b, c = plain(5), none(5), aug(5)
    for k in a:
        assert (a[k] == b[k]).all()
    assert (a["label_l"] == c["label_l"]).all() and (a["image_u"] == c["image_u"]).all()
    assert not (a["image_l"] == c["image_l"]).all()
    again = aug(5)
    assert all((again[k] == c[k]).all() for k in c)


def test_flipped_views_are_accepted():
    one_slice = np.ascontiguousarray(_patch((1, 16, 16))[::-1])  # mirrored z: still a negative stride
    for img in (_patch()[:, ::-1], one_slice):
        for aug in (RandConv(), GIN()):
            out = aug.apply(img, aug.draw_params(np.random.default_rng(0)))
            assert out.shape == img.shape and np.isfinite(out).all()


def _labelled_patch(shape=(6, 24, 24)):
    img = _patch(shape)
    lab = np.zeros(shape, np.uint8)
    lab[:, 4:16, 6:18] = 1  # the liver
    lab[:, 18:22, 2:6] = 2
    return img, lab


def test_synth_draws_each_label_from_its_own_mean_and_keeps_the_patch_statistics():
    img, lab = _labelled_patch()
    aug = LabelSynth(blur_max=0.0, bias_std=0.0, gamma_std=0.0, std_max=1e-6)
    p = aug.draw_params(np.random.default_rng(3))
    out = aug.apply(img, p, lab)
    assert out.shape == img.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert out.mean() == pytest.approx(img.mean(), abs=1e-4) and out.std() == pytest.approx(
        img.std(), rel=1e-4
    )
    cls = aug.classes(img, lab)
    assert set(np.unique(cls)) <= {1, 2, 14, 15, 16} and (cls[lab == 1] == 1).all()
    for c in np.unique(cls):  # no noise, blur or bias: one value per class, ordered as the means
        assert np.ptp(out[cls == c]) < 1e-3
    means = {int(c): float(out[cls == c].mean()) for c in np.unique(cls)}
    ranked = sorted(means, key=means.get)
    assert ranked == sorted(means, key=lambda c: p.means[c])
    np.testing.assert_array_equal(out, aug.apply(img, aug.draw_params(np.random.default_rng(3)), lab))
    assert not np.array_equal(out, aug.apply(img, aug.draw_params(np.random.default_rng(4)), lab))


@pytest.mark.parametrize("shape", [(6, 24, 24), (1, 32, 32)])
def test_synth_with_noise_blur_bias_and_gamma_is_finite_and_needs_the_label(shape):
    img, lab = _labelled_patch(shape)
    aug = make_intensity_aug("synth", shape)
    assert isinstance(aug, LabelSynth) and aug.in_plane is (shape[0] == 1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = aug.apply(img, aug.draw_params(rng), lab)
        assert out.shape == img.shape and np.isfinite(out).all()
    with pytest.raises(ValueError, match="label"):
        aug.apply(img, aug.draw_params(rng))


def test_sampler_hands_synth_the_patch_label(make_volume):
    ct, _ = _volumes(make_volume)
    sampler = PatchSampler(
        [ct], (8, 32, 32), intensity_aug=LabelSynth(std_max=1e-6, blur_max=0.0, bias_std=0.0)
    )
    img, lab, _ = sampler.sample(np.random.default_rng(0))
    for organ in np.unique(lab[lab > 0]):
        assert np.ptp(img[lab == organ]) < 1e-3  # drawn from the label, not from the CT
