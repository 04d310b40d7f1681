"""Check a dataset before any compute: ``check_dataset(params)`` and the ``check-data`` command.

Every image must be readable, a 3-D volume (not one slice) with positive voxel sizes in its header,
every label present (where the layout has labels), on its image's grid, with ids the dataset's
label map knows and at least one organ (an all-zero label is reported); every label must have its
image; LLD-MMR patients must have every sequence in ``params.data.sequences_required``; no subset may
be empty; files the manifest lists under a subset must exist. An image template may name folders
(``dicom/{case}``): each is read as one DICOM series.

Problems are collected (one line each, naming the file and the fix), never raised one by
one, so a single run lists everything that is wrong.

Command line (also ``flarelib check-data``)::

    python -m flarelib.data.check --params params/data/real.yaml
    python -m flarelib.data.check --params params/runs/default.yaml --profile smoke --data phantom

Exit status: 0 all good, 1 problems found (each printed), 2 the check could not run (bad params,
missing data root; one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from flarelib.config import Params, SubsetLayout
from flarelib.data.layout import (
    Case,
    discover,
    fill,
    glob_case_ids,
    lld_case_id,
    lld_patients,
    manifest_path,
    template_regex,
)
from flarelib.data.manifest import Manifest, load_manifest
from flarelib.errors import FlareInputError
from flarelib.io import Volume, check_same_grid, check_slices, read_header, read_image, read_label
from flarelib.labels import SEQUENCES
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.paths import data_root

#: Columns of :attr:`CheckReport.summary`, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "subset",
    "role",
    "modality",
    "cases",
    "with labels",
    "patients (LLD)",
    "sequences",
    "shape range (z,y,x)",
    "spacing range mm (z,y,x)",
    "organs present",
    "not annotated",
)

#: ``visit(case, image, label)``: called by :func:`check_dataset` for every case that passed.
Visitor = Callable[[Case, Volume, Volume | None], None]

#: Errors a broken file can raise from the readers (FlareInputError is a ValueError).
_FILE_ERRORS = (ValueError, RuntimeError, OSError)


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    ``problems``: one line per problem, each naming the file (``<file>: <problem>. Fix: ...``).
    ``summary``: one row per subset (columns :data:`SUMMARY_COLUMNS`; shapes are (z, y, x) voxels,
    spacings (z, y, x) mm, organs FLARE ids). ``per_case``: one row per case (subset, case_id,
    image, label, label_exists, sequence, patient, shape_zyx, spacing_zyx, organs, ok).
    """

    problems: list[str] = field(default_factory=list)
    summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SUMMARY_COLUMNS)))
    per_case: pd.DataFrame = field(default_factory=pd.DataFrame)
    root: Path | None = None
    read_voxels: bool = True

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_markdown(self) -> str:
        """The summary as a Markdown table, then the problems (or 'no problems')."""
        head = f"Data root: {self.root}" + ("" if self.read_voxels else " (headers only, voxels not read)")
        lines = [head, "", markdown_table(self.summary), ""]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"- {p}" for p in self.problems]
        else:
            lines.append("No problems found.")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``df`` (no index; None/NaN as empty cells; no tabulate needed)."""
    cols = [_cell(c) for c in df.columns]
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(r) for r in rows]
    return "\n".join(out)


def format_ids(ids: Iterable[int]) -> str:
    """Compact sorted id list: ``[1, 2, 3, 5, 13]`` -> ``"1-3, 5, 13"``; empty -> ``""``."""
    values = sorted({int(i) for i in ids})
    parts: list[str] = []
    start = prev = None
    for v in [*values, None]:
        if start is not None and (v is None or v != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return ", ".join(parts)


def _range(values: Sequence[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if np.isclose(lo, hi) else f"{lo:{fmt}}-{hi:{fmt}}"


def _axes_range(triples: Sequence[tuple[float, float, float]], fmt: str) -> str:
    if not triples:
        return ""
    return " x ".join(_range([t[a] for t in triples], fmt) for a in range(3))


# --------------------------------------------------------------------------------------------------
# Per-file checks
# --------------------------------------------------------------------------------------------------


def _message(path: Path, exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if str(path) in text else f"{path}: {text.splitlines()[0]}"


def _read_header(path: Path) -> Volume:
    """Geometry of a 3-D image from its header only (:func:`flarelib.io.read_header`: no voxels
    are read, the header's voxel sizes are checked). Raises FlareInputError."""
    return read_header(path)


def _check_case(case: Case, read_voxels: bool, problems: list[str], visit: Visitor | None) -> dict[str, Any]:
    n_before = len(problems)
    row: dict[str, Any] = {
        "subset": case.subset,
        "case_id": case.case_id,
        "image": str(case.image),
        "label": str(case.label) if case.label is not None else None,
        "label_exists": bool(case.label is not None and case.label.is_file()),
        "sequence": case.sequence,
        "patient": case.patient,
        "shape_zyx": None,
        "spacing_zyx": None,
        "organs": None,
    }
    image = label = None
    try:
        image = read_image(case.image) if read_voxels else _read_header(case.image)
        row["shape_zyx"], row["spacing_zyx"] = image.shape, image.spacing_zyx
        check_slices(image, case.image)  # its label is on its grid: one message covers both
    except _FILE_ERRORS as exc:
        problems.append(_message(case.image, exc))
        image = None
    if case.label is not None:
        if not row["label_exists"]:
            problems.append(
                f"{case.label}: label file missing for image {case.image.name} "
                f"(subset '{case.subset}'). Fix: add it, or check the subset's labels template"
            )
        else:
            try:
                label = read_label(case.label, case.label_map) if read_voxels else _read_header(case.label)
                if image is not None:
                    check_same_grid(image, label)
            except _FILE_ERRORS as exc:
                problems.append(_message(case.label, exc))
                label = None
            if label is not None and read_voxels:
                counts = np.bincount(label.array.ravel(), minlength=256)
                organs = {int(v) for v in np.flatnonzero(counts) if v != 0}
                row["organs"] = tuple(sorted(organs))
                if not organs:
                    problems.append(
                        f"{case.label}: label holds no organ (every voxel is 0) for image "
                        f"{case.image.name}. Fix: check that it is this case's segmentation, or "
                        "move the case out of the subset"
                    )
                stray = organs & set(case.not_annotated)
                if stray:
                    name = case.label_map.name if case.label_map is not None else "?"
                    problems.append(
                        f"{case.label}: holds FLARE organ(s) {format_ids(stray)} that label map "
                        f"'{name}' lists as not annotated. Fix: correct "
                        "flare_not_annotated or label_to_flare in the manifest"
                    )
    row["ok"] = len(problems) == n_before
    if visit is not None and read_voxels and row["ok"]:
        visit(case, image, label)
    return row


# --------------------------------------------------------------------------------------------------
# Per-subset checks
# --------------------------------------------------------------------------------------------------


def _check_lld(
    root: Path,
    name: str,
    layout: SubsetLayout,
    cases: list[Case],
    required: Sequence[str],
    problems: list[str],
) -> None:
    known = ", ".join(SEQUENCES.values())
    for case in cases:
        if case.sequence is None:
            problems.append(
                f"{case.image}: case id '{case.case_id}' does not end in an LLD-MMR sequence "
                f"tag ({known}). Fix: name it <patient>_<tag>"
            )
    for patient, seqs in lld_patients(cases).items():
        missing = [s for s in required if s not in seqs]
        if missing:
            files = ", ".join(Path(fill(layout.images, lld_case_id(patient, s))).name for s in missing)
            folder = (root / fill(layout.images, "x")).parent
            problems.append(
                f"{folder}: LLD-MMR patient '{patient}' (subset '{name}') lacks sequence(s) "
                f"{', '.join(missing)} (expected {files}). Fix: add the files, drop the "
                "patient, or shorten data.sequences_required"
            )


def _check_manifest_listing(
    root: Path,
    name: str,
    layout: SubsetLayout,
    manifest: Manifest | None,
    found: set[str],
    problems: list[str],
) -> None:
    """Files the manifest lists for this subset's dataset, under this subset's template, must exist."""
    if manifest is None or layout.dataset is None or layout.dataset not in manifest.raw["datasets"]:
        return
    pattern = template_regex(layout.images, f"data.subsets.{name}.images")
    for mcase in manifest.cases(layout.dataset):
        try:
            rel = mcase.image.relative_to(manifest.root).as_posix()
        except ValueError:
            continue
        match = pattern.fullmatch(rel)
        if match and match["case"] not in found:
            problems.append(
                f"{root / rel}: listed in {manifest.path.name} (dataset '{layout.dataset}', "
                f"case {mcase.id}) but missing. Fix: restore the file (see SHA256SUMS / "
                "the data README)"
            )


def _check_orphan_labels(
    root: Path,
    name: str,
    layout: SubsetLayout,
    manifest: Manifest | None,
    found: set[str],
    problems: list[str],
) -> None:
    """Every label file of the subset's labels template must have its image (cases the manifest
    lists are reported by :func:`_check_manifest_listing` already)."""
    if layout.labels is None:
        return
    listed: set[str] = set()
    if manifest is not None and layout.dataset is not None and layout.dataset in manifest.raw["datasets"]:
        listed = {m.id for m in manifest.cases(layout.dataset)}
    for case_id in glob_case_ids(root, layout.labels, f"data.subsets.{name}.labels"):
        if case_id in found or case_id in listed:
            continue
        label, image = root / fill(layout.labels, case_id), root / fill(layout.images, case_id)
        problems.append(
            f"{label}: label has no image (expected {image}, subset '{name}'). Fix: add the image, "
            f"or move the label out of {label.parent}"
        )


def _summary_row(name: str, layout: SubsetLayout, cases: list[Case], rows: list[dict]) -> dict[str, Any]:
    if layout.role == "mr_lld":
        present = {c.sequence for c in cases if c.sequence}
        sequences = ", ".join(s for s in SEQUENCES if s in present)
        patients: int | None = len(lld_patients(cases))
    else:
        sequences = layout.sequence or ""
        patients = None
    organs = set()
    for r in rows:
        organs.update(r["organs"] or ())
    label_map = cases[0].label_map if cases else None
    return {
        "subset": name,
        "role": layout.role,
        "modality": layout.modality,
        "cases": len(cases),
        "with labels": sum(r["label_exists"] for r in rows) if layout.labels is not None else 0,
        "patients (LLD)": patients,
        "sequences": sequences,
        "shape range (z,y,x)": _axes_range([r["shape_zyx"] for r in rows if r["shape_zyx"]], "d"),
        "spacing range mm (z,y,x)": _axes_range([r["spacing_zyx"] for r in rows if r["spacing_zyx"]], ".3g"),
        "organs present": format_ids(organs),
        "not annotated": format_ids(label_map.not_annotated) if label_map is not None else "",
    }


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------


def check_dataset(
    params: Params, *, read_voxels: bool = True, progress: bool = True, visit: Visitor | None = None
) -> CheckReport:
    """Verify the dataset of ``params.data`` and summarise it (see the module docstring).

    ``read_voxels=False`` reads headers only (fast; no label-id, gzip-integrity or organ checks).
    ``progress`` shows a tqdm bar over the cases (on stderr). ``visit(case, image, label)`` is
    called for every case that passed (voxels read; ``label`` None without labels), so callers can
    gather statistics in the same pass instead of reading every file again.

    Raises:
        FlareInputError: only when the check cannot run at all (missing data root, invalid manifest,
            template without ``{case}``, unknown name in ``data.sequences_required``). Problems with
            individual files are collected in :attr:`CheckReport.problems`.
    """
    unknown = [s for s in params.data.sequences_required if s not in SEQUENCES]
    if unknown:
        raise FlareInputError(
            "data.sequences_required",
            f"unknown sequence(s) {unknown}",
            f"use names from {', '.join(SEQUENCES)}",
        )
    root = data_root(params)
    cases_by_subset = discover(params)
    manifest = None
    mpath = manifest_path(params)
    if mpath.is_file() and any(s.dataset for s in params.data.subsets.values()):
        manifest = load_manifest(mpath)

    problems: list[str] = []
    summary_rows, case_rows = [], []
    total = sum(len(c) for c in cases_by_subset.values())
    with tqdm(total=total, desc="check-data", unit="case", disable=not progress, leave=False) as bar:
        for name, cases in cases_by_subset.items():
            layout = params.data.subsets[name]
            if not cases:
                problems.append(
                    f"{root / layout.images}: subset '{name}' is empty (no file matches). "
                    f"Fix: check data.subsets.{name}.images and the data root"
                )
            rows = []
            for case in cases:
                bar.set_postfix_str(f"{name}/{case.case_id}", refresh=False)
                rows.append(_check_case(case, read_voxels, problems, visit))
                bar.update(1)
            if layout.role == "mr_lld":
                _check_lld(root, name, layout, cases, params.data.sequences_required, problems)
            found = {c.case_id for c in cases}
            _check_manifest_listing(root, name, layout, manifest, found, problems)
            _check_orphan_labels(root, name, layout, manifest, found, problems)
            case_rows += rows
            summary_rows.append(_summary_row(name, layout, cases, rows))
    summary = pd.DataFrame(summary_rows, columns=list(SUMMARY_COLUMNS))
    summary["patients (LLD)"] = summary["patients (LLD)"].astype("Int64")
    per_case = pd.DataFrame(case_rows)  # subsets in params order, cases natural-sorted
    return CheckReport(problems, summary, per_case, root.resolve(), read_voxels)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

COMMAND = "check-data"
_HELP = "check a dataset (files readable, labels present and on the image grid, sequences complete)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``check-data`` options (shared by ``flarelib check-data`` and ``python -m``)."""
    add_params_arguments(parser)
    parser.add_argument(
        "--no-voxels",
        action="store_true",
        help="read headers only (fast: no label-id or gzip-integrity checks)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``check-data`` on an argparse subparsers object; its handler is ``args.func``."""
    parser = subparsers.add_parser(COMMAND, help=_HELP, description=_HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler: print the summary and problems; 0 ok, 1 problems, 2 the check could not run."""
    try:
        params = params_from_args(args)
        report = check_dataset(params, read_voxels=not args.no_voxels, progress=not args.no_progress)
    except FlareInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_markdown())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flarelib.data.check``: the ``check-data`` command on its own."""
    parser = argparse.ArgumentParser(prog="python -m flarelib.data.check", description=_HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
