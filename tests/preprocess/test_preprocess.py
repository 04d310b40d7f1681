"""flarelib.preprocess: resampling keeps world positions, intensity maps, body mask, z-flip."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from flarelib.errors import FlareInputError
from flarelib.io import Volume, read_image
from flarelib.preprocess import (
    body_mask,
    ct_window,
    detect_zflip,
    fix_zflip,
    flip_z,
    mr_scale,
    resample,
    resample_to_reference,
    zscore,
)


def _rotation(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


OBLIQUE = _rotation("z", 12.0) @ _rotation("x", -7.0) @ np.diag([1.0, -1.0, 1.0])  # LAS-ish, oblique


def _blob_label(direction: np.ndarray = OBLIQUE) -> Volume:
    """A uint8 label: an off-centre ellipsoid (label 3) and a small sphere (label 7), oblique grid."""
    shape = (24, 60, 50)
    spacing = (2.5, 0.9, 1.1)
    z, y, x = np.indices(shape)
    arr = np.zeros(shape, np.uint8)
    arr[((z - 9) / 6.0) ** 2 + ((y - 35) / 14.0) ** 2 + ((x - 20) / 11.0) ** 2 <= 1] = 3
    arr[((z - 15) / 3.0) ** 2 + ((y - 15) / 7.0) ** 2 + ((x - 36) / 6.0) ** 2 <= 1] = 7
    return Volume(arr, spacing, (-31.5, 12.25, 140.0), direction)


def _world_centroid(vol: Volume, label: int) -> np.ndarray:
    return vol.world_coords(np.argwhere(vol.array == label).mean(axis=0))


# --------------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [np.eye(3), OBLIQUE], ids=["identity", "oblique"])
def test_resample_label_keeps_world_positions_there_and_back(direction):
    lab = _blob_label(direction)
    coarse_sp = tuple(2 * s for s in lab.spacing_zyx)
    coarse = resample(lab, coarse_sp, is_label=True)
    # geometry: same origin and direction, size = round(n * old / new)
    assert coarse.origin_xyz == lab.origin_xyz
    np.testing.assert_array_equal(coarse.direction, lab.direction)
    assert coarse.spacing_zyx == pytest.approx(coarse_sp)
    assert coarse.shape == tuple(round(n / 2) for n in lab.shape)
    assert coarse.array.dtype == np.uint8
    assert set(np.unique(coarse.array)) <= {0, 3, 7}
    back = resample(coarse, lab.spacing_zyx, is_label=True)
    assert back.shape == lab.shape and back.origin_xyz == lab.origin_xyz
    for label in (3, 7):
        c0 = _world_centroid(lab, label)
        # displacement measured along the voxel axes, in coarse voxels: below half a voxel on each
        for vol in (coarse, back):
            d_vox = (lab.direction.T @ (_world_centroid(vol, label) - c0)) / np.array(coarse_sp[::-1])
            assert np.abs(d_vox).max() < 0.5, (label, d_vox)
    # the big structure comes back nearly voxel-exact
    same = (back.array == 3) == (lab.array == 3)
    assert same.mean() > 0.98


def test_resample_image_bspline_float32_and_reproduces_linear_ramp():
    lab = _blob_label()
    z, y, x = np.indices(lab.shape)
    ramp = (3.0 * z + 2.0 * y - 1.0 * x).astype(np.int16)  # integer image in, float32 out
    img = lab.with_array(ramp)
    out = resample(img, (1.25, 0.6, 0.55))
    assert out.array.dtype == np.float32
    assert out.origin_xyz == img.origin_xyz
    np.testing.assert_array_equal(out.direction, img.direction)
    # cubic B-spline interpolation reproduces a linear function away from the borders
    zz, yy, xx = np.indices(out.shape)
    zi = zz * 1.25 / 2.5
    yi = yy * 0.6 / 0.9
    xi = xx * 0.55 / 1.1
    expected = 3.0 * zi + 2.0 * yi - 1.0 * xi
    inner = np.ones(out.shape, bool)  # at least 7 input voxels from every border
    for idx, n in zip((zi, yi, xi), img.shape, strict=True):
        inner &= (idx >= 7) & (idx <= n - 8)
    assert inner.sum() > 1000
    np.testing.assert_allclose(out.array[inner], expected[inner], atol=0.01)


def test_resample_to_reference_uses_world_positions():
    lab = _blob_label()
    ref_dir = _rotation("y", 5.0)
    ref = Volume(np.zeros((44, 64, 64), np.float32), (2.0, 1.5, 1.5), (-50.0, -60.0, 115.0), ref_dir)
    out = resample_to_reference(lab, ref, is_label=True)
    assert out.shape == ref.shape and out.spacing_zyx == ref.spacing_zyx
    assert out.origin_xyz == ref.origin_xyz
    np.testing.assert_array_equal(out.direction, ref.direction)
    assert out.array.dtype == np.uint8
    vox_mm3 = np.prod(lab.spacing_zyx), np.prod(ref.spacing_zyx)
    assert (out.array == 3).sum() * vox_mm3[1] == pytest.approx((lab.array == 3).sum() * vox_mm3[0], rel=0.1)
    c0 = _world_centroid(lab, 3)
    d_vox = (ref.direction.T @ (_world_centroid(out, 3) - c0)) / np.array(ref.spacing_xyz)
    assert np.abs(d_vox).max() < 0.5  # below half a voxel of the reference grid on each axis
    # same via resample(reference=...)
    np.testing.assert_array_equal(resample(lab, reference=ref, is_label=True).array, out.array)


def test_resample_rejects_float_labels_and_bad_spacing():
    lab = _blob_label()
    with pytest.raises(FlareInputError, match="integer ids"):
        resample(lab.with_array(lab.array.astype(np.float32) + 0.5), (5.0, 2.0, 2.0), is_label=True)
    with pytest.raises(ValueError, match="positive"):
        resample(lab, (0.0, 1.0, 1.0), is_label=True)
    with pytest.raises(ValueError, match="either"):
        resample(lab, (1.0, 1.0, 1.0), reference=lab)


# --------------------------------------------------------------------------------------------------
# intensities
# --------------------------------------------------------------------------------------------------
def test_ct_window_known_values():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], np.float32)
    out = ct_window(hu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 127.5, 255.0, 255.0], atol=1e-4)
    vol = Volume(hu.reshape(1, 1, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    vout = ct_window(vol, level=40, width=400)
    assert isinstance(vout, Volume) and vout == vol
    np.testing.assert_allclose(vout.array.ravel(), [0.0, 0.0, 127.5, 255.0, 255.0], atol=1e-4)
    np.testing.assert_allclose(ct_window(np.array([0.0, 50.0, 100.0]), level=50, width=100), [0, 127.5, 255])


def test_mr_scale_ranges():
    rng = np.random.default_rng(0)
    arr = rng.gamma(2.0, 100.0, size=(8, 20, 20)).astype(np.float32)
    arr[0, 0, 0] = 1e5  # one very bright voxel
    vol = Volume(arr, (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    mm = mr_scale(vol, "minmax")
    assert mm.array.dtype == np.float32
    assert mm.array.min() == pytest.approx(0.0) and mm.array.max() == pytest.approx(255.0)
    zm = mr_scale(vol, "zscore_minmax")
    np.testing.assert_allclose(zm.array, mm.array, atol=1e-3)  # min-max after an affine map
    pc = mr_scale(vol, "percentile", (1.0, 99.0))
    assert pc.array.min() == pytest.approx(0.0) and pc.array.max() == pytest.approx(255.0)
    assert (pc.array >= 255.0 - 1e-3).mean() == pytest.approx(0.01, abs=0.003)  # clipped top 1 %
    # the bright voxel squashes min-max but not the percentile scaling
    assert np.median(pc.array) > 5 * np.median(mm.array)
    const = mr_scale(vol.with_array(np.full(arr.shape, 7.0, np.float32)), "minmax")
    assert not const.array.any()
    with pytest.raises(ValueError, match="unknown method"):
        mr_scale(vol, "max")


def test_zscore_mean_std():
    rng = np.random.default_rng(1)
    arr = (rng.normal(300.0, 40.0, size=(6, 30, 30))).astype(np.float32)
    vol = Volume(arr, (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    z = zscore(vol)
    assert z.array.dtype == np.float32
    assert z.array.mean() == pytest.approx(0.0, abs=1e-5)
    assert z.array.std() == pytest.approx(1.0, abs=1e-5)
    mask = np.zeros(arr.shape, bool)
    mask[:, :15] = True
    arr2 = arr.copy()
    arr2[~mask] = 0.0  # background must not pull the statistics
    zm = zscore(vol.with_array(arr2), mask=mask)
    assert zm.array[mask].mean() == pytest.approx(0.0, abs=1e-5)
    assert zm.array[mask].std() == pytest.approx(1.0, abs=1e-5)
    assert not zscore(vol.with_array(np.full(arr.shape, 5.0, np.float32))).array.any()


# --------------------------------------------------------------------------------------------------
# body mask
# --------------------------------------------------------------------------------------------------
def _body_phantom(rng: np.random.Generator, organ_value: float = 150.0) -> tuple[Volume, np.ndarray]:
    shape = (20, 64, 80)
    z, y, x = np.indices(shape)
    body = ((y - 32) / 26.0) ** 2 + ((x - 40) / 34.0) ** 2 <= 1
    body &= (z >= 2) & (z <= 17)
    lung = ((y - 30) / 8.0) ** 2 + ((x - 28) / 8.0) ** 2 <= 1  # air hole inside the body
    organ = (((y - 36) / 8.0) ** 2 + ((x - 50) / 9.0) ** 2 <= 1) & body
    arr = rng.normal(0.0, 5.0, shape)
    arr[body] = rng.normal(100.0, 5.0, int(body.sum()))
    arr[body & lung] = rng.normal(0.0, 5.0, int((body & lung).sum()))
    arr[organ & ~lung] = rng.normal(organ_value, 10.0, int((organ & ~lung).sum()))
    arr[10, 2:5, 2:5] = 100.0  # a bright speck outside the body: not the largest component
    vol = Volume(arr.astype(np.float32), (5.0, 4.0, 4.0), (0.0, 0.0, 0.0), np.eye(3))
    return vol, body


def test_body_mask_otsu_largest_component_and_filled():
    vol, body = _body_phantom(np.random.default_rng(2))
    m = body_mask(vol)
    assert m.array.dtype == np.uint8 and m == vol
    assert not m.array[10, 2:5, 2:5].any()  # speck removed
    assert m.array[10, 30, 28] == 1  # the lung hole is filled slice-wise
    inter = np.logical_and(m.array, body).sum()
    assert 2 * inter / (m.array.sum() + body.sum()) > 0.97


def test_body_mask_otsu_percentile_ignores_a_bright_organ():
    vol, body = _body_phantom(np.random.default_rng(3), organ_value=3000.0)
    plain = body_mask(vol, "otsu")
    assert plain.array.sum() < 0.3 * body.sum()  # plain Otsu splits the bright organ from the rest
    pct = body_mask(vol, "otsu_percentile", percentile=80)
    inter = np.logical_and(pct.array, body).sum()
    assert 2 * inter / (pct.array.sum() + body.sum()) > 0.97


def test_body_mask_constant_volume_is_empty():
    vol = Volume(np.full((4, 10, 10), 3.0, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    assert not body_mask(vol).array.any()
    assert not body_mask(vol, "otsu_percentile").array.any()


# --------------------------------------------------------------------------------------------------
# z-flip
# --------------------------------------------------------------------------------------------------
def _torso(direction: np.ndarray | None = None) -> Volume:
    """Abdomen-like phantom, voxel z growing superior (identity direction): lungs (air holes) in the
    top 20 % of slices, one small bowel-gas hole low down."""
    shape = (40, 80, 96)
    z, y, x = np.indices(shape)
    body = ((y - 40) / 30.0) ** 2 + ((x - 48) / 40.0) ** 2 <= 1
    arr = np.where(body, 120.0, 5.0)
    lungs = (z >= 32) & (
        (((y - 44) / 14.0) ** 2 + ((x - 30) / 11.0) ** 2 <= 1)
        | (((y - 44) / 14.0) ** 2 + ((x - 66) / 11.0) ** 2 <= 1)
    )
    gas = (z <= 5) & (((y - 30) / 4.0) ** 2 + ((x - 50) / 4.0) ** 2 <= 1)
    arr[lungs | gas] = 5.0
    arr += np.random.default_rng(4).normal(0.0, 3.0, shape)
    return Volume(
        arr.astype(np.float32),
        (5.0, 4.0, 4.0),
        (-190.0, -160.0, -100.0),
        np.eye(3) if direction is None else direction,
    )


def test_detect_zflip_phantom_keep_flip_and_header_direction():
    vol = _torso()
    d = detect_zflip(vol)
    assert d.decision == "keep", d.reason
    assert d.superior_end == "high" and d.margin > 0.5
    assert d.high.score > d.low.score and d.high.slices and d.low.slices
    assert len(d.high.hole_counts) == len(d.high.slices)
    assert detect_zflip(flip_z(vol)).decision == "flip"
    # same voxels, header saying voxel z grows INFERIOR: the lungs are at the inferior end -> flip
    down = Volume(vol.array, vol.spacing_zyx, vol.origin_xyz, np.diag([1.0, 1.0, -1.0]))
    d_down = detect_zflip(down)
    assert d_down.superior_end == "low" and d_down.decision == "flip"
    assert detect_zflip(flip_z(down)).decision == "keep"


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((12, 30, 30), np.float32),  # all zero
        np.full((12, 30, 30), 80.0, np.float32),  # all body, constant
        np.random.default_rng(5).normal(100.0, 1.0, (12, 30, 30)).astype(np.float32) + 50.0,  # noise
        np.zeros((1, 30, 30), np.float32),  # one slice
    ],
    ids=["zeros", "constant", "noise", "one-slice"],
)
def test_detect_zflip_no_qualifying_slice_is_undecided(array):
    vol = Volume(array, (3.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    d = detect_zflip(vol)
    assert d.decision == "undecided", d.reason
    assert not d.flip


def test_detect_zflip_all_body_slices_are_undecided():
    arr = np.full((20, 40, 40), 100.0, np.float32)
    arr[:, 0, 0] = 0.0  # a threshold exists, but every slice is (almost) all body
    d = detect_zflip(Volume(arr, (3.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3)))
    assert d.decision == "undecided" and "no qualifying slice" in d.reason


def test_detect_zflip_z_not_head_foot_is_undecided():
    sagittal = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # voxel z -> world x
    d = detect_zflip(_torso(sagittal))
    assert d.decision == "undecided" and "head-foot" in d.reason


def test_flip_z_keeps_header_and_moves_anatomy():
    vol = _blob_label()
    f = flip_z(vol)
    assert f == vol  # same grid: spacing, origin, direction
    np.testing.assert_array_equal(f.array, vol.array[::-1])
    np.testing.assert_array_equal(flip_z(f).array, vol.array)
    # the anatomy of slice k moves to the world position of slice n-1-k
    n = vol.shape[0]
    idx = np.argwhere(vol.array == 7)
    mirrored = idx * [-1, 1, 1] + [n - 1, 0, 0]
    np.testing.assert_allclose(_world_centroid(f, 7), vol.world_coords(mirrored.mean(axis=0)), atol=1e-9)
    assert not np.allclose(_world_centroid(f, 7), _world_centroid(vol, 7), atol=1.0)


def test_fix_zflip_flips_every_sequence_or_none():
    ip = _torso()
    t1 = ip.with_array(ip.array * 2.0)
    lab = ip.with_array((ip.array > 60).astype(np.uint8))
    out, d = fix_zflip({"IP": flip_z(ip), "T1W": flip_z(t1), "T1W_label": flip_z(lab)})
    assert d.decision == "flip"
    np.testing.assert_array_equal(out["IP"].array, ip.array)
    np.testing.assert_array_equal(out["T1W"].array, t1.array)
    np.testing.assert_array_equal(out["T1W_label"].array, lab.array)
    same, d2 = fix_zflip({"IP": ip, "T1W": t1})
    assert d2.decision == "keep" and same["T1W"] is t1
    with pytest.raises(FlareInputError, match="no 'IP' volume"):
        fix_zflip({"T1W": t1})


# --------------------------------------------------------------------------------------------------
# z-flip on every real volume (all correctly oriented)
# --------------------------------------------------------------------------------------------------
def _real_images(root: Path) -> list[Path]:
    files = sorted(root.glob("btcv_ct/image_*.nii.gz"))
    files += sorted(root.glob("chaos_t2/*/image_*.nii.gz"))
    files += [root / "totalseg" / "example_ct_sm.nii.gz", root / "totalseg" / "example_mr_sm.nii.gz"]
    return [f for f in files if f.is_file()]


@pytest.mark.realdata
def test_detect_zflip_on_every_real_volume_and_its_flipped_copy(shared_data):
    files = _real_images(shared_data)
    assert len(files) >= 40, f"expected the 46 real volumes, found {len(files)}"
    t0 = time.perf_counter()
    wrong, margins = [], {}
    for path in files:
        name = path.relative_to(shared_data).as_posix()
        vol = read_image(path)
        d = detect_zflip(vol)
        d_flipped = detect_zflip(flip_z(vol))
        margins[name] = d.margin
        if not (d.decision == "keep" and d_flipped.decision == "flip"):
            wrong.append(f"{name}: {d.decision}/{d_flipped.decision} ({d.reason})")
        elif d.margin is not None and d_flipped.margin is not None:
            # every step is per slice or per band: the flipped copy swaps the two end scores
            assert d_flipped.margin == pytest.approx(-d.margin, abs=1e-6), name
    seconds = time.perf_counter() - t0
    assert not wrong, "z-flip detector wrong on real volumes:\n" + "\n".join(wrong)
    smallest = {
        ds: min(m for n, m in margins.items() if n.startswith(ds))
        for ds in ("btcv_ct", "chaos_t2", "totalseg")
    }
    assert all(m >= 0.05 for m in smallest.values()), smallest
    assert seconds < 120, f"{len(files)} volumes took {seconds:.0f} s"


# --------------------------------------------------------------------------------------------------
# z-flip on the phantom's LLD-MMR in-phase volumes (some patients stored z-flipped)
# --------------------------------------------------------------------------------------------------
def test_detect_zflip_on_the_smoke_phantom_in_phase_volumes(tmp_path):
    from flarelib.config import compose_params
    from flarelib.data.phantom import generate
    from flarelib.data.phantom.generate import load_truth
    from flarelib.paths import project_root

    params = compose_params(project_root() / "params" / "runs" / "default.yaml", "smoke", "phantom")
    out = tmp_path / "phantom"
    generate(params, out, progress=False)
    truth = load_truth(out)
    flipped = set(truth["lld_mmr"]["zflip_patients"])
    ip_cases = [r for r in truth["cases"].values() if r["subset"] == "lld_mmr" and r["sequence"] == "IP"]
    assert {r["patient"] for r in ip_cases} == set(truth["lld_mmr"]["patients"])
    assert flipped and len(flipped) < len(ip_cases), "the smoke phantom should hold both kinds"
    wrong = []
    for rec in ip_cases:
        assert rec["zflip"] == (rec["patient"] in flipped)
        vol = read_image(out / rec["image"])
        expected = ("flip", "keep") if rec["zflip"] else ("keep", "flip")
        got = (detect_zflip(vol).decision, detect_zflip(flip_z(vol)).decision)
        if got != expected:
            wrong.append(f"{rec['case']} (stored z-flipped: {rec['zflip']}): {got}, expected {expected}")
    assert not wrong, "z-flip detector wrong on the phantom:\n" + "\n".join(wrong)
