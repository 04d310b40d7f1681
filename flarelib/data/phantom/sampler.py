"""From an output grid to anatomical coordinates: the :class:`Sampler` and tube distance fields.

A :class:`Sampler` holds, for every voxel of one output grid (array axes (z, y, x)), the point of
the patient's anatomical frame (x, y, z mm, LPS; see :mod:`.anatomy`) that the voxel shows, and maps
anatomical boxes back to index ranges so that each structure is evaluated only where it can be.
Breathing shifts a structure along +z by its group's :data:`BREATH_FACTORS` times ``breath_mm``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from flarelib.data.phantom.shapes import Tube

if TYPE_CHECKING:
    from flarelib.data.phantom.patient import Patient

__all__ = ["BREATH_FACTORS", "Sampler", "make_sampler", "tube_field"]

#: Breathing factor per structure group: a structure moves by ``factor * breath_mm`` along +z.
BREATH_FACTORS: dict[str, float] = {
    "wall": 0.0,  # body wall, spine, ribs, muscles, pelvis, couch
    "diaphragm": 1.0,  # diaphragm, lungs, heart
    "upper": 1.0,  # liver, spleen, stomach, gallbladder, adrenals, portal and hepatic veins
    "mid": 0.8,  # pancreas, duodenum, IVC
    "kidney": 0.6,  # kidneys, renal vessels
    "bowel": 0.4,  # small bowel and colon
    "fixed_vessel": 0.15,  # aorta, esophagus, SMA, celiac
}

# --------------------------------------------------------------------------------------------------
# Sampler: coordinate arrays of one output grid, and index boxes of anatomical boxes
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sampler:
    """Anatomical coordinates of every voxel of one output grid.

    ``X``, ``Y``, ``Z`` are (z, y, x) float32 arrays: the anatomical point (mm, before the breathing
    shift) that each voxel shows. ``to_index`` (3x4) maps an anatomical point (x, y, z, 1) to the
    fractional voxel index (i, j, k) up to the deformation, whose size per axis bounds ``pad_xyz`` (mm).
    ``breath_mm`` shifts every structure along +z by its group's factor times this value.
    """

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    to_index: np.ndarray
    pad_xyz: np.ndarray
    breath_mm: float = 0.0
    pad_vox: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.X.shape

    def boxes(self, lo: np.ndarray, hi: np.ndarray, group: str = "wall") -> np.ndarray:
        """Index ranges of many anatomical boxes at once: ``lo``, ``hi`` (N, 3) xyz mm ->
        (N, 3, 2) int array of ``[start, stop)`` per array axis (z, y, x); empty where start >= stop."""
        shift = np.array([0.0, 0.0, BREATH_FACTORS[group] * self.breath_mm])
        lo = np.atleast_2d(np.asarray(lo, dtype=np.float64)) + shift
        hi = np.atleast_2d(np.asarray(hi, dtype=np.float64)) + shift
        centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) + self.pad_xyz
        a = self.to_index[:, :3]
        c_idx = centre @ a.T + self.to_index[:, 3]  # (N, 3) in (i, j, k)
        h_idx = half @ np.abs(a).T
        start = np.floor(c_idx - h_idx).astype(np.int64) - self.pad_vox
        stop = np.ceil(c_idx + h_idx).astype(np.int64) + self.pad_vox + 1
        n_xyz = np.array(self.shape[::-1])
        start, stop = np.clip(start, 0, n_xyz), np.clip(stop, 0, n_xyz)
        return np.stack([start, stop], axis=-1)[:, ::-1, :]  # (i, j, k) -> (z, y, x)

    def box(self, lo, hi, group: str = "wall") -> tuple[slice, slice, slice] | None:
        """Index slices (z, y, x) covering the anatomical box [lo, hi] (xyz mm) of a structure."""
        b = self.boxes(lo, hi, group)[0]
        if np.any(b[:, 0] >= b[:, 1]):
            return None
        return tuple(slice(int(a), int(e)) for a, e in b)

    def coords(self, sl, group: str = "wall"):
        """Views of X, Y and Z - shift within ``sl`` (the coordinates a structure is evaluated at)."""
        shift = np.float32(BREATH_FACTORS[group] * self.breath_mm)
        z = self.Z[sl]
        return self.X[sl], self.Y[sl], (z - shift if shift else z)


def tube_field(s: Sampler, tube: Tube, sl: tuple[slice, ...], group: str, want_center: bool = False):
    """Signed distance to the tube surface (mm, < 0 inside) within box ``sl``; optionally the
    (x, y, z) of the nearest centre-line point and the radius there."""
    shape = tuple(x.stop - x.start for x in sl)
    best = np.full(shape, np.inf, dtype=np.float32)
    cen = [np.zeros(shape, np.float32) for _ in range(4)] if want_center else None
    pts, rad = tube.points, tube.radii
    r = np.maximum(rad[:-1], rad[1:])[:, None]
    seg_boxes = s.boxes(np.minimum(pts[:-1], pts[1:]) - r, np.maximum(pts[:-1], pts[1:]) + r, group)
    outer = np.array([[x.start, x.stop] for x in sl])
    seg_boxes[:, :, 0] = np.maximum(seg_boxes[:, :, 0], outer[:, 0]) - outer[:, 0]
    seg_boxes[:, :, 1] = np.minimum(seg_boxes[:, :, 1], outer[:, 1]) - outer[:, 0]
    shift = np.float32(BREATH_FACTORS[group] * s.breath_mm)
    X, Y, Z = s.X[sl], s.Y[sl], s.Z[sl]
    for n in range(len(pts) - 1):
        bx = seg_boxes[n]
        if np.any(bx[:, 0] >= bx[:, 1]):
            continue
        rel = tuple(slice(int(a), int(e)) for a, e in bx)
        a, b, ra, rb = pts[n], pts[n + 1], rad[n], rad[n + 1]
        v = (b - a).astype(np.float32)
        vv = np.float32(max(float(v @ v), 1e-6))
        dx = X[rel] - np.float32(a[0])
        dy = Y[rel] - np.float32(a[1])
        dz = Z[rel] - np.float32(a[2] + shift)
        t = dx * (v[0] / vv)
        t += dy * (v[1] / vv)
        t += dz * (v[2] / vv)
        np.clip(t, 0, 1, out=t)
        dx -= t * v[0]
        dy -= t * v[1]
        dz -= t * v[2]
        dx *= dx
        dy *= dy
        dz *= dz
        dx += dy
        dx += dz
        d = np.sqrt(dx, out=dx)
        d -= np.float32(ra)
        d -= t * np.float32(rb - ra)
        cur = best[rel]
        upd = d < cur
        cur[upd] = d[upd]
        if want_center:
            tu = t[upd]
            for i in range(3):
                cen[i][rel][upd] = np.float32(a[i]) + tu * v[i]
            cen[3][rel][upd] = np.float32(ra) + tu * np.float32(rb - ra)
    return (best, cen) if want_center else best


# --------------------------------------------------------------------------------------------------
# From an output grid to anatomical coordinates
# --------------------------------------------------------------------------------------------------


def make_sampler(
    p: Patient,
    shape_zyx: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    origin_xyz: tuple[float, float, float],
    world_from_body: np.ndarray,
    breath_mm: float = 0.0,
) -> Sampler:
    """The :class:`Sampler` of an axis-aligned (identity direction, LPS) grid.

    ``world_from_body`` (4x4) maps the patient's body frame (the anatomical frame scaled by
    ``p.body_scale``) to LPS world mm: placement on the table and rigid motion. Each voxel centre
    ``origin + spacing * index`` is mapped back through its inverse, divided by the body scale and
    displaced by the patient's deformation field.
    """
    nz, ny, nx = shape_zyx
    sz, sy, sx = spacing_zyx
    body_from_world = np.linalg.inv(world_from_body)
    canon = np.diag([1 / v for v in p.body_scale] + [1.0]) @ body_from_world
    # canonical point = M @ (i, j, k) + m
    M = canon[:3, :3] @ np.diag([sx, sy, sz])
    m = canon[:3, :3] @ np.asarray(origin_xyz, dtype=np.float64) + canon[:3, 3]
    i = np.arange(nx, dtype=np.float64)[None, None, :]
    j = np.arange(ny, dtype=np.float64)[None, :, None]
    k = np.arange(nz, dtype=np.float64)[:, None, None]
    coords = []
    for row in range(3):
        c = (np.float32(m[row]) + (M[row, 0] * i).astype(np.float32)) + (M[row, 1] * j).astype(np.float32)
        coords.append(c + (M[row, 2] * k).astype(np.float32))
    X, Y, Z = coords
    # displacement field: the phase of each mode is affine in the voxel index (before deformation)
    ux = np.zeros(shape_zyx, np.float32)
    uy = np.zeros(shape_zyx, np.float32)
    uz = np.zeros(shape_zyx, np.float32)
    for kx, ky, kz, ph, ax, ay, az in p.deformation:
        kvec = np.array([kx, ky, kz])
        g = kvec @ M  # d(phase)/d(i, j, k)
        phase = (np.float32(kvec @ m + ph) + (g[0] * i).astype(np.float32)) + (g[1] * j).astype(np.float32)
        w = np.sin(phase + (g[2] * k).astype(np.float32))
        ux += np.float32(ax) * w
        uy += np.float32(ay) * w
        uz += np.float32(az) * w
    pad = np.array([np.abs(u).max() if u.size else 0.0 for u in (ux, uy, uz)], dtype=np.float64) + 0.5
    X += ux
    Y += uy
    Z += uz
    del ux, uy, uz
    to_index = np.linalg.inv(M)
    to_index = np.hstack([to_index, -(to_index @ m)[:, None]])
    return Sampler(X, Y, Z, to_index, pad_xyz=pad, breath_mm=float(breath_mm))
