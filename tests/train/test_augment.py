"""Augmentation: L/R label swap on x mirroring only, label range, determinism, patch geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flarelib.train.augment import AugmentConfig, augment_sample, extract_patch, mirror


def _labels():
    lab = np.zeros((4, 6, 8), np.uint8)
    lab[:, :, 0] = 2  # right kidney at x = 0 (patient right in LPS)
    lab[:, :, 7] = 13  # left kidney at x = 7
    lab[:, 0, 1] = 7
    lab[:, 0, 6] = 8
    lab[1, 2, 3] = 1  # liver, no partner
    return lab


def test_mirroring_x_swaps_2_13_and_7_8():
    lab = _labels()
    img = np.random.default_rng(0).normal(size=lab.shape).astype(np.float32)
    out_img, out = mirror(img, lab, (2,), swap_lr_labels=True)
    assert np.array_equal(out_img, img[:, :, ::-1])
    flipped = lab[:, :, ::-1]
    expected = flipped.copy()
    for a, b in ((2, 13), (7, 8)):
        expected[flipped == a] = b
        expected[flipped == b] = a
    assert np.array_equal(out, expected)
    # the kidney now on the patient's right (x = 0) is the right kidney: the old left one, relabelled
    assert (out[:, :, 0] == 2).all() and (out[:, :, 7] == 13).all()
    assert out[0, 0, 1] == 7 and out[0, 0, 6] == 8  # the 8 mirrored to x=1 became 7, and vice versa
    assert out[1, 2, 4] == 1  # liver only moves
    assert np.bincount(out.ravel(), minlength=14).tolist() == np.bincount(lab.ravel(), minlength=14).tolist()


def test_mirroring_x_without_swap_flag_keeps_ids():
    lab = _labels()
    _, out = mirror(lab.astype(np.float32), lab, (2,), swap_lr_labels=False)
    assert np.array_equal(out, lab[:, :, ::-1])


@pytest.mark.parametrize("axis", [0, 1])
def test_mirroring_z_or_y_does_not_swap(axis):
    lab = _labels()
    _, out = mirror(lab.astype(np.float32), lab, (axis,), swap_lr_labels=True)
    assert np.array_equal(out, np.flip(lab, axis))


def test_mirroring_all_axes_swaps_once():
    lab = _labels()
    _, out = mirror(lab.astype(np.float32), lab, (0, 1, 2), swap_lr_labels=True)
    _, ref = mirror(lab.astype(np.float32), np.flip(lab, (0, 1)).copy(), (2,), swap_lr_labels=True)
    assert np.array_equal(out, ref)


ALWAYS = AugmentConfig(
    p_rotation=1,
    p_scale=1,
    p_elastic=1,
    p_noise=1,
    p_blur=1,
    p_brightness=1,
    p_contrast=1,
    p_lowres=1,
    p_gamma=1,
    p_gamma_inverted=1,
    p_mirror=0.5,
)


def _volume(seed=0, shape=(12, 40, 40)):
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    lab[2:10, 5:25, 2:16] = 1
    lab[3:8, 25:33, 4:10] = 2
    lab[3:8, 25:33, 30:36] = 13
    lab[6:9, 20:23, 12:14] = 7
    img = lab.astype(np.float32) + rng.normal(0, 0.3, shape).astype(np.float32)
    return img, lab


def test_full_augmentation_keeps_labels_valid_and_shapes():
    img, lab = _volume()
    present = set(np.unique(lab).tolist())
    for seed in range(6):
        rng = np.random.default_rng(seed)
        a_img, a_lab = augment_sample(
            img, lab, (6, 20, 20), (8, 32, 32), rng, ALWAYS, spacing_zyx=(3, 1.5, 1.5)
        )
        assert a_img.shape == (8, 32, 32) and a_lab.shape == (8, 32, 32)
        assert a_img.dtype == np.float32 and a_lab.dtype == np.uint8
        assert np.isfinite(a_img).all()
        assert a_lab.max() <= 13
        assert set(np.unique(a_lab).tolist()) <= present | {8}  # 8 appears only through an x mirror swap


def test_augmentation_is_deterministic_by_seed():
    img, lab = _volume()
    a = augment_sample(img, lab, (6, 20, 20), (8, 32, 32), np.random.default_rng(42), ALWAYS)
    b = augment_sample(img, lab, (6, 20, 20), (8, 32, 32), np.random.default_rng(42), ALWAYS)
    c = augment_sample(img, lab, (6, 20, 20), (8, 32, 32), np.random.default_rng(43), ALWAYS)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_identity_spatial_transform_matches_plain_crop():
    img, lab = _volume()
    ident = dataclasses.replace(
        AugmentConfig.none(), p_rotation=1, rotation_inplane_deg=0, rotation_outplane_deg=0
    )
    center = (5.5, 19.5, 21.5)
    crop_i, crop_l = extract_patch(
        img, lab, center, (8, 16, 16), np.random.default_rng(0), AugmentConfig.none()
    )
    tr_i, tr_l = extract_patch(img, lab, center, (8, 16, 16), np.random.default_rng(0), ident)
    assert np.array_equal(crop_l, lab[2:10, 12:28, 14:30])
    assert np.array_equal(tr_l, crop_l)
    np.testing.assert_allclose(tr_i, crop_i, atol=1e-4)


def test_patch_larger_than_volume_is_padded():
    img, lab = _volume(shape=(4, 10, 10))
    out_i, out_l = extract_patch(
        img, lab, (1.5, 4.5, 4.5), (8, 16, 16), np.random.default_rng(0), AugmentConfig.none(), pad_value=-7.0
    )
    assert out_i.shape == (8, 16, 16)
    assert (out_i[0] == -7).all() and (out_l[0] == 0).all()
    assert np.array_equal(out_l[2:6, 3:13, 3:13], lab)


def test_rotation_moves_content_but_keeps_label_set():
    img, lab = _volume()
    rot = dataclasses.replace(
        AugmentConfig.none(), p_rotation=1, rotation_inplane_deg=90, rotation_outplane_deg=0
    )
    _, out = extract_patch(img, lab, (5.5, 19.5, 19.5), (8, 32, 32), np.random.default_rng(1), rot)
    _, ref = extract_patch(
        img, lab, (5.5, 19.5, 19.5), (8, 32, 32), np.random.default_rng(1), AugmentConfig.none()
    )
    assert not np.array_equal(out, ref)
    assert set(np.unique(out).tolist()) <= set(np.unique(lab).tolist())


def test_one_slice_patches_are_transformed_in_plane():
    """2d: rotation, scaling and elastic deformation never sample another slice (each slice of the
    volume holds its index, so any out-of-plane sampling would show up as a non-integer value)."""
    shape = (12, 64, 64)
    image = np.broadcast_to(np.arange(12, dtype=np.float32)[:, None, None], shape).copy()
    label = np.broadcast_to(np.arange(12, dtype=np.uint8)[:, None, None], shape).copy()
    cfg = dataclasses.replace(
        AugmentConfig.none(), p_rotation=1.0, p_scale=1.0, p_elastic=1.0, rotation_outplane_deg=30.0
    )
    cfg = dataclasses.replace(cfg, elastic_max_displacement=6.0)
    rng = np.random.default_rng(0)
    for z in (3, 6, 8):
        img, lab = extract_patch(image, label, (z, 31.5, 31.5), (1, 24, 24), rng, cfg, pad_value=-1.0)
        inside = img != -1.0
        assert inside.mean() > 0.5
        np.testing.assert_allclose(img[inside], z, atol=1e-4)
        assert set(np.unique(lab[inside])) == {z}
    # the same config on a 3-D patch does sample other slices (the test would see it)
    img, _ = extract_patch(image, None, (6, 31.5, 31.5), (4, 24, 24), rng, cfg, pad_value=-1.0)
    assert np.abs(img[img != -1.0] - np.round(img[img != -1.0])).max() > 1e-3
