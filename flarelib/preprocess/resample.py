"""Resampling to a voxel size or onto a reference grid, optionally through a transform.

Conventions (see :mod:`flarelib.io`): arrays are ``(z, y, x)``; spacings are mm in the order their
name says (``spacing_zyx``); world coordinates are LPS mm. Functions never modify their input.

Resampling keeps origin and direction (the authors' code zeroes them, which loses the
scanner-space alignment between the sequences of one patient; STUDY.md "Preprocessing").
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io import Volume


def _label_array_check(vol: Volume) -> None:
    arr = vol.array
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise FlareInputError(
            vol.path or "<label>",
            f"a label volume must hold integer ids, got dtype {arr.dtype}",
            "read labels with flarelib.io.read_label (uint8), or pass is_label=False for an image",
        )


def _to_sitk_for_resampling(vol: Volume, is_label: bool) -> sitk.Image:
    if is_label:
        _label_array_check(vol)
        return vol.with_array(vol.array.astype(np.uint8, copy=False)).to_sitk()
    return vol.with_array(vol.array.astype(np.float32, copy=False)).to_sitk()


def _resample_sitk(
    img: sitk.Image,
    size_xyz: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    origin_xyz: tuple[float, float, float],
    direction: tuple[float, ...],
    is_label: bool,
    default_value: float,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in size_xyz])
    f.SetOutputSpacing([float(s) for s in spacing_xyz])
    f.SetOutputOrigin([float(o) for o in origin_xyz])
    f.SetOutputDirection([float(d) for d in direction])
    f.SetTransform(transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity))
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkBSpline)
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(sitk.sitkUInt8 if is_label else sitk.sitkFloat32)
    return f.Execute(img)


def _default_value(vol: Volume, is_label: bool, default_value: float | None) -> float:
    if default_value is not None:
        return float(default_value)
    if is_label or vol.array.size == 0:
        return 0.0
    return float(np.min(vol.array))


def resample(
    vol: Volume,
    spacing_zyx: tuple[float, float, float] | None = None,
    *,
    is_label: bool = False,
    reference: Volume | None = None,
    default_value: float | None = None,
) -> Volume:
    """Resample ``vol`` to a new voxel size (mm, order z, y, x), keeping origin and direction.

    The new grid covers the same physical extent: ``new_size = round(old_size * old_spacing /
    new_spacing)`` per axis (at least 1), starting at the same origin (centre of voxel ``[0,0,0]``)
    with the same direction cosines, so world positions are preserved (a structure's world centroid
    moves by far less than a voxel). Images use cubic B-spline interpolation (order 3) and come back
    as float32; labels (``is_label=True``, integer ids) use nearest neighbour and come back as uint8.
    With ``reference`` the volume is resampled onto that Volume's grid instead
    (:func:`resample_to_reference`) and ``spacing_zyx`` must be None.

    ``default_value`` fills samples outside the input (default: 0 for labels, the image minimum for
    images, i.e. the background); with origin kept this only happens at the far edges.
    """
    if reference is not None:
        if spacing_zyx is not None:
            raise ValueError("resample: give either spacing_zyx or reference, not both")
        return resample_to_reference(vol, reference, is_label=is_label, default_value=default_value)
    if spacing_zyx is None:
        raise ValueError("resample: spacing_zyx (mm, z y x) or reference is required")
    new_sp = tuple(float(s) for s in spacing_zyx)
    if len(new_sp) != 3 or not all(s > 0 and np.isfinite(s) for s in new_sp):
        raise ValueError(f"resample: spacing_zyx must be 3 positive numbers (mm), got {spacing_zyx}")
    size_zyx = tuple(
        max(1, round(n * s_old / s_new))
        for n, s_old, s_new in zip(vol.shape, vol.spacing_zyx, new_sp, strict=True)
    )
    img = _to_sitk_for_resampling(vol, is_label)
    out = _resample_sitk(
        img,
        size_zyx[::-1],
        new_sp[::-1],
        vol.origin_xyz,
        tuple(vol.direction.ravel()),
        is_label,
        _default_value(vol, is_label, default_value),
    )
    return Volume.from_sitk(out, vol.path)


def resample_to_reference(
    vol: Volume,
    reference: Volume,
    is_label: bool = False,
    *,
    default_value: float | None = None,
    transform: sitk.Transform | None = None,
) -> Volume:
    """Resample ``vol`` onto ``reference``'s grid (shape, spacing, origin, direction) by world position.

    Without ``transform``, voxel ``[z, y, x]`` of the result holds ``vol``'s value at the world
    point of ``reference``'s voxel ``[z, y, x]``; with one (fixed -> moving points, as the
    registrations return), at ``transform(that point)``. B-spline (float32) for images, nearest
    neighbour (uint8) for labels; points outside ``vol`` get ``default_value`` (0 for labels, the
    image minimum for images).
    """
    img = _to_sitk_for_resampling(vol, is_label)
    out = _resample_sitk(
        img,
        reference.shape[::-1],
        reference.spacing_xyz,
        reference.origin_xyz,
        tuple(reference.direction.ravel()),
        is_label,
        _default_value(vol, is_label, default_value),
        transform=transform,
    )
    return Volume.from_sitk(out, vol.path)
