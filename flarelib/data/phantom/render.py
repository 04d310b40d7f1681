"""Phantom rendering: tissue maps -> CT in HU and the 8 MR sequence contrasts.

Each tissue (:class:`~.shapes.Tissue`) has a CT value (unenhanced HU + portal-venous enhancement)
and one signal per MR sequence (arbitrary units, before the per-volume gain). The renderer adds, in
this order: parenchymal texture (smooth noise), lung vessels and mottled stool, partial-volume blur
(Gaussian point-spread function, ~0.45 voxel per axis), for MR a smooth multiplicative bias field,
a random gain, and noise (CT: correlated Gaussian, 10-20 HU; MR: Rician).

Sequence contrasts (STUDY.md names; LLD-MMR tags in :data:`flarelib.labels.SEQUENCES`):

* ``T1W`` (C-pre, T1 gradient echo without fat suppression): fat bright, fluid dark, pancreas bright.
* ``EAP`` / ``PVP`` / ``DP`` (fat-suppressed T1 after contrast): the aorta is brightest in the early
  arterial phase; the portal vein and IVC peak in the portal-venous phase; kidneys go cortex-only
  (EAP) -> nephrographic (PVP) -> excreting into the pelvis (DP); arciform spleen in EAP.
* ``T2W`` (T2 fast spin echo): fluid bright (gallbladder, CSF, bowel fluid, urine), spleen
  moderately bright, liver dark, flowing blood black.
* ``DWI`` (b ~ 800): spleen and kidneys bright, liver darker, fat and fluid suppressed; coarse grid,
  low SNR.
* ``IP`` / ``OP`` (Dixon dual echo): water and fat signals are blurred separately (partial volume)
  and combined as ``W + F`` (in phase) and ``|W - F|`` (opposed phase), so voxels where fat and water
  mix go dark in OP (the India-ink artefact); fatty liver and marrow drop in OP too.

Arrays are (z, y, x); spacings (z, y, x) mm. All randomness comes from the Generator passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from flarelib.data.phantom.shapes import Tissue

__all__ = ["MR_SEQUENCES", "MR_SNR", "TISSUE_TABLE", "bias_field", "render_ct", "render_mr"]

#: The 8 MR sequences (short names, :data:`flarelib.labels.SEQUENCES` order).
MR_SEQUENCES: tuple[str, ...] = ("T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "OP")

# Columns: CT unenhanced HU, CT portal-venous enhancement HU, T1W, EAP, PVP, DP, T2W, DWI, IP total
# signal, fat fraction (Dixon), CT texture (HU sd), MR texture (relative sd).
_TABLE = """
AIR              -1000    0     0     0     0     0     0    0     0   0.00   0  0.00
SKIN                25    5   380   330   340   340   300   70   380   0.00   4  0.03
SUBCUT_FAT        -105    0   900   210   220   220   460   35   900   0.92   6  0.03
MUSCLE              48   10   300   290   340   330   140   75   300   0.02   5  0.04
VISCERAL_FAT       -95    0   880   200   210   210   440   35   880   0.90   8  0.04
CORTICAL_BONE      950    0    45    45    45    45    45   12    45   0.00  40  0.05
CANCELLOUS_BONE    420    0   560   260   300   300   300   60   560   0.45  40  0.06
DISC                85    0   250   240   270   290   520   90   250   0.00   5  0.04
CSF                  8    0   110   110   110   110  1000   90   110   0.00   3  0.02
LUNG              -860    0    25    25    25    25    30    8    25   0.00  15  0.05
HEART_BLOOD         40  120   200  1300   700   460    60   25   250   0.00   6  0.03
MYOCARDIUM          45   60   330   620   560   460   180   80   330   0.00   6  0.03
LIVER               58   52   480   520   760   620   210  180   480   0.00   5  0.035
SPLEEN              48   70   360   780   720   560   560  520   360   0.00   5  0.035
KIDNEY_CORTEX       35  150   400  1150   880   700   440  470   420   0.00   6  0.03
KIDNEY_MEDULLA      32  105   300   420   860   790   600  430   320   0.00   6  0.03
RENAL_PELVIS        10    8   110   110   110   900   950  150   110   0.00   3  0.03
PANCREAS            42   58   560   850   650   520   320  300   560   0.04   9  0.08
AORTA               45  125   180  1600   900   550    50   25   250   0.00   6  0.03
IVC                 40   95   170   350   880   600    60   30   230   0.00   6  0.03
PORTAL_VEIN         45  130   170   560  1000   620    60   30   230   0.00   6  0.03
HEPATIC_VEIN        42  110   170   300   950   620    60   30   230   0.00   6  0.03
ARTERY              45  115   180  1400   850   550    50   25   250   0.00   6  0.03
VEIN                40   90   170   330   850   600    60   30   230   0.00   6  0.03
ADRENAL             30   30   380   750   600   480   350  330   380   0.10   5  0.04
GALLBLADDER          8    0   120   110   110   110  1100  180   120   0.00   3  0.02
ESOPHAGUS           40   22   330   600   550   450   250  250   330   0.00   5  0.04
STOMACH_WALL        40   42   350   650   600   500   300  330   350   0.00   5  0.04
STOMACH_FLUID       12    0   100   100   100   100   950   70   100   0.00   3  0.03
GAS              -1000    0    10    10    10    10    10    5    10   0.00   8  0.05
BOWEL_WALL          40   45   340   650   600   500   300  380   340   0.00   6  0.05
BOWEL_FLUID         10    0   120   120   120   120   900   90   120   0.00   4  0.04
COLON_CONTENT      -60    0   380   330   330   330   330  120   380   0.15  90  0.35
BLADDER              8    0   110   110   110   500  1000   60   110   0.00   3  0.02
RIB                650    0   300   150   170   170   150   40   300   0.30  60  0.06
COUCH              100    0     0     0     0     0     0    0     0   0.00   5  0.00
"""


def _parse_table() -> dict[str, np.ndarray]:
    rows = [line.split() for line in _TABLE.strip().splitlines()]
    names = [r[0] for r in rows]
    if names != [t.name for t in Tissue]:
        raise RuntimeError("render table rows must follow the Tissue enum order")
    vals = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32)
    cols = ["CT", "CT_ENH", "T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "FF", "TEX_CT", "TEX_MR"]
    return {c: vals[:, i].copy() for i, c in enumerate(cols)}


#: Per-tissue property vectors indexed by tissue id: ``TISSUE_TABLE["T2W"][Tissue.LIVER]``.
TISSUE_TABLE: dict[str, np.ndarray] = _parse_table()

#: Noise: MR signal-to-noise ratio of the liver per sequence; DWI is the noisy one.
MR_SNR: dict[str, float] = {
    "T1W": 28,
    "EAP": 24,
    "PVP": 26,
    "DP": 26,
    "T2W": 20,
    "DWI": 7,
    "IP": 28,
    "OP": 28,
}


def _smooth_noise(shape, spacing_zyx, sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation (float32)."""
    sigma = [sigma_mm / s if sigma_mm / s >= 0.35 else 0.0 for s in spacing_zyx]  # finer: white
    n = rng.standard_normal(shape, dtype=np.float32)
    if any(sigma):
        n = ndimage.gaussian_filter(n, sigma, mode="reflect", truncate=3.0)
    sd = float(n.std())
    return n / (sd if sd > 0 else 1.0)


