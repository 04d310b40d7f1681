"""The painter: tissue and label maps of one patient on one output grid (:func:`evaluate`).

Structures are painted by priority onto a canvas of two uint8 maps of array shape (z, y, x): later
structures overwrite earlier ones. The body wall comes from z profiles of the cavity and the spine
(half-axes in mm along z of the anatomical frame, see :mod:`.anatomy`), then the chest, pelvis,
bowel, muscles and skeleton, then the 13 organs (label ids by name from :data:`flarelib.labels.ORGANS`)
and the vessels. Each structure is evaluated only inside its box of the :class:`.sampler.Sampler`.
"""

from __future__ import annotations

import numpy as np

from flarelib.data.phantom.patient import Patient
from flarelib.data.phantom.sampler import BREATH_FACTORS, Sampler, tube_field
from flarelib.data.phantom.shapes import Ellipsoid, Tissue, Tube, rotation
from flarelib.labels import ORGAN_BY_NAME

__all__ = ["evaluate"]

#: FLARE label id of an organ by its name (``LABEL["liver"] == 1``).
LABEL = ORGAN_BY_NAME
BACKGROUND = 0
#: Labels the renal veins run through without taking (tissue changes only).
KIDNEYS = (LABEL["right kidney"], LABEL["left kidney"])
#: Labels the visceral arteries (SMA, celiac, splenic, renal) run through without taking.
ARTERY_KEEPS = (LABEL["liver"], LABEL["right kidney"], LABEL["left kidney"], LABEL["spleen"])


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
        cv.paint(sl, m, T.SPLEEN, LABEL["spleen"])
    # the gallbladder yields to the stomach and duodenum where they touch (keeps the GI tract whole)
    sl = _ellipsoid_box(s, p.gallbladder, "upper")
    if sl is not None:
        x, y, z = s.coords(sl, "upper")
        m = (p.gallbladder.r2(x, y, z) < 1) & below(sl, "upper")
        cv.paint(sl, m, T.GALLBLADDER, LABEL["gallbladder"])
    _hollow(
        cv,
        s,
        p.stomach,
        "upper",
        T.STOMACH_WALL,
        T.STOMACH_FLUID,
        p.stomach_gas,
        cavity,
        label=LABEL["stomach"],
        wall=4.0,
        below=below,
    )
    for kid, lab, side in (
        (p.kidneys[0], LABEL["right kidney"], -1),
        (p.kidneys[1], LABEL["left kidney"], 1),
    ):
        _kidney(cv, s, kid, lab, side, below)
    _solid(cv, s, p.pancreas, "mid", T.PANCREAS, LABEL["pancreas"], cavity)
    _hollow(
        cv, s, p.duodenum, "mid", T.BOWEL_WALL, T.BOWEL_FLUID, 0.75, cavity, label=LABEL["duodenum"], wall=3.0
    )
    for adr, lab in zip(p.adrenals, (LABEL["right adrenal gland"], LABEL["left adrenal gland"]), strict=True):
        sl = _ellipsoid_box(s, adr, "upper")
        if sl is not None:
            x, y, z = s.coords(sl, "upper")
            cv.paint(sl, (adr.r2(x, y, z) < 1) & below(sl, "upper"), T.ADRENAL, lab)
    _solid(cv, s, p.esophagus, "fixed_vessel", T.ESOPHAGUS, LABEL["esophagus"], None)

    # --- vessels: veins of the portal system (unlabelled outside the liver), IVC, aorta, branches ---------
    for tube in p.hepatic_veins:
        _solid(cv, s, tube, "upper", T.HEPATIC_VEIN, None, None, only_label=LABEL["liver"])
    for tube in p.portal:
        _solid(cv, s, tube, "upper", T.PORTAL_VEIN, BACKGROUND, None, keep_label=LABEL["liver"])
    for tube in p.veins[:2]:
        _solid(cv, s, tube, "kidney", T.VEIN, BACKGROUND, None, keep_label=KIDNEYS)
    for tube in p.veins[2:]:
        _solid(cv, s, tube, "wall", T.VEIN, BACKGROUND, None)
    _solid(cv, s, p.ivc, "mid", T.IVC, LABEL["inferior vena cava"], None)
    for tube in p.arteries[:5]:
        _solid(cv, s, tube, "fixed_vessel", T.ARTERY, BACKGROUND, None, keep_label=ARTERY_KEEPS)
    for tube in p.arteries[5:]:
        _solid(cv, s, tube, "wall", T.ARTERY, BACKGROUND, None)
    _solid(cv, s, p.aorta, "fixed_vessel", T.AORTA, LABEL["aorta"], None)
    _keep_largest_components(cv)
    return cv.tissue, cv.label


def _keep_largest_components(cv: _Canvas) -> int:
    """Each organ keeps its largest 26-connected component; stray fragments (a few voxels where
    another structure cut a thin rim) become visceral fat. Returns the number of voxels changed."""
    import cc3d

    comp = cc3d.connected_components(cv.label, connectivity=26)
    n = int(comp.max())
    if n <= len(LABEL):
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
    d = tube_field(s, tube, sl, group)
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
    d, (_, cy, _, cr) = tube_field(s, tube, sl, group, want_center=True)
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
    cv.paint(sl, m, Tissue.LIVER, LABEL["liver"])


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
