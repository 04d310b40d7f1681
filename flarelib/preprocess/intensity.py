"""Intensity maps: CT window to 0..255, MR scaling to 0..255, z-score.

Conventions (see :mod:`flarelib.io`): arrays are ``(z, y, x)``; spacings are mm in the order their
name says (``spacing_zyx``); world coordinates are LPS mm. Functions never modify their input.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from flarelib.io import Volume


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
