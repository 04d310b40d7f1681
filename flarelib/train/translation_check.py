"""``flarelib translation-check``: a CycleGAN's fake MR of every labelled phantom CT against the
true MR rendering of the same anatomy (the phantom's ``diagnostics/translation/``, which the method
never reads), with the CT as it is beside it, by :func:`flarelib.evaluate.translation.translation_figures`.
On real data (:func:`real_translation_table`): the fake's organ brightness against the labelled
real MR validation volumes' organs.

Each case goes through the training path (:func:`flarelib.preprocess.prepare_case`: LPS, training
spacing): the CT windowed to 0..255 is translated by the generator (:func:`translate_volume`, the
same tiles as stage 1), the true MR, the label and the tissue map come on the same grid.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from flarelib.config import Params
from flarelib.data import discover, load_case, select_cases
from flarelib.data.layout import Case
from flarelib.data.phantom.shapes import FAT_TISSUES, Tissue
from flarelib.data.phantom.truth import DIAGNOSTICS, tissue_file, translation_truth_file
from flarelib.datasets import ensure_data
from flarelib.errors import FlareInputError
from flarelib.evaluate.translation import organ_regions, summarise, translation_figures
from flarelib.io import read_image, read_label
from flarelib.preprocess import prepare_case
from flarelib.train.cyclegan import translate_volume
from flarelib.train.fake_mr import generator_input, zero_outside_body

__all__ = [
    "phantom_translation_table",
    "real_translation_table",
    "summarise",
    "translation_arrays",
    "truth_regions",
]

HELP = "a CycleGAN's fake MR vs the true MR of the same phantom anatomy (intensity error, order, SSIM)"

#: Tissue ids outside the patient (the body mask of the SSIM is everything else).
_OUTSIDE = (int(Tissue.AIR), int(Tissue.COUCH))


def translation_arrays(params: Params, root: Path, case: Case, sequence: str) -> dict[str, np.ndarray]:
    """One labelled CT case of the phantom beside its true ``sequence`` rendering, both prepared on
    the training grid ((z, y, x) at ``preprocess.target_spacing_zyx``): ``ct`` (0..255 window),
    ``label`` (its CT label), ``true`` (the true MR, 0..255) and ``tissue`` (the tissue map)."""
    truth_file = root / translation_truth_file(case.subset, case.case_id, sequence)
    if not truth_file.is_file():
        raise FlareInputError(
            truth_file,
            f"no true {sequence} rendering of this CT case",
            f"add {sequence} to phantom.translation_truth and generate the phantom again",
        )
    pre, spacing = params.preprocess, params.preprocess.target_spacing_zyx
    image, label = load_case(case)
    tissue = read_label(root / tissue_file(case.subset, case.case_id))
    ct = prepare_case(image, label, spacing_zyx=spacing, intensity="ct255", modality="CT", preprocess=pre)
    true = prepare_case(
        read_image(truth_file), tissue, spacing_zyx=spacing, intensity="mr255", preprocess=pre
    )
    if true.image.shape != ct.image.shape:
        raise FlareInputError(truth_file, f"grid {true.image.shape} != CT {ct.image.shape}", "regenerate")
    return {"ct": ct.image, "label": ct.label, "true": true.image, "tissue": true.label}


def truth_regions(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The regions the translation figures measure on one case's arrays (:func:`translation_arrays`):
    the large organs of its CT label, fat and muscle of the phantom's tissue map; and the body
    (everything but air and couch), where SSIM is averaged."""
    regions = organ_regions(arrays["label"])
    regions["fat"] = np.isin(arrays["tissue"], FAT_TISSUES)
    regions["muscle"] = arrays["tissue"] == int(Tissue.MUSCLE)
    return regions, ~np.isin(arrays["tissue"], _OUTSIDE)


