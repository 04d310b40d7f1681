"""The :class:`Volume`: a 3-D (z, y, x) voxel array with its full LPS world geometry.

Axis order, units and the direction convention are those of :mod:`flarelib.io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io._common import _fmt

__all__ = ["Volume"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D voxel array with its full world geometry.

    Attributes:
        array: voxel data, axis order (z, y, x) = (k, j, i).
        spacing_zyx: voxel size in mm, order (z, y, x).
        origin_xyz: LPS world position (mm, order x, y, z) of the centre of voxel ``array[0, 0, 0]``.
        direction: 3x3 float64 LPS direction cosines; column ``c`` is the world direction of voxel
            axis ``c`` in (i, j, k) order (``np.array(img.GetDirection()).reshape(3, 3)``).
        path: the file it was read from (for messages only), or None.

    Equality compares the grid (shape, spacing, origin, direction) exactly, never the voxel values
    or the path; use :func:`same_grid` for a tolerant comparison.
    """

    array: np.ndarray = field(repr=False)
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: np.ndarray = field(repr=False)
    path: Path | None = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D (z, y, x), got shape {arr.shape}")
        spacing = tuple(float(s) for s in self.spacing_zyx)
        origin = tuple(float(o) for o in self.origin_xyz)
        if len(spacing) != 3 or len(origin) != 3:
            raise ValueError(f"spacing_zyx and origin_xyz need 3 values, got {spacing} and {origin}")
        if not all(s > 0 and np.isfinite(s) for s in spacing):
            raise ValueError(f"spacing_zyx must be positive and finite, got {spacing}")
        direction = np.array(self.direction, dtype=np.float64).reshape(3, 3)
        direction.setflags(write=False)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "spacing_zyx", spacing)
        object.__setattr__(self, "origin_xyz", origin)
        object.__setattr__(self, "direction", direction)
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    # --- geometry -------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Volume):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.spacing_zyx == other.spacing_zyx
            and self.origin_xyz == other.origin_xyz
            and np.array_equal(self.direction, other.direction)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    def __repr__(self) -> str:
        from flarelib.io.orientation import orientation_code  # orientation imports this module

        return (
            f"Volume(shape_zyx={self.shape}, dtype={self.array.dtype}, spacing_zyx={_fmt(self.spacing_zyx)}, "
            f"origin_xyz={_fmt(self.origin_xyz, 6)}, orientation={orientation_code(self)!r}, "
            f"path={str(self.path) if self.path else None!r})"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape, order (z, y, x)."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Voxel size in mm, order (x, y, z) = SimpleITK's ``GetSpacing()``."""
        return self.spacing_zyx[::-1]  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix: homogeneous voxel index (i, j, k, 1) = (x, y, z, 1) -> LPS world (mm, 1)."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction @ np.diag(self.spacing_xyz)
        aff[:3, 3] = self.origin_xyz
        return aff

    def world_coords(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS world positions (mm, columns x, y, z) of voxel indices given in (z, y, x) order.

        ``index_zyx`` is ``(N, 3)`` (or a single ``(3,)`` index); fractional indices are allowed.
        Returns ``(N, 3)`` (or ``(3,)``) float64.
        """
        idx = np.asarray(index_zyx, dtype=np.float64)
        single = idx.ndim == 1
        idx = np.atleast_2d(idx)
        if idx.shape[-1] != 3:
            raise ValueError(f"index_zyx must have 3 columns (z, y, x), got shape {idx.shape}")
        aff = self.affine_lps
        world = idx[:, ::-1] @ aff[:3, :3].T + aff[:3, 3]
        return world[0] if single else world

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry (and path) with new voxel data of the same (z, y, x) shape."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"with_array: shape {array.shape} does not match the volume's {self.shape}")
        return Volume(array, self.spacing_zyx, self.origin_xyz, self.direction, self.path)

    # --- SimpleITK bridge ---------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (bool is stored as uint8)."""
        arr = self.array
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=False)
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin_xyz)
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, path: str | Path | None = None) -> Volume:
        """Wrap a 3-D scalar SimpleITK image (voxels copied into a (z, y, x) array)."""
        if img.GetDimension() != 3:
            raise FlareInputError(
                path or "<image>",
                f"expected a 3-D image, got a {img.GetDimension()}-D one of size {img.GetSize()}",
                "pass a single 3-D volume",
            )
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise FlareInputError(
                path or "<image>",
                f"expected one value per voxel, got {img.GetNumberOfComponentsPerPixel()} components",
                "save each component (channel) as its own 3-D file",
            )
        return cls(
            sitk.GetArrayFromImage(img),
            tuple(img.GetSpacing())[::-1],
            tuple(img.GetOrigin()),
            np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3),
            Path(path) if path is not None else None,
        )
