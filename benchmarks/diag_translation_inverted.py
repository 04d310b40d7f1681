"""Label-free, pointwise CT -> T1W translations on the quick phantom, scored against the truth.

What the CycleGAN of stage 1 could start from without learning anything: the labelled CT (0..255
window, air cleared as stage 1 does) as it is, inverted inside its body (``cyclegan.ct_input:
inverted``: 255 - window, 0 outside; :func:`flarelib.train.fake_mr.generator_input`), and either
of the two quantile-matched to the real T1W volumes' body histogram (their Otsu body masks; what a
label-free histogram matching sees: increasing for the CT, decreasing for the inverted CT). Every
input is scored like a fake by the translation check's figures
(:func:`flarelib.evaluate.translation.translation_figures`: organ intensity error over the 9
large organs, fraction of organ pairs with fat and muscle in the true order, SSIM inside the
body) against the phantom's true T1W renderings (``diagnostics/``, which the method never reads).
``benchmarks/diag_translation_ceiling.py`` gives the best any pointwise remap fitted on the truth
could do.

    python benchmarks/diag_translation_inverted.py   # ~20 s on 2 cores
"""

import numpy as np
import pandas as pd

from flarelib.config import load_stage_params
from flarelib.data import discover, select_cases
from flarelib.datasets import ensure_data
from flarelib.evaluate.translation import translation_figures
from flarelib.train.fake_mr import clear_ct_air, ct_body_mask, generator_input, zero_outside_body
from flarelib.train.stages import load_train_volumes
from flarelib.train.translation_check import translation_arrays, truth_regions
from flarelib.train.translation_select import body_histogram, mr_body_histogram


def main() -> None:
    p = load_stage_params("params/runs/default.yaml", "quick")
    pre = p.preprocess
    root = ensure_data(p)
    cases = discover(p)
    arrs = [translation_arrays(p, root, c, "T1W") for c in select_cases(cases, "labelled")]
    mr = load_train_volumes(
        select_cases(cases, "unlabelled", sequence="T1W"), pre.target_spacing_zyx, "mr255", pre, "MR", False
    )
    cdf_mr = np.cumsum(mr_body_histogram([v.image for v in mr]))
    h_ct = sum(body_histogram(clear_ct_air(a["ct"]), ct_body_mask(a["ct"])) for a in arrs)
    cdf_ct = np.cumsum(h_ct) / h_ct.sum()
    centers = np.arange(256) + 0.5
    match_up = np.interp(cdf_ct, cdf_mr / cdf_mr[-1], centers)  # CT quantile q -> T1W quantile q
    match_down = np.interp(1.0 - cdf_ct, cdf_mr / cdf_mr[-1], centers)  # ... -> T1W quantile 1 - q
    rows = []
    for a in arrs:
        regions, body = truth_regions(a)
        ct = clear_ct_air(a["ct"])
        index = np.clip(ct.round().astype(int), 0, 255)
        inputs = {
            "CT as it is": a["ct"],
            "CT, histogram-matched": zero_outside_body(match_up[index].astype(np.float32), a["ct"]),
            "inverted CT": generator_input(a["ct"], "zero", "inverted"),
            "inverted CT, histogram-matched": zero_outside_body(
                match_down[index].astype(np.float32), a["ct"]
            ),
        }
        for name, image in inputs.items():
            f = translation_figures(
                image, a["true"], regions, body, scaling=pre.mr_scaling, percentiles=tuple(pre.mr_percentiles)
            )
            rows.append(
                {"input": name, "organ_error": f.organ_mae, "order": f.order_fraction, "ssim": f.ssim_body}
            )
    table = pd.DataFrame(rows).groupby("input", sort=False).mean()
    print(f"{len(arrs)} labelled CT vs their true T1W (means over cases)")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