def phantom_translation_table(
    params: Params,
    generator: nn.Module,
    *,
    sequence: str | None = None,
    root: Path | None = None,
    progress: bool = False,
    organ_targets: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """One row per labelled CT case and input (``fake``: the generator's output; ``ct``: the CT as
    it is; with ``organ_targets`` also ``refined``: the fake moved organ by organ to those
    brightnesses, as a stage-1 refinement round trains on it, :mod:`flarelib.train.organ_refine`)
    with the figures of :mod:`flarelib.evaluate.translation` and per-region errors.

    ``root``: the phantom's folder as ``params`` lays it out (default: the run's data, generated
    when missing)."""
    from tqdm.auto import tqdm

    if params.data.track != "phantom":
        raise FlareInputError(
            "data.track", "the translation truth exists on the phantom only", "--data phantom"
        )
    seq = sequence or params.cyclegan.target_sequence or "T1W"
    root = ensure_data(params) if root is None else Path(root)
    cases = select_cases(discover(params), "labelled")
    c, pre = params.cyclegan, params.preprocess
    rows: list[dict[str, Any]] = []
    for case in tqdm(cases, desc=f"CT -> {seq} check", disable=not progress):
        arr = translation_arrays(params, root, case, seq)
        with torch.no_grad():
            ct_in = generator_input(arr["ct"], c.fake_background, c.ct_input)
            fake = translate_volume(
                generator, ct_in, c.patch_zyx, c.translate_overlap, blend=c.translate_blend
            )
        if c.fake_background == "zero":
            fake = zero_outside_body(fake, arr["ct"])
        inputs = {"fake": fake, "ct": arr["ct"]}
        if organ_targets:
            from flarelib.preprocess import mr_scale
            from flarelib.train.organ_refine import refine_fake

            fake255 = np.asarray(mr_scale(fake, pre.mr_scaling, tuple(pre.mr_percentiles)))
            refined = refine_fake(fake255, arr["label"], organ_targets, erode=c.refine_erode)
            if c.fake_background == "zero":
                refined = zero_outside_body(refined, arr["ct"])
            inputs["refined"] = refined
        regions, body = truth_regions(arr)
        for name, image in inputs.items():
            fig = translation_figures(
                image,
                arr["true"],
                regions,
                body,
                scaling=pre.mr_scaling,
                percentiles=tuple(pre.mr_percentiles),
            )
            rows.append({"case": case.case_id, "input": name, "sequence": seq, **fig.as_row()})
    return pd.DataFrame(rows)


def real_translation_table(
    params: Params, generator: nn.Module, *, max_ct: int = 0, progress: bool = False
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Real data has no MR of the CT's own anatomy, but its labelled MR validation volumes show
    how bright each organ is in the target sequence. Per organ annotated there (FLARE name): the
    mean intensity (0..255 by ``preprocess.mr_scaling``, as the CycleGAN sees MR) of the fake MR
    over the labelled CT's organ voxels (``fake``), of the CT as it is (``ct``), and of the real
    MR over its labelled organs (``real``); and per input the organ error (mean |input - real|) and
    the fraction of organ pairs in the real MR's brightness order. The labels of the validation
    volumes only measure here, never train. ``max_ct``: the first N labelled CT only (0: all).
    Returns ``(table, figures)``."""
    import itertools

    from tqdm.auto import tqdm

    from flarelib.labels import ORGANS
    from flarelib.preprocess import mr_scale

    pre, spacing, c = params.preprocess, params.preprocess.target_spacing_zyx, params.cyclegan
    cases = discover(params)
    val = select_cases(cases, "validation")
    if not val:
        raise FlareInputError("data", "no labelled MR validation volumes", "check data.subsets (role mr_val)")
    organs = sorted(set.intersection(*(set(v.label_map.annotated) if v.label_map else set() for v in val)))
    sums = {k: {o: [] for o in organs} for k in ("fake", "ct", "real")}

    def add(kind: str, image: np.ndarray, label: np.ndarray) -> None:
        for o in organs:
            if (label == o).any():
                sums[kind][o].append(float(image[label == o].mean()))

    for case in tqdm(val, desc="real MR", disable=not progress):
        image, label = load_case(case)
        mr = prepare_case(image, label, spacing_zyx=spacing, intensity="mr255", modality="MR", preprocess=pre)
        add("real", mr.image, mr.label)
    ct_cases = select_cases(cases, "labelled")
    for case in tqdm(ct_cases[:max_ct] if max_ct else ct_cases, desc="CT -> fake", disable=not progress):
        image, label = load_case(case)
        ct = prepare_case(image, label, spacing_zyx=spacing, intensity="ct255", modality="CT", preprocess=pre)
        ct_in = generator_input(ct.image, c.fake_background, c.ct_input)
        with torch.no_grad():
            fake = translate_volume(
                generator, ct_in, c.patch_zyx, c.translate_overlap, blend=c.translate_blend
            )
        if c.fake_background == "zero":
            fake = zero_outside_body(fake, ct.image)
        add("fake", mr_scale(fake.astype(np.float32), pre.mr_scaling, tuple(pre.mr_percentiles)), ct.label)
        add("ct", ct.image, ct.label)
    table = pd.DataFrame(
        {k: {ORGANS[o]: float(np.mean(v[o])) if v[o] else np.nan for o in organs} for k, v in sums.items()}
    )
    figures: dict[str, float] = {}
    pairs = list(itertools.combinations(table.index, 2))
    for kind in ("fake", "ct"):
        figures[f"{kind}_organ_error"] = float((table[kind] - table["real"]).abs().mean())
        same = [
            np.sign(table.at[a, kind] - table.at[b, kind])
            == np.sign(table.at[a, "real"] - table.at[b, "real"])
            for a, b in pairs
        ]
        figures[f"{kind}_order_fraction"] = float(np.mean(same)) if same else float("nan")
    return table, figures


def _run(args: argparse.Namespace) -> int:
    from flarelib.params_cli import params_from_args
    from flarelib.paths import atomic_write_text, stage_dir
    from flarelib.train.fake_mr import load_translator

    params = params_from_args(args)
    ckpt = (
        Path(args.cyclegan)
        if args.cyclegan
        else stage_dir(params.run.profile, params.run.name, "cyclegan") / "checkpoint.pt"
    )
    from flarelib.train.stages import training_hash

    # a CycleGAN trained with other params (e.g. another cyclegan.ct_input) is checked with a warning
    generator, _ = load_translator(ckpt, params, expect_hash=training_hash(params, "cyclegan"))
    if params.data.track != "phantom":
        table, figures = real_translation_table(
            params, generator, max_ct=args.max_ct, progress=not args.no_progress
        )
        print(f"CT -> {params.cyclegan.target_sequence}: organ means (0..255) of the fake MR and the CT")
        print(f"vs the labelled real MR validation volumes ({ckpt}):")
        print(table.round(1).to_string())
        print(", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
        if args.out:
            atomic_write_text(Path(args.out), table.to_csv())
        return 0
    table = phantom_translation_table(
        params, generator, sequence=args.sequence, progress=not args.no_progress
    )
    summary = summarise(table)
    main = summary[["organ_mae", "order_fraction", "ssim_body"]]
    print(
        f"CT -> {table['sequence'].iloc[0]} translation vs the phantom's truth "
        f"({len(table) // 2} CT cases, {ckpt}):"
    )
    print(main.round(3).to_string())
    if args.out:
        atomic_write_text(Path(args.out), table.to_csv(index=False))
        print(f"per case: {args.out}")
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``flarelib translation-check``."""
    from flarelib.params_cli import add_params_arguments

    p = subparsers.add_parser(
        "translation-check",
        help=HELP,
        description=f"{HELP}: the phantom's {DIAGNOSTICS}/translation/ renderings, CT as it is beside it.",
    )
    add_params_arguments(p)
    p.add_argument(
        "--cyclegan", metavar="CKPT", help="default outputs/<profile>/<run>/cyclegan/checkpoint.pt"
    )
    p.add_argument("--sequence", help="target sequence (default cyclegan.target_sequence)")
    p.add_argument("--out", metavar="CSV", help="write the per-case table here")
    p.add_argument("--max-ct", type=int, default=0, help="real data: the first N labelled CT only (0: all)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)
    return p
