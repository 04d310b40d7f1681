"""Does the label-free histogram criterion pick the CycleGAN generators that translate best?

Trains the quick profile's CycleGAN (stage ``cyclegan``, the same domains and recipe as
``flarelib run 01_stage1``) with a validator every ``--every`` iterations that translates every
labelled CT once and computes, from the same fakes,

* the label-free criterion of :mod:`flarelib.train.translation_select` (``body_w1``: Wasserstein
  distance between the fakes' body histogram and the real T1W's), which stage 1 may use, and
* the truth (the phantom's ``diagnostics/translation/`` renderings, which the method never reads):
  organ error, pairs in order and SSIM, as ``flarelib translation-check`` computes them.

Prints the table by iteration, the rank correlation between the criterion and the organ error, and
what choosing by the criterion gives against the last generator and the best in hindsight. The
generator chosen by the criterion is ``OUT/model_best.pt``.

    python benchmarks/diag_cyclegan_selection.py --out /tmp/sel0 [--set run.train_seed=1] [--every 500]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from flarelib.data import discover, select_cases
from flarelib.datasets import ensure_data
from flarelib.evaluate.translation import translation_figures
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.train.stages import cyclegan_domains, train_cyclegan
from flarelib.train.translation_check import translation_arrays, truth_regions
from flarelib.train.translation_select import translation_validator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_params_arguments(ap)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--every", type=int, default=500)
    args = ap.parse_args()
    args.profile = args.profile or "quick"
    p = params_from_args(args)
    pre, c = p.preprocess, p.cyclegan
    root = ensure_data(p)
    cases = discover(p)
    a, b, _ = cyclegan_domains(p, cases, show=False)
    truth = [translation_arrays(p, root, case, c.target_sequence) for case in select_cases(cases, "labelled")]
    for vol, t in zip(a, truth, strict=True):
        if vol.image.shape != t["ct"].shape:
            raise SystemExit(f"{vol.name}: domain A {vol.image.shape} vs truth grid {t['ct'].shape}")

    def truth_figures(fakes: list[np.ndarray]) -> dict[str, float]:
        rows = []
        for fake, t in zip(fakes, truth, strict=True):
            regions, body = truth_regions(t)
            f = translation_figures(
                fake, t["true"], regions, body, scaling=pre.mr_scaling, percentiles=tuple(pre.mr_percentiles)
            )
            rows.append((f.organ_mae, f.order_fraction, f.ssim_body))
        mae, order, ssim = np.nanmean(np.array(rows), axis=0)
        return {"true_organ_mae": mae, "true_order": order, "true_ssim": ssim}

    validate = translation_validator(
        [v.image for v in a],
        [v.image for v in b],
        c.patch_zyx,
        overlap=c.translate_overlap,
        blend=c.translate_blend,
        extra=truth_figures,
    )
    t0 = time.perf_counter()
    res = train_cyclegan(p, args.out, a, b, progress=False, validate=validate, validate_every=args.every)
    print(f"trained {res.iteration} iterations in {time.perf_counter() - t0:.0f} s (validation included)")
    val = pd.DataFrame(res.val_history) if res.val_history else pd.read_csv(args.out / "val_log.csv")
    cols = ["iteration", "body_w1", "true_organ_mae", "true_order", "true_ssim"]
    print(val[cols].round(3).to_string(index=False))
    rho = spearmanr(val["body_w1"], val["true_organ_mae"]).statistic
    rho_o = spearmanr(val["body_w1"], val["true_order"]).statistic
    print(f"Spearman body_w1 vs organ error {rho:.2f}, vs pairs in order {rho_o:.2f} ({len(val)} points)")
    pick = val.loc[val["body_w1"].idxmin()]
    last = val.iloc[-1]
    best = val.loc[val["true_organ_mae"].idxmin()]
    for name, row in (("last", last), ("chosen by body_w1", pick), ("best in hindsight", best)):
        print(
            f"{name:>18}: iteration {int(row['iteration'])}, organ error {row['true_organ_mae']:.1f}, "
            f"order {row['true_order']:.2f}, SSIM {row['true_ssim']:.3f}, body_w1 {row['body_w1']:.1f}"
        )


if __name__ == "__main__":
    main()
