"""Orientation: ITK/DICOM three-letter codes and exact (no resampling) reorientation, e.g. to LPS.

The code convention is the one described in :mod:`flarelib.io`.
"""

from __future__ import annotations

import SimpleITK as sitk

from flarelib.io.volume import Volume

__all__ = ["orientation_code", "reorient", "reorient_to_lps"]

_ORIENT_PAIRS = ({"L", "R"}, {"P", "A"}, {"S", "I"})


def orientation_code(vol: Volume) -> str:
    """ITK/DICOM 3-letter code: where voxel axes i, j, k (x, y, z) point TO, e.g. ``"LPS"``.

    Same as SimpleITK's ``DICOMOrientImageFilter_GetOrientationFromDirectionCosines`` (oblique
    directions get the closest code) and the same letters as nibabel's ``aff2axcodes`` on the
    same file (see the module docstring).
    """
    return sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(
        tuple(float(v) for v in vol.direction.ravel())
    )


def _check_code(code: str) -> str:
    code = str(code).upper()
    letters = set(code)
    if len(code) != 3 or len(letters) != 3 or any(len(pair & letters) != 1 for pair in _ORIENT_PAIRS):
        raise ValueError(
            f"orientation code {code!r} is not valid: use one letter from each of L/R, A/P, S/I, e.g. 'LPS'"
        )
    return code


def reorient(vol: Volume, code: str) -> Volume:
    """Permute/flip the voxels so axes i, j, k point to ``code`` (e.g. ``"LPS"``); exact, no resampling.

    Origin and direction are updated (``sitk.DICOMOrient``) so every voxel keeps its world position;
    the dtype is kept.
    """
    code = _check_code(code)
    if orientation_code(vol) == code:
        return vol
    out = Volume.from_sitk(sitk.DICOMOrient(vol.to_sitk(), code), vol.path)
    if out.array.dtype != vol.array.dtype:
        out = out.with_array(out.array.astype(vol.array.dtype))
    return out


def reorient_to_lps(vol: Volume) -> tuple[Volume, str]:
    """Reorient to ``"LPS"``; returns ``(reoriented, original_code)``.

    Go back with ``reorient(reoriented, original_code)``.
    """
    code = orientation_code(vol)
    return reorient(vol, "LPS"), code
