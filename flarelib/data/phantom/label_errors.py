"""Simulated pseudo-label errors: what a CT pseudo-labelling model gets wrong (the ``ct_pseudo`` subset).

Arrays are (z, y, x) on one grid; every random draw comes from the Generator passed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from flarelib.data.phantom.shapes import Tissue
from flarelib.labels import ORGAN_BY_NAME

__all__ = ["pseudo_label_errors"]

_BALL6 = ndimage.generate_binary_structure(3, 1)
#: Soft-tissue background where spurious islands appear (fat, bowel, muscle).
_ISLAND_TISSUES = [
    int(t)
    for t in (
        Tissue.VISCERAL_FAT,
        Tissue.BOWEL_WALL,
        Tissue.BOWEL_FLUID,
        Tissue.MUSCLE,
        Tissue.COLON_CONTENT,
    )
]
#: Small organs of which one may be missed: the adrenals, the gallbladder and the esophagus.
_MISSABLE = tuple(
    ORGAN_BY_NAME[n] for n in ("right adrenal gland", "left adrenal gland", "gallbladder", "esophagus")
)
#: Organs whose id spurious islands carry.
_ISLAND_ORGANS = [ORGAN_BY_NAME[n] for n in ("liver", "spleen", "pancreas", "stomach", "duodenum")]


def pseudo_label_errors(
    label: np.ndarray, tissue: np.ndarray, rng: np.random.Generator, *, force_missed: bool = False
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A copy of ``label`` (z, y, x) with realistic pseudo-label errors, and the list of errors.

    Errors: 1-voxel boundary erosion or dilation (6-connected; dilation only into background) of 2-4
    organs, one missed small organ (adrenal, gallbladder or esophagus; always when ``force_missed``,
    else with probability 0.6), and 1-3 spurious islands (small balls of an organ's id in the
    soft-tissue background (fat, bowel, muscle), away from that organ). ``tissue`` is the tissue map
    (:class:`.shapes.Tissue` ids, same grid). Error records give voxel counts and, for islands, the
    index (z, y, x) of the island.
    """
    out = label.copy()
    errors: list[dict[str, Any]] = []
    present = [int(o) for o in np.unique(out) if o > 0]
    for organ in rng.choice(present, size=min(len(present), int(rng.integers(2, 5))), replace=False):
        organ = int(organ)
        m = out == organ
        if rng.random() < 0.5:
            er = ndimage.binary_erosion(m, _BALL6)
            if er.sum() < 0.4 * m.sum():
                continue
            out[m & ~er] = 0
            errors.append({"kind": "erosion", "organ": organ, "voxels": int((m & ~er).sum())})
        else:
            grow = ndimage.binary_dilation(m, _BALL6) & (out == 0)
            out[grow] = organ
            errors.append({"kind": "dilation", "organ": organ, "voxels": int(grow.sum())})
    small = [o for o in _MISSABLE if np.any(out == o)]
    if small and (force_missed or rng.random() < 0.6):
        organ = int(rng.choice(small))
        n = int((out == organ).sum())
        out[out == organ] = 0
        errors.append({"kind": "missed", "organ": organ, "voxels": n})
    soft = np.isin(tissue, _ISLAND_TISSUES) & (label == 0)
    for _ in range(int(rng.integers(1, 4))):
        organ = int(rng.choice(_ISLAND_ORGANS))
        where = np.argwhere(label == organ)
        centre = where.mean(axis=0) if len(where) else np.zeros(3)
        for _try in range(2000):
            z, y, x = (int(rng.integers(n)) for n in out.shape)
            far = np.linalg.norm(np.array([z, y, x]) - centre) > 12
            if soft[z, y, x] and far and 1 <= z < out.shape[0] - 1:
                break
        else:
            continue
        sl = (slice(z, z + 2), slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
        patch = out[sl]
        grow = soft[sl]
        patch[grow] = organ
        errors.append(
            {"kind": "island", "organ": organ, "voxels": int(grow.sum()), "at_index_zyx": [z, y, x]}
        )
    return out, errors
