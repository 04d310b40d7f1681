"""Judging a CycleGAN's generator without MR labels: the body-intensity histogram criterion.

A CycleGAN of a few thousand iterations ends wherever its last iterations leave it; on the quick
phantom two trainings of one recipe ended at organ errors of 46 and 70 (benchmarks/RESULTS.md), and
within one training the fake swings between CT's contrast and MR's. Everything stage 1 may look
at to choose among generators is label-free: the labelled CT, the unlabelled real MR.

The criterion: translate the CT volumes the CycleGAN learns from (0..255, air cleared as it saw
them), take every voxel of each fake inside the CT's body (:func:`flarelib.train.fake_mr.ct_body_mask`),
and compare that intensity distribution with the real MR's inside their Otsu body masks
(:func:`flarelib.preprocess.body.body_mask`), both on the 0..255 scale the discriminator sees, by
the 1-D Wasserstein distance (mean |CDF_fake - CDF_real| over 0..255, in intensity units). A fake
that keeps CT's dark fat and bright organs, or paints everything mid-grey, has another histogram
than T1W's bright fat and darker organs. It cannot see a fake that swaps two tissues of equal
volume; how well it picks generators by their true translation error is measured on the phantom
(``benchmarks/diag_cyclegan_selection.py``): badly. Over the snapshots of three trainings its rank
correlation with the true organ error was -0.59, -0.54 and -0.43, so the fakes nearest real T1W by
this criterion had the worst organs (the body's histogram is mostly fat and muscle). Stage 1
therefore does not choose by it; it stays a diagnostic and the model of a CycleGAN validator
(:func:`flarelib.train.stages.train_cyclegan`'s ``validate``).

Arrays are (z, y, x); intensities 0..255.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch import nn

from flarelib.io import Volume
from flarelib.preprocess.body import body_mask
from flarelib.train.cyclegan import translate_volume
from flarelib.train.fake_mr import ct_body_mask

__all__ = [
    "BINS",
    "SELECT_METRIC",
    "body_histogram",
    "histogram_w1",
    "mr_body_histogram",
    "translation_validator",
]

#: Histogram bins on 0..255 (width 1).
BINS = 256

#: The validator's selection metric (higher is better): minus the Wasserstein distance.
SELECT_METRIC = "neg_body_w1"


def body_histogram(image_0_255: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Counts (float64, :data:`BINS` bins of width 1 on 0..255) of ``image_0_255`` inside ``mask``."""
    values = np.clip(np.asarray(image_0_255, np.float32)[np.asarray(mask, bool)], 0.0, 255.0)
    return np.histogram(values, bins=BINS, range=(0.0, 256.0))[0].astype(np.float64)


def histogram_w1(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """1-D Wasserstein distance between two histograms on the same unit-width bins (intensity
    units): the sum over bins of |CDF_a - CDF_b|. Equals ``scipy.stats.wasserstein_distance`` of
    the binned values."""
    a, b = np.asarray(counts_a, np.float64), np.asarray(counts_b, np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    return float(np.abs(np.cumsum(a / a.sum()) - np.cumsum(b / b.sum())).sum())


def mr_body_histogram(mr_volumes: Sequence[np.ndarray]) -> np.ndarray:
    """Pooled :func:`body_histogram` of real MR volumes (0..255) inside their Otsu body masks."""
    total = np.zeros(BINS)
    for arr in mr_volumes:
        vol = Volume(np.asarray(arr, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        mask = body_mask(vol).array > 0
        total += body_histogram(arr, mask)
    return total


def translation_validator(
    ct_volumes: Sequence[np.ndarray],
    mr_volumes: Sequence[np.ndarray],
    patch_zyx: Sequence[int],
    *,
    overlap: float = 0.5,
    blend: str = "gaussian",
    extra: Callable[[list[np.ndarray]], dict[str, float]] | None = None,
) -> Callable[[nn.Module], dict[str, float]]:
    """A training-loop validator for the CycleGAN's ``g_ab`` (see the module docstring).

    ``ct_volumes``: CT as the CycleGAN learns from it (0..255, air cleared); ``mr_volumes``: the
    real MR of domain B (0..255). Returns ``{"body_w1": W1, "neg_body_w1": -W1}`` (the loop's
    model selection keeps the highest value of :data:`SELECT_METRIC`); ``extra(fakes)`` may add
    figures computed from the same fakes (the phantom's truth, in the benchmark)."""
    cts = [np.asarray(v, np.float32) for v in ct_volumes]
    bodies = [ct_body_mask(v) for v in cts]
    real = mr_body_histogram(mr_volumes)

    def validate(generator: nn.Module) -> dict[str, float]:
        fakes, total = [], np.zeros(BINS)
        for ct, body in zip(cts, bodies, strict=True):
            fake = translate_volume(generator, ct, patch_zyx, overlap, blend=blend)
            fake = np.where(body, fake, 0.0).astype(np.float32)  # as zero_outside_body, mask reused
            total += body_histogram(fake, body)
            fakes.append(fake)
        w1 = histogram_w1(total, real)
        out = {"body_w1": w1, SELECT_METRIC: -w1}
        if extra is not None:
            out.update(extra(fakes))
        return out

    return validate
