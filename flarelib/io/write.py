"""Writing: atomic single-file writes (temporary file in the target folder, then ``os.replace``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io._common import _first_line, _suffix
from flarelib.io.volume import Volume
from flarelib.paths import temp_path

__all__ = ["WRITE_SUFFIXES", "write_image"]

#: Output suffixes :func:`write_image` accepts (single-file formats only, so the write stays atomic).
WRITE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")


def _cast_for_write(arr: np.ndarray, dtype: np.dtype | type | None) -> np.ndarray:
    if dtype is None:
        return arr.astype(np.uint8) if arr.dtype == np.bool_ else arr
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and np.issubdtype(arr.dtype, np.floating):
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(arr), info.min, info.max)
    return arr.astype(dtype, copy=False)


def write_image(
    vol: Volume, path: str | Path, *, dtype: np.dtype | type | None = None, compress: bool = True
) -> Path:
    """Write ``vol`` (voxels + spacing/origin/direction) atomically; returns the final path.

    The data go to a hidden temporary file in the target folder (``.NAME.flarelib-tmp-PID-HEX``,
    :func:`flarelib.paths.temp_path`), which is then renamed over ``path`` (``os.replace``): readers
    see the old file or the new one, never a partial one; a failed write leaves no temporary file
    and one left by a killed process is removed by :func:`flarelib.paths.remove_stale_temps`.
    Parent folders are created. The format follows the suffix
    (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``). ``dtype=None`` keeps the array's type (uint8 labels
    stay uint8; bool becomes uint8); a float -> integer cast rounds and clips. ``compress`` is passed
    to SimpleITK: for NIfTI the suffix alone decides (``.nii.gz`` is always gzip, ``.nii`` never);
    for ``.mha``/``.nrrd`` it switches compression.

    Raises:
        FlareInputError: unsupported suffix, or the file could not be written.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise FlareInputError(
            path,
            f"cannot write format {suffix or '(no suffix)'!r}",
            f"name the file with one of {WRITE_SUFFIXES}",
        )
    img = vol.with_array(_cast_for_write(vol.array, dtype)).to_sitk()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)  # named as ours: a kill -9 leftover is removed by the next run
    try:
        try:
            sitk.WriteImage(img, str(tmp), bool(compress))
        except RuntimeError as exc:
            raise FlareInputError(
                path,
                f"could not write the image ({_first_line(exc)})",
                "check the folder is writable and has space",
            ) from None
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
