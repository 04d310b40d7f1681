"""Tests for flarelib.io on real files written to tmp_path (tiny volumes, arrays are (z, y, x))."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from flarelib import io
from flarelib.errors import FlareInputError
from flarelib.io import (
    Volume,
    check_same_grid,
    orientation_code,
    read_case,
    read_image,
    read_label,
    reorient,
    reorient_to_lps,
    same_grid,
    write_image,
)
from flarelib.labels import LabelMap, label_map_from_manifest_entry

# --- helpers --------------------------------------------------------------------------------------


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """A proper rotation (det +1) from three angles in radians."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


#: name -> (spacing_zyx, origin_xyz, direction). Origins are float32-exact (NIfTI stores float32).
GEOMETRIES = {
    "oblique": ((2.0, 1.5, 1.25), (-12.5, 30.25, 101.75), rotation(0.3, -0.2, 0.5)),
    "flipped": ((1.0, 1.0, 1.0), (100.0, -50.5, 7.0), np.diag([-1.0, 1.0, -1.0])),
    "flipped_permuted": ((2.5, 1.0, 0.5), (3.0, 4.0, -5.0), np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0.0]])),
    "anisotropic": ((3.0, 1.2, 0.8), (-200.0, 150.0, -75.5), np.eye(3)),
}


def make_volume(geometry: str = "anisotropic", dtype=np.float32, shape=(4, 5, 6), seed: int = 0) -> Volume:
    spacing, origin, direction = GEOMETRIES[geometry]
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True)
    else:
        arr = rng.normal(0, 100, size=shape)
    return Volume(arr.astype(dtype), spacing, origin, direction)


def assert_geometry(a: Volume, b: Volume, atol: float = 1e-6) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing_zyx, b.spacing_zyx, rtol=0, atol=atol)
    np.testing.assert_allclose(a.origin_xyz, b.origin_xyz, rtol=0, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, rtol=0, atol=atol)


def assert_input_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert path.name in msg, msg
    assert "Fix:" in msg, msg
    for word in words:
        assert word in msg, f"{word!r} not in: {msg}"
    return msg


@pytest.fixture
def gz_file(tmp_path: Path) -> Path:
    """A real, valid .nii.gz with noisy data (so the compressed stream is long)."""
    vol = make_volume("anisotropic", np.float32, shape=(8, 32, 32))
    return write_image(vol, tmp_path / "good.nii.gz")


# --- Volume ---------------------------------------------------------------------------------------


def test_world_coords_known_answer():
    vol = Volume(np.zeros((3, 4, 5)), (2.0, 3.0, 4.0), (10.0, 20.0, 30.0), np.eye(3))
    # voxel (z=1, y=2, x=3): x = 10 + 3*4, y = 20 + 2*3, z = 30 + 1*2
    np.testing.assert_allclose(vol.world_coords(np.array([1, 2, 3])), [22.0, 26.0, 32.0])
    np.testing.assert_allclose(
        vol.world_coords(np.array([[0, 0, 0], [1, 2, 3]])), [[10, 20, 30], [22, 26, 32]]
    )
    np.testing.assert_allclose(vol.affine_lps @ [3, 2, 1, 1], [22.0, 26.0, 32.0, 1.0])


def test_world_coords_match_sitk_on_oblique():
    vol = make_volume("oblique")
    img = vol.to_sitk()
    idx = np.array([[0, 0, 0], [3, 4, 5], [1, 2, 3]])
    expected = [img.TransformIndexToPhysicalPoint([int(v) for v in i[::-1]]) for i in idx]
    np.testing.assert_allclose(vol.world_coords(idx), expected, atol=1e-9)


