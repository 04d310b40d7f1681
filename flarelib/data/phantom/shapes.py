"""Phantom shapes: tissue classes, rotations and the two implicit shapes (ellipsoids, swept tubes).

Coordinates are points of a patient's anatomical frame: (x, y, z) millimetres, LPS axes (``+x`` to
the patient's left, ``+y`` posterior, ``+z`` superior); see :mod:`.anatomy` for the frame. Arrays
handed to the implicit functions are grids of such coordinates, one array per axis, each of array
shape (z, y, x) (:class:`.sampler.Sampler` makes them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import IntEnum

import numpy as np

__all__ = ["FAT_TISSUES", "Ellipsoid", "Tissue", "Tube", "rotation"]


class Tissue(IntEnum):
    """Tissue classes of the phantom (the renderer's lookup key). 0 is outside the patient."""

    AIR = 0
    SKIN = 1
    SUBCUT_FAT = 2
    MUSCLE = 3
    VISCERAL_FAT = 4
    CORTICAL_BONE = 5
    CANCELLOUS_BONE = 6
    DISC = 7
    CSF = 8
    LUNG = 9
    HEART_BLOOD = 10
    MYOCARDIUM = 11
    LIVER = 12
    SPLEEN = 13
    KIDNEY_CORTEX = 14
    KIDNEY_MEDULLA = 15
    RENAL_PELVIS = 16
    PANCREAS = 17
    AORTA = 18
    IVC = 19
    PORTAL_VEIN = 20
    HEPATIC_VEIN = 21
    ARTERY = 22
    VEIN = 23
    ADRENAL = 24
    GALLBLADDER = 25
    ESOPHAGUS = 26
    STOMACH_WALL = 27
    STOMACH_FLUID = 28
    GAS = 29
    BOWEL_WALL = 30
    BOWEL_FLUID = 31
    COLON_CONTENT = 32
    BLADDER = 33
    RIB = 34
    COUCH = 35


#: Fat-like tissues (the fat signal of Dixon in/opposed phase; "fat" for the contrast tests).
FAT_TISSUES: tuple[int, ...] = (int(Tissue.SUBCUT_FAT), int(Tissue.VISCERAL_FAT))


# --------------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------------


def rotation(rx_deg: float = 0.0, ry_deg: float = 0.0, rz_deg: float = 0.0) -> np.ndarray:
    """3x3 rotation ``Rz @ Ry @ Rx`` (angles in degrees about the LPS x, y, z axes)."""
    ax, ay, az = np.deg2rad([rx_deg, ry_deg, rz_deg])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _catmull_rom(
    points: np.ndarray, radii: np.ndarray, step_mm: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Densify a polyline through ``points`` (N, 3) with a Catmull-Rom spline; radii linearly."""
    points = np.asarray(points, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    if len(points) < 3:
        n = max(2, int(np.ceil(np.linalg.norm(points[-1] - points[0]) / step_mm)) + 1)
        t = np.linspace(0, 1, n)[:, None]
        return points[0] + t * (points[-1] - points[0]), radii[0] + t[:, 0] * (radii[-1] - radii[0])
    ext = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out_p, out_r = [points[:1]], [radii[:1]]
    for i in range(len(points) - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        n = max(1, int(np.ceil(np.linalg.norm(p2 - p1) / step_mm)))
        t = np.linspace(0, 1, n + 1)[1:, None]
        seg = 0.5 * (
            2 * p1
            + (-p0 + p2) * t
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
            + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
        )
        out_p.append(seg)
        out_r.append(radii[i] + t[:, 0] * (radii[i + 1] - radii[i]))
    return np.vstack(out_p), np.concatenate(out_r)


@dataclasses.dataclass(frozen=True)
class Ellipsoid:
    """A deformed ellipsoid: ``f(p) = sum_i (l_i / a_i(p))^2 <= 1`` inside.

    ``l = R^T (p - center)`` are local coordinates (mm) along the columns of ``rot``; ``semi`` the
    semi-axes (mm). ``taper[i][j]`` scales semi-axis ``i`` by ``1 + taper[i][j] * v_j`` and
    ``bend[i][j]`` shifts local coordinate ``i`` by ``bend[i][j] * a_i * v_j**2`` (``v = l / a``).
    """

    center: tuple[float, float, float]
    semi: tuple[float, float, float]
    rot: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    taper: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((3, 3)))
    bend: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((3, 3)))

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """Conservative world bounding box (lo, hi), xyz mm."""
        grow = 1.0 + np.abs(self.taper).sum(axis=1) + np.abs(self.bend).sum(axis=1)
        half = np.abs(self.rot) @ (np.asarray(self.semi) * grow)
        c = np.asarray(self.center)
        return c - half, c + half

    def local(self, x, y, z):
        """Normalised local coordinates ``(v0, v1, v2)`` (after bend; ~unit at the surface)."""
        c, r = self.center, self.rot
        dx, dy, dz = x - np.float32(c[0]), y - np.float32(c[1]), z - np.float32(c[2])
        loc = [
            dx * np.float32(r[0, i]) + dy * np.float32(r[1, i]) + dz * np.float32(r[2, i]) for i in range(3)
        ]
        v0 = [loc[i] / np.float32(self.semi[i]) for i in range(3)]
        if np.any(self.bend):
            v = [v0[i] - sum(np.float32(self.bend[i, j]) * v0[j] ** 2 for j in range(3)) for i in range(3)]
        else:
            v = v0
        if np.any(self.taper):
            v = [
                v[i] / np.maximum(1 + sum(np.float32(self.taper[i, j]) * v0[j] for j in range(3)), 0.2)
                for i in range(3)
            ]
        return v

    def r2(self, x, y, z) -> np.ndarray:
        """The implicit function (``<= 1`` inside)."""
        v = self.local(x, y, z)
        return v[0] ** 2 + v[1] ** 2 + v[2] ** 2


@dataclasses.dataclass(frozen=True)
class Tube:
    """A swept sphere along a smooth curve through ``points`` (N, 3) mm with radii ``radii`` (N,) mm."""

    points: np.ndarray
    radii: np.ndarray

    @classmethod
    def through(
        cls, points: Sequence[Sequence[float]], radii: Sequence[float] | float, step_mm: float = 10.0
    ):
        pts = np.asarray(points, dtype=np.float64)
        rad = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(pts),))
        dp, dr = _catmull_rom(pts, rad, step_mm)
        return cls(dp, dr)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        rmax = float(self.radii.max())
        return self.points.min(axis=0) - rmax, self.points.max(axis=0) + rmax
