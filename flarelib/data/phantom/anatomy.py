"""Phantom anatomy: the body and the 13 FLARE organs as implicit shapes in world millimetres.

Frames and units
----------------
Everything here lives in the *anatomical frame* of one patient: millimetres, LPS axes (``+x`` to the
patient's left, ``+y`` posterior, ``+z`` superior), origin on the midline at the level of the
kidney hila (about L1/L2), ``y = 0`` roughly in the middle of the abdominal cavity. A scanner places
the patient somewhere else and the patient moves between acquisitions; :mod:`.generate` maps each
output voxel back into this frame (inverse rigid motion, then the patient's smooth deformation)
and hands the resulting coordinate arrays to :func:`evaluate`.

Every structure is an implicit function: deformed ellipsoids (:class:`Ellipsoid`) and swept tubes
(distance to a smooth polyline below an interpolated radius, :class:`Tube`), evaluated only inside
the structure's bounding box in index space (:class:`Sampler`). Labels and tissues are assigned by
priority: later structures overwrite earlier ones. Two maps come out:

* ``label``: uint8 FLARE ids 0..13 (:data:`flarelib.labels.ORGANS`),
* ``tissue``: uint8 :class:`Tissue` ids, which the renderer (:mod:`.render`) turns into intensities.
  A tissue is finer than a label (kidney cortex / medulla / pelvis; stomach wall / fluid / gas;
  unlabelled distractors such as the portal vein, bowel loops, fat and muscle).

Per-patient variation (:func:`make_patient`): body size and fat thickness, per-organ size, position
and orientation, kidney heights (right lower than left), liver fat fraction, stomach gas and
filling, bowel loop layout, and a smooth low-frequency displacement field. Breathing moves each
structure along z by ``factor * breath_mm`` (factor 1 for the liver, spleen and diaphragm, less
for the kidneys, none for the body wall and spine).

Arrays are (z, y, x); every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import IntEnum

import numpy as np

__all__ = [
    "BREATH_FACTORS",
    "Ellipsoid",
    "Patient",
    "Sampler",
    "Tissue",
    "Tube",
    "evaluate",
    "make_patient",
    "make_sampler",
    "rotation",
]


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


def _tube_field(s: Sampler, tube: Tube, sl: tuple[slice, ...], group: str, want_center: bool = False):
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
# The patient
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Patient:
    """All shape parameters of one phantom patient (anatomical frame, mm). Built by :func:`make_patient`."""

    body_scale: tuple[float, float, float]  # global scaling of the anatomy (x, y, z)
    fat_mm: float  # subcutaneous fat thickness (anterior)
    muscle_mm: float  # abdominal wall muscle thickness (lateral; thinner anteriorly and posteriorly)
    body_shape: tuple[float, float, float, float]  # cos 2t, sin 2t, cos 3t, sin 3t of the body outline
    wall_shape: tuple[float, float, float, float]  # fat (cos 2t, sin 2t) and muscle (sin t, cos t) terms
    table_y: float  # the back lies flat on the table at this y (canonical mm)
    dome_r: float  # right hemidiaphragm dome height (z mm)
    dome_l: float
    liver: tuple[Ellipsoid, Ellipsoid, Ellipsoid]  # right lobe, left lobe, right inferior tip
    liver_inferior: tuple[float, float]  # inferior cut plane z = a + b * (x + 90)
    spleen: Ellipsoid
    spleen_hilum: Ellipsoid
    kidneys: tuple[Ellipsoid, Ellipsoid]  # right, left
    adrenals: tuple[Ellipsoid, Ellipsoid]  # right, left
    gallbladder: Ellipsoid
    pancreas: Tube
    stomach: Tube
    duodenum: Tube
    esophagus: Tube
    aorta: Tube
    ivc: Tube
    portal: tuple[Tube, ...]  # portal vein, branches, SMV, splenic vein
    hepatic_veins: tuple[Tube, ...]
    arteries: tuple[Tube, ...]  # SMA, celiac, hepatic/splenic, renal, iliac
    veins: tuple[Tube, ...]  # renal, iliac
    colon: Tube
    bowel: tuple[Tube, ...]
    bowel_content: tuple[int, ...]  # per loop: 0 collapsed, 1 fluid, 2 fluid + gas
    heart: Ellipsoid
    bladder: Ellipsoid
    stomach_gas: float  # gas above y_c - gas * r (fraction of the lumen radius, anterior)
    colon_gas: float
    liver_fat_fraction: float  # used by the renderer (Dixon)
    deformation: tuple[tuple[float, ...], ...]  # (kx, ky, kz, phase, ux, uy, uz) per mode

    def displacement(self, x, y, z):
        """Displacement (ux, uy, uz) mm at anatomical points (arrays); added to the coordinates."""
        ux = np.zeros_like(x)
        uy = np.zeros_like(x)
        uz = np.zeros_like(x)
        for kx, ky, kz, ph, ax, ay, az in self.deformation:
            w = np.sin(x * np.float32(kx) + y * np.float32(ky) + z * np.float32(kz) + np.float32(ph))
            ux += np.float32(ax) * w
            uy += np.float32(ay) * w
            uz += np.float32(az) * w
        return ux, uy, uz


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _jit(rng: np.random.Generator, sd: float, lim: float | None = None) -> np.ndarray:
    lim = 2 * sd if lim is None else lim
    return np.clip(rng.normal(0, sd, 3), -lim, lim)


def _bowel_loop(rng: np.random.Generator, lo, hi, n: int, step: float) -> np.ndarray:
    """A smooth random walk of ``n`` points inside the box [lo, hi] (mm)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    p = lo + rng.uniform(0.2, 0.8, 3) * (hi - lo)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    pts = [p]
    for _ in range(n - 1):
        d = d + rng.normal(0, 0.7, 3)
        d /= np.linalg.norm(d)
        q = pts[-1] + step * d
        for i in range(3):  # reflect at the box walls
            if q[i] < lo[i] or q[i] > hi[i]:
                d[i] = -d[i]
                q[i] = np.clip(q[i], lo[i], hi[i])
        pts.append(q)
    return np.array(pts)