def test_volume_basics():
    vol = make_volume("oblique", shape=(2, 3, 4))
    assert vol.shape == (2, 3, 4)
    assert vol.spacing_xyz == vol.spacing_zyx[::-1]
    other = vol.with_array(np.ones((2, 3, 4), np.uint8))
    assert other == vol  # equality compares the grid, not the voxels
    assert other.array.dtype == np.uint8
    assert vol != make_volume("flipped", shape=(2, 3, 4))
    with pytest.raises(ValueError, match="shape"):
        vol.with_array(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros((2, 3)), (1, 1, 1), (0, 0, 0), np.eye(3))
    back = Volume.from_sitk(vol.to_sitk())
    np.testing.assert_array_equal(back.array, vol.array)
    assert back == vol
    assert "shape_zyx=(2, 3, 4)" in repr(vol)


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_round_trip_keeps_voxels_and_geometry(tmp_path, suffix, dtype, geometry):
    vol = make_volume(geometry, dtype)
    out = write_image(vol, tmp_path / "sub" / f"v{suffix}")
    assert out == tmp_path / "sub" / f"v{suffix}"
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".nii.gz")
    back = read_image(out, dtype=None)
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, vol.array)
    assert_geometry(back, vol)
    assert back.path == out
    assert orientation_code(back) == orientation_code(vol)
    assert read_image(out).array.dtype == np.float32  # the default cast


def test_label_round_trip_stays_uint8(tmp_path):
    lab = make_volume("oblique", np.uint8, shape=(3, 4, 5)).with_array(
        np.arange(60, dtype=np.uint8).reshape(3, 4, 5) % 14
    )
    path = write_image(lab, tmp_path / "label.nii.gz")
    assert nib.load(path).get_data_dtype() == np.uint8
    back = read_label(path)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, lab.array)
    assert_geometry(back, lab)


def test_write_dtype_cast_and_bool(tmp_path):
    vol = make_volume("anisotropic", np.float32).with_array(np.full((4, 5, 6), 2.6, np.float32))
    back = read_image(write_image(vol, tmp_path / "a.nii.gz", dtype=np.int16), dtype=None)
    assert back.array.dtype == np.int16 and (back.array == 3).all()
    mask = vol.with_array(vol.array > 0)
    back = read_image(write_image(mask, tmp_path / "m.nii"), dtype=None)
    assert back.array.dtype == np.uint8 and (back.array == 1).all()


def test_read_label_maps_ids_and_accepts_integer_floats(tmp_path):
    # CHAOS stores labels as float64 with integer values: fine, and mapped to FLARE ids.
    arr = np.array([0, 1, 2, 3, 4, 0], np.float64).reshape(1, 2, 3).repeat(2, axis=0)
    path = write_image(make_volume("flipped", shape=(2, 2, 3)).with_array(arr), tmp_path / "lab.nii.gz")
    chaos = LabelMap("chaos_t2", {0: 0, 1: 1, 2: 2, 3: 13, 4: 3})
    lab = read_label(path, chaos)
    assert lab.array.dtype == np.uint8
    np.testing.assert_array_equal(lab.array[0].ravel(), [0, 1, 2, 13, 3, 0])


# --- errors on real broken files ------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "not found")


@pytest.mark.parametrize("keep", [0.5, 0.9, -4, -1])
def test_truncated_gzip(gz_file, keep):
    raw = gz_file.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else len(raw) + keep
    gz_file.write_bytes(raw[:n])
    # SimpleITK alone would read this file without complaint (zeros for the missing voxels).
    with pytest.raises(FlareInputError) as exc:
        read_image(gz_file)
    assert_input_error(exc, gz_file, "truncated or corrupt gzip")


def test_truncated_uncompressed_nii(tmp_path):
    path = write_image(make_volume("oblique", np.int16, shape=(4, 5, 6)), tmp_path / "short.nii")
    path.write_bytes(path.read_bytes()[:-50])  # SimpleITK alone would zero-fill the missing voxels
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "truncated file", "50 of the 240")


def test_truncated_before_compression(tmp_path):
    import gzip

    nii = write_image(make_volume("oblique", np.int16, shape=(4, 5, 6)), tmp_path / "v.nii")
    path = tmp_path / "inner.nii.gz"
    path.write_bytes(gzip.compress(nii.read_bytes()[:-10]))  # a valid gzip of a short NIfTI
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "truncated file")


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_flipped_bytes_in_gzip_stream(gz_file, where):
    raw = bytearray(gz_file.read_bytes())
    pos = int(len(raw) * where)
    raw[pos : pos + 4] = bytes(b ^ 0xFF for b in raw[pos : pos + 4])
    gz_file.write_bytes(bytes(raw))
    with pytest.raises(FlareInputError) as exc:
        read_image(gz_file)
    assert_input_error(exc, gz_file, "gzip")


