"""How right a CT -> MR translation is, measured against the true MR rendering of the same anatomy
(the phantom renders it; no published work could measure this on real data).

Both images go through the same 0..255 scaling first (:func:`flarelib.preprocess.mr_scale`, the
CycleGAN's MR domain), so a global gain or offset costs nothing; what is measured is contrast:

* ``organ_mae``: the mean over the 9 large organs (:data:`LARGE_ORGANS`) of
  ``|mean(fake in organ) - mean(true in organ)|``, on 0..255;
* ``order_fraction``: the fraction of pairs of regions (the 9 organs + fat + muscle: 55 pairs)
  whose brightness order in the fake is their true order;
* ``ssim_body``: SSIM (scikit-image, ``data_range=255``) averaged over the body.

Arrays are ``(z, y, x)`` on one grid. Regions absent from a case (e.g. a gallbladder outside the
field of view, or smaller than ``min_voxels``) are left out of its figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity

from flarelib.labels import ORGAN_BY_NAME
from flarelib.preprocess import mr_scale

#: The 9 large organs of the measure (FLARE ids): everything but adrenals, esophagus, duodenum.
LARGE_ORGANS: dict[str, int] = {
    name: ORGAN_BY_NAME[name]
    for name in (
        "liver",
        "right kidney",
        "spleen",
        "pancreas",
        "aorta",
        "inferior vena cava",
        "gallbladder",
        "stomach",
        "left kidney",
    )
}


@dataclass
class TranslationFigures:
    """The figures of one translated volume (see the module docstring).

    ``means`` maps each region to ``(fake mean, true mean)`` on 0..255."""

    organ_mae: float
    order_fraction: float
    ssim_body: float
    means: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_row(self) -> dict[str, float]:
        row = {
            "organ_mae": self.organ_mae,
            "order_fraction": self.order_fraction,
            "ssim_body": self.ssim_body,
        }
        for name, (fake, true) in self.means.items():
            row[f"err_{name}"] = fake - true
        return row


def organ_regions(label: np.ndarray, min_voxels: int = 20) -> dict[str, np.ndarray]:
    """Masks of the :data:`LARGE_ORGANS` present in ``label`` (FLARE ids) with >= ``min_voxels``."""
    out = {}
    for name, organ in LARGE_ORGANS.items():
        mask = label == organ
        if int(mask.sum()) >= min_voxels:
            out[name] = mask
    return out


def translation_figures(
    fake: np.ndarray,
    true: np.ndarray,
    regions: Mapping[str, np.ndarray],
    body: np.ndarray,
    *,
    scaling: str = "minmax",
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> TranslationFigures:
    """Compare ``fake`` with ``true`` (any intensities; both scaled to 0..255 by ``scaling``) in the
    ``regions`` (name -> boolean mask; organ names of :data:`LARGE_ORGANS` count for ``organ_mae``,
    every region for ``order_fraction``) and the ``body`` mask (SSIM)."""
    if fake.shape != true.shape:
        raise ValueError(f"fake {fake.shape} and true {true.shape} images differ in shape")
    f = np.asarray(mr_scale(np.asarray(fake, np.float32), scaling, percentiles), np.float64)
    t = np.asarray(mr_scale(np.asarray(true, np.float32), scaling, percentiles), np.float64)
    means = {name: (float(f[m].mean()), float(t[m].mean())) for name, m in regions.items() if m.any()}
    organ_errors = [abs(a - b) for name, (a, b) in means.items() if name in LARGE_ORGANS]
    pairs = list(itertools.combinations(means, 2))
    agree = [np.sign(means[a][0] - means[b][0]) == np.sign(means[a][1] - means[b][1]) for a, b in pairs]
    body = np.asarray(body, bool)
    if body.any():
        _, ssim_map = structural_similarity(t, f, data_range=255.0, full=True)
        ssim = float(ssim_map[body].mean())
    else:
        ssim = float("nan")
    return TranslationFigures(
        organ_mae=float(np.mean(organ_errors)) if organ_errors else float("nan"),
        order_fraction=float(np.mean(agree)) if agree else float("nan"),
        ssim_body=ssim,
        means=means,
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every figure per input (``fake``, ``ct``) of a per-case table (columns ``case``,
    ``input``, ``sequence`` and the figures of :meth:`TranslationFigures.as_row`), cases pooled."""
    cols = [c for c in table.columns if c not in ("case", "input", "sequence")]
    return table.groupby("input", sort=False)[cols].mean()
