"""Preprocessing: resampling, CT window, MR scaling, z-score, Otsu body mask, z-flip fix.

Conventions (see :mod:`flarelib.io`): arrays are ``(z, y, x)``; spacings are mm in the order their
name says (``spacing_zyx``); world coordinates are LPS mm. Every function takes and returns a
:class:`~flarelib.io.Volume` unless its docstring says otherwise, and never modifies its input.

Resampling keeps origin and direction (the authors' code zeroes them, which loses the scanner-space
alignment between the sequences of one patient; STUDY.md "Preprocessing").

The z-flip fix (STUDY.md "Preprocessing"): some LLD-MMR volumes are stored upside-down relative to
their header. :func:`detect_zflip` decides it from the anatomy (lung bases make the superior end of
an abdominal scan "holier"); :func:`flip_z` repairs it by reversing the voxel data along z while
keeping the header; :func:`fix_zflip` applies one decision to all sequences of a patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from flarelib.errors import FlareInputError
from flarelib.io import Volume

__all__ = [
    "EndStats",
    "ZFlipDecision",
    "body_mask",
    "ct_window",
    "detect_zflip",
    "fix_zflip",
    "flip_z",
    "mr_scale",
    "resample",
    "resample_to_reference",
    "zscore",
]


# --------------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------------
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
) -> Volume:
    """Resample ``vol`` onto ``reference``'s grid (shape, spacing, origin, direction) by world position.

    No transform is applied: voxel ``[z, y, x]`` of the result holds ``vol``'s value at the world
    point of ``reference``'s voxel ``[z, y, x]``. B-spline (float32) for images, nearest neighbour
    (uint8) for labels; points outside ``vol`` get ``default_value`` (0 for labels, the image
    minimum for images).
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
    )
    return Volume.from_sitk(out, vol.path)


# --------------------------------------------------------------------------------------------------
# Intensities
# --------------------------------------------------------------------------------------------------
def _unwrap(x: Volume | np.ndarray) -> np.ndarray:
    return x.array if isinstance(x, Volume) else np.asarray(x)


def _rewrap(x: Volume | np.ndarray, arr: np.ndarray) -> Volume | np.ndarray:
    return x.with_array(arr) if isinstance(x, Volume) else arr


def ct_window(
    array_or_vol: Volume | np.ndarray, level: float = 40.0, width: float = 400.0
) -> Volume | np.ndarray:
    """CT window (HU) scaled to 0..255 float32: ``(clip(x, L - W/2, L + W/2) - (L - W/2)) / W * 255``.

    The default level 40 / width 400 maps -160 HU to 0, 240 HU to 255 and 40 HU to 127.5. Returns the
    same kind it was given (Volume or array).
    """
    if width <= 0:
        raise ValueError(f"ct_window: width must be positive, got {width}")
    arr = _unwrap(array_or_vol).astype(np.float32, copy=False)
    lo = float(level) - float(width) / 2.0
    out = (np.clip(arr, lo, lo + float(width)) - lo) * np.float32(255.0 / float(width))
    return _rewrap(array_or_vol, out.astype(np.float32, copy=False))


def _minmax_255(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64, copy=False)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    return ((arr - lo) * (255.0 / (hi - lo))).astype(np.float32)