def _blur(img: np.ndarray, sigma_vox) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma_vox, mode="nearest", truncate=2.5)


def bias_field(shape, rng: np.random.Generator, amplitude: float = 0.25) -> np.ndarray:
    """Smooth multiplicative field exp(low-order polynomial), mean about 1 (float32, (z, y, x))."""
    nz, ny, nx = shape
    z = np.linspace(-1, 1, nz, dtype=np.float32)[:, None, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, None, :]
    c = rng.normal(0, 1, 9) * amplitude * np.array([0.6, 0.6, 0.4, 0.35, 0.35, 0.25, 0.3, 0.2, 0.2])
    c = c.astype(np.float32)
    log = (c[0] * x + c[1] * y) + c[2] * z  # broadcast (z, y, x)
    log = log + (c[3] * x * x + c[4] * y * y) + c[5] * z * z + c[6] * x * y + c[7] * y * z + c[8] * x * z
    return np.exp(log - float(np.mean(log)), dtype=np.float32)


def _textures(tissue: np.ndarray, spacing_zyx, rng: np.random.Generator):
    """(smooth parenchymal texture, fine texture) unit-sd noise fields."""
    smooth = _smooth_noise(tissue.shape, spacing_zyx, 5.0, rng)
    fine = _smooth_noise(tissue.shape, spacing_zyx, 1.2, rng)
    return smooth, fine