def test_text_file_named_nii_gz(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("patient 7: liver looks fine\nsee report\n")
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "not a NIfTI", "text")


def test_random_bytes_named_nii(tmp_path):
    path = tmp_path / "noise.nii"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "not a NIfTI")


def test_gzip_of_non_nifti(tmp_path):
    import gzip

    path = tmp_path / "fake.nii.gz"
    path.write_bytes(gzip.compress(b"just some text, not an image\n" * 20))
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "not a NIfTI")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path)


def test_4d_image(tmp_path):
    path = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.float32), np.eye(4)), path)
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "4-D")
    # a 4th dimension of length 1 is just a 3-D volume
    single = tmp_path / "four_d_1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 1), np.float32), np.eye(4)), single)
    assert read_image(single).shape == (6, 5, 4)


def test_2d_image(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5), np.float32), np.eye(4)), path)
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "2-D")


def test_nan_and_inf_voxels(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    arr[0, 0, :2] = np.nan
    arr[2, 3, 4] = np.inf
    arr[1, 1, 1] = -np.inf
    path = write_image(make_volume(shape=(3, 4, 5)).with_array(arr), tmp_path / "nan.nii.gz")
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "2 NaN", "2 inf")
    with pytest.raises(FlareInputError):
        read_label(path)


def test_nan_in_big_endian_float64(tmp_path):
    # byte order and float64 are read from the header (SimpleITK alone would return 0 for NaN)
    arr = np.zeros((5, 4, 3), dtype=">f8")
    arr[4, 3, 2] = np.nan
    img = nib.Nifti1Image(arr, np.eye(4))
    img.header.set_data_dtype(">f8")
    path = tmp_path / "big_endian.nii"
    nib.save(img, path)
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "1 NaN and 0 inf")


def test_nifti2_is_explained(tmp_path):
    # SimpleITK cannot read NIfTI-2; the message says so and how to convert
    path = tmp_path / "nifti2.nii.gz"
    nib.save(nib.Nifti2Image(np.zeros((5, 4, 3), np.float32), np.diag([2.0, 2.0, 3.0, 1.0])), path)
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "NIfTI-2", "Nifti1Image.from_image")
    fixed = tmp_path / "nifti1.nii.gz"
    nib.save(nib.Nifti1Image.from_image(nib.load(path)), fixed)
    assert read_image(fixed).spacing_zyx == (3.0, 2.0, 2.0)


