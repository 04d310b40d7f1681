"""What stage 1 would give with a perfect translation: its Mean Teacher trained on the phantom's true
T1W renderings of the labelled CT anatomy instead of a CycleGAN's fakes.

Everything else is stage 1 as ``flarelib run 01_stage1`` runs it (the run's params: labelled = the
14 labelled CT cases' anatomy with their CT labels, unlabelled = the real T1W volumes, validation =
the MR validation cases; the teacher then predicts every real T1W volume), and the T1W pseudo-labels
are scored per organ against the phantom's true labels, as the notebook does. The renderings come
from ``diagnostics/translation/``, which the method never reads: this is the ceiling of stage 1 at
the profile's training budget, what no CycleGAN can beat. Seconds: one stage-1 training.

    python benchmarks/diag_stage1_ceiling.py --out /tmp/ceiling [--set train.iterations=1500]
"""

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flarelib.data import discover, select_cases
from flarelib.data.phantom import truth_label_path
from flarelib.data.phantom.truth import translation_truth_file
from flarelib.datasets import ensure_data
from flarelib.evaluate.cases import per_case_table, score_file
from flarelib.infer.pipeline import CasePredictor, predict_paths
from flarelib.io import read_image
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.preprocess import prepare_case
from flarelib.train.sampling import FAKE_MR
from flarelib.train.stages import _load_all, load_train_volume, train_segmentation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_params_arguments(ap)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    args.profile = args.profile or "quick"
    p = params_from_args(args)
    pre, spacing, seq = p.preprocess, p.preprocess.target_spacing_zyx, p.cyclegan.target_sequence
    root = ensure_data(p)
    cases = discover(p)
    labelled = []
    for case in select_cases(cases, "labelled"):
        ct = load_train_volume(case, spacing, "zscore", pre)
        true = prepare_case(
            read_image(root / translation_truth_file(case.subset, case.case_id, seq)),
            None,
            spacing_zyx=spacing,
            intensity="zscore",
            modality="MR",
            preprocess=pre,
        )
        if true.image.shape != ct.image.shape:
            raise SystemExit(f"{case.case_id}: true {seq} {true.image.shape} vs CT {ct.image.shape}")
        labelled.append(
            dataclasses.replace(
                ct, image=true.image.astype(np.float32), name=f"{case.case_id}_true", modality=FAKE_MR
            )
        )
    mr_cases = select_cases(cases, "unlabelled", sequence=seq)
    unlabelled = _load_all(mr_cases, spacing, "zscore", pre, "unlabelled", False)
    val_cases = select_cases(cases, "validation")
    validation = _load_all(val_cases, spacing, "zscore", pre, "validation", False)
    t0 = time.perf_counter()
    res = train_segmentation(
        p, "stage1", args.out / "stage1", labelled, unlabelled, validation, progress=False
    )
    print(f"Mean Teacher on true {seq}: {res.iteration} iterations in {time.perf_counter() - t0:.0f} s")
    best = args.out / "stage1" / "model_best.pt"
    model = best if best.is_file() else args.out / "stage1" / "checkpoint.pt"
    predictor = CasePredictor.from_checkpoint(model, params=p)
    results = predict_paths(
        predictor, [c.image for c in mr_cases], args.out / "pseudo_labels", progress=False
    )
    rows = []
    for case, r in zip(mr_cases, results, strict=True):
        if r.ok:
            rows += score_file(r.output, truth_label_path(root, case.subset, case.case_id), case=case.case_id)
    scores = pd.DataFrame(rows)
    print(
        f"{seq} pseudo-labels of the {len(results)} real {seq} volumes vs their true labels ({model.name}):"
    )
    print(scores.groupby("organ")[["dsc", "nsd"]].mean().round(3).to_string())
    print(per_case_table(scores).round(3).to_string())


if __name__ == "__main__":
    main()
