"""Acquisition geometry of the phantom's volumes and the per-case random streams.

Every image has identity direction (LPS), its own spacing and field of view, and an origin in
scanner coordinates: a patient lies somewhere on the table (``placement``), and between the
sequences of one LLD-MMR session the patient moves rigidly and breathes (organs shift along z by a
per-organ fraction of ``breath_mm``). ``world = R (body - c) + c + t + placement`` with ``R`` from
``rotation_deg_xyz`` (``Rz @ Ry @ Rx``), ``c`` = :data:`MOTION_CENTER_MM` (body frame), ``t`` =
``translation_mm``. Spacings are (z, y, x) mm, shapes (z, y, x) voxels, points and origins
(x, y, z) mm.

Determinism: every random draw comes from :func:`case_rng` ``(seed, subset, case, stream)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flarelib.data.phantom.patient import Patient
from flarelib.data.phantom.shapes import rotation
from flarelib.data.phantom.subsets import SUBSETS

__all__ = [
    "GROUP_SPACING",
    "MISALIGNED_DEG",
    "MISALIGNED_MM",
    "MOTION",
    "MOTION_CENTER_MM",
    "SEQUENCE_GROUP",
    "SERIAL",
    "body_extent",
    "case_rng",
    "count",
    "draw_motion",
    "grid",
    "mr_geometry",
    "world_from_body",
]

#: Acquisition groups: sequences of a group share one grid (one 3-D acquisition / one echo train).
SEQUENCE_GROUP: dict[str, str] = {
    "T1W": "dce",
    "EAP": "dce",
    "PVP": "dce",
    "DP": "dce",
    "IP": "dixon",
    "OP": "dixon",
    "T2W": "t2",
    "DWI": "dwi",
}
#: Spacing multipliers (z, y, x) of each group relative to ``phantom.mr_spacing_zyx``.
GROUP_SPACING: dict[str, tuple[float, float, float]] = {
    "dce": (1.0, 1.0, 1.0),
    "dixon": (1.5, 1.0, 1.0),
    "t2": (2.0, 1.0, 1.0),
    "dwi": (2.0, 1.75, 1.75),
}
#: Motion between the sequences of a session: (max translation mm, max rotation deg, max |breath| mm).
MOTION: dict[str, tuple[float, float, float]] = {
    "T1W": (1.5, 0.8, 2.0),
    "EAP": (2.5, 1.2, 5.0),
    "PVP": (2.5, 1.2, 5.0),
    "DP": (2.5, 1.2, 5.0),
    "IP": (3.5, 1.5, 6.0),
    "T2W": (7.0, 3.0, 10.0),
    "DWI": (7.0, 3.0, 10.0),
}
#: Badly misaligned sequences: translation 15-30 mm, rotation 5-10 degrees.
MISALIGNED_MM = (15.0, 30.0)
MISALIGNED_DEG = (5.0, 10.0)

MOTION_CENTER_MM = np.array([0.0, 0.0, 40.0])  # body frame, mm: the centre of the rigid motions
SERIAL = 10_000  # stream index of set-level draws (z-flips, misalignment, long CTs, sequence mixes)


def case_rng(seed: int, subset: str, case: int, stream: int) -> np.random.Generator:
    """The Generator of one stream of one case: ``default_rng([seed, subset index, case, stream])``."""
    return np.random.default_rng([int(seed), SUBSETS.index(subset), int(case), int(stream)])


def count(fraction: float, n: int, minimum: int = 0) -> int:
    """``fraction`` of ``n`` rounded half up; at least ``minimum`` when ``n`` and ``fraction`` are > 0."""
    k = int(np.floor(fraction * n + 0.5))
    return int(min(n, max(k, minimum if n > 0 and fraction > 0 else 0)))


def world_from_body(rot_deg, trans_mm, placement) -> np.ndarray:
    """The 4x4 map from the body frame to LPS world mm: rotation (degrees about x, y, z) about
    :data:`MOTION_CENTER_MM`, then translation and placement (x, y, z mm)."""
    m = np.eye(4)
    r = rotation(*rot_deg)
    m[:3, :3] = r
    m[:3, 3] = -r @ MOTION_CENTER_MM + MOTION_CENTER_MM + np.asarray(trans_mm) + np.asarray(placement)
    return m


def grid(lo_xyz, hi_xyz, spacing_zyx) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (z, y, x) and origin (x, y, z) of the grid covering the world box [lo, hi]."""
    sp_xyz = np.asarray(spacing_zyx[::-1], dtype=np.float64)
    lo, hi = np.asarray(lo_xyz, float), np.asarray(hi_xyz, float)
    n = np.maximum(np.ceil((hi - lo) / sp_xyz).astype(int) + 1, 1)
    origin = np.round((lo + hi) / 2 - (n - 1) * sp_xyz / 2, 2).astype(np.float32)  # NIfTI stores float32
    return (int(n[2]), int(n[1]), int(n[0])), tuple(float(v) for v in origin)


