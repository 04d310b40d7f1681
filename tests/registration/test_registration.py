"""flarelib.registration: known rigid transforms are recovered (phantom, real masks, real MR)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io import Volume, read_image
from flarelib.preprocess import body_mask, resample
from flarelib.registration import (
    RegistrationResult,
    _matrix_offset,
    apply_transform,
    compose,
    register_rigid,
    register_translation,
    rotation_angle_deg,
    transform_from_dict,
    transform_to_dict,
)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _euler(t_mm, angles_deg, center=(0.0, 0.0, 0.0)) -> sitk.Euler3DTransform:
    e = sitk.Euler3DTransform()
    e.SetCenter(tuple(float(c) for c in center))
    e.SetRotation(*(math.radians(a) for a in angles_deg))
    e.SetTranslation(tuple(float(v) for v in t_mm))
    return e


def _phantom_fn(p: np.ndarray) -> np.ndarray:
    """Body-like solid (LPS mm): an ellipsoid with an off-centre bulge and a notch, so that every
    rotation changes the shape's overlap."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    body = (x / 120.0) ** 2 + (y / 80.0) ** 2 + (z / 60.0) ** 2 <= 1
    bulge = ((x - 60) / 45.0) ** 2 + ((y + 35) / 35.0) ** 2 + ((z - 25) / 30.0) ** 2 <= 1
    notch = ((x + 55) ** 2 + (y - 55) ** 2 <= 25.0**2) & (np.abs(z + 15) < 35)
    return (body | bulge) & ~notch


_GRID = dict(shape=(60, 76, 96), spacing=(3.0, 3.0, 3.0), origin=(-142.5, -112.5, -88.5))


def _phantom(transform: sitk.Transform | None = None) -> Volume:
    """The phantom mask on a 3 mm grid; with ``transform`` (fixed -> moving) the MOVING copy,
    sampled analytically: moving(q) = phantom(transform^-1(q))."""
    vol = Volume(np.zeros(_GRID["shape"], np.uint8), _GRID["spacing"], _GRID["origin"], np.eye(3))
    w = vol.world_coords(np.indices(vol.shape).reshape(3, -1).T)
    if transform is not None:
        a, b = _matrix_offset(transform.GetInverse())
        w = w @ a.T + b
    return vol.with_array(_phantom_fn(w).reshape(vol.shape).astype(np.uint8))


def _errors(est: sitk.Transform, true: sitk.Transform, region: Volume, n: int = 2000) -> tuple[float, float]:
    """(max |est(p) - true(p)| in mm over random points p of ``region``'s foreground, rotation
    angle of est vs true in degrees)."""
    rng = np.random.default_rng(7)
    idx = np.argwhere(region.array > 0)
    p = region.world_coords(idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)])
    ae, be = _matrix_offset(est)
    at, bt = _matrix_offset(true)
    dist = np.linalg.norm(p @ ae.T + be - (p @ at.T + bt), axis=1).max()
    return float(dist), rotation_angle_deg(ae @ at.T)


def _warp_mask(mask: Volume, true: sitk.Transform) -> Volume:
    """Moving copy of a real mask: linear-interpolated through true^-1, thresholded at 0.5."""
    f = mask.with_array(mask.array.astype(np.float32))
    warped = apply_transform(f, true.GetInverse(), mask, default_value=0.0)
    return warped.with_array((warped.array > 0.5).astype(np.uint8))


# --------------------------------------------------------------------------------------------------
# rigid: phantom
# --------------------------------------------------------------------------------------------------
RIGID_CASES = [
    ((10.0, -7.0, 5.0), (3.0, -2.0, 5.0)),
    ((-8.0, 6.0, -10.0), (-5.0, 4.0, -3.0)),
    ((4.0, 10.0, -3.0), (0.0, 5.0, 0.0)),
    ((-10.0, -10.0, 8.0), (2.0, -5.0, -5.0)),
]


@pytest.fixture(scope="module")
def phantom_fixed() -> Volume:
    return _phantom()


@pytest.mark.parametrize(("t_mm", "angles"), RIGID_CASES)
def test_register_rigid_recovers_phantom_transform(phantom_fixed, t_mm, angles):
    true = _euler(t_mm, angles)
    moving = _phantom(true)
    res = register_rigid(phantom_fixed, moving, levels=2, sampling=0.2)
    dist, ang = _errors(res.transform, true, phantom_fixed)
    assert dist < 1.0, f"point error {dist:.2f} mm"
    assert ang < 1.0, f"angle error {ang:.2f} deg"
    assert res.quality is not None and res.quality > 0.97
    assert isinstance(res.transform, sitk.Euler3DTransform)
    assert res.details["initializer"] == "moments"
    assert res.seconds > 0 and res.iterations > 0


