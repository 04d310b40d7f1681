"""Scoring folders of NIfTI labels, the paper's Table-4 summary, and the ``flarelib evaluate`` CLI.

:func:`evaluate_folder` pairs every ground truth with the prediction of the same file name and
scores it with :func:`flarelib.evaluate.scoring.score_case` (spacing from the ground-truth header,
in mm; arrays are read as (z, y, x)). :func:`summary_table` turns the per-case rows into the
paper's Table 4 (percent); :func:`format_table_markdown` prints it. ``flarelib evaluate`` does all
three and writes the per-case CSV; ``--manifest``/``--dataset`` map the ground truth's own label
ids to FLARE ids with the dataset's entry in a dataset.json (:class:`flarelib.data.manifest.Manifest`);
without them the ground truth must hold FLARE ids 0..13 (any other id is an error, never ignored).

FLARE's rule scores an organ absent from both the prediction and the ground truth as DSC = NSD = 1
(an all-zero prediction of a case showing 4 organs scores 9 of 13 organs perfectly); the command
prints how many scores came from that rule.

Files: NIfTI, ``.mha``/``.nrrd``, or a folder holding one DICOM series as the ground truth (its
prediction is ``PRED/<folder name>.nii.gz``, or the file ``PRED``; ``FOLDER::SERIES_UID`` for one
of several series). The CSV (``--out``) is checked before any scoring: never an input, never a
folder, its folder writable, and an existing file only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flarelib.errors import FlareInputError
from flarelib.evaluate.scoring import score_case
from flarelib.evaluate.surface import Method
from flarelib.labels import ORGAN_IDS, SHORT_NAMES, LabelMap

if TYPE_CHECKING:
    import pandas as pd

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _case_pairs(pred: Path, gt: Path, gt_glob: str) -> list[tuple[str, Path, Path]]:
    """``(case, pred_file, gt_file)`` for every ground truth: the prediction has the same file name
    (a DICOM ground-truth folder ``NAME`` or ``NAME::UID``: ``NAME.nii.gz`` in a prediction folder)."""
    from flarelib.io import dicom_series, split_series

    folder, uid = split_series(gt)
    if uid is not None or (
        gt.is_dir() and not any(p.is_file() for p in gt.glob(gt_glob)) and dicom_series(gt)
    ):
        if not folder.is_dir():
            raise FlareInputError(folder, "ground-truth DICOM folder not found", "pass an existing folder")
        if not pred.exists():
            raise FlareInputError(pred, "prediction not found", "pass an existing label file or folder")
        name = folder.name + (f"_{uid}" if uid else "")
        pred_file = pred / f"{name}.nii.gz" if pred.is_dir() else pred
        if not pred_file.is_file():
            raise FlareInputError(
                pred_file, f"no prediction for the DICOM ground truth {gt}", f"name it {name}.nii.gz"
            )
        return [(name, pred_file, gt)]
    if not gt.exists():
        raise FlareInputError(gt, "ground truth not found", "pass an existing label file or folder")
    if not pred.exists():
        raise FlareInputError(pred, "prediction not found", "pass an existing label file or folder")
    if gt.is_file():
        pred_file = pred / gt.name if pred.is_dir() else pred
        if not pred_file.is_file():
            raise FlareInputError(
                pred_file, f"no prediction for ground truth {gt.name}", "name it like the GT"
            )
        return [(_case_name(gt), pred_file, gt)]
    if not pred.is_dir():
        raise FlareInputError(pred, "ground truth is a folder but the prediction is a file", "pass a folder")
    gts = sorted(p for p in gt.glob(gt_glob) if p.is_file())
    if not gts:
        raise FlareInputError(gt, f"no ground-truth files match '{gt_glob}'", "check the folder or --gt-glob")
    missing = [p.name for p in gts if not (pred / p.name).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FlareInputError(
            pred,
            f"{len(missing)} of {len(gts)} cases have no prediction: {shown}",
            "predict every case; a prediction has the same file name as its ground truth",
        )
    return [(_case_name(p), pred / p.name, p) for p in gts]


def header_spacing(spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    """Spacing as the official script sees it: NIfTI pixdim are float32 (nibabel ``get_zooms``)."""
    return tuple(float(np.float32(s)) for s in spacing_zyx)  # type: ignore[return-value]


def evaluate_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    label_map: LabelMap | None = None,
    organs: Iterable[int] = ORGAN_IDS,
    official_zrange_off_by_one: bool = True,
    gt_glob: str = "*.nii.gz",
    method: Method = "probe",
    progress: bool = True,
) -> pd.DataFrame:
    """Score every ground truth in ``gt_dir`` against the prediction of the same file name.

    ``pred_dir`` / ``gt_dir`` may also be single files. Ground truths are read with ``label_map``
    (dataset ids -> FLARE ids; its ``not_annotated`` organs are omitted); predictions must hold
    FLARE ids; without ``label_map`` so must the ground truths. Spacing comes from the ground-truth
    header. Returns one row per case and organ: ``case, organ, organ_name, dsc, nsd`` (fractions);
    ``df.attrs["absent_in_both"]`` lists the ``(case, organ)`` scored 1 because the organ is in
    neither file (:func:`absent_note`). Raises FlareInputError for missing predictions (all
    listed), unreadable files, ids that are not FLARE ids, or mismatched grids.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from flarelib.io import check_same_grid, read_label

    pairs = _case_pairs(Path(pred_dir), Path(gt_dir), gt_glob)
    not_annotated = label_map.not_annotated if label_map is not None else frozenset()
    organs = tuple(organs)
    rows = []
    absent: list[tuple[str, int]] = []
    for case, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="case", disable=not progress):
        gt_vol = read_label(gt_path, label_map)
        if label_map is None and gt_vol.array.max(initial=0) > max(ORGAN_IDS):
            bad = sorted(int(v) for v in np.unique(gt_vol.array) if v > max(ORGAN_IDS))
            raise FlareInputError(
                gt_path,
                f"ground truth holds label ids {bad} that are not FLARE ids 0..13 (they would be ignored)",
                "pass --manifest dataset.json (and --dataset NAME) to map the dataset's ids to FLARE ids",
            )
        pred_vol = read_label(pred_path)
        check_same_grid(gt_vol, pred_vol)
        if pred_vol.array.max(initial=0) > max(ORGAN_IDS):
            bad = sorted(int(v) for v in np.unique(pred_vol.array) if v > max(ORGAN_IDS))
            raise FlareInputError(
                pred_path, f"prediction holds label ids {bad} that are not FLARE ids 0..13", "write FLARE ids"
            )
        scores = score_case(
            gt_vol.array,
            pred_vol.array,
            header_spacing(gt_vol.spacing_zyx),
            organs=organs,
            not_annotated=not_annotated,
            official_zrange_off_by_one=official_zrange_off_by_one,
            method=method,
        )
        rows.extend(
            {"case": case, "organ": o, "organ_name": SHORT_NAMES[o], "dsc": d, "nsd": n}
            for o, (d, n) in scores.items()
        )
        present = set(np.unique(gt_vol.array).tolist()) | set(np.unique(pred_vol.array).tolist())
        absent += [(case, o) for o in scores if o not in present]
    df = pd.DataFrame(rows, columns=["case", "organ", "organ_name", "dsc", "nsd"])
    df.attrs["absent_in_both"] = absent
    return df