def make_patient(rng: np.random.Generator) -> Patient:
    """Draw one patient: sizes, positions, orientations, gas, bowel layout and deformation."""
    j = _jit
    sx, sy, sz = _u(rng, 0.95, 1.06), _u(rng, 0.94, 1.07), _u(rng, 0.96, 1.04)

    # liver: right lobe + left lobe, clipped by the diaphragm, the body wall and an inferior plane
    ls = np.array([_u(rng, 0.93, 1.07), _u(rng, 0.93, 1.07), _u(rng, 0.92, 1.08)])
    lsh = j(rng, 4, 8)
    liver_r = Ellipsoid(
        tuple((np.array([-60.0, 6, 90]) + lsh).tolist()),
        tuple((np.array([74.0, 80, 78]) * ls).tolist()),
        rotation(_u(rng, -6, 6), _u(rng, -6, 6), _u(rng, -14, -4)),
        taper=np.array([[0, 0, 0.0], [0, 0, 0], [-0.18, 0, 0]]),
    )
    liver_l = Ellipsoid(
        tuple((np.array([12.0, -38, 104]) + lsh + j(rng, 5, 9)).tolist()),
        tuple((np.array([70.0, 38, 34]) * ls * np.array([_u(rng, 0.85, 1.15), 1, 1])).tolist()),
        rotation(0, _u(rng, -12, -4), _u(rng, -8, 8)),
        taper=np.array([[0, 0, 0], [-0.3, 0, 0], [-0.35, 0, 0]]),
    )
    liver_tip = Ellipsoid(
        tuple((np.array([-84.0, 6, 18]) + lsh + j(rng, 4, 8)).tolist()),
        tuple((np.array([38.0, 52, 52]) * ls * _u(rng, 0.85, 1.1)).tolist()),
        rotation(0, _u(rng, 5, 20), 0),
    )
    liver_inf = (_u(rng, -40, -24), _u(rng, 0.34, 0.48))

    sp = np.array([_u(rng, 0.9, 1.15), _u(rng, 0.9, 1.12), _u(rng, 0.88, 1.18)])
    spc = np.array([90.0, 44, 76]) + j(rng, 5, 9)
    sp_rot = rotation(_u(rng, 25, 45), _u(rng, -10, 10), _u(rng, -35, -15))
    spleen = Ellipsoid(tuple(spc.tolist()), tuple((np.array([25.0, 44, 64]) * sp).tolist()), sp_rot)
    hil_dir = sp_rot @ np.array([-1.0, 0, 0])
    spleen_hilum = Ellipsoid(
        tuple((spc + hil_dir * 44 * sp[0] + np.array([0, -8, 0])).tolist()),
        tuple((np.array([26.0, 22, 34]) * sp).tolist()),
        sp_rot,
    )

    kidneys = []
    drop_r = _u(rng, 12, 26)  # the right kidney sits 1-2.5 cm lower than the left
    z_left = _u(rng, -6, 8)
    for side, z0 in ((-1, z_left - drop_r), (1, z_left)):
        ks = np.array([_u(rng, 0.92, 1.08), _u(rng, 0.92, 1.08), _u(rng, 0.92, 1.08)])
        c = np.array([side * _u(rng, 64, 74), _u(rng, 42, 50), z0])
        rot = rotation(_u(rng, -18, -8), side * -_u(rng, 8, 16), side * _u(rng, 20, 35))
        kidneys.append(Ellipsoid(tuple(c.tolist()), tuple((np.array([25.0, 30, 56]) * ks).tolist()), rot))
    kr, kl = kidneys

    adrenals = []
    for side, base in ((-1, np.array([-34.0, 30, 0])), (1, np.array([33.0, 26, 0]))):
        kid = kr if side < 0 else kl
        top = np.asarray(kid.center)[2] + kid.semi[2] * _u(rng, 0.75, 0.95)
        c = base + np.array([0, 0, top + _u(rng, 6, 14)]) + j(rng, 2, 4) * np.array([1, 1, 0.5])
        a = np.array([5.4, 13.0, 17.0]) * np.array(
            [_u(rng, 0.9, 1.12), _u(rng, 0.9, 1.12), _u(rng, 0.9, 1.12)]
        )
        adrenals.append(
            Ellipsoid(
                tuple(c.tolist()),
                tuple(a.tolist()),
                rotation(_u(rng, -15, 15), 0, side * _u(rng, 20, 40)),
                bend=np.array([[0, 0.35 * side, 0.2], [0, 0, 0], [0, 0, 0]]),
            )
        )

    gb_axis = np.array([0.15, -0.45, -0.88]) + rng.normal(0, 0.08, 3)
    gb_axis /= np.linalg.norm(gb_axis)
    # rotation whose 3rd column is gb_axis
    t = np.cross(gb_axis, [1.0, 0, 0])
    t /= np.linalg.norm(t)
    gb_rot = np.column_stack([np.cross(t, gb_axis), t, gb_axis])
    gs = _u(rng, 0.8, 1.18)
    gallbladder = Ellipsoid(
        tuple((np.array([-58.0, -50, 30]) + j(rng, 4, 7)).tolist()),
        (14.0 * gs * _u(rng, 0.9, 1.1), 14.0 * gs * _u(rng, 0.9, 1.1), 37.0 * gs),
        gb_rot,
        taper=np.array([[0, 0, 0.22], [0, 0, 0.22], [0, 0, 0]]),
    )

    d = j(rng, 3, 6)  # shared shift of the pancreas / duodenum / portal complex
    pscale = _u(rng, 0.9, 1.1)
    pancreas = Tube.through(
        np.array([[-38, -13, -28], [-28, -15, -12], [-4, -23, -4], [28, -15, 6], [58, 4, 20], [80, 22, 36]])
        + d,
        np.array([16, 14, 10, 12, 11, 9]) * pscale,
    )
    duodenum = Tube.through(
        np.array(
            [
                [-18, -48, 18],
                [-38, -30, 15],
                [-57, -14, 4],
                [-61, -8, -32],
                [-48, -10, -59],
                [-14, -24, -66],
                [18, -24, -62],
                [30, -18, -38],
                [26, -28, -22],
            ]
        )
        + d,
        [12, 14, 12, 12, 12, 11.5, 11.5, 11, 11],
    )
    w_free = np.array([1, 1, 1, 1, 0.5, 0])[:, None]
    stomach = Tube.through(
        np.array([[46, 18, 124], [54, -4, 102], [52, -34, 70], [34, -52, 40], [8, -56, 24], [-18, -48, 18]])
        + np.clip(rng.normal(0, 3, (6, 3)), -6, 6) * w_free
        + d * (1 - w_free),
        np.array([30, 33, 29, 23, 16, 11]) * np.array([_u(rng, 0.85, 1.1)] * 4 + [1, 1]),
    )
    esophagus = Tube.through(
        [[4, 28, 320], [6, 24, 230], [12, 8, 160], [28, 4, 130], [42, 14, 121]], [8, 8, 8, 9, 10]
    )
    aorta = Tube.through(
        [
            [-2, -32, 262],
            [0, -32, 320],
            [12, -8, 350],
            [24, 20, 318],
            [30, 22, 250],
            [18, 16, 160],
            [14, 6, 110],
            [14, 2, 40],
            [14, 2, -40],
            [16, 4, -118],
        ],
        [14.5, 15, 14, 13, 12.5, 12, 11.5, 11, 10.5, 10],
    )
    ivc = Tube.through(
        [[-24, 8, -122], [-24, 4, -40], [-26, 0, 40], [-28, 10, 100], [-20, 12, 140], [-14, 8, 178]],
        [10.5, 11, 11.5, 12, 13, 13],
    )
    portal = (
        Tube.through(
            np.array([[-6, -13, -4], [-22, -11, 18], [-38, -5, 42], [-62, 4, 58], [-92, 8, 72]]) + d,
            [7, 7.5, 7, 5.5, 3.5],
        ),
        Tube.through(np.array([[-38, -5, 42], [-14, -20, 66], [12, -36, 84]]) + d, [5, 4.5, 3]),
        Tube.through(np.array([[-2, -25, -92], [-6, -18, -30], [-6, -13, -4]]) + d, [5.5, 6, 7]),
        Tube.through(np.array([[-6, -13, -4], [24, -2, 6], [56, 18, 22], [84, 36, 42]]) + d, [5, 5, 5, 5.5]),
    )
    hepatic_veins = tuple(
        Tube.through([[-18, 12, 150], end], [5.5, 2.5])
        for end in ([-75, -5, 118], [-40, -38, 128], [8, -32, 122])
    )
    arteries = (
        Tube.through([[14, -6, 8], [11, -22, -20], [4, -30, -80]], [4, 3.5, 3]),  # SMA
        Tube.through([[12, -6, 30], [10, -18, 36], [-30, -14, 42]], [3.5, 3, 2.5]),  # celiac, hepatic
        Tube.through([[10, -18, 36], [40, 0, 34], [76, 30, 44]], [3, 2.5, 2.5]),  # splenic artery
        Tube.through(
            [[14, 4, -6], np.asarray(kl.center) - np.array([22, 10, 0])], [3.2, 3]
        ),  # left renal artery
        Tube.through(
            [[14, 6, -6], [-20, 16, -10], np.asarray(kr.center) + np.array([22, -10, 0])], [3.2, 3.2, 3]
        ),
        Tube.through([[16, 4, -118], [50, 8, -180], [72, 20, -260]], [7, 6.5, 6]),  # iliac arteries
        Tube.through([[16, 4, -118], [-20, 8, -180], [-70, 20, -260]], [7, 6.5, 6]),
    )
    veins = (
        Tube.through(
            [np.asarray(kl.center) - np.array([22, 12, 2]), [14, -15, -4], [-22, 2, -6]], [4.5, 4.5, 5]
        ),
        Tube.through([np.asarray(kr.center) + np.array([22, -12, 2]), [-24, 6, -14]], [5, 5.5]),
        Tube.through([[-24, 8, -122], [30, 14, -180], [66, 26, -260]], [8, 7.5, 7]),
        Tube.through([[-24, 8, -122], [-40, 14, -180], [-76, 26, -260]], [8, 7.5, 7]),
    )
    colon = Tube.through(
        np.array(
            [
                [-72, -20, -128],
                [-88, 6, -70],
                [-88, 4, -20],
                [-76, -30, 2],
                [-40, -62, -22],
                [0, -66, -36],
                [40, -60, -16],
                [84, -14, 36],
                [98, 16, -10],
                [94, 22, -90],
                [60, 0, -160],
                [20, 8, -200],
                [0, 50, -235],
                [0, 55, -300],
            ]
        )
        + rng.normal(0, 4, (14, 3)),
        [24, 23, 22, 21, 20, 20, 20, 20, 19, 18, 17, 16, 17, 15],
    )
    loops, content = [], []
    n_loops = int(rng.integers(5, 8))
    for i in range(n_loops):
        if i < 2:  # jejunum in the left upper/mid abdomen
            pts = _bowel_loop(rng, [15, -75, -55], [80, -20, 5], 10, 16)
        else:
            pts = _bowel_loop(rng, [-60, -85, -200], [65, -10, -40], 12, 18)
        loops.append(Tube.through(pts, _u(rng, 9, 12.5), step_mm=8))
        content.append(int(rng.choice([0, 1, 1, 2])))
    dome_r, dome_l = _u(rng, 146, 158), _u(rng, 132, 144)
    heart = Ellipsoid(
        tuple((np.array([16.0, -34, 0.5 * (dome_r + dome_l) + 40]) + j(rng, 4, 8)).tolist()),
        (62.0 * _u(rng, 0.9, 1.1), 48.0, 56.0),
        rotation(0, _u(rng, -25, -15), _u(rng, 10, 30)),
    )
    bladder = Ellipsoid((0.0, -40, -250), (45.0 * _u(rng, 0.7, 1.1), 35, 32 * _u(rng, 0.7, 1.1)))

    modes = []
    for _ in range(5):
        k = rng.normal(size=3)
        k *= 2 * np.pi / _u(rng, 160, 320) / np.linalg.norm(k)
        amp = rng.normal(size=3)
        amp *= _u(rng, 1.0, 3.0) / np.linalg.norm(amp)
        modes.append((*k.tolist(), _u(rng, 0, 2 * np.pi), *amp.tolist()))

    fat_mm, muscle_mm = _u(rng, 8, 32), _u(rng, 10, 15)
    return Patient(
        body_scale=(sx, sy, sz),
        fat_mm=fat_mm,
        muscle_mm=muscle_mm,
        body_shape=tuple(float(v) for v in rng.uniform(-1, 1, 4) * np.array([0.03, 0.015, 0.025, 0.02])),
        wall_shape=tuple(float(v) for v in rng.uniform(-1, 1, 4) * np.array([0.25, 0.2, 0.12, 0.08])),
        table_y=75 + 0.7 * muscle_mm + 0.8 * fat_mm + 2.5 - _u(rng, 3, 8),
        dome_r=dome_r,
        dome_l=dome_l,
        liver=(liver_r, liver_l, liver_tip),
        liver_inferior=liver_inf,
        spleen=spleen,
        spleen_hilum=spleen_hilum,
        kidneys=(kr, kl),
        adrenals=(adrenals[0], adrenals[1]),
        gallbladder=gallbladder,
        pancreas=pancreas,
        stomach=stomach,
        duodenum=duodenum,
        esophagus=esophagus,
        aorta=aorta,
        ivc=ivc,
        portal=portal,
        hepatic_veins=hepatic_veins,
        arteries=arteries,
        veins=veins,
        colon=colon,
        bowel=tuple(loops),
        bowel_content=tuple(content),
        heart=heart,
        bladder=bladder,
        stomach_gas=_u(rng, 0.35, 0.95),
        colon_gas=_u(rng, 0.2, 0.7),
        liver_fat_fraction=float(rng.choice([_u(rng, 0.01, 0.05), _u(rng, 0.01, 0.05), _u(rng, 0.1, 0.25)])),
        deformation=tuple(modes),
    )


