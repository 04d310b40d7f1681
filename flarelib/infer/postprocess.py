"""Anatomy post-processing of a predicted label volume (STUDY.md "Inference and post-processing").

Input: a uint8 ``(z, y, x)`` array of FLARE ids **in LPS orientation** (after
:func:`flarelib.io.reorient_to_lps`): voxel axis z points to the patient's Superior, so with an
(approximately) axis-aligned direction a larger z index is more superior. The pipeline reorients
before calling :func:`postprocess` and back after it. A volume *stored* upside down (the LLD-MMR
z-flip, which no header reveals) is handled by the orientation rules: they read the body's
orientation from the anatomy (liver above the left kidney), not from the header.

The rules, each switchable by :class:`~flarelib.config.PostprocessParams`, applied only when the
volume has more than ``min_slices`` slices (authors' code: 80), in this order:

1. ``kidney_largest``: each kidney (2, 13) keeps its largest connected component.
2. ``liver_slab``: the z-slab ``[z_min - m, z_max + m]`` of the largest liver component
   (``m = liver_slab_margin``, 8) bounds liver, stomach, gallbladder, pancreas and both adrenals:
   their voxels outside the slab are removed.
3. ``aorta_component``: the aorta keeps the one component with the most voxels inside the slab
   (the largest component when there is no liver).
4. ``orientation_rules``: the body's superior direction along z is the sign of (liver centroid z -
   left-kidney centroid z). Duodenum and pancreas voxels above the liver's top are removed; the
   spleen keeps only voxels between the left kidney's bottom and the liver's top + ``spleen_margin``
   (10) slices. "Top"/"bottom"/"above" follow that sign, so a z-flipped volume is treated right.

Rules that need an organ that is absent (no liver, no left kidney) do nothing. Components use cc3d
with ``connectivity`` (26 by default); all organs are labelled in one multi-label pass.
"""

from __future__ import annotations

from typing import Any

import cc3d
import numpy as np

from flarelib.config import PostprocessParams

__all__ = ["SLAB_ORGANS", "body_orientation", "postprocess"]

LIVER, RIGHT_KIDNEY, SPLEEN, PANCREAS, AORTA = 1, 2, 3, 4, 5
RIGHT_ADRENAL, LEFT_ADRENAL, GALLBLADDER, STOMACH, DUODENUM, LEFT_KIDNEY = 7, 8, 9, 11, 12, 13
#: Organs bounded by the liver's z-slab.
SLAB_ORGANS: tuple[int, ...] = (LIVER, STOMACH, GALLBLADDER, PANCREAS, RIGHT_ADRENAL, LEFT_ADRENAL)


class _Components:
    """Connected components of every organ at once (one cc3d multi-label pass)."""

    def __init__(self, labels: np.ndarray, connectivity: int):
        self.cc = cc3d.connected_components(labels, connectivity=connectivity)
        stats = cc3d.statistics(self.cc)
        self.counts = np.asarray(stats["voxel_counts"], dtype=np.int64)
        self.boxes = stats["bounding_boxes"]
        self.centroids = np.asarray(stats["centroids"], dtype=np.float64)
        n = len(self.counts)
        self.organ = np.zeros(n, dtype=np.int64)
        self.organ[self.cc.ravel()] = labels.ravel()
        self.organ[0] = 0

    def of(self, organ: int) -> np.ndarray:
        """Component ids of ``organ``."""
        ids = np.flatnonzero(self.organ == organ)
        return ids[ids > 0]

    def largest(self, organ: int) -> int | None:
        ids = self.of(organ)
        if ids.size == 0:
            return None
        return int(ids[np.argmax(self.counts[ids])])

    def z_range(self, comp: int) -> tuple[int, int]:
        """Inclusive (first, last) z index of a component."""
        zs = self.boxes[comp][0]
        return int(zs.start), int(zs.stop) - 1


def _remove(labels: np.ndarray, mask: np.ndarray, report: dict[str, int], rule: str) -> None:
    n = int(np.count_nonzero(mask))
    if n:
        labels[mask] = 0
    report[rule] = report.get(rule, 0) + n