def absent_note(df: pd.DataFrame) -> str | None:
    """One line saying how many scores are of organs absent from both prediction and ground truth
    (FLARE scores those DSC = NSD = 1), or None when there are none."""
    absent = df.attrs.get("absent_in_both") or []
    if not absent:
        return None
    n_cases = len({c for c, _ in absent})
    return (
        f"note: {len(absent)} of {len(df)} organ scores ({n_cases} of {df['case'].nunique()} cases) are of "
        "organs absent from both the prediction and the ground truth, scored DSC = NSD = 100% by "
        "FLARE's rule; the averages above include them"
    )


def summary_table(df: pd.DataFrame, *, ddof: int = 1) -> pd.DataFrame:
    """The paper's Table 4 layout: one row per organ (id order) plus ``Average``, in percent.

    Columns ``n_cases, dsc_mean, dsc_std, nsd_mean, nsd_std``; the index holds the organ's short
    name. Organ rows: mean and standard deviation over cases. ``Average``: each case's mean over its
    scored organs, then mean and standard deviation over cases. (The paper's Average std, 4.66 DSC,
    is far below the spread of its organ means, 12.2, so it is a spread over cases; with every organ
    scored in every case the Average mean equals the mean of the organ means.) ``ddof=1``: sample
    standard deviation (the paper does not say which). NaN scores are skipped.
    """
    import pandas as pd

    pct = df.assign(dsc=df["dsc"] * 100.0, nsd=df["nsd"] * 100.0)
    cols = ["n_cases", "dsc_mean", "dsc_std", "nsd_mean", "nsd_std"]

    def stats(frame: pd.DataFrame) -> list[float]:
        return [
            int(frame["dsc"].count()),
            frame["dsc"].mean(),
            frame["dsc"].std(ddof=ddof),
            frame["nsd"].mean(),
            frame["nsd"].std(ddof=ddof),
        ]

    rows, names = [], []
    for organ, group in pct.groupby("organ", sort=True):
        names.append(SHORT_NAMES.get(int(organ), str(organ)))
        rows.append(stats(group))
    per_case = pct.groupby("case", sort=True)[["dsc", "nsd"]].mean()
    names.append("Average")
    rows.append(stats(per_case))
    out = pd.DataFrame(rows, index=pd.Index(names, name="organ"), columns=cols)
    return out.astype({"n_cases": int})


