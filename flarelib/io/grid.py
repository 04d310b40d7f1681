"""Grids: do two volumes put voxel ``[z, y, x]`` at the same world place (shape, spacing, origin,
direction)?"""

from __future__ import annotations

import numpy as np

from flarelib.errors import FlareInputError
from flarelib.io._common import _fmt
from flarelib.io.orientation import orientation_code
from flarelib.io.volume import Volume

__all__ = ["check_same_grid", "same_grid"]


def _grid_differences(a: Volume, b: Volume, atol_mm: float, atol_dir: float) -> list[str]:
    diffs = []
    if a.shape != b.shape:
        diffs.append(f"shape (z,y,x) {a.shape} vs {b.shape}")
    if not np.allclose(a.spacing_zyx, b.spacing_zyx, rtol=0, atol=atol_mm):
        diffs.append(f"spacing_zyx (mm) {_fmt(a.spacing_zyx, 6)} vs {_fmt(b.spacing_zyx, 6)}")
    if not np.allclose(a.origin_xyz, b.origin_xyz, rtol=0, atol=atol_mm):
        diffs.append(f"origin_xyz (LPS mm) {_fmt(a.origin_xyz, 6)} vs {_fmt(b.origin_xyz, 6)}")
    if not np.allclose(a.direction, b.direction, rtol=0, atol=atol_dir):
        dmax = float(np.abs(a.direction - b.direction).max())
        diffs.append(
            f"direction {orientation_code(a)} vs {orientation_code(b)} (max cosine difference {dmax:.3g})"
        )
    return diffs


def same_grid(a: Volume, b: Volume, *, atol_mm: float = 1e-3, atol_dir: float = 1e-4) -> bool:
    """True when both volumes share shape (z,y,x), spacing and origin (within ``atol_mm`` mm) and
    direction cosines (within ``atol_dir``), i.e. voxel ``[z, y, x]`` is the same place in both."""
    return not _grid_differences(a, b, atol_mm, atol_dir)


def check_same_grid(image: Volume, label: Volume) -> None:
    """Raise a FlareInputError naming both files (and what differs) unless they share a grid."""
    diffs = _grid_differences(image, label, 1e-3, 1e-4)
    if diffs:
        img_name = image.path if image.path is not None else "<image>"
        raise FlareInputError(
            label.path if label.path is not None else "<label>",
            f"label grid does not match image {img_name}: " + "; ".join(diffs),
            "pair the label with its own image, or resample the label onto the image grid "
            "(nearest neighbour)",
        )