# --------------------------------------------------------------------------------------------------
# Body profile (cavity ellipse per z) and the diaphragm
# --------------------------------------------------------------------------------------------------

#: Inner body wall (abdominal / thoracic cavity) half-axes along z: (z, ax, ay anterior, ay posterior).
_CAVITY = np.array(
    [
        [-330.0, 128, 70, 72],
        [-230.0, 140, 74, 74],
        [-150.0, 140, 84, 74],
        [-40.0, 138, 90, 75],
        [60.0, 136, 90, 75],
        [160.0, 132, 86, 76],
        [260.0, 126, 80, 78],
        [420.0, 112, 72, 74],
    ]
)
#: Spine centre line: (z, y of the vertebral body centre, body half-width x, half-depth y).
_SPINE = np.array(
    [
        [-330.0, 62, 20, 14],
        [-220.0, 58, 24, 16],
        [-150.0, 34, 24, 17],
        [-60.0, 31, 23, 17],
        [60.0, 32, 21, 16],
        [160.0, 37, 17, 15],
        [420.0, 42, 15, 13],
    ]
)


_LUT_Z0, _LUT_STEP = -600.0, 1.0  # z lookup tables of the profiles: 1 mm steps from z = -600 mm
_LUT_Z = np.arange(_LUT_Z0, 800.0, _LUT_STEP)
_CAVITY_LUT = [np.interp(_LUT_Z, _CAVITY[:, 0], _CAVITY[:, c]).astype(np.float32) for c in range(4)]
_SPINE_LUT = [np.interp(_LUT_Z, _SPINE[:, 0], _SPINE[:, c]).astype(np.float32) for c in range(4)]