def format_table_markdown(summary: pd.DataFrame, *, decimals: int = 2) -> str:
    """Markdown of a :func:`summary_table`: ``| Organ | DSC (%) | NSD (%) |`` with ``mean ± std``."""

    def cell(mean: float, std: float) -> str:
        if not math.isfinite(mean):
            return "n/a"
        return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if math.isfinite(std) else f"{mean:.{decimals}f}"

    lines = ["| Organ | DSC (%) | NSD (%) |", "|---|---|---|"]
    for name, row in summary.iterrows():
        lines.append(
            f"| {name} | {cell(row['dsc_mean'], row['dsc_std'])} | {cell(row['nsd_mean'], row['nsd_std'])} |"
        )
    return "\n".join(lines) + "\n"


def _label_map_of(manifest: str | Path, dataset: str | None) -> LabelMap:
    """The label map of ``dataset`` (``NAME`` or ``NAME:VARIANT``) in a dataset.json manifest, read
    with :func:`flarelib.data.manifest.load_manifest` (the datasets need not list files).

    Without ``dataset`` the manifest must hold exactly one dataset. Errors name the manifest and
    the ``--dataset`` option to fix.
    """
    from flarelib.data.manifest import load_manifest  # only the CLI's --manifest needs flarelib.data

    path = Path(manifest)
    if not path.is_file():
        raise FlareInputError(path, "manifest not found", "pass the dataset.json of your data")
    parsed = load_manifest(path, files_required=False)
    datasets = parsed.datasets
    name, _, variant = (dataset or "").partition(":")
    if not name:
        if len(datasets) != 1:
            raise FlareInputError(path, f"holds datasets {sorted(datasets)}", "name one with --dataset")
        name = next(iter(datasets))
    if name not in datasets:
        raise FlareInputError(path, f"no dataset '{name}' (has {sorted(datasets)})", "check --dataset")
    variants = parsed.variants(name)
    if variants and variant not in variants:
        raise FlareInputError(
            path,
            f"dataset '{name}' has label sets {variants}" + (f", not '{variant}'" if variant else ""),
            f"name one with --dataset {name}:VARIANT",
        )
    return parsed.label_map(name, variant or None)


