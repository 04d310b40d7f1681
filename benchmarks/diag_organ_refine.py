"""Stage 1's fake T1W refined organ by organ (:mod:`flarelib.train.organ_refine`), against the truth.

From a finished ``01_stage1`` of the phantom (its CycleGAN and its T1W pseudo-labels): every
labelled CT is translated as stage 1 translates it, then each organ of its CT label is moved to
the median brightness of the real T1W inside the stage-1 pseudo-labels of that organ. The
translation check's figures (organ error over the 9 large organs, pairs in order, SSIM in the
body; the phantom's true T1W renderings, which the method never reads) for the fake as it is,
refined from the pseudo-labels, and refined from the real T1W's *true* labels (the refinement's
ceiling: perfect pseudo-labels), with the per-organ error of each.

    python benchmarks/diag_organ_refine.py --stage-dir outputs/quick/default/01_stage1   # ~1 min

``--train OUT --rounds N``: then N refinement rounds as ``01_stage1`` would run them
(:mod:`flarelib.study.refine_rounds`: targets from the previous round's pseudo-labels, the
Mean Teacher warm-started from the previous model for ``cyclegan.refine_iterations``), each round's
refined fakes and T1W pseudo-labels scored against the truth (one stage-1 training per round,
~4-5 min). ``--start-model`` / ``--start-labels`` start from a later round (e.g. the stage's
``stage1_round2/model_best.pt`` and ``pseudo_labels``); ``--control`` trains the same rounds on the
unrefined fakes.
"""

import argparse
from pathlib import Path

import pandas as pd

from flarelib.data import discover, select_cases
from flarelib.data.phantom import truth_label_path
from flarelib.datasets import ensure_data
from flarelib.infer.pipeline import output_name
from flarelib.io import read_image, read_label
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.preprocess import prepare_case
from flarelib.train.fake_mr import load_translator
from flarelib.train.organ_refine import organ_targets
from flarelib.train.translation_check import phantom_translation_table, summarise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_params_arguments(ap)
    ap.add_argument("--stage-dir", required=True, type=Path, help="a finished 01_stage1 folder")
    ap.add_argument("--train", type=Path, metavar="OUT", help="train refinement rounds into OUT")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--control",
        action="store_true",
        help="the rounds without refinement: the same warm start on the plain fakes",
    )
    ap.add_argument("--start-model", type=Path, help="round 1's model (default: STAGE_DIR/stage1's best)")
    ap.add_argument(
        "--start-labels",
        type=Path,
        help="its pseudo-labels (default: pseudo_labels_round1, else pseudo_labels)",
    )
    args = ap.parse_args()
    args.profile = args.profile or "quick"
    p = params_from_args(args)
    pre, spacing, c = p.preprocess, p.preprocess.target_spacing_zyx, p.cyclegan
    seq = c.target_sequence
    root = ensure_data(p)
    cases = discover(p)
    mr_cases = select_cases(cases, "unlabelled", sequence=seq)
    real, pseudo, true = [], [], []
    for case in mr_cases:
        image = read_image(case.image)
        pl = args.stage_dir / "pseudo_labels_round1" / output_name(case.image)
        if not pl.is_file():
            pl = args.stage_dir / "pseudo_labels" / output_name(case.image)
        a = prepare_case(image, read_label(pl), spacing_zyx=spacing, intensity="mr255", preprocess=pre)
        b = prepare_case(
            image,
            read_label(truth_label_path(root, case.subset, case.case_id)),
            spacing_zyx=spacing,
            intensity="mr255",
            preprocess=pre,
        )
        real.append(a.image)
        pseudo.append(a.label)
        true.append(b.label)
    targets = {
        "pseudo": organ_targets(real, pseudo, erode=p.cyclegan.refine_erode),
        "true labels": organ_targets(real, true, erode=p.cyclegan.refine_erode),
    }
    print(pd.DataFrame(targets).round(1).T.to_string())
    generator, _ = load_translator(args.stage_dir / "cyclegan" / "checkpoint.pt", p)
    parts = []
    for name, t in targets.items():
        part = phantom_translation_table(p, generator, sequence=seq, root=root, organ_targets=t)
        if parts:  # the fake and the CT once
            part = part[part["input"] == "refined"]
        parts.append(part.replace({"input": {"refined": f"fake refined ({name})", "ct": "CT as it is"}}))
    table = summarise(pd.concat(parts))
    print(f"{len(parts[0]) // 3} labelled CT vs their true {seq} (means over cases)")
    print(table[["organ_mae", "order_fraction", "ssim_body"]].round(3).to_string())
    errs = table[[c for c in table.columns if c.startswith("err_")]]
    errs.columns = [c[4:] for c in errs.columns]
    print("signed error per region (fake - true, 0..255):")
    print(errs.round(1).to_string())
    if args.train:
        train_rounds(p, args, root, mr_cases)


def train_rounds(p, args, root: Path, mr_cases) -> None:
    """Refinement rounds from the stage's model and pseudo-labels, each scored against the truth."""
    import time

    from flarelib.evaluate.cases import per_case_table, score_file
    from flarelib.infer.pipeline import CasePredictor, predict_paths
    from flarelib.labels import SHORT_NAMES
    from flarelib.study.refine_rounds import best_model, round_params, stage1_organ_targets
    from flarelib.train.stages import run_stage

    model = args.start_model or best_model(args.stage_dir / "stage1")
    start = args.start_labels or args.stage_dir / "pseudo_labels_round1"
    if not start.is_dir():
        start = args.stage_dir / "pseudo_labels"
    labels = [start / output_name(c.image) for c in mr_cases]
    for r in range(2, args.rounds + 2):
        targets = None if args.control else stage1_organ_targets(p, mr_cases, labels)
        if targets:
            generator, _ = load_translator(args.stage_dir / "cyclegan" / "checkpoint.pt", p)
            fig = summarise(phantom_translation_table(p, generator, root=root, organ_targets=targets))
            ref = fig.loc["refined"]
            print(
                f"round {r}'s fakes, refined ({len(targets)} organ targets): organ error "
                f"{ref['organ_mae']:.1f}, pairs in order {ref['order_fraction']:.3f}, "
                f"SSIM {ref['ssim_body']:.3f}"
            )
        t0 = time.perf_counter()
        out = args.train / f"stage1_round{r}"
        res = run_stage(
            round_params(p, model),
            "stage1",
            out,
            cyclegan=args.stage_dir / "cyclegan" / "checkpoint.pt",
            organ_targets=targets,
            progress=False,
        )
        model = best_model(out)
        predictor = CasePredictor.from_checkpoint(model, params=p)
        results = predict_paths(
            predictor, [c.image for c in mr_cases], args.train / f"pseudo_labels_round{r}", progress=False
        )
        labels = [x.output for x in results]
        rows = []
        for case, x in zip(mr_cases, results, strict=True):
            rows += score_file(x.output, truth_label_path(root, case.subset, case.case_id), case=case.case_id)
        scores = pd.DataFrame(rows)
        per_organ = scores.groupby("organ")["dsc"].mean()
        per_organ.index = [SHORT_NAMES[int(o)] for o in per_organ.index]
        mean = float(per_case_table(scores).iloc[-1]["dsc"])
        print(
            f"round {r}: {res.iteration} iterations, {time.perf_counter() - t0:.0f} s; "
            f"T1W pseudo-labels vs truth: mean DSC {mean:.3f} ({model.name})"
        )
        print(per_organ.round(2).to_frame().T.to_string())


if __name__ == "__main__":
    main()
