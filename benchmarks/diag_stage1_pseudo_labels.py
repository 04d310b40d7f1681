"""Stage 1's T1W pseudo-labels per organ, from a CycleGAN's fakes or from a perfect translation.

Stage 1 as ``flarelib run 01_stage1`` runs it (the run's params: labelled = the 14 labelled CT
cases' anatomy with their CT labels, unlabelled = the real T1W volumes, validation = the MR
validation cases; the teacher then predicts every real T1W volume), with the labelled images either

* ``--cyclegan CKPT``: the fakes of that CycleGAN's generator, exactly as stage 1 makes them, or
* ``--truth`` (default): the phantom's true T1W renderings of the same anatomy
  (``diagnostics/translation/``, which the method never reads), i.e. a perfect translation: the
  ceiling of stage 1 at the profile's training budget, which no CycleGAN can beat, or
* ``--inverted-ct``: no CycleGAN at all, the CT inverted inside its body
  (:func:`flarelib.train.fake_mr.generator_input` with ``inverted``) as the fake,

and the T1W pseudo-labels scored per organ against the phantom's true labels, as the notebook
scores them. The profile's ``train.stage1_intensity_aug`` applies (the quick profile's: gin;
``--set train.stage1_intensity_aug=none`` for stage 1 without it); ``--set`` changes the training
as in any run. Time: one stage-1 training (about 6 minutes at the quick profile on 2 cores).
``--model CKPT`` trains nothing and scores the T1W predictions of that model (e.g. the CT-only
baseline's, for comparison).

    python benchmarks/diag_stage1_pseudo_labels.py --out /tmp/ceiling [--set train.iterations=1500]
    python benchmarks/diag_stage1_pseudo_labels.py --out /tmp/fake \
        --cyclegan outputs/quick/proposed/01_stage1/cyclegan/checkpoint.pt
"""

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flarelib.config import Params
from flarelib.data import discover, select_cases
from flarelib.data.layout import Case
from flarelib.data.phantom import truth_label_path
from flarelib.data.phantom.truth import translation_truth_file
from flarelib.datasets import ensure_data
from flarelib.evaluate.cases import per_case_table, score_file
from flarelib.infer.pipeline import CasePredictor, predict_paths
from flarelib.io import read_image
from flarelib.labels import SHORT_NAMES
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.preprocess import prepare_case, zscore
from flarelib.study.refine_rounds import best_model
from flarelib.train.fake_mr import generator_input
from flarelib.train.sampling import FAKE_MR, TrainVolume
from flarelib.train.stages import fake_mr_volumes, load_train_volume, load_train_volumes, train_segmentation


def true_rendering(p: Params, root: Path, case: Case) -> TrainVolume:
    """A labelled CT case as stage 1's labelled data would be after a perfect translation: the
    phantom's true rendering of its anatomy as the target sequence, z-scored like a fake, with the
    CT's label."""
    pre, spacing, seq = p.preprocess, p.preprocess.target_spacing_zyx, p.cyclegan.target_sequence
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
    image = true.image.astype(np.float32)
    return dataclasses.replace(ct, image=image, name=f"{case.case_id}_true", modality=FAKE_MR)


def inverted_ct(p: Params, case: Case) -> TrainVolume:
    """A labelled CT case inverted inside its body (0 outside), z-scored like a fake, its label kept."""
    ct = load_train_volume(case, p.preprocess.target_spacing_zyx, "ct255", p.preprocess)
    image = zscore(generator_input(ct.image, "zero", "inverted")).astype(np.float32)
    return dataclasses.replace(ct, image=image, name=f"{case.case_id}_inverted", modality=FAKE_MR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_params_arguments(ap)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--cyclegan", metavar="CKPT", help="labelled: its fakes (default: the truth)")
    ap.add_argument("--inverted-ct", action="store_true", help="labelled: the CT inverted in its body")
    ap.add_argument("--model", metavar="CKPT", help="score this segmentation model; train nothing")
    args = ap.parse_args()
    args.profile = args.profile or "quick"
    p = params_from_args(args)
    pre, spacing, seq = p.preprocess, p.preprocess.target_spacing_zyx, p.cyclegan.target_sequence
    root = ensure_data(p)
    cases = discover(p)
    mr_cases = select_cases(cases, "unlabelled", sequence=seq)
    if args.model:
        model = Path(args.model)
    else:
        ct_cases = select_cases(cases, "labelled")
        if args.cyclegan:
            labelled, _ = fake_mr_volumes(p, ct_cases, args.cyclegan, torch.device("cpu"), False)
        elif args.inverted_ct:
            labelled = [inverted_ct(p, case) for case in ct_cases]
        else:
            labelled = [true_rendering(p, root, case) for case in ct_cases]
        unlabelled = load_train_volumes(mr_cases, spacing, "zscore", pre, "unlabelled", False)
        val_cases = select_cases(cases, "validation")
        validation = load_train_volumes(val_cases, spacing, "zscore", pre, "validation", False)
        t0 = time.perf_counter()
        res = train_segmentation(
            p, "stage1", args.out / "stage1", labelled, unlabelled, validation, progress=False
        )
        source = f"fakes of {args.cyclegan}" if args.cyclegan else f"true {seq}"
        if args.inverted_ct:
            source = "the inverted CT"
        print(f"Mean Teacher on {source}: {res.iteration} iterations in {time.perf_counter() - t0:.0f} s")
        model = best_model(args.out / "stage1")
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
    per_organ = scores.groupby("organ")[["dsc", "nsd"]].mean()
    per_organ.index = [SHORT_NAMES[int(o)] for o in per_organ.index]
    print(per_organ.T.round(3).to_string())
    print(per_case_table(scores).round(3).to_string())


if __name__ == "__main__":
    main()
