"""FLARE24-exact organ scores: Dice (DSC) and normalized surface Dice (NSD), with FLARE's rules.

Reproduces the official FLARE24 Task 2/3 evaluation script, JunMa11/FLARE
``FLARE24/T2andT3_FLARE24_DSC_NSD_Eval.py`` (commit aad2cc28), which scores each case and organ
with DeepMind's surface-distance code (``from SurfaceDice import ...``: FLARE's copy of DeepMind's
original module, the same lookup table and algorithm as the ``surface-distance`` package):

* per-organ NSD tolerance in mm (:data:`TOLERANCE_MM`), spacing from the ground-truth header;
* organ absent in both ground truth and prediction: DSC = NSD = 1; present in only one: 0 and 0
  (decided on the whole volume, before any z-range restriction);
* ``DSC < 0.2``: NSD = 0 (not computed);
* aorta, IVC and esophagus (ids 5, 6, 10): both masks are restricted to the ground truth's z-range
  with the slice ``[z_lower:z_upper]``, which drops the last ground-truth slice. That is the
  default here (``official_zrange_off_by_one=True``); ``False`` uses the inclusive range.
  When that slice is empty (the ground-truth organ lies in one slice) the official script crashes;
  here the organ scores NaN with a warning.
* The official CSV rounds to 4 decimals; the values here are not rounded.

The surfels are :mod:`flarelib.evaluate.surfels`; the "within tolerance" test (``method="probe"``
or ``"edt"``) and the bounding boxes are :mod:`flarelib.evaluate.surface`.

Arrays are (z, y, x) label volumes; spacings are (z, y, x) in mm. The official script runs on
nibabel's (x, y, z) arrays; the neighbour code and the distance evaluation here use the same
(x, y, z) conventions, so the surfel areas and distances are identical.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from flarelib.evaluate.surface import (
    _WITHIN,
    Method,
    _label_boxes,
    _nsd_of_box,
    _tight_box,
    _union_box,
)
from flarelib.labels import ORGAN_IDS, SHORT_NAMES

#: NSD tolerance per FLARE organ id, in mm (official ``label_tolerance``, same order as the ids).
TOLERANCE_MM: dict[int, float] = {
    1: 5.0,  # liver
    2: 3.0,  # right kidney
    3: 3.0,  # spleen
    4: 5.0,  # pancreas
    5: 2.0,  # aorta
    6: 2.0,  # inferior vena cava
    7: 2.0,  # right adrenal gland
    8: 2.0,  # left adrenal gland
    9: 2.0,  # gallbladder
    10: 3.0,  # esophagus
    11: 5.0,  # stomach
    12: 7.0,  # duodenum
    13: 3.0,  # left kidney
}
#: Organs scored only inside the ground truth's z-range (aorta, IVC, esophagus).
Z_RANGE_ORGANS: frozenset[int] = frozenset({5, 6, 10})
#: Below this DSC the official script sets NSD = 0 without computing it (FLARE23 used 0.1).
NSD_MIN_DSC = 0.2


def _spacing3(spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    """The spacing as three positive finite floats (z, y, x) in mm; ValueError otherwise."""
    values = tuple(float(s) for s in spacing_zyx)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing_zyx must be three positive finite mm values, got {spacing_zyx!r}")
    return values  # type: ignore[return-value]


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    """ValueError unless ``gt`` and ``pred`` are 3-D (z, y, x) arrays of one shape."""
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(
            f"ground truth and prediction must be 3-D of one shape, got {gt.shape} and {pred.shape}"
        )


def normalized_surface_dice(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float,
    *,
    method: Method = "probe",
) -> float:
    """DeepMind's surface Dice at ``tolerance_mm`` of two boolean (z, y, x) masks, spacing in mm.

    Equals ``compute_surface_dice_at_tolerance(compute_surface_distances(gt.T, pred.T,
    spacing_zyx[::-1]), tolerance_mm)`` (the official script's call on nibabel (x, y, z) arrays)
    to rounding: only the summation order of the surfel areas differs. Both empty: NaN; one empty:
    0. No FLARE rules here (absence, DSC < 0.2, z-range): see :func:`score_case`.
    """
    if method not in _WITHIN:
        raise ValueError(f"method must be one of {sorted(_WITHIN)}, got {method!r}")
    gt_mask, pred_mask = np.asarray(gt_mask, bool), np.asarray(pred_mask, bool)
    _check_pair(gt_mask, pred_mask)
    spacing = _spacing3(spacing_zyx)
    box = _tight_box(gt_mask | pred_mask)
    if box is None:
        return math.nan
    return _nsd_of_box(gt_mask[box], pred_mask[box], spacing, float(tolerance_mm), method)


def score_case(
    gt: np.ndarray,
    pred: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    organs: Iterable[int] = ORGAN_IDS,
    not_annotated: Iterable[int] = (),
    official_zrange_off_by_one: bool = True,
    tolerance_mm: Mapping[int, float] | None = None,
    method: Method = "probe",
) -> dict[int, tuple[float, float]]:
    """FLARE24 scores of one case: ``{organ id: (DSC, NSD)}`` as fractions in [0, 1].

    ``gt`` and ``pred`` are (z, y, x) integer label volumes with FLARE ids on one grid;
    ``spacing_zyx`` is the ground truth's spacing in mm. Organs in ``not_annotated`` are omitted
    (never scored as background). ``tolerance_mm`` overrides entries of :data:`TOLERANCE_MM`.
    Rules of the official script: see the module docstring. A z-ranged organ whose ground truth
    lies in a single slice scores (NaN, NaN) with ``official_zrange_off_by_one`` (the official
    script crashes there).
    """
    if method not in _WITHIN:
        raise ValueError(f"method must be one of {sorted(_WITHIN)}, got {method!r}")
    gt, pred = np.asarray(gt), np.asarray(pred)
    _check_pair(gt, pred)
    for name, arr in (("gt", gt), ("pred", pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise TypeError(f"{name} must be an integer label volume, got dtype {arr.dtype}")
    spacing = _spacing3(spacing_zyx)
    tolerances = {**TOLERANCE_MM, **(tolerance_mm or {})}
    skip = {int(o) for o in not_annotated}
    wanted = [int(o) for o in organs if int(o) not in skip]
    if not wanted:
        return {}
    unknown = [o for o in wanted if o not in tolerances]
    if unknown:
        raise ValueError(f"no NSD tolerance for organ ids {unknown}")
    top = max(wanted)
    gt_boxes = _label_boxes(gt.view(np.uint8) if gt.dtype == bool else gt, top)
    pred_boxes = _label_boxes(pred.view(np.uint8) if pred.dtype == bool else pred, top)

    scores: dict[int, tuple[float, float]] = {}
    for organ in wanted:
        gt_box, pred_box = gt_boxes[organ - 1], pred_boxes[organ - 1]
        if gt_box is None and pred_box is None:
            scores[organ] = (1.0, 1.0)
            continue
        if gt_box is None or pred_box is None:
            scores[organ] = (0.0, 0.0)
            continue
        box = _union_box(gt_box, pred_box)
        if organ in Z_RANGE_ORGANS:
            z_lower = gt_box[0].start
            z_stop = gt_box[0].stop - 1 if official_zrange_off_by_one else gt_box[0].stop
            if z_stop <= z_lower:
                warnings.warn(
                    f"organ {organ} ({SHORT_NAMES.get(organ, organ)}): the ground truth lies in one "
                    "slice, so the official z-range [z_lower:z_upper] is empty (the official script "
                    "crashes); scored NaN",
                    RuntimeWarning,
                    stacklevel=2,
                )
                scores[organ] = (math.nan, math.nan)
                continue
            box = (slice(max(box[0].start, z_lower), min(box[0].stop, z_stop)), box[1], box[2])
        gt_crop, pred_crop = gt[box] == organ, pred[box] == organ
        if organ in Z_RANGE_ORGANS:  # the z cut can shrink the box: make it tight again
            tight = _tight_box(gt_crop | pred_crop)  # never None: gt has voxels in slice z_lower
            gt_crop, pred_crop = gt_crop[tight], pred_crop[tight]
        n_gt, n_pred = int(np.count_nonzero(gt_crop)), int(np.count_nonzero(pred_crop))
        dsc = 2 * int(np.count_nonzero(gt_crop & pred_crop)) / (n_gt + n_pred)
        if dsc < NSD_MIN_DSC:
            nsd = 0.0
        else:
            nsd = _nsd_of_box(gt_crop, pred_crop, spacing, float(tolerances[organ]), method)
        scores[organ] = (dsc, nsd)
    return scores
