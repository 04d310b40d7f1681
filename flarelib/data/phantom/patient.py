"""The patient: :class:`Patient` (every shape parameter of one phantom patient) and :func:`make_patient`.

A patient lives in its *anatomical frame* (x, y, z mm, LPS; see :mod:`.anatomy`). The nominal anatomy
and the ranges of every draw are data in :mod:`.priors`; :func:`make_patient` draws one patient
from them: body size and fat thickness, per-organ size, position and orientation, kidney heights
(right lower than left), liver fat fraction, stomach gas and filling, bowel loop layout, and a
smooth low-frequency displacement field. Every random draw comes from the Generator passed in, in
a fixed order (the same Generator state gives the same patient).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from flarelib.data.phantom.priors import CENTRELINES, PRIORS
from flarelib.data.phantom.shapes import Ellipsoid, Tube, rotation

__all__ = ["Patient", "make_patient"]


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


def _uniforms(rng: np.random.Generator, ranges: Sequence[tuple[float, float]]) -> list[float]:
    """One uniform draw per ``(lo, hi)`` range, in order."""
    return [_u(rng, lo, hi) for lo, hi in ranges]


def _angles(rng: np.random.Generator, ranges: Sequence[tuple[float, float] | None]) -> list[float]:
    """Rotation angles (degrees) about x, y, z: a uniform draw per range, 0 (no draw) for ``None``."""
    return [0 if r is None else _u(rng, *r) for r in ranges]


def _xyz(v: np.ndarray) -> tuple[float, ...]:
    return tuple(v.tolist())


def _tube(name: str, shift: np.ndarray | None = None) -> Tube:
    """The tube of :data:`.priors.CENTRELINES` ``name``, its points shifted by ``shift`` (mm)."""
    points, radii = CENTRELINES[name]
    return Tube.through(points if shift is None else np.array(points) + shift, radii)


def make_patient(rng: np.random.Generator) -> Patient:
    """Draw one patient from :mod:`.priors`: sizes, positions, orientations, gas, bowel layout and
    deformation (anatomical frame, mm)."""
    j = _jit
    body = PRIORS["body"]
    sx, sy, sz = _uniforms(rng, body["scale"])

    # liver: right lobe + left lobe + right inferior tip (one scale and one shift), clipped by the
    # diaphragm, the body wall and an inferior plane
    lv = PRIORS["liver"]
    ls = np.array(_uniforms(rng, lv["scale"]))
    lsh = j(rng, *lv["jitter_mm"])
    o = PRIORS["liver_right"]
    liver_r = Ellipsoid(
        _xyz(np.array(o["center_mm"]) + lsh),
        _xyz(np.array(o["semi_mm"]) * ls),
        rotation(*_angles(rng, o["rot_deg"])),
        taper=np.array(o["taper"]),
    )
    o = PRIORS["liver_left"]
    liver_l = Ellipsoid(
        _xyz(np.array(o["center_mm"]) + lsh + j(rng, *o["jitter_mm"])),
        _xyz(np.array(o["semi_mm"]) * ls * np.array([_u(rng, *o["scale_x"]), 1, 1])),
        rotation(*_angles(rng, o["rot_deg"])),
        taper=np.array(o["taper"]),
    )
    o = PRIORS["liver_tip"]
    liver_tip = Ellipsoid(
        _xyz(np.array(o["center_mm"]) + lsh + j(rng, *o["jitter_mm"])),
        _xyz(np.array(o["semi_mm"]) * ls * _u(rng, *o["scale"])),
        rotation(*_angles(rng, o["rot_deg"])),
    )
    liver_inf = (_u(rng, *lv["inferior_z_mm"]), _u(rng, *lv["inferior_slope"]))

    o = PRIORS["spleen"]
    sp = np.array(_uniforms(rng, o["scale"]))
    spc = np.array(o["center_mm"]) + j(rng, *o["jitter_mm"])
    sp_rot = rotation(*_angles(rng, o["rot_deg"]))
    spleen = Ellipsoid(_xyz(spc), _xyz(np.array(o["semi_mm"]) * sp), sp_rot)
    o = PRIORS["spleen_hilum"]
    hil_dir = sp_rot @ np.array([-1.0, 0, 0])
    spleen_hilum = Ellipsoid(
        _xyz(spc + hil_dir * o["depth_mm"] * sp[0] + np.array(o["offset_mm"])),
        _xyz(np.array(o["semi_mm"]) * sp),
        sp_rot,
    )

    o = PRIORS["kidney"]
    kidneys = []
    drop_r = _u(rng, *o["drop_right_mm"])
    z_left = _u(rng, *o["left_z_mm"])
    for side, z0 in ((-1, z_left - drop_r), (1, z_left)):
        ks = np.array(_uniforms(rng, o["scale"]))
        c = np.array([side * _u(rng, *o["lateral_mm"]), _u(rng, *o["y_mm"]), z0])
        rx, ry, rz = _angles(rng, o["rot_deg"])
        rot = rotation(rx, side * -ry, side * rz)
        kidneys.append(Ellipsoid(_xyz(c), _xyz(np.array(o["semi_mm"]) * ks), rot))
    kr, kl = kidneys

    o = PRIORS["adrenal"]
    adrenals = []
    for side in (-1, 1):
        kid = kr if side < 0 else kl
        top = np.asarray(kid.center)[2] + kid.semi[2] * _u(rng, *o["top_fraction"])
        c = (
            np.array(o["base_mm"][side])
            + np.array([0, 0, top + _u(rng, *o["gap_mm"])])
            + j(rng, *o["jitter_mm"]) * np.array(o["jitter_weight"])
        )
        a = np.array(o["semi_mm"]) * np.array(_uniforms(rng, o["scale"]))
        rx, _, rz = _angles(rng, o["rot_deg"])
        adrenals.append(
            Ellipsoid(
                _xyz(c),
                _xyz(a),
                rotation(rx, 0, side * rz),
                bend=np.array([[0, 0.35 * side, 0.2], [0, 0, 0], [0, 0, 0]]),
            )
        )

    o = PRIORS["gallbladder"]
    gb_axis = np.array(o["axis"]) + rng.normal(0, o["axis_sd"], 3)
    gb_axis /= np.linalg.norm(gb_axis)
    # rotation whose 3rd column is gb_axis
    t = np.cross(gb_axis, [1.0, 0, 0])
    t /= np.linalg.norm(t)
    gb_rot = np.column_stack([np.cross(t, gb_axis), t, gb_axis])
    gs = _u(rng, *o["scale"])
    a0, a1, a2 = o["semi_mm"]
    gallbladder = Ellipsoid(
        _xyz(np.array(o["center_mm"]) + j(rng, *o["jitter_mm"])),
        (a0 * gs * _u(rng, *o["width_scale"]), a1 * gs * _u(rng, *o["width_scale"]), a2 * gs),
        gb_rot,
        taper=np.array(o["taper"]),
    )

    d = j(rng, *PRIORS["pancreas_complex"]["jitter_mm"])  # shared shift of pancreas, duodenum, portal
    pscale = _u(rng, *PRIORS["pancreas"]["radius_scale"])
    points, radii = CENTRELINES["pancreas"]
    pancreas = Tube.through(np.array(points) + d, np.array(radii) * pscale)
    duodenum = _tube("duodenum", d)
    o = PRIORS["stomach"]
    w_free = np.array(o["free"])[:, None]
    points, radii = CENTRELINES["stomach"]
    sd, lim = o["point_jitter_mm"]
    stomach = Tube.through(
        np.array(points)
        + np.clip(rng.normal(0, sd, (len(points), 3)), -lim, lim) * w_free
        + d * (1 - w_free),
        np.array(radii) * np.array([_u(rng, *o["radius_scale"])] * 4 + [1, 1]),
    )
    esophagus = _tube("esophagus")
    aorta = _tube("aorta")
    ivc = _tube("ivc")
    portal = tuple(
        _tube(name, d)
        for name in ("portal_vein", "left_portal_vein", "superior_mesenteric_vein", "splenic_vein")
    )
    hepatic_veins = tuple(_tube(f"{name}_hepatic_vein") for name in ("right", "middle", "left"))
    # the renal vessels run from the aorta / IVC to the hilum of the drawn kidney
    arteries = (
        _tube("superior_mesenteric_artery"),
        _tube("celiac_hepatic_artery"),
        _tube("splenic_artery"),
        Tube.through([[14, 4, -6], np.asarray(kl.center) - np.array([22, 10, 0])], [3.2, 3]),  # left renal
        Tube.through(
            [[14, 6, -6], [-20, 16, -10], np.asarray(kr.center) + np.array([22, -10, 0])], [3.2, 3.2, 3]
        ),  # right renal
        _tube("left_iliac_artery"),
        _tube("right_iliac_artery"),
    )
    veins = (
        Tube.through(
            [np.asarray(kl.center) - np.array([22, 12, 2]), [14, -15, -4], [-22, 2, -6]], [4.5, 4.5, 5]
        ),  # left renal
        Tube.through(
            [np.asarray(kr.center) + np.array([22, -12, 2]), [-24, 6, -14]], [5, 5.5]
        ),  # right renal
        _tube("left_iliac_vein"),
        _tube("right_iliac_vein"),
    )
    points, radii = CENTRELINES["colon"]
    colon = Tube.through(
        np.array(points) + rng.normal(0, PRIORS["colon"]["point_sd_mm"], (len(points), 3)), radii
    )
    o = PRIORS["bowel"]
    loops, content = [], []
    n_loops = int(rng.integers(*o["loops"]))
    for i in range(n_loops):
        if i < o["jejunum_loops"]:
            pts = _bowel_loop(rng, *o["jejunum_box_mm"], *o["jejunum_walk"])
        else:
            pts = _bowel_loop(rng, *o["ileum_box_mm"], *o["ileum_walk"])
        loops.append(Tube.through(pts, _u(rng, *o["radius_mm"]), step_mm=8))
        content.append(int(rng.choice(o["content"])))
    dome_r, dome_l = _u(rng, *body["dome_right_z_mm"]), _u(rng, *body["dome_left_z_mm"])
    o = PRIORS["heart"]
    cx, cy = o["center_xy_mm"]
    a0, a1, a2 = o["semi_mm"]
    heart = Ellipsoid(
        _xyz(np.array([cx, cy, 0.5 * (dome_r + dome_l) + o["above_domes_mm"]]) + j(rng, *o["jitter_mm"])),
        (a0 * _u(rng, *o["scale_x"]), a1, a2),
        rotation(*_angles(rng, o["rot_deg"])),
    )
    o = PRIORS["bladder"]
    a0, a1, a2 = o["semi_mm"]
    bladder = Ellipsoid(o["center_mm"], (a0 * _u(rng, *o["scale_xz"]), a1, a2 * _u(rng, *o["scale_xz"])))

    o = PRIORS["deformation"]
    modes = []
    for _ in range(o["modes"]):
        k = rng.normal(size=3)
        k *= 2 * np.pi / _u(rng, *o["wavelength_mm"]) / np.linalg.norm(k)
        amp = rng.normal(size=3)
        amp *= _u(rng, *o["amplitude_mm"]) / np.linalg.norm(amp)
        modes.append((*k.tolist(), _u(rng, 0, 2 * np.pi), *amp.tolist()))

    fat_mm, muscle_mm = _u(rng, *body["fat_mm"]), _u(rng, *body["muscle_mm"])
    gas = PRIORS["gas"]
    return Patient(
        body_scale=(sx, sy, sz),
        fat_mm=fat_mm,
        muscle_mm=muscle_mm,
        body_shape=tuple(float(v) for v in rng.uniform(-1, 1, 4) * np.array(body["outline"])),
        wall_shape=tuple(float(v) for v in rng.uniform(-1, 1, 4) * np.array(body["wall"])),
        table_y=75 + 0.7 * muscle_mm + 0.8 * fat_mm + 2.5 - _u(rng, *body["table_sink_mm"]),
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
        stomach_gas=_u(rng, *gas["stomach"]),
        colon_gas=_u(rng, *gas["colon"]),
        liver_fat_fraction=float(rng.choice(_uniforms(rng, PRIORS["liver_fat_fraction"]))),
        deformation=tuple(modes),
    )
