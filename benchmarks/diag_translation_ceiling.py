"""The best a pointwise intensity remapping CT -> T1W can do on the quick phantom.

Fits, on the phantom's paired truth (``diagnostics/translation/``, which the method never reads), the
conditional mean of the true T1W (0..255 as the CycleGAN sees MR) for each CT value (0..255 window,
air cleared as stage 1 does), applies that lookup table to every labelled CT, and scores it with the
translation check's figures (:func:`flarelib.evaluate.translation.translation_figures`). A generator
that only remaps intensities cannot beat this; a number above the issue's targets says the targets
need spatial context.

    python benchmarks/diag_translation_ceiling.py   # ~20 s on 2 cores
"""

import numpy as np
import pandas as pd

from flarelib.config import load_stage_params
from flarelib.data import discover, select_cases
from flarelib.datasets import ensure_data
from flarelib.evaluate.translation import translation_figures
from flarelib.preprocess import mr_scale
from flarelib.train.fake_mr import clear_ct_air, zero_outside_body
from flarelib.train.translation_check import translation_arrays, truth_regions


def main() -> None:
    p = load_stage_params("params/runs/default.yaml", "quick")
    pre = p.preprocess
    root = ensure_data(p)
    arrs = [translation_arrays(p, root, c, "T1W") for c in select_cases(discover(p), "labelled")]
    cts = np.concatenate([clear_ct_air(a["ct"]).ravel() for a in arrs])
    true = np.concatenate(
        [
            mr_scale(a["true"].astype(np.float32), pre.mr_scaling, tuple(pre.mr_percentiles)).ravel()
            for a in arrs
        ]
    )
    bins = np.clip(cts.round().astype(int), 0, 255)
    n = np.bincount(bins, None, 256)
    lut = np.where(n > 0, np.bincount(bins, true, 256) / np.maximum(n, 1), 0.0)
    rows = []
    for a in arrs:
        regions, body = truth_regions(a)
        fake = zero_outside_body(
            lut[np.clip(clear_ct_air(a["ct"]).round().astype(int), 0, 255)].astype(np.float32), a["ct"]
        )
        for name, image in (("lookup", fake), ("ct", a["ct"])):
            f = translation_figures(
                image, a["true"], regions, body, scaling=pre.mr_scaling, percentiles=tuple(pre.mr_percentiles)
            )
            rows.append(
                {"input": name, "organ_mae": f.organ_mae, "order": f.order_fraction, "ssim": f.ssim_body}
            )
    print(pd.DataFrame(rows).groupby("input").mean().round(3).to_string())


if __name__ == "__main__":
    main()
