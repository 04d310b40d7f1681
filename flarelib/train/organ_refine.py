"""Organ-wise intensity refinement of stage 1's fake MR from its own MR pseudo-labels (a deviation).

A CycleGAN maps intensities by local context; CT's contrast-enhanced organs share one brightness
that the target MR splits per organ (T1W: liver brighter than spleen, vessels dark), and the
CPU-sized CycleGAN does not learn that split (benchmarks/RESULTS.md, issue 15). Stage 1's first
model already finds the large organs in the real MR; where it does, the real MR shows how bright
each organ is. This module moves each labelled organ of every fake MR to that brightness:

1. :func:`organ_targets`: per organ, the median intensity (0..255, :func:`flarelib.preprocess.mr_scale`
   as the CycleGAN's MR domain) of the real MR volumes inside their pseudo-labels, each mask eroded
   by ``erode`` voxels in-plane first (the boundary voxels of a pseudo-label are its least sure),
   organs with fewer than ``min_voxels`` such voxels over all volumes left out;
2. :func:`refine_fake`: inside each organ of a fake's CT label (eroded the same way for the
   statistics, applied to the whole organ), the fake shifted by ``target - median(fake in organ)``:
   the texture and the organ's boundary stay the generator's, its level becomes the real MR's.

Fat, muscle and the organs the pseudo-labels miss keep the generator's intensities. The MR labels
this uses are the method's own predictions; the phantom's truth is never read. Arrays are
``(z, y, x)``; labels hold FLARE ids (0 background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from flarelib.labels import ORGANS

__all__ = ["organ_medians", "organ_targets", "refine_fake"]


def _core(mask: np.ndarray, erode: int) -> np.ndarray:
    """``mask`` eroded ``erode`` voxels in y and x only (slices may be thick); the mask itself when
    erosion would empty it."""
    if erode <= 0:
        return mask
    structure = np.zeros((1, 3, 3), bool)
    structure[0, 1, :] = structure[0, :, 1] = True
    core = ndimage.binary_erosion(mask, structure, iterations=erode)
    return core if core.any() else mask


def organ_medians(
    image: np.ndarray, label: np.ndarray, *, erode: int = 1, organs: Sequence[int] | None = None
) -> dict[int, tuple[float, int]]:
    """Per organ id present in ``label``: ``(median of image in its eroded mask, voxel count)``."""
    ids = [int(o) for o in (organs if organs is not None else ORGANS) if int(o) != 0]
    out = {}
    for organ in ids:
        mask = label == organ
        if not mask.any():
            continue
        core = _core(mask, erode)
        out[organ] = (float(np.median(image[core])), int(core.sum()))
    return out


def organ_targets(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    erode: int = 1,
    min_voxels: int = 50,
) -> dict[int, float]:
    """Organ id -> target intensity: the median of every ``images`` voxel (0..255) inside the
    eroded ``labels`` (the real MR volumes and their pseudo-labels, pairwise on one grid), pooled
    over the volumes; organs with fewer than ``min_voxels`` pooled voxels are left out."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    pooled: dict[int, list[np.ndarray]] = {}
    for image, label in zip(images, labels, strict=True):
        if image.shape != label.shape:
            raise ValueError(f"image {image.shape} and label {label.shape} differ in shape")
        for organ in np.unique(label):
            if organ == 0:
                continue
            core = _core(label == organ, erode)
            pooled.setdefault(int(organ), []).append(image[core])
    targets = {}
    for organ, parts in sorted(pooled.items()):
        values = np.concatenate(parts)
        if values.size >= min_voxels:
            targets[organ] = float(np.median(values))
    return targets


def refine_fake(
    fake255: np.ndarray,
    label: np.ndarray,
    targets: Mapping[int, float],
    *,
    erode: int = 1,
    strength: float = 1.0,
) -> np.ndarray:
    """``fake255`` (a fake MR on 0..255) with every organ of ``label`` that ``targets`` names shifted
    by ``strength * (target - median of the fake in the eroded organ)``; the result is clipped to
    0..255 (float32). ``strength`` 0 leaves the fake as it is."""
    if fake255.shape != label.shape:
        raise ValueError(f"fake {fake255.shape} and label {label.shape} differ in shape")
    out = np.array(fake255, dtype=np.float32, copy=True)
    for organ, target in targets.items():
        mask = label == organ
        if not mask.any():
            continue
        source = float(np.median(fake255[_core(mask, erode)]))
        out[mask] += strength * (float(target) - source)
    return np.clip(out, 0.0, 255.0, out=out)