def mr_scale(
    vol: Volume | np.ndarray,
    method: Literal["minmax", "zscore_minmax", "percentile"] = "zscore_minmax",
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> Volume | np.ndarray:
    """Scale an MR volume to 0..255 float32 (the CycleGAN's input range).

    * ``"minmax"``: ``(x - min) / (max - min) * 255``.
    * ``"zscore_minmax"``: the authors' recipe, z-score then min-max. A min-max after any affine map
      gives the same result, so this equals ``"minmax"`` up to float rounding; it is kept as a name
      so params can say what the authors did.
    * ``"percentile"``: clip to the given percentiles (e.g. 0.5 and 99.5), then min-max; robust to a
      few very bright voxels.

    A constant volume gives all zeros. Returns the same kind it was given (Volume or array).
    """
    arr = _unwrap(vol)
    if method == "minmax":
        out = _minmax_255(arr)
    elif method == "zscore_minmax":
        out = _minmax_255(_zscore_array(arr, None))
    elif method == "percentile":
        p_lo, p_hi = (float(p) for p in percentiles)
        if not 0.0 <= p_lo < p_hi <= 100.0:
            raise ValueError(f"mr_scale: percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
        lo, hi = (float(v) for v in np.percentile(arr, [p_lo, p_hi])) if arr.size else (0.0, 0.0)
        if hi <= lo:
            out = np.zeros(arr.shape, np.float32)
        else:
            out = ((np.clip(arr.astype(np.float64), lo, hi) - lo) * (255.0 / (hi - lo))).astype(np.float32)
    else:
        raise ValueError(
            f"mr_scale: unknown method {method!r}; use 'minmax', 'zscore_minmax' or 'percentile'"
        )
    return _rewrap(vol, out)


def _zscore_array(arr: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    arr64 = arr.astype(np.float64, copy=False)
    values = arr64[mask] if mask is not None else arr64
    if values.size == 0:
        raise ValueError("zscore: the mask selects no voxels")
    mean, std = float(values.mean()), float(values.std())
    out = arr64 - mean
    if std > 0:
        out = out / std
    return out.astype(np.float32)


def zscore(vol: Volume | np.ndarray, mask: Volume | np.ndarray | None = None) -> Volume | np.ndarray:
    """Per-volume z-score, float32: ``(x - mean) / std`` with mean and std over ``mask`` voxels
    (nonzero; all voxels when None), applied to every voxel. A constant volume is only centred."""
    arr = _unwrap(vol)
    m = None
    if mask is not None:
        m = _unwrap(mask).astype(bool)
        if m.shape != arr.shape:
            raise ValueError(f"zscore: mask shape {m.shape} differs from the volume's {arr.shape}")
    return _rewrap(vol, _zscore_array(arr, m))


# --------------------------------------------------------------------------------------------------
# Body mask
# --------------------------------------------------------------------------------------------------
def _otsu(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float(values.max()) if values.size else 0.0
    return float(threshold_otsu(values))


def _fill2d(mask: np.ndarray) -> np.ndarray:
    """2-D hole filling: background components (4-connected) that do not touch the slice border
    become foreground. Same result as ``ndi.binary_fill_holes`` and several times faster."""
    if not mask.any():
        return mask
    lab, n = ndi.label(~mask)
    if n == 0:
        return mask
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    outside = np.zeros(n + 1, bool)
    outside[border] = True
    outside[0] = False
    return ~outside[lab]


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    out = np.empty_like(mask)
    for z in range(mask.shape[0]):
        out[z] = _fill2d(mask[z])
    return out


def body_mask(
    vol: Volume,
    method: Literal["otsu", "otsu_percentile"] = "otsu",
    percentile: float = 80.0,
) -> Volume:
    """Otsu body mask (uint8 0/1 Volume, same grid).

    * ``"otsu"``: threshold = Otsu of all voxels.
    * ``"otsu_percentile"``: the authors' variant for T1W/EAP/PVP: Otsu of the voxels below the
      ``percentile``-th percentile (a lower threshold: bright organs no longer pull it up).

    Voxels above the threshold, then the largest 3-D connected component (26-connectivity), then
    holes filled slice by slice (per z). A constant volume gives an empty mask.
    """
    arr = vol.array.astype(np.float32, copy=False)
    if method == "otsu":
        t = _otsu(arr.ravel())
    elif method == "otsu_percentile":
        cut = np.percentile(arr, percentile) if arr.size else 0.0
        below = arr[arr < cut]
        t = _otsu(below) if below.size else _otsu(arr.ravel())
    else:
        raise ValueError(f"body_mask: unknown method {method!r}; use 'otsu' or 'otsu_percentile'")
    fg = arr > t
    if fg.any():
        fg = cc3d.largest_k(fg, k=1, connectivity=26) > 0
        fg = _fill_holes_per_slice(fg)
    return vol.with_array(fg.astype(np.uint8))


# --------------------------------------------------------------------------------------------------
# z-flip detection and fix
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EndStats:
    """What :func:`detect_zflip` saw near one z-end of the volume.

    ``slices``: z indices of the slices that qualified (foreground neither tiny nor the whole
    slice); ``hole_counts``: background holes (>= ``min_hole_mm2``) inside the body in each;
    ``hole_fractions``: their total area / the body's area in each; ``score``: mean hole fraction
    over the qualifying slices (None when no slice qualified).
    """

    end: Literal["low", "high"]
    band: tuple[int, int]  # [first, last] z index examined
    slices: tuple[int, ...] = ()
    hole_counts: tuple[int, ...] = ()
    hole_fractions: tuple[float, ...] = ()
    score: float | None = None


@dataclass(frozen=True)
class ZFlipDecision:
    """The z-flip verdict with its evidence.

    ``decision``: ``"flip"`` (stored upside-down: the end that should be inferior is the holier
    one), ``"keep"``, or ``"undecided"`` (no qualifying slice at an end, z axis not head-foot, or
    the two ends too similar; the volume is then left unflipped). ``superior_end`` is the end the
    header says is superior (``"high"`` = the largest z index when ``direction[2, 2] > 0``).
    ``margin`` = (superior score - inferior score) / (sum of the scores): positive agrees with the
    header; ``min_margin`` is the confidence the decision needed.
    """

    decision: Literal["flip", "keep", "undecided"]
    reason: str
    superior_end: Literal["low", "high"] | None
    low: EndStats | None = None
    high: EndStats | None = None
    threshold: float | None = None
    margin: float | None = None
    min_margin: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def flip(self) -> bool:
        return self.decision == "flip"


def _close2d(mask: np.ndarray, r: float) -> np.ndarray:
    """Binary closing by a (2r+1)-pixel square (separable max/min filters: fast for any r)."""
    size = 2 * round(r) + 1
    if size <= 1 or not mask.any():
        return mask
    pad = size
    padded = np.pad(mask.astype(np.uint8), pad)
    closed = ndi.minimum_filter(ndi.maximum_filter(padded, size=size), size=size)
    return closed[pad:-pad, pad:-pad].astype(bool)


def _dark_threshold(arr: np.ndarray, dark_fraction: float) -> tuple[float, dict]:
    """Threshold between "air-like" and tissue: ``air + dark_fraction * (tissue - air)``.

    ``air`` and ``tissue`` are the median intensities outside / inside a coarse body found with the
    lower threshold of a 3-class Otsu (multi-Otsu). A plain 2-class Otsu separates bright organs from
    everything else in fat-suppressed MR (CHAOS T2-SPIR), and the window-clipped BTCV CT reads air,
    fat and lung alike; this threshold is low enough for both and still below lung in CT.
    """
    # in-plane subsampling only: the threshold must not change when the volume is flipped along z
    step = 3 if min(arr.shape[1:]) >= 96 else 1
    coarse = arr[:, ::step, ::step]
    sub = coarse[np.isfinite(coarse)]
    if sub.size == 0 or sub.min() == sub.max():
        return float(sub.max()) if sub.size else 0.0, {"air": None, "tissue": None}
    try:
        t0 = float(threshold_multiotsu(sub, classes=3)[0])
    except ValueError:  # fewer than 3 distinct values
        t0 = _otsu(sub)
    fg = coarse > t0
    inside = _fill_holes_per_slice(cc3d.largest_k(fg, k=1, connectivity=26) > 0) if fg.any() else fg
    outside = ~ndi.binary_dilation(inside, iterations=2) if inside.any() else ~inside
    air = float(np.median(coarse[outside])) if outside.any() else float(coarse.min())
    tissue_vox = coarse[inside & fg]
    tissue = float(np.median(tissue_vox)) if tissue_vox.size else t0
    if tissue <= air:
        return t0, {"air": air, "tissue": tissue, "multiotsu": t0}
    return air + dark_fraction * (tissue - air), {"air": air, "tissue": tissue, "multiotsu": t0}


def _smooth_inplane(band: np.ndarray, sy: float, sx: float, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing of each slice of ``band`` (sigma in mm; nothing mixes slices, so the
    result of a z-flipped band is the z-flipped result). ``sigma_mm <= 0`` returns ``band``."""
    if sigma_mm <= 0:
        return band
    return ndi.gaussian_filter(band, (0.0, sigma_mm / sy, sigma_mm / sx), mode="nearest")


def _end_stats(
    fg: np.ndarray,
    z0: int,
    end: Literal["low", "high"],
    close_r: float,
    min_fg: float,
    max_fg: float,
    min_hole_px: float,
) -> EndStats:
    """Hole statistics of the band ``fg`` (foreground of slices ``z0 .. z0 + len(fg) - 1``)."""
    if fg.any():
        fg = cc3d.largest_k(fg, k=1, connectivity=26) > 0
    slices, counts, fracs = [], [], []
    for i in range(fg.shape[0]):
        z = z0 + i
        s = fg[i]
        frac = float(s.mean())
        if frac < min_fg or frac > max_fg:
            continue
        body = _fill2d(_close2d(s, close_r))
        holes = body & ~s
        lab, n = ndi.label(holes)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, np.int64)
        big = sizes[sizes >= min_hole_px]
        slices.append(int(z))
        counts.append(int(big.size))
        fracs.append(float(big.sum()) / float(max(body.sum(), 1)))
    band = (z0, z0 + fg.shape[0] - 1)
    score = float(np.mean(fracs)) if fracs else None
    return EndStats(end, band, tuple(slices), tuple(counts), tuple(round(f, 4) for f in fracs), score)


def detect_zflip(
    vol_ip: Volume,
    *,
    band: float = 0.2,
    smooth_mm: float = 1.5,
    min_foreground: float = 0.05,
    max_foreground: float = 0.95,
    min_hole_mm2: float = 100.0,
    close_mm: float = 5.0,
    dark_fraction: float = 0.3,
    min_margin: float = 0.05,
) -> ZFlipDecision:
    """Is this abdominal volume stored upside-down relative to its header?

    Used on the in-phase (IP) volume of an LLD-MMR patient; it works on any abdominal CT/MR whose
    scan reaches the lung bases. Never raises on odd data: it answers ``"undecided"`` instead.

    Method (STUDY.md "Preprocessing", with the measured changes noted):

    1. Threshold: an "air-like" level between air and tissue (:func:`_dark_threshold`, derived from a
       3-class Otsu of the whole, unsmoothed volume; a plain Otsu fails on fat-suppressed MR and
       window-clipped CT).
    2. End bands: the first / last ``band`` fraction of slices (at least 1, at most half). A fifth
       of an abdominal scan holds its lung bases, and the more slices an end score averages, the
       less a few atypical end slices weigh. Each slice of a band is smoothed in-plane by a
       Gaussian of sigma ``smooth_mm`` before the threshold, so a region is called dark or tissue
       by its local mean, not pixel by pixel. This matters for MR: fat that fat suppression only
       partly darkened (CHAOS T2-SPIR) lies near the threshold, and pixel noise splits it into
       "holes"; air in the lungs lies well below it and stays dark. Foreground = smoothed voxels
       above the threshold, then the largest 3-D component of the band.
    3. In each band, every slice whose foreground covers between ``min_foreground`` and
       ``max_foreground`` of the slice qualifies. In it, the body is the foreground closed by a
       square of half-side ``close_mm`` (bridges thin gaps in the body wall) and hole-filled; holes
       are the background components inside the body of at least ``min_hole_mm2`` (air inside the
       body: lung bases, bowel gas). A slice's hole score is the holes' total area over the body's
       area (the area is steadier than the count, which dark fat and vessels inflate at both ends;
       counts are reported in ``EndStats.hole_counts``). An end's score is the mean over its
       qualifying slices.
    4. The header says which end is superior: voxel axis k points to world direction
       ``direction[:, 2]``; in LPS, ``direction[2, 2] > 0`` means a growing z index goes superior.
       The superior end should be holier (lungs). ``margin`` = (superior - inferior) / (sum);
       ``margin >= min_margin`` -> ``"keep"``, ``<= -min_margin`` -> ``"flip"``, else
       ``"undecided"``. Also ``"undecided"`` when an end has no qualifying slice (an all-zero or
       all-body volume), when both ends have no holes, or when the z axis is not the head-foot axis
       (``|direction[2, 2]| < 0.5``).

    The threshold does not change under a z-flip (it uses in-plane subsampling only) and every
    other step works per slice or per band, so a z-flipped copy gives the two end scores swapped
    and the opposite margin.

    Defaults measured on the real volumes of ``../shared/data`` (30 BTCV CT, 14 CHAOS T2-SPIR, the
    two TotalSegmentator CT/MR examples) and their z-flipped copies, all right, smallest |margin|:
    0.16 (BTCV), 0.13 (CHAOS), 0.13 (TotalSegmentator). With the earlier defaults (no smoothing,
    ``band=0.15``) CHAOS case 33 scored 0.00 ("undecided"): its lowest slices, where fat
    suppression worked best, were as holey as its lung bases (end scores 0.171 and 0.171; now
    0.089 and 0.131, margin 0.19). Every ``band`` in 0.17..0.22 with ``smooth_mm`` in 1.0..1.5
    keeps all of them right with |margin| >= 0.09; the phantom's in-phase volumes score >= 0.7.
    """
    arr = np.asarray(vol_ip.array, dtype=np.float32)
    nz = arr.shape[0]
    dzs = float(vol_ip.direction[2, 2])

    def undecided(reason: str, **kw) -> ZFlipDecision:
        return ZFlipDecision("undecided", reason, kw.pop("superior_end", None), min_margin=min_margin, **kw)

    if abs(dzs) < 0.5:
        return undecided(
            f"voxel z axis is not the head-foot axis (direction[2,2] = {dzs:.2f}); reorient to LPS first"
        )
    superior: Literal["low", "high"] = "high" if dzs > 0 else "low"
    if nz < 2 or arr.size == 0 or not np.isfinite(arr).all() or arr.min() == arr.max():
        return undecided("volume is constant, non-finite or has fewer than 2 slices", superior_end=superior)

    t, levels = _dark_threshold(arr, dark_fraction)
    nb = max(1, round(band * nz))
    nb = min(nb, max(1, nz // 2))
    sy, sx = vol_ip.spacing_zyx[1], vol_ip.spacing_zyx[2]
    px_area = sy * sx
    common = dict(
        close_r=close_mm / min(sy, sx) if close_mm > 0 else 0.0,
        min_fg=min_foreground,
        max_fg=max_foreground,
        min_hole_px=min_hole_mm2 / px_area,
    )
    # the body is the largest 3-D component of each end band (cheaper than the whole volume)
    low_band = _smooth_inplane(arr[:nb], sy, sx, smooth_mm)
    high_band = _smooth_inplane(arr[nz - nb :], sy, sx, smooth_mm)
    low = _end_stats(low_band > t, 0, "low", **common)
    high = _end_stats(high_band > t, nz - nb, "high", **common)
    kw = dict(superior_end=superior, low=low, high=high, threshold=t, details=levels)
    if low.score is None or high.score is None:
        missing = " and ".join(e.end for e in (low, high) if e.score is None)
        return undecided(f"no qualifying slice near the {missing} z-end", **kw)
    sup, inf = (high, low) if superior == "high" else (low, high)
    total = sup.score + inf.score
    if total <= 0:
        return undecided("no holes at either end", margin=0.0, **kw)
    margin = (sup.score - inf.score) / total
    kw["margin"] = margin
    where = f"superior ({superior} z) hole score {sup.score:.3f} vs inferior {inf.score:.3f}"
    if margin >= min_margin:
        return ZFlipDecision(
            "keep", f"{where}: the header's superior end is holier", min_margin=min_margin, **kw
        )
    if margin <= -min_margin:
        return ZFlipDecision(
            "flip",
            f"{where}: the header's inferior end is holier (stored upside-down)",
            min_margin=min_margin,
            **kw,
        )
    return undecided(f"{where}: ends too similar (|margin| {abs(margin):.3f} < {min_margin})", **kw)


def flip_z(vol: Volume) -> Volume:
    """Reverse the voxel data along z (array axis 0), keeping the header (spacing, origin, direction).

    This is the repair for the LLD-MMR defect: the voxels are stored upside-down relative to a
    correct header, so slice ``k`` holds the anatomy that belongs at slice ``n - 1 - k``. After the
    flip, slice ``k`` holds what was in slice ``n - 1 - k``, so every slice of anatomy sits at the
    world position the (correct) header assigns to it. In world terms the image content is mirrored
    through the plane through the grid's centre perpendicular to the voxel z axis, while the grid
    (and so the scanner-space alignment with the patient's other sequences) is unchanged.
    It is NOT a reorientation: :func:`flarelib.io.reorient` changes the storage order and the header
    together, keeping every voxel's world position. Applying it twice gives the input back.
    """
    return vol.with_array(np.ascontiguousarray(vol.array[::-1]))


def fix_zflip(
    vols: Mapping[str, Volume], reference_key: str = "IP", **detect_kwargs
) -> tuple[dict[str, Volume], ZFlipDecision]:
    """Detect on ``vols[reference_key]`` (the in-phase volume) and, if it says ``"flip"``, apply
    :func:`flip_z` to every volume of the patient (labels too, if present). ``"keep"`` and
    ``"undecided"`` leave all volumes as they are. Returns ``(volumes, decision)``.

    ``detect_kwargs`` go to :func:`detect_zflip`.
    """
    if reference_key not in vols:
        raise FlareInputError(
            None,
            f"fix_zflip: no '{reference_key}' volume among {sorted(vols)}",
            "pass the patient's in-phase volume, or name another reference_key",
        )
    decision = detect_zflip(vols[reference_key], **detect_kwargs)
    if decision.decision == "flip":
        return {k: flip_z(v) for k, v in vols.items()}, decision
    return dict(vols), decision