def main_evaluate(
    pred: str | Path,
    gt: str | Path,
    out_csv: str | Path,
    manifest: str | Path | None = None,
    dataset: str | None = None,
    *,
    official_zrange_off_by_one: bool = True,
    gt_glob: str = "*.nii.gz",
    method: Method = "probe",
    overwrite: bool = False,
) -> pd.DataFrame:
    """Score ``pred`` against ``gt`` (files or folders), write the per-case CSV atomically, print
    the Table-4 summary as markdown, and return the per-case table.

    ``out_csv`` is checked before any scoring: not an input (never, even with ``overwrite``), not a
    folder, in a folder that exists or can be made and is writable, and not an existing file unless
    ``overwrite``."""
    from flarelib.paths import InputSet, atomic_write_text, check_output_file, remove_stale_temps

    if dataset and manifest is None:
        raise FlareInputError("--dataset", "needs --manifest", "pass the dataset.json that defines it")
    label_map = _label_map_of(manifest, dataset) if manifest is not None else None
    pairs = _case_pairs(Path(pred), Path(gt), gt_glob)
    inputs = InputSet([pred, gt, *(p for _, p, _ in pairs), *(g for _, _, g in pairs)])
    if manifest is not None:
        inputs.add(manifest)
    check_output_file(out_csv, inputs, overwrite=overwrite, option="--out")
    remove_stale_temps(Path(out_csv).parent)
    df = evaluate_folder(
        pred,
        gt,
        label_map=label_map,
        official_zrange_off_by_one=official_zrange_off_by_one,
        gt_glob=gt_glob,
        method=method,
    )
    atomic_write_text(Path(out_csv), df.to_csv(index=False))
    print(format_table_markdown(summary_table(df)), end="")
    note = absent_note(df)
    if note:
        print(note)
    print(f"{len(df['case'].unique())} cases; per-case scores written to {out_csv}")
    return df


def _run_cli(args: argparse.Namespace) -> int:
    main_evaluate(
        args.pred,
        args.gt,
        args.out,
        manifest=args.manifest,
        dataset=args.dataset,
        official_zrange_off_by_one=not args.inclusive_zrange,
        gt_glob=args.gt_glob,
        overwrite=args.overwrite,
    )
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``flarelib evaluate PRED GT --out results.csv [--manifest M --dataset NAME]``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="FLARE24-exact DSC/NSD of predictions against ground-truth labels",
        description=(
            "Score predictions (FLARE ids) against ground truth exactly as the official FLARE24 "
            "Task 2/3 script does, write one CSV row per case and organ, print the Table-4 summary."
        ),
    )
    parser.add_argument("pred", type=Path, help="prediction label file or folder (FLARE ids)")
    parser.add_argument(
        "gt",
        type=Path,
        help="ground-truth label file or folder (same file names), or a folder of one DICOM series "
        "(FOLDER::SERIES_UID for one of several)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="CSV to write (case, organ, organ_name, dsc, nsd); never an input; refused if it exists",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out CSV")
    parser.add_argument("--manifest", type=Path, help="dataset.json mapping the GT's ids to FLARE ids")
    parser.add_argument("--dataset", help="dataset in the manifest (NAME or NAME:VARIANT)")
    parser.add_argument(
        "--gt-glob", default="*.nii.gz", help="ground-truth files in a GT folder (default %(default)s)"
    )
    parser.add_argument(
        "--inclusive-zrange",
        action="store_true",
        help="score aorta/IVC/esophagus over the full GT z-range (the official script drops its last slice)",
    )
    parser.set_defaults(func=_run_cli)
    return parser