def test_register_rigid_is_deterministic(phantom_fixed):
    moving = _phantom(_euler((6.0, -4.0, 3.0), (2.0, 0.0, -3.0)))
    a = register_rigid(phantom_fixed, moving, levels=1, sampling=0.1, iterations=30)
    b = register_rigid(phantom_fixed, moving, levels=1, sampling=0.1, iterations=30)
    assert a.transform.GetParameters() == b.transform.GetParameters()
    assert a.metric_value == b.metric_value
    with pytest.raises(ValueError, match="wall clock"):
        register_rigid(phantom_fixed, moving, seed=0)


# --------------------------------------------------------------------------------------------------
# rigid: real body mask (BTCV CT) and real MR intensities (CHAOS T2-SPIR, Mattes MI)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def btcv_body_mask(shared_data) -> Volume:
    """Body mask of BTCV image_0 at 4 mm (downsampled for speed), padded by 6 empty slices at each
    z-end so that the transformed copy keeps the whole body inside the grid."""
    img = read_image(shared_data / "btcv_ct" / "image_0.nii.gz")
    mask = body_mask(resample(img, (4.0, 4.0, 4.0)))
    pad = 6
    arr = np.pad(mask.array, ((pad, pad), (0, 0), (0, 0)))
    origin = np.array(mask.origin_xyz) - pad * mask.spacing_zyx[0] * mask.direction[:, 2]
    return Volume(arr, mask.spacing_zyx, tuple(origin), mask.direction)


@pytest.mark.realdata
@pytest.mark.parametrize(("t_mm", "angles"), [RIGID_CASES[0], ((-7.0, 9.0, -10.0), (-5.0, 5.0, -2.0))])
def test_register_rigid_recovers_transform_of_real_body_mask(btcv_body_mask, t_mm, angles):
    fixed = btcv_body_mask
    center = fixed.world_coords((np.array(fixed.shape) - 1) / 2.0)
    true = _euler(t_mm, angles, center)
    res = register_rigid(fixed, _warp_mask(fixed, true), levels=2, sampling=0.2)
    dist, ang = _errors(res.transform, true, fixed)
    assert dist < 1.0, f"point error {dist:.2f} mm"
    assert ang < 1.0, f"angle error {ang:.2f} deg"
    assert res.quality > 0.95


@pytest.mark.realdata
def test_register_rigid_mattes_recovers_transform_of_real_mr(shared_data):
    img = read_image(shared_data / "chaos_t2" / "dev_labeled" / "image_21.nii.gz")  # oblique header
    assert not np.allclose(img.direction, np.diag(np.diag(img.direction)))
    sz, sy, sx = img.spacing_zyx
    fixed = resample(img, (sz, 2 * sy, 2 * sx))  # in-plane downsampled by 2 for speed
    center = fixed.world_coords((np.array(fixed.shape) - 1) / 2.0)
    true = _euler((-6.0, 8.0, -4.0), (-1.5, 2.0, -5.0), center)
    moving = apply_transform(fixed, true.GetInverse(), fixed, default_value=0.0)
    res = register_rigid(fixed, moving, metric="mattes", levels=2, sampling=0.2)
    region = body_mask(fixed, "otsu_percentile")
    dist, ang = _errors(res.transform, true, region)
    assert dist < 1.0, f"point error {dist:.2f} mm"
    assert ang < 1.0, f"angle error {ang:.2f} deg"
    assert res.details["metric"] == "mattes" and res.details["initializer"] == "geometry"
    assert res.quality is None


# --------------------------------------------------------------------------------------------------
# translation
# --------------------------------------------------------------------------------------------------
def test_register_translation_by_mask(phantom_fixed):
    true = sitk.TranslationTransform(3, (7.0, -9.0, 4.5))
    moving = _phantom(true)
    res = register_translation(phantom_fixed, moving, by="mask")
    assert isinstance(res.transform, sitk.TranslationTransform)
    np.testing.assert_allclose(res.translation_mm, (7.0, -9.0, 4.5), atol=0.5)
    assert res.rotation_deg == (0.0, 0.0, 0.0)
    assert res.quality > 0.97
    # centre of mass alone is already close; refinement must not make it worse
    com = register_translation(phantom_fixed, moving, by="mask", refine=False)
    assert np.linalg.norm(np.subtract(com.translation_mm, (7.0, -9.0, 4.5))) < 2.0
    with pytest.raises(FlareInputError, match="binary mask"):
        register_translation(phantom_fixed.with_array(phantom_fixed.array * 5), moving, by="mask")
    with pytest.raises(FlareInputError, match="empty"):
        register_translation(phantom_fixed.with_array(np.zeros_like(phantom_fixed.array)), moving)


