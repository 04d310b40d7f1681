"""Reading: open a path as a :class:`~flarelib.io.volume.Volume` (image, label, image + label).

Every file goes through :func:`_read_sitk`: existence, the byte scan of :mod:`flarelib.io.diagnose`,
then SimpleITK, with one clear :class:`~flarelib.errors.FlareInputError` for each bad input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io._common import _GZIP_MAGIC, _NIFTI_SUFFIXES, _suffix
from flarelib.io.diagnose import _diagnose, _Scan, _scan_file
from flarelib.io.grid import check_same_grid
from flarelib.io.volume import Volume
from flarelib.labels import LabelMap

__all__ = ["read_case", "read_image", "read_label"]


def _check_exists(path: Path) -> None:
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        hint = "check the path and the data root (env FLARE_DATA / params)"
        if parent.is_dir():
            near = sorted(p.name for p in parent.iterdir() if p.name.startswith(path.name.split(".")[0]))
            if near:
                hint += f"; similar names here: {', '.join(near[:5])}"
        raise FlareInputError(path, "file not found", hint)
    if path.is_dir():
        raise FlareInputError(path, "is a folder, not an image file", "pass the path of a .nii.gz file")


def _read_sitk(path: str | Path) -> sitk.Image:
    """Read ``path`` as one 3-D scalar SimpleITK image, or raise a one-line FlareInputError."""
    path = Path(path)
    _check_exists(path)
    is_nifti = _suffix(path) in _NIFTI_SUFFIXES
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    scan = _scan_file(path, inspect_nifti=is_nifti) if is_gzip or is_nifti else _Scan()
    fix_redo = "re-download or re-export the file (`gzip -t` checks a .gz)"
    if scan.gzip_problem is not None:
        raise FlareInputError(path, f"truncated or corrupt gzip: {scan.gzip_problem}", fix_redo)
    if scan.data_problem is not None:
        raise FlareInputError(path, scan.data_problem, fix_redo)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if is_nifti:
        reader.SetImageIO("NiftiImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None
    dim, size = reader.GetDimension(), reader.GetSize()
    if dim == 4:
        raise FlareInputError(
            path,
            f"4-D image (size x,y,z,t = {size}): {size[3]} volumes in one file",
            "save each 3-D volume as its own file (e.g. nibabel.funcs.four_to_three)",
        )
    if dim != 3:
        raise FlareInputError(
            path,
            f"{dim}-D image (size {size}); a 3-D volume is needed",
            "stack the slices into one 3-D NIfTI",
        )
    if reader.GetNumberOfComponents() != 1:
        raise FlareInputError(
            path,
            f"{reader.GetNumberOfComponents()} values per voxel (vector/RGB image); one is needed",
            "save each component (channel) as its own 3-D file",
        )
    if scan.n_nan or scan.n_inf:
        raise _nonfinite_error(path, scan.n_nan, scan.n_inf, int(np.prod(size)))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None


def _nonfinite_error(path: Path, n_nan: int, n_inf: int, total: int) -> FlareInputError:
    return FlareInputError(
        path,
        f"{n_nan} NaN and {n_inf} inf voxels (of {total})",
        "repair or re-export the image (e.g. replace them with the background value) before using it",
    )


def _check_finite(arr: np.ndarray, path: Path) -> None:
    """Non-NIfTI formats keep NaN/inf through SimpleITK: check the array too."""
    if not np.issubdtype(arr.dtype, np.floating):
        return
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        raise _nonfinite_error(path, n_nan, int(arr.size - finite.sum()) - n_nan, arr.size)


def read_image(path: str | Path, *, dtype: np.dtype | type | None = np.float32) -> Volume:
    """Read a 3-D image (NIfTI ``.nii``/``.nii.gz``; other SimpleITK formats by their suffix).

    Voxels come back as ``array[z, y, x]`` with NIfTI ``scl_slope``/``scl_inter`` applied (so BTCV's
    uint8-on-disk CT reads in HU) and cast to ``dtype`` (``None`` keeps the type SimpleITK returns).
    Spacing (mm, z y x), origin (LPS mm) and direction (incl. oblique) are kept exactly as stored.
    A 4-D file whose 4th dimension is 1 reads as 3-D.

    Raises:
        FlareInputError: missing file, truncated/corrupt gzip, truncated voxel data, not a NIfTI
            (or a NIfTI-2, which SimpleITK cannot read), not 3-D or not scalar, NaN or inf voxels.
            SimpleITK alone would zero-fill truncated data and read NaN/inf as 0; this checks the
            file's bytes first (one extra decompression pass).
    """
    path = Path(path)
    vol = Volume.from_sitk(_read_sitk(path), path)
    _check_finite(vol.array, path)
    if dtype is not None and vol.array.dtype != np.dtype(dtype):
        vol = vol.with_array(vol.array.astype(dtype))
    return vol


def read_label(path: str | Path, label_map: LabelMap | None = None) -> Volume:
    """Read a 3-D label volume as uint8 ``array[z, y, x]``, geometry as :func:`read_image`.

    Stored values must be integers (any storage type: CHAOS stores float64 0.0..4.0). With
    ``label_map`` the dataset's own ids are mapped to FLARE ids (an id the map does not know is an
    error); without it the ids are kept and must lie in 0..255.

    Raises:
        FlareInputError: the :func:`read_image` errors, plus non-integer values, ids outside 0..255,
            ids unknown to ``label_map`` (listed, with the map's name).
    """
    path = Path(path)
    vol = Volume.from_sitk(_read_sitk(path), path)
    arr = vol.array
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr, path)
        frac = arr != np.round(arr)
        if frac.any():
            examples = ", ".join(f"{v:g}" for v in np.unique(arr[frac])[:5])
            raise FlareInputError(
                path,
                f"label file is not integer-valued: {int(frac.sum())} voxels hold fractions "
                f"(e.g. {examples})",
                "pass the label (segmentation) file, not an image; resample labels with nearest neighbour",
            )
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise FlareInputError(
            path, f"label voxels have type {arr.dtype}, not integers", "store labels as uint8 integer ids"
        )
    if label_map is not None:
        unknown = label_map.unknown_ids(arr)
        if unknown:
            known = sorted(label_map.to_flare)
            known_txt = f"{known[0]}..{known[-1]}" if len(known) > 20 else str(known)
            raise FlareInputError(
                path,
                f"label ids {unknown} are not in the '{label_map.name}' label map (known ids: {known_txt})",
                f"check that this file belongs to the '{label_map.name}' dataset, "
                "or add the ids to its label_to_flare table in dataset.json",
            )
        out = label_map.lut()[arr]  # ids checked above: every one is in the table
    else:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise FlareInputError(
                path,
                f"label ids span {lo}..{hi}, outside 0..255 (uint8)",
                "pass the dataset's label_map to map its ids to FLARE ids",
            )
        out = arr.astype(np.uint8, copy=False)
    return vol.with_array(np.ascontiguousarray(out, dtype=np.uint8))


def read_case(
    image_path: str | Path, label_path: str | Path, label_map: LabelMap | None = None
) -> tuple[Volume, Volume]:
    """Read an image (float32) and its label (uint8, FLARE ids when ``label_map`` is given).

    Raises:
        FlareInputError: anything :func:`read_image` / :func:`read_label` raise, or grids that disagree.
    """
    image = read_image(image_path)
    label = read_label(label_path, label_map)
    check_same_grid(image, label)
    return image, label
