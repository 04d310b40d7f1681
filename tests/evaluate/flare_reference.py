"""The independent reference for FLARE scoring: the official FLARE24 per-case loop, transcribed.

JunMa11/FLARE ``FLARE24/T2andT3_FLARE24_DSC_NSD_Eval.py`` scores each case organ by organ with
DeepMind's surface-distance code; :func:`official_scores` is that loop line for line, calling the
``surface-distance`` package (the same code as the script's ``SurfaceDice``; a dev dependency,
imported on first call). flarelib's :func:`flarelib.evaluate.scoring.score_case` must equal it.
It is never used to compute flarelib's own scores: it exists only to check them, here in
tests/evaluate and in ``benchmarks/bench_metrics.py`` (which imports this file, so keep it free of
pytest).

Like the script, it works on nibabel's (x, y, z) arrays with the header's (x, y, z) spacing in mm:
pass ``gt.T, pred.T, spacing_zyx[::-1]`` for flarelib's (z, y, x) volumes.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

# The official script's table, verbatim (order = FLARE ids 1..13; tolerances in mm).
LABEL_TOLERANCE = OrderedDict(
    {
        "Liver": 5, "RK": 3, "Spleen": 3, "Pancreas": 5, "Aorta": 2, "IVC": 2, "RAG": 2, "LAG": 2,
        "Gallbladder": 2, "Esophagus": 3, "Stomach": 5, "Duodenum": 7, "LK": 3,
    }
)  # fmt: skip


def official_scores(
    gt_data: np.ndarray, seg_data: np.ndarray, case_spacing
) -> dict[int, tuple[float, float]]:
    """The official per-case loop, line for line, on (x, y, z) uint8 arrays with DeepMind's package.

    ``case_spacing`` is (x, y, z) in mm (the script's ``gt_nii.header.get_zooms()``). Returns
    ``{organ id: (DSC, NSD)}`` for ids 1..13. Raises ImportError without ``surface-distance``.
    """
    from surface_distance import (
        compute_dice_coefficient,
        compute_surface_dice_at_tolerance,
        compute_surface_distances,
    )

    def find_lower_upper_zbound(organ_mask):
        organ_mask = np.uint8(organ_mask)
        assert np.max(organ_mask) == 1, "mask label error!"  # the script: print(...)
        z_index = np.where(organ_mask > 0)[2]
        return np.min(z_index), np.max(z_index)

    out = {}
    for i, organ in enumerate(LABEL_TOLERANCE.keys(), 1):
        if np.sum(gt_data == i) == 0 and np.sum(seg_data == i) == 0:
            DSC_i, NSD_i = 1, 1
        elif np.sum(gt_data == i) == 0 and np.sum(seg_data == i) > 0:
            DSC_i, NSD_i = 0, 0
        elif np.sum(gt_data == i) > 0 and np.sum(seg_data == i) == 0:
            DSC_i, NSD_i = 0, 0
        else:
            if i == 5 or i == 6 or i == 10:
                z_lower, z_upper = find_lower_upper_zbound(gt_data == i)
                organ_i_gt = gt_data[:, :, z_lower:z_upper] == i
                organ_i_seg = seg_data[:, :, z_lower:z_upper] == i
            else:
                organ_i_gt, organ_i_seg = gt_data == i, seg_data == i
            DSC_i = compute_dice_coefficient(organ_i_gt, organ_i_seg)
            if DSC_i < 0.2:
                NSD_i = 0
            else:
                surface_distances = compute_surface_distances(organ_i_gt, organ_i_seg, case_spacing)
                NSD_i = compute_surface_dice_at_tolerance(surface_distances, LABEL_TOLERANCE[organ])
        out[i] = (float(DSC_i), float(NSD_i))
    return out