def _profile_index(z: np.ndarray) -> np.ndarray:
    """Index into the z lookup tables (nearest 1 mm step, clipped)."""
    idx = np.rint((z - np.float32(_LUT_Z0)) * np.float32(1 / _LUT_STEP)).astype(np.int32)
    return np.clip(idx, 0, len(_LUT_Z) - 1, out=idx)


def _diaphragm(p: Patient, x, y):
    """z (mm) of the diaphragm surface over (x, y): two domes, deeper posteriorly."""
    zr = np.float32(p.dome_r) - np.float32(0.0065) * ((x + 55) ** 2 + (0.8 * (y - 5)) ** 2)
    zl = np.float32(p.dome_l) - np.float32(0.0065) * ((x - 55) ** 2 + (0.8 * (y - 15)) ** 2)
    return np.maximum(zr, zl) - np.float32(0.35) * np.maximum(y - 25, 0)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


class _Canvas:
    def __init__(self, shape):
        self.tissue = np.zeros(shape, np.uint8)
        self.label = np.zeros(shape, np.uint8)

    def paint(self, sl, mask, tissue, label=None):
        t = self.tissue[sl]
        t[mask] = tissue
        if label is not None:
            lab = self.label[sl]
            lab[mask] = label


def evaluate(p: Patient, s: Sampler, *, couch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Tissue and label maps (uint8, (z, y, x)) of patient ``p`` on the grid of sampler ``s``.

    Returns ``(tissue, label)``; label ids are FLARE ids, tissue ids :class:`Tissue`. ``couch``
    adds the CT table below the patient (tissue ``COUCH``, label 0).
    """
    cv = _Canvas(s.shape)
    T = Tissue
    X, Y, Z = s.X, s.Y, s.Z

    # --- body wall: cavity ellipse, muscle, subcutaneous fat, skin (full grid) --------------------
    zi = _profile_index(Z)
    ax = _CAVITY_LUT[1][zi]
    ay = np.where(Y < 0, _CAVITY_LUT[2][zi], _CAVITY_LUT[3][zi])
    del zi
    r = np.sqrt(X * X + Y * Y)
    rr = np.maximum(r, np.float32(1.0))
    cx, sy_ = X / rr, Y / rr  # cos and sin of the polar angle
    a2, b2, a3, b3 = (np.float32(v) for v in p.body_shape)
    c2, s2 = cx * cx - sy_ * sy_, 2 * cx * sy_
    shape_mod = 1 + a2 * c2 + b2 * s2 + a3 * cx * (2 * c2 - 1) + b3 * sy_ * (2 * c2 + 1)
    rho = np.sqrt((X / ax) ** 2 + (Y / ay) ** 2) / shape_mod
    dcav = r * (1 - 1 / np.maximum(rho, 1e-3))  # radial distance outside the cavity wall (mm)
    del ax, ay, rho, shape_mod, s2
    lat2 = cx * cx
    f2, f3, m2, m3 = (np.float32(v) for v in p.wall_shape)
    mus = np.float32(p.muscle_mm) * (np.float32(0.7) + np.float32(0.55) * lat2 + m2 * sy_ + m3 * cx)
    mus[(np.abs(X) < 4) & (Y < 0)] = 2.5  # linea alba between the recti
    fat = np.float32(p.fat_mm) * (1 + np.float32(0.6) * lat2 + f2 * c2 + f3 * sy_ * cx)
    fat[Y > 0] *= np.float32(0.8)
    outer = mus + fat
    on_table = Y < np.float32(p.table_y)
    body = (dcav < outer + 2.5) & on_table
    cv.tissue[body] = T.SKIN
    cv.tissue[(dcav < outer) & on_table] = T.SUBCUT_FAT
    cv.tissue[(dcav < mus) & on_table] = T.MUSCLE
    cavity = dcav < 0
    cv.tissue[cavity] = T.VISCERAL_FAT
    del fat, body, outer, lat2, cx, sy_, rr, c2

    if couch:
        yt = np.float32(p.table_y)
        m = (Y > yt + 1) & (Y < yt + 9) & (np.abs(X) < 190)
        cv.tissue[m] = T.COUCH
    del on_table

    # --- chest: diaphragm, lungs, heart -------------------------------------------------------------
    sl = s.box((-160, -120, 60), (160, 120, 460), "diaphragm")
    if sl is not None:
        x, y, z = s.coords(sl, "diaphragm")
        zd = _diaphragm(p, x, y)
        cav = cavity[sl]
        above = cav & (z > zd)
        lung = above & (z > zd + 4) & (np.abs(x - 6) > 18)
        hr2 = p.heart.r2(x, y, z)
        heart = above & (hr2 < 1) & (z > zd + 3)
        lung &= hr2 > 1.12
        cv.paint(sl, above, T.MUSCLE)
        cv.paint(sl, above & (z > zd + 4), T.VISCERAL_FAT)
        cv.paint(sl, lung, T.LUNG)
        cv.paint(sl, heart, T.MYOCARDIUM)
        cv.paint(sl, heart & (hr2 < 0.7), T.HEART_BLOOD)
        del zd, above, lung, heart, hr2

    # --- pelvis: bladder ------------------------------------------------------------------------------
    lo, hi = p.bladder.bbox()
    sl = s.box(lo, hi, "bowel")
    if sl is not None:
        x, y, z = s.coords(sl, "bowel")
        m = (p.bladder.r2(x, y, z) < 1) & cavity[sl]
        cv.paint(sl, m, T.BLADDER)

    # --- bowel: colon and small bowel loops --------------------------------------------------------------
    _hollow(cv, s, p.colon, "bowel", T.BOWEL_WALL, T.COLON_CONTENT, p.colon_gas, cavity, label=None, wall=3.0)
    for tube, content in zip(p.bowel, p.bowel_content, strict=True):
        lumen = T.BOWEL_WALL if content == 0 else T.BOWEL_FLUID
        gas = 0.55 if content == 2 else 2.0
        _hollow(cv, s, tube, "bowel", T.BOWEL_WALL, lumen, gas, cavity, label=None, wall=2.5)

    # --- muscles: psoas, paraspinal -----------------------------------------------------------------------
    for side in (-1, 1):
        psoas = Tube.through(
            [[side * 28, 34, 50], [side * 44, 30, -50], [side * 58, 22, -150], [side * 66, 14, -230]],
            [5, 17, 24, 22],
        )
        _solid(cv, s, psoas, "wall", T.MUSCLE, None, cavity)
    sl = s.box((-80, 40, -340), (80, 130, 460), "wall")
    if sl is not None:
        x, y, z = s.coords(sl, "wall")
        ys = _SPINE_LUT[1][_profile_index(z)]
        for side in (-1, 1):
            m = ((x - side * 32) / 26) ** 2 + ((y - ys - 50) / 20) ** 2 < 1
            m &= dcav[sl] < mus[sl]
            cv.paint(sl, m, T.MUSCLE)
        del ys

    # --- skeleton: spine, ribs, sternum, pelvis -------------------------------------------------------------
    _spine(cv, s, dcav, mus)
    _ribs(p, cv, s, dcav, mus)
    _pelvis(cv, s, dcav)

    # --- organs (later = higher priority) -------------------------------------------------------------------
    below = _BelowDiaphragm(p, s, cavity)
    _liver(p, cv, s, below, dcav)
    sl = _ellipsoid_box(s, p.spleen, "upper")
    if sl is not None:
        x, y, z = s.coords(sl, "upper")
        m = (p.spleen.r2(x, y, z) < 1) & (p.spleen_hilum.r2(x, y, z) > 1) & below(sl, "upper")
        cv.paint(sl, m, T.SPLEEN, 3)
    # the gallbladder yields to the stomach and duodenum where they touch (keeps the GI tract whole)
    sl = _ellipsoid_box(s, p.gallbladder, "upper")
    if sl is not None:
        x, y, z = s.coords(sl, "upper")
        m = (p.gallbladder.r2(x, y, z) < 1) & below(sl, "upper")
        cv.paint(sl, m, T.GALLBLADDER, 9)
    _hollow(
        cv,
        s,
        p.stomach,
        "upper",
        T.STOMACH_WALL,
        T.STOMACH_FLUID,
        p.stomach_gas,
        cavity,
        label=11,
        wall=4.0,
        below=below,
    )
    for kid, lab, side in ((p.kidneys[0], 2, -1), (p.kidneys[1], 13, 1)):
        _kidney(cv, s, kid, lab, side, below)
    _solid(cv, s, p.pancreas, "mid", T.PANCREAS, 4, cavity)
    _hollow(cv, s, p.duodenum, "mid", T.BOWEL_WALL, T.BOWEL_FLUID, 0.75, cavity, label=12, wall=3.0)
    for adr, lab in zip(p.adrenals, (7, 8), strict=True):
        sl = _ellipsoid_box(s, adr, "upper")
        if sl is not None:
            x, y, z = s.coords(sl, "upper")
            cv.paint(sl, (adr.r2(x, y, z) < 1) & below(sl, "upper"), T.ADRENAL, lab)
    _solid(cv, s, p.esophagus, "fixed_vessel", T.ESOPHAGUS, 10, None)

    # --- vessels: veins of the portal system (unlabelled outside the liver), IVC, aorta, branches ---------
    for tube in p.hepatic_veins:
        _solid(cv, s, tube, "upper", T.HEPATIC_VEIN, None, None, only_label=1)
    for tube in p.portal:
        _solid(cv, s, tube, "upper", T.PORTAL_VEIN, 0, None, keep_label=1)
    for tube in p.veins[:2]:
        _solid(cv, s, tube, "kidney", T.VEIN, 0, None, keep_label=(2, 13))
    for tube in p.veins[2:]:
        _solid(cv, s, tube, "wall", T.VEIN, 0, None)
    _solid(cv, s, p.ivc, "mid", T.IVC, 6, None)
    for tube in p.arteries[:5]:
        _solid(cv, s, tube, "fixed_vessel", T.ARTERY, 0, None, keep_label=(1, 2, 13, 3))
    for tube in p.arteries[5:]:
        _solid(cv, s, tube, "wall", T.ARTERY, 0, None)
    _solid(cv, s, p.aorta, "fixed_vessel", T.AORTA, 5, None)
    _keep_largest_components(cv)
    return cv.tissue, cv.label


def _keep_largest_components(cv: _Canvas) -> int:
    """Each organ keeps its largest 26-connected component; stray fragments (a few voxels where
    another structure cut a thin rim) become visceral fat. Returns the number of voxels changed."""
    import cc3d

    comp = cc3d.connected_components(cv.label, connectivity=26)
    n = int(comp.max())
    if n <= 13:
        if n == 0 or len(np.unique(cv.label)) - 1 == n:
            return 0
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    owner = np.zeros(n + 1, np.uint8)
    flat_c, flat_l = comp.ravel(), cv.label.ravel()
    nz = flat_c > 0
    owner[flat_c[nz]] = flat_l[nz]
    keep = np.zeros(n + 1, bool)
    for organ in np.unique(owner[1:]):
        ids = np.nonzero(owner == organ)[0]
        ids = ids[ids > 0]
        keep[ids[np.argmax(sizes[ids])]] = True
    keep[0] = True
    drop = ~keep[comp]
    changed = int(drop.sum())
    if changed:
        cv.label[drop] = 0
        cv.tissue[drop] = Tissue.VISCERAL_FAT
    return changed


def _ellipsoid_box(s: Sampler, e: Ellipsoid, group: str):
    lo, hi = e.bbox()
    return s.box(lo, hi, group)


class _BelowDiaphragm:
    """Mask of 'inside the abdominal cavity and below the diaphragm' for a box and a breathing group."""

    def __init__(self, p: Patient, s: Sampler, cavity: np.ndarray):
        self.p, self.s, self.cavity = p, s, cavity

    def __call__(self, sl, group: str) -> np.ndarray:
        x, y, z = self.s.coords(sl, group)
        # the diaphragm moves with factor 1; shift z into the diaphragm's frame
        dz = np.float32((BREATH_FACTORS["diaphragm"] - BREATH_FACTORS[group]) * self.s.breath_mm)
        return self.cavity[sl] & (z - dz < _diaphragm(self.p, x, y) - 3)


def _solid(cv, s, tube: Tube, group, tissue, label, cavity, *, only_label=None, keep_label=None):
    """Paint a solid tube. ``only_label``: paint only where the label already is that organ (tissue
    only); ``keep_label``: where the label is one of these, keep it (tissue changes only)."""
    lo, hi = tube.bbox()
    sl = s.box(lo, hi, group)
    if sl is None:
        return
    d = _tube_field(s, tube, sl, group)
    m = d < 0
    if cavity is not None:
        m &= cavity[sl]
    lab = cv.label[sl]
    if only_label is not None:
        m &= lab == only_label
        cv.paint(sl, m, tissue)
        return
    if keep_label is not None:
        keep = np.isin(lab, np.atleast_1d(keep_label))
        cv.paint(sl, m & keep, tissue)
        m &= ~keep
    cv.paint(sl, m, tissue, label)


def _hollow(cv, s, tube: Tube, group, wall_t, lumen_t, gas, cavity, *, label, wall, below=None):
    """Paint a hollow viscus: wall, lumen content, and gas in the anterior (non-dependent) part."""
    lo, hi = tube.bbox()
    sl = s.box(lo, hi, group)
    if sl is None:
        return
    d, (_, cy, _, cr) = _tube_field(s, tube, sl, group, want_center=True)
    m = (d < 0) & cavity[sl]
    if below is not None:
        m &= below(sl, group)
    cv.paint(sl, m, wall_t, label)
    lumen = m & (d < -wall)
    cv.paint(sl, lumen, lumen_t)
    if gas < 1.5:
        y = s.coords(sl, group)[1]
        cv.paint(sl, lumen & (y - cy < -np.float32(gas) * cr), Tissue.GAS)


def _kidney(cv, s, e: Ellipsoid, label: int, side: int, below):
    sl = _ellipsoid_box(s, e, "kidney")
    if sl is None:
        return
    x, y, z = s.coords(sl, "kidney")
    v = e.local(x, y, z)
    r2 = v[0] ** 2 + v[1] ** 2 + v[2] ** 2
    inside = (r2 < 1) & below(sl, "kidney")
    med = -side * v[0]  # medial component (+ towards the midline)
    notch = (med > 0.62) & (np.abs(v[2]) < 0.32)
    organ = inside & ~notch
    cv.paint(sl, inside & notch, Tissue.VISCERAL_FAT)
    cv.paint(sl, organ, Tissue.KIDNEY_CORTEX, label)
    r = np.sqrt(r2)
    ang = np.arctan2(v[2], v[1])
    pyramid = organ & (r > 0.38) & (r < 0.74) & (np.cos(7 * ang) > -0.35)
    cv.paint(sl, pyramid, Tissue.KIDNEY_MEDULLA)
    cv.paint(sl, organ & (r < 0.38) & (med > -0.25), Tissue.RENAL_PELVIS)


def _liver(p: Patient, cv, s, below, dcav):
    boxes = [e.bbox() for e in p.liver]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    sl = s.box(lo, hi, "upper")
    if sl is None:
        return
    x, y, z = s.coords(sl, "upper")
    m = (p.liver[0].r2(x, y, z) < 1) | (p.liver[1].r2(x, y, z) < 1) | (p.liver[2].r2(x, y, z) < 1)
    a, b = p.liver_inferior
    m &= z > np.float32(a) + np.float32(b) * (x + 90)
    m &= below(sl, "upper") & (dcav[sl] < -1.5)
    cv.paint(sl, m, Tissue.LIVER, 1)


def _spine(cv, s, dcav, mus):
    sl = s.box((-60, -10, -340), (60, 130, 460), "wall")
    if sl is None:
        return
    x, y, z = s.coords(sl, "wall")
    zi = _profile_index(z)
    ys, ax, ay = _SPINE_LUT[1][zi], _SPINE_LUT[2][zi], _SPINE_LUT[3][zi]
    dy = y - ys
    rv = np.sqrt((x / ax) ** 2 + (dy / ay) ** 2)
    level = np.mod(z + 7, 32) / 32  # vertebral level phase; disc near 0
    disc = level < 0.2
    inside_body = dcav[sl] < mus[sl] + 4
    vb = (rv < 1) & inside_body
    cv.paint(sl, vb, Tissue.CANCELLOUS_BONE)
    cv.paint(sl, vb & (rv > 0.82), Tissue.CORTICAL_BONE)
    cv.paint(sl, vb & disc & (rv < 0.95), Tissue.DISC)
    canal_y = ys + ay + 11
    rc = np.sqrt(x * x + (y - canal_y) ** 2)
    arch = (rc < 16) & (rc >= 8.5) & (dy > ay - 2) & ~disc & inside_body
    spinous = (np.abs(x) < 5) & (y > canal_y) & (y < canal_y + 36) & (level > 0.3) & (level < 0.85)
    transverse = (np.abs(y - canal_y) < 3.5) & (np.abs(x) < 36) & (level > 0.42) & (level < 0.58) & (z < 160)
    bone = arch | ((spinous | transverse) & inside_body & (dcav[sl] < mus[sl]))
    cv.paint(sl, bone, Tissue.CANCELLOUS_BONE)
    cv.paint(sl, (rc < 8.5) & (dy > 0), Tissue.CSF)


def _ribs(p: Patient, cv, s, dcav, mus):
    sl = s.box((-170, -130, 20), (170, 130, 460), "wall")
    if sl is None:
        return
    x, y, z = s.coords(sl, "wall")
    d = dcav[sl]
    m = mus[sl]
    band = (d > 0.2 * m) & (d < 0.2 * m + 9)
    if not band.any():
        return
    w = np.arctan2(np.abs(x), -y) / np.float32(np.pi)  # 0 anterior midline .. 1 posterior midline
    zp = z + np.float32(70.0) * (1 - w) - np.float32(58.0)  # ribs descend anteriorly
    k = np.round(zp / 27)
    dist = np.abs(zp - 27 * k)
    wmin = np.where(k <= 1, 0.42, np.where(k <= 3, 0.25, 0.12))
    rib = band & (dist < 4.5) & (k >= 0) & (k <= 12) & (w > wmin) & (np.abs(x) > 14)
    cv.paint(sl, rib, Tissue.RIB)
    sternum = (d > -4) & (d < m) & (np.abs(x) < 16) & (y < 0) & (z > 200) & (z < 390)
    cv.paint(sl, sternum, Tissue.CANCELLOUS_BONE)


def _pelvis(cv, s, dcav):
    sl = s.box((-160, -60, -340), (160, 120, -120), "wall")
    if sl is None:
        return
    x, y, z = s.coords(sl, "wall")
    inside = dcav[sl] < 10
    for side in (-1, 1):
        wing = Ellipsoid((side * 78.0, 52, -190), (52, 26, 68), rotation(0, 0, side * 28))
        r2 = wing.r2(x, y, z)
        shell = (r2 < 1) & (r2 > 0.55) & (z < -150) & inside
        cv.paint(sl, shell, Tissue.CORTICAL_BONE)
        head = ((x - side * 88) ** 2 + (y - 8) ** 2 + (z + 285) ** 2) < 24**2
        cv.paint(sl, head, Tissue.CANCELLOUS_BONE)


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