def render_ct(
    tissue: np.ndarray,
    spacing_zyx,
    rng: np.random.Generator,
    *,
    enhancement: float = 1.0,
    noise_hu: float = 15.0,
) -> np.ndarray:
    """A portal-venous CT (HU, float32) of a tissue map.

    ``enhancement`` scales every tissue's contrast enhancement (liver ~60 HU unenhanced, ~110 HU at
    1.0); ``noise_hu`` is the standard deviation of the (spatially correlated) noise.
    """
    base = TISSUE_TABLE["CT"] + np.float32(enhancement) * TISSUE_TABLE["CT_ENH"]
    base = base * (1 + np.clip(rng.normal(0, 0.03, base.shape), -0.06, 0.06)).astype(np.float32)
    base[Tissue.AIR], base[Tissue.GAS] = -1000.0, -1000.0
    smooth, fine = _textures(tissue, spacing_zyx, rng)
    img = base[tissue]
    img += TISSUE_TABLE["TEX_CT"][tissue] * smooth
    lung = tissue == Tissue.LUNG
    img[lung & (fine > 1.9)] = -150.0  # pulmonary vessels
    stool = tissue == Tissue.COLON_CONTENT
    img[stool] += 120 * fine[stool]
    img[stool & (fine > 1.1)] = -850.0  # gas bubbles in stool
    img = _blur(img, [0.5, 0.5, 0.5])  # partial-volume PSF, voxels
    noise = ndimage.gaussian_filter(rng.standard_normal(tissue.shape, dtype=np.float32), 0.6)
    noise *= np.float32(noise_hu / max(float(noise.std()), 1e-6))
    img += noise
    return np.clip(img, -1024, 3071)


def render_mr(
    tissue: np.ndarray,
    sequence: str,
    spacing_zyx,
    rng: np.random.Generator,
    *,
    liver_fat_fraction: float = 0.03,
    gain: float = 1.0,
    bias_amplitude: float = 0.25,
    snr_scale: float = 1.0,
    partner: dict | None = None,
) -> np.ndarray:
    """One MR sequence (float32, >= 0) of a tissue map: contrast, texture, PSF, bias, Rician noise.

    For ``IP`` and ``OP`` the water and fat signals are blurred separately and combined (``W + F``,
    ``|W - F|``). Pass the same dict as ``partner`` to volumes of one series on one grid (IP and OP
    of a dual echo; the phases of a dynamic series): later calls reuse the first one's texture, bias
    field and contrast jitter, each with its own noise.
    """
    if sequence not in MR_SEQUENCES:
        raise ValueError(f"unknown MR sequence {sequence!r}; use one of {MR_SEQUENCES}")
    shared = partner if partner is not None else {}
    if "smooth" not in shared:
        shared["smooth"], shared["fine"] = _textures(tissue, spacing_zyx, rng)
        shared["bias"] = bias_field(tissue.shape, rng, bias_amplitude)
        shared["jitter"] = (1 + np.clip(rng.normal(0, 0.05, len(Tissue)), -0.1, 0.1)).astype(np.float32)
    smooth, fine, jitter = shared["smooth"], shared["fine"], shared["jitter"]
    column = "IP" if sequence in ("IP", "OP") else sequence
    lut = TISSUE_TABLE[column] * jitter
    tex = TISSUE_TABLE["TEX_MR"].copy()
    if sequence == "EAP":
        tex[Tissue.SPLEEN] = 0.22  # arciform enhancement
    modulation = 1 + tex[tissue] * smooth
    stool = tissue == Tissue.COLON_CONTENT
    modulation[stool] = np.clip(1 + 0.3 * smooth[stool] + 0.25 * fine[stool], 0.05, None)
    lung = tissue == Tissue.LUNG
    psf = [0.6 if sequence == "DWI" else 0.45] * 3  # partial-volume PSF sigma, voxels
    if sequence in ("IP", "OP"):
        ff = TISSUE_TABLE["FF"].copy()
        ff[Tissue.LIVER] = liver_fat_fraction
        total = lut[tissue] * modulation
        fat = total * ff[tissue]
        water = total - fat
        water = _blur(water, psf)
        fat = _blur(fat, psf)
        img = water + fat if sequence == "IP" else np.abs(water - fat)
    else:
        img = lut[tissue] * modulation
        img[lung & (fine > 1.9)] *= 3.0
        img = _blur(img, psf)
    img *= shared["bias"]
    ref = float(lut[Tissue.LIVER])
    sigma = np.float32(ref / (MR_SNR[sequence] * snr_scale))
    n1 = rng.standard_normal(img.shape, dtype=np.float32)
    n2 = rng.standard_normal(img.shape, dtype=np.float32)
    n1 *= sigma
    n2 *= sigma
    img += n1
    np.square(img, out=img)
    np.square(n2, out=n2)
    img += n2
    np.sqrt(img, out=img)
    img *= np.float32(gain)
    return img