def test_register_translation_by_labels():
    shape = (30, 40, 40)
    z, y, x = np.indices(shape)
    lab = np.zeros(shape, np.uint8)
    lab[((z - 12) / 6.0) ** 2 + ((y - 18) / 8.0) ** 2 + ((x - 15) / 7.0) ** 2 <= 1] = 1
    lab[((z - 16) / 4.0) ** 2 + ((y - 24) / 5.0) ** 2 + ((x - 27) / 5.0) ** 2 <= 1] = 13
    spacing = (3.0, 1.5, 1.5)
    direction = np.diag([1.0, -1.0, 1.0])  # LAS, like BTCV/CHAOS
    fixed = Volume(lab, spacing, (10.0, 20.0, -30.0), direction)
    moving_arr = np.roll(lab, (2, -3, 4), axis=(0, 1, 2))  # shift by whole voxels: exact answer
    moving = fixed.with_array(moving_arr)
    # voxel shift (z, y, x) = (2, -3, 4) -> world: x +4*1.5, y -(-3*1.5) (LAS flips y), z +2*3
    expected = (6.0, 4.5, 6.0)
    res = register_translation(fixed, moving, by="label")
    np.testing.assert_allclose(res.translation_mm, expected, atol=1e-9)
    assert res.quality == pytest.approx(1.0)
    assert res.details["label_dice"] == {1: pytest.approx(1.0), 13: pytest.approx(1.0)}
    fg = register_translation(fixed, moving, by="label", label_mode="foreground")
    np.testing.assert_allclose(fg.translation_mm, expected, atol=0.3)
    with pytest.raises(FlareInputError, match="no label id"):
        register_translation(fixed, fixed.with_array((lab == 1).astype(np.uint8) * 2), by="label")