def test_nonfinite_count_across_piece_boundaries(tmp_path):
    import gzip

    arr = np.zeros((7, 6, 5), np.float64)
    arr.flat[[0, 17, 100, 209]] = [np.nan, np.inf, -np.inf, np.nan]
    path = write_image(make_volume(shape=(7, 6, 5)).with_array(arr), tmp_path / "x.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    for piece in (1, 7, 13, 1000):
        counter = io._VoxelScan()
        for i in range(0, len(raw), piece):
            counter.feed(raw[i : i + piece])
        counter.finish()
        assert (counter.n_nan, counter.n_inf, counter.missing_bytes) == (2, 2, 0), piece


def test_nan_in_non_nifti_format(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    arr[0, 0, 0] = np.nan
    path = write_image(make_volume(shape=(3, 4, 5)).with_array(arr), tmp_path / "nan.mha")
    with pytest.raises(FlareInputError) as exc:
        read_image(path)
    assert_input_error(exc, path, "1 NaN")


def _grid_variant(kind: str) -> Volume:
    base = make_volume("anisotropic", np.uint8, shape=(4, 5, 6))
    sp, org, dr = base.spacing_zyx, base.origin_xyz, base.direction
    if kind == "shape":
        return Volume(np.zeros((4, 5, 7), np.uint8), sp, org, dr)
    if kind == "spacing":
        return Volume(base.array, (3.0, 1.2, 0.9), org, dr)
    if kind == "origin":
        return Volume(base.array, sp, (org[0], org[1] + 2.0, org[2]), dr)
    return Volume(base.array, sp, org, rotation(0.0, 0.0, 0.1))


@pytest.mark.parametrize("kind", ["shape", "spacing", "origin", "direction"])
def test_grid_mismatch(tmp_path, kind):
    img_path = write_image(make_volume("anisotropic", np.int16, shape=(4, 5, 6)), tmp_path / "img_7.nii.gz")
    lab_path = write_image(_grid_variant(kind), tmp_path / "lab_7.nii.gz")
    with pytest.raises(FlareInputError) as exc:
        read_case(img_path, lab_path)
    msg = assert_input_error(exc, lab_path, kind, img_path.name)
    detail = msg.split(f"{img_path}: ", 1)[1].split(". Fix:")[0]
    assert detail.startswith(kind) and "; " not in detail, msg  # names exactly what differs


def test_same_grid_tolerances():
    a = make_volume("oblique")
    shifted = Volume(a.array, a.spacing_zyx, tuple(np.add(a.origin_xyz, 1e-4)), a.direction)
    assert same_grid(a, shifted)
    check_same_grid(a, shifted)
    far = Volume(a.array, a.spacing_zyx, tuple(np.add(a.origin_xyz, 1e-2)), a.direction)
    assert not same_grid(a, far)
    assert same_grid(a, far, atol_mm=0.1)
    with pytest.raises(FlareInputError, match="origin"):
        check_same_grid(a, far)


def test_unknown_label_id(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    arr[1, 1, 1:3] = 1
    arr[2, 2, 2] = 99
    path = write_image(make_volume(shape=(3, 4, 5)).with_array(arr), tmp_path / "label_3.nii.gz")
    chaos = LabelMap("chaos_t2", {0: 0, 1: 1, 2: 2, 3: 13, 4: 3})
    with pytest.raises(FlareInputError) as exc:
        read_label(path, chaos)
    assert_input_error(exc, path, "[99]", "'chaos_t2'")
    assert read_label(path).array.max() == 99  # without a map the ids are kept


def test_non_integer_label(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    arr[1, 1, 1] = 1.5
    path = write_image(make_volume(shape=(3, 4, 5)).with_array(arr), tmp_path / "soft.nii.gz")
    with pytest.raises(FlareInputError) as exc:
        read_label(path)
    assert_input_error(exc, path, "not integer-valued", "1.5")


def test_label_ids_outside_uint8_without_map(tmp_path):
    arr = np.zeros((3, 4, 5), np.int16)
    arr[0, 0, 0] = 300
    path = write_image(make_volume(shape=(3, 4, 5)).with_array(arr), tmp_path / "big.nii.gz")
    with pytest.raises(FlareInputError) as exc:
        read_label(path)
    assert_input_error(exc, path, "0..255")


# --- orientation ----------------------------------------------------------------------------------


def test_identity_is_lps():
    assert orientation_code(Volume(np.zeros((2, 2, 2)), (1, 1, 1), (0, 0, 0), np.eye(3))) == "LPS"


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_reorient_round_trip_is_exact(geometry):
    vol = make_volume(geometry, np.int16, shape=(3, 4, 5))
    lps, code = reorient_to_lps(vol)
    assert code == orientation_code(vol)
    assert orientation_code(lps) == "LPS"
    assert lps.array.dtype == vol.array.dtype
    back = reorient(lps, code)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.spacing_zyx == vol.spacing_zyx
    np.testing.assert_array_equal(back.direction, vol.direction)
    np.testing.assert_allclose(back.origin_xyz, vol.origin_xyz, rtol=0, atol=1e-9)


@pytest.mark.parametrize("target", ["LPS", "RAS", "ASL", "IRP"])
def test_reorient_keeps_world_position(target):
    vol = make_volume("flipped_permuted", np.uint8, shape=(3, 4, 5)).with_array(np.zeros((3, 4, 5), np.uint8))
    arr = vol.array.copy()
    arr[1, 2, 3] = 7
    vol = vol.with_array(arr)
    out = reorient(vol, target)
    assert orientation_code(out) == target
    (idx,) = np.argwhere(out.array == 7)
    np.testing.assert_allclose(out.world_coords(idx), vol.world_coords(np.array([1, 2, 3])), atol=1e-9)
    assert sorted(out.shape) == sorted(vol.shape)


def test_reorient_rejects_bad_code():
    with pytest.raises(ValueError, match="orientation code"):
        reorient(make_volume(), "LLS")


@pytest.mark.parametrize(
    "affine_ras",
    [
        np.diag([-1.5, 2.0, 3.0, 1.0]),  # L A S  (BTCV/CHAOS style)
        np.diag([1.0, 1.0, 1.0, 1.0]),  # R A S
        np.diag([-1.0, -1.0, 2.0, 1.0]),  # L P S
        np.array([[0, 0, -2.0, 5], [1.5, 0, 0, -3], [0, -1, 0, 7], [0, 0, 0, 1]]),  # A I L
    ],
)
def test_orientation_code_matches_nibabel(tmp_path, affine_ras):
    # Convention checked here: nibabel's aff2axcodes (RAS world) and the ITK/DICOM code (LPS world)
    # both name where each voxel axis points TO, so they give the SAME letters, not opposite ones.
    path = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), affine_ras), path)
    vol = read_image(path)
    assert orientation_code(vol) == "".join(nib.aff2axcodes(affine_ras))
    # the LPS affine is the RAS one with x and y negated on the world side
    np.testing.assert_allclose(vol.affine_lps, np.diag([-1, -1, 1, 1]) @ affine_ras, atol=1e-6)


# --- atomic writes --------------------------------------------------------------------------------


def test_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "deep" / "er" / "out.nii.gz"
    write_image(make_volume(), target)
    write_image(make_volume(seed=1), target)  # overwrite
    assert [p.name for p in target.parent.iterdir()] == ["out.nii.gz"]
    np.testing.assert_array_equal(read_image(target).array, make_volume(seed=1).array)


@pytest.mark.parametrize("error", [RuntimeError, OSError])
def test_failed_write_keeps_old_file(tmp_path, monkeypatch, error):
    target = write_image(make_volume(), tmp_path / "out.nii.gz")
    old = target.read_bytes()

    def broken_write(image, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x1f\x8b partial")  # a half-written file, then failure
        raise error("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with pytest.raises((FlareInputError, OSError)) as exc:
        write_image(make_volume(seed=2), target)
    if error is RuntimeError:
        assert_input_error(exc, target, "could not write")
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_write_rejects_unknown_suffix(tmp_path):
    path = tmp_path / "out.png"
    with pytest.raises(FlareInputError) as exc:
        write_image(make_volume(), path)
    assert_input_error(exc, path, ".nii.gz")
    assert not path.exists()


# --- real data ------------------------------------------------------------------------------------


def _case(manifest: dict, dataset: str, key: str, value) -> dict:
    cases = manifest["datasets"][dataset]["cases"]
    return next(c for c in cases if c[key] == value)


@pytest.mark.realdata
def test_real_btcv_image_is_hu(shared_data):
    manifest = json.loads((shared_data / "dataset.json").read_text())
    case = _case(manifest, "btcv_ct", "id", 0)
    vol = read_image(shared_data / case["image"])
    # stored uint8 with scl_slope/scl_inter: reading must give HU in the source window
    assert vol.array.min() >= -125.0 - 1e-3 and vol.array.max() <= 275.0 + 1e-3
    assert vol.array.min() < -100.0  # raw uint8 would start at 0
    assert vol.shape == tuple(case["shape"][::-1])
    np.testing.assert_allclose(vol.spacing_zyx, case["spacing_mm"][::-1], atol=1e-5)
    assert orientation_code(vol) == case["orientation"] == "LAS"


@pytest.mark.realdata
def test_real_chaos_case(shared_data):
    manifest = json.loads((shared_data / "dataset.json").read_text())
    case = _case(manifest, "chaos_t2", "id", 5)
    label_map = label_map_from_manifest_entry("chaos_t2", manifest["datasets"]["chaos_t2"])
    image, label = read_case(shared_data / case["image"], shared_data / case["label"], label_map)
    np.testing.assert_allclose(image.spacing_zyx, case["spacing_mm"][::-1], atol=1e-5)
    assert image.shape == tuple(case["shape"][::-1])
    assert set(np.unique(label.array)) <= {0, 1, 2, 3, 13}
    assert orientation_code(image) == case["orientation"]
    ras = np.diag([-1, -1, 1, 1]) @ image.affine_lps
    np.testing.assert_allclose(ras, case["affine_ras"], atol=1e-5)