def body_extent(p: Patient) -> dict[str, float]:
    """Approximate body half-extents (body frame, mm)."""
    sx, sy, _ = p.body_scale
    fat, mus = p.fat_mm, p.muscle_mm
    return {
        "hx": (140 * 1.04 + 1.25 * mus + 1.6 * fat + 3) * sx,
        "hy_ant": (90 * 1.04 + 0.7 * mus + fat + 3) * sy,
        "hy_post": (p.table_y + 10) * sy,
    }


def _mr_z_range(p: Patient, rng: np.random.Generator) -> tuple[float, float]:
    """MR abdomen field of view along z (body frame): lung bases above the liver dome down to below the
    lower kidney pole."""
    sz = p.body_scale[2]
    top = p.dome_r * sz + rng.uniform(24, 40)
    lower_pole = min(k.center[2] - 0.95 * k.semi[2] for k in p.kidneys) * sz
    return lower_pole - rng.uniform(12, 26), top


def _spacing(base_zyx, group: str, scale: float) -> tuple[float, float, float]:
    """Spacing (z, y, x mm) of an acquisition group, rounded and stored as NIfTI float32."""
    mult = GROUP_SPACING[group]
    out = (base_zyx[0] * mult[0], base_zyx[1] * mult[1] / scale, base_zyx[2] * mult[2] / scale)
    return tuple(float(np.float32(round(v, 4))) for v in out)


def draw_motion(rng: np.random.Generator, seq: str, misaligned: bool) -> dict[str, Any]:
    """Rigid motion and breathing of one sequence (:data:`MOTION`; badly misaligned: 15-30 mm, 5-10 deg)."""
    if misaligned:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        trans = direction * rng.uniform(*MISALIGNED_MM)
        axis = int(rng.integers(3))
        rot = rng.uniform(-1.5, 1.5, 3)
        rot[axis] = rng.choice([-1, 1]) * rng.uniform(*MISALIGNED_DEG)
        breath = rng.uniform(-8, 8)
    else:
        t_max, r_max, b_max = MOTION[seq]
        trans = rng.uniform(-t_max, t_max, 3)
        rot = rng.uniform(-r_max, r_max, 3)
        lo = 0.3 * b_max if seq in ("T2W", "DWI") else 0.0
        breath = rng.choice([-1, 1]) * rng.uniform(lo, b_max)
    return {
        "rotation_deg_xyz": [round(float(v), 4) for v in rot],
        "translation_mm": [round(float(v), 4) for v in trans],
        "center_mm": MOTION_CENTER_MM.tolist(),
        "breath_mm": round(float(breath), 4),
        "misaligned": bool(misaligned),
    }


def mr_geometry(
    p: Patient,
    rng: np.random.Generator,
    base_spacing,
    scale: float,
    group: str,
    z_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """MR field of view of one acquisition group: the body-frame box ``(lo, hi)`` (x, y, z mm) and the
    spacing (z, y, x mm) of ``base_spacing`` (z, y, x mm) times the group's multipliers, in-plane / ``scale``.
    ``z_range`` (mm) overrides the abdomen range drawn from the patient."""
    ext = body_extent(p)
    z_lo, z_hi = z_range if z_range is not None else _mr_z_range(p, rng)
    spacing = _spacing(base_spacing, group, scale)
    lo = np.array([-(ext["hx"] + rng.uniform(6, 18)), -(ext["hy_ant"] + rng.uniform(6, 16)), z_lo])
    hi = np.array([ext["hx"] + rng.uniform(6, 18), ext["hy_post"] + rng.uniform(6, 16), z_hi])
    return lo, hi, spacing