# --------------------------------------------------------------------------------------------------
# apply / compose / JSON
# --------------------------------------------------------------------------------------------------
def test_apply_transform_shifts_labels_and_images():
    lab = np.zeros((10, 20, 20), np.uint8)
    lab[3:6, 5:9, 8:12] = 4
    vol = Volume(lab, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    # fixed -> moving mapping p -> p + (3, 0, 4): the result at p holds the input at p + t
    tx = sitk.TranslationTransform(3, (3.0, 0.0, 4.0))
    out = apply_transform(vol, tx, vol, is_label=True)
    assert out.array.dtype == np.uint8 and out == vol
    np.testing.assert_array_equal(np.argwhere(out.array == 4).min(axis=0), [1, 5, 5])
    img = vol.with_array(lab.astype(np.float32) * 10.0 - 100.0)
    out_img = apply_transform(img, tx, vol)
    assert out_img.array.dtype == np.float32
    assert out_img.array[-1, 0, -1] == pytest.approx(-100.0)  # outside -> the image minimum
    assert out_img.array[2, 6, 7] == pytest.approx(-60.0, abs=1e-3)


def test_compose_order_and_types():
    a = _euler((5.0, 0.0, 0.0), (0.0, 0.0, 90.0), (1.0, 2.0, 3.0))
    b = sitk.TranslationTransform(3, (0.0, -4.0, 2.0))
    ab = compose(a, b)
    assert isinstance(ab, sitk.Euler3DTransform)
    for p in [(0.0, 0.0, 0.0), (10.0, -3.0, 7.0)]:
        np.testing.assert_allclose(ab.TransformPoint(p), b.TransformPoint(a.TransformPoint(p)), atol=1e-9)
    tt = compose(b, sitk.TranslationTransform(3, (1.0, 1.0, 1.0)))
    assert isinstance(tt, sitk.TranslationTransform)
    np.testing.assert_allclose(tt.GetOffset(), (1.0, -3.0, 3.0))
    # a non-linear transform gives a CompositeTransform with the same order
    field = sitk.Image([8, 8, 8], sitk.sitkVectorFloat64, 3)
    field.SetOrigin((-20.0, -20.0, -20.0))
    field.SetSpacing((6.0, 6.0, 6.0))
    field.SetPixel(4, 4, 4, (1.0, 0.0, 0.0))
    disp = sitk.DisplacementFieldTransform(sitk.Image(field))
    c = compose(a, disp)
    assert isinstance(c, sitk.CompositeTransform)
    p = (0.0, 1.0, 2.0)
    np.testing.assert_allclose(c.TransformPoint(p), disp.TransformPoint(a.TransformPoint(p)), atol=1e-9)


def test_transform_dict_roundtrip_through_json():
    txs = [
        _euler((1.5, -2.0, 3.25), (4.0, -3.0, 2.0), (10.0, -20.0, 30.0)),
        sitk.TranslationTransform(3, (1.0, 2.0, -3.0)),
        sitk.AffineTransform(
            (1.1, 0.1, 0.0, 0.0, 0.9, 0.05, 0.0, 0.0, 1.0), (1.0, 2.0, 3.0), (5.0, 5.0, 5.0)
        ),
    ]
    composite = sitk.CompositeTransform([txs[1], txs[0]])  # applies txs[0] first
    for tx in [*txs, composite]:
        d = json.loads(json.dumps(transform_to_dict(tx)))
        back = transform_from_dict(d)
        for p in [(0.0, 0.0, 0.0), (12.0, -7.0, 33.0)]:
            np.testing.assert_allclose(back.TransformPoint(p), tx.TransformPoint(p), atol=1e-12)
    assert transform_to_dict(txs[0])["type"] == "Euler3DTransform"
    assert len(transform_to_dict(txs[0])["fixed_parameters"]) == 4  # centre + ComputeZYX
    assert [p["type"] for p in transform_to_dict(composite)["transforms"]] == [
        "Euler3DTransform",
        "TranslationTransform",
    ]
    with pytest.raises(FlareInputError, match="unknown transform type"):
        transform_from_dict({"type": "BSplineTransform"})


def test_result_properties_and_dict():
    tx = _euler((1.0, -2.0, 3.0), (10.0, -20.0, 30.0), (5.0, 5.0, 5.0))
    res = RegistrationResult(
        tx, 0.5, 12, 0.1, quality=0.9, stop_condition="done", details={"a": np.float32(1)}
    )
    assert res.translation_mm == pytest.approx((1.0, -2.0, 3.0))
    assert res.rotation_deg == pytest.approx((10.0, -20.0, 30.0))
    assert 0 < res.rotation_angle_deg < 60
    d = json.loads(json.dumps(res.to_dict()))
    assert d["quality"] == 0.9 and d["transform"]["type"] == "Euler3DTransform"
    assert rotation_angle_deg(_euler((0, 0, 0), (0.0, 0.0, 7.0))) == pytest.approx(7.0)


def test_register_translation_by_mask_matches_bodies_cut_by_different_fields_of_view():
    """Two fields of view of one long body (an MR of the upper abdomen, another reaching lower),
    400 mm apart in scanner z. The centres of mass of the cut masks are not the same anatomy, and
    MeanSquares over the overlap alone drifts toward background meeting background; the slice-area
    profiles find the anatomy's z, and the refinement may not lower the Dice of its start."""
    spacing, shape = (4.0, 3.0, 3.0), (40, 60, 80)

    def fov(z0_mm: float, origin_z: float) -> Volume:
        z, y, x = np.indices(shape).astype(np.float64)
        wz, wy, wx = z0_mm + z * spacing[0], y * spacing[1], x * spacing[2]
        radius = 1.0 + 0.15 * np.sin(wz / 60.0)  # the cross-section changes along the body
        body = ((wx - 120) / (95 * radius)) ** 2 + ((wy - 90) / (70 * radius)) ** 2 <= 1
        return Volume(body.astype(np.uint8), spacing, (0.0, 0.0, origin_z), np.eye(3))

    fixed = fov(0.0, 0.0)
    moving = fov(60.0, -400.0)  # the same body from 60 mm further down, the table 400 mm away
    true_z = -460.0  # fixed body point B sits at moving world z B - 460
    com = register_translation(fixed, moving, by="mask", refine=False)
    assert com.details["initializer"] == "slice-area profile"
    assert abs(com.translation_mm[2] - true_z) < 4.0
    centroids = (
        moving.world_coords(np.argwhere(moving.array).mean(0))
        - fixed.world_coords(np.argwhere(fixed.array).mean(0))
    )[2]
    assert abs(centroids - true_z) > 40.0  # what the start used to be
    res = register_translation(fixed, moving, by="mask")
    assert abs(res.translation_mm[2] - true_z) < 4.0
    assert (
        res.details["refined_quality"] >= res.details["initial_quality"] - 1e-3
        or res.quality == res.details["initial_quality"]
    )