def _z_outside(shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """Boolean (z,) vector: True for slices outside ``[lo, hi]`` (inclusive)."""
    z = np.arange(shape[0])
    return (z < lo) | (z > hi)


def body_orientation(labels: np.ndarray, connectivity: int = 26) -> int:
    """+1 when the superior direction is +z (liver above the left kidney), -1 when it is -z, 0 when
    the liver or the left kidney is missing. Uses the largest component of each."""
    comps = _Components(np.asarray(labels, dtype=np.uint8), connectivity)
    return _orientation(comps)


def _orientation(comps: _Components) -> int:
    liver, lk = comps.largest(LIVER), comps.largest(LEFT_KIDNEY)
    if liver is None or lk is None:
        return 0
    dz = comps.centroids[liver][0] - comps.centroids[lk][0]
    return 1 if dz > 0 else -1 if dz < 0 else 0


def postprocess(
    labels: np.ndarray,
    params: PostprocessParams | None = None,
    *,
    report: dict[str, Any] | None = None,
) -> np.ndarray:
    """Apply the post-processing rules (module docstring) to a uint8 ``(z, y, x)`` LPS label array.

    Returns a new array (the input is not modified). ``report``, when given, receives the number of
    voxels each rule removed (``kidney_largest``, ``liver_slab``, ``aorta_component``,
    ``orientation_duodenum_pancreas``, ``orientation_spleen``), ``applied`` (bool), ``slab``
    (inclusive z range or None) and ``orientation`` (+1, -1 or 0).
    """
    p = params or PostprocessParams()
    out = np.array(labels, dtype=np.uint8, copy=True)
    if out.ndim != 3:
        raise ValueError(f"postprocess expects a (z, y, x) label array, got shape {out.shape}")
    rep: dict[str, Any] = {} if report is None else report
    rep.update(applied=False, slab=None, orientation=0)
    if not p.enabled or out.shape[0] <= p.min_slices or not out.any():
        return out
    rep["applied"] = True
    comps = _Components(out, int(p.connectivity))
    cc = comps.cc

    # 1. kidneys: largest component each
    if p.kidney_largest:
        for organ in (RIGHT_KIDNEY, LEFT_KIDNEY):
            ids = comps.of(organ)
            if ids.size > 1:
                keep = comps.largest(organ)
                drop = np.isin(cc, ids[ids != keep])
                _remove(out, drop, rep, "kidney_largest")
        rep.setdefault("kidney_largest", 0)

    # the liver's slab
    liver = comps.largest(LIVER)
    slab: tuple[int, int] | None = None
    if liver is not None:
        z0, z1 = comps.z_range(liver)
        slab = (max(z0 - p.liver_slab_margin, 0), min(z1 + p.liver_slab_margin, out.shape[0] - 1))
    rep["slab"] = slab

    # 2. liver slab bounds liver, stomach, gallbladder, pancreas, adrenals
    if p.liver_slab and slab is not None:
        outside = _z_outside(out.shape, *slab)
        if outside.any():
            sub = out[outside]
            drop = np.isin(sub, SLAB_ORGANS)
            if drop.any():
                sub[drop] = 0
                out[outside] = sub
            rep["liver_slab"] = int(np.count_nonzero(drop))
        else:
            rep["liver_slab"] = 0

    # 3. aorta: the component with most voxels inside the slab
    if p.aorta_component:
        ids = comps.of(AORTA)
        rep["aorta_component"] = 0
        if ids.size > 1:
            if slab is not None:
                inside = np.bincount(cc[slab[0] : slab[1] + 1].ravel(), minlength=len(comps.counts))[ids]
                # most voxels in the slab; ties broken by total size
                order = np.lexsort((-comps.counts[ids], -inside))
                keep = int(ids[order[0]])
            else:
                keep = int(ids[np.argmax(comps.counts[ids])])
            drop = np.isin(cc, ids[ids != keep]) & (out == AORTA)
            _remove(out, drop, rep, "aorta_component")

    # 4. orientation rules
    if p.orientation_rules:
        sign = _orientation(comps)
        rep["orientation"] = sign
        rep["orientation_duodenum_pancreas"] = 0
        rep["orientation_spleen"] = 0
        lk = comps.largest(LEFT_KIDNEY)
        if sign != 0 and liver is not None and lk is not None:
            lz0, lz1 = comps.z_range(liver)
            kz0, kz1 = comps.z_range(lk)
            z = np.arange(out.shape[0])
            if sign > 0:
                above_liver = z > lz1
                spleen_ok = (z >= kz0) & (z <= lz1 + p.spleen_margin)
            else:
                above_liver = z < lz0
                spleen_ok = (z <= kz1) & (z >= lz0 - p.spleen_margin)
            if above_liver.any():
                sub = out[above_liver]
                drop = np.isin(sub, (DUODENUM, PANCREAS))
                sub[drop] = 0
                out[above_liver] = sub
                rep["orientation_duodenum_pancreas"] = int(np.count_nonzero(drop))
            not_ok = ~spleen_ok
            if not_ok.any():
                sub = out[not_ok]
                drop = sub == SPLEEN
                sub[drop] = 0
                out[not_ok] = sub
                rep["orientation_spleen"] = int(np.count_nonzero(drop))
    return out
