"""Generate the phantom data set: subsets, acquisition geometry, z-flips, misalignment, diagnostics.

``generate(params, out_dir)`` writes, under ``out_dir``, each subset where ``params.data.subsets``
puts it (:func:`.subsets.phantom_layouts`; ``params/data/phantom.yaml`` gives)::

    train_CT_gt_label/imagesTr/<case>_0000.nii.gz     labelled CT (true labels)  + labelsTr/<case>.nii.gz
    train_CT_pseudolabel/imagesTr/<case>_0000.nii.gz  CT whose labels carry simulated pseudo-label errors
    train_MRI_unlabeled/LLD-MMRI/<patient>_<tag>_0000.nii.gz   8 sequences per patient (LLD-MMR tags)
    train_MRI_unlabeled/AMOS/amos_XXXX_0000.nii.gz    single MR volumes of mixed sequences
    val_MRI/imagesVal/<case>_0000.nii.gz              labelled MR over all sequences + labelsVal/
    dataset.json                                      manifest: phantom_ct_manual, _ct_pseudo, _mr_val
    diagnostics/                                      the truth, which the method never reads
                                                      (:mod:`.truth`: true labels, tissue maps, truth.json)

Subset names in ``diagnostics`` are those of ``params/data/phantom.yaml``: ``ct_manual``,
``ct_pseudo``, ``lld_mmr``, ``amos_mr``, ``mr_val``.

Geometry (:mod:`.geometry`). Every image has identity direction (LPS), its own spacing (z, y, x mm)
and field of view, and an origin in scanner coordinates: a patient lies somewhere on the table
(``placement``), and between the sequences of one LLD-MMR session the patient moves rigidly and
breathes (organs shift along z by a per-organ fraction of ``breath_mm``). ``world = R (body - c) + c
+ t + placement`` with ``R`` from ``rotation_deg_xyz`` (``Rz @ Ry @ Rx``), ``c`` = ``center_mm``
(body frame), ``t`` = ``translation_mm``; the 4x4 ``world_from_body`` is stored too. DCE phases move
0-5 mm, T2W/DWI more; ``misaligned_fraction`` of the non-T1W sequences (OP always with IP, one
dual-echo acquisition) are badly misaligned (15-30 mm, 5-10 degrees). ``zflip_fraction`` of the
patients are stored with every sequence's voxel array reversed along z and the header unchanged
(the LLD-MMR defect).

Determinism: every random draw comes from ``numpy.random.default_rng([seed, subset, case, stream])``;
the gzip streams written by ITK carry no time stamp, so the same params give byte-identical files.

Where things live (this module re-exports them and holds the ``flarelib generate`` command):
:mod:`.subsets` (names, case ids, layouts), :mod:`.geometry` (grids, motion, random streams),
:mod:`.label_errors` (:func:`pseudo_label_errors`), :mod:`.volume` (one volume's record and files),
:mod:`.cases` (CT, LLD-MMR and single MR case builders), :mod:`.build` (plan, manifest,
:func:`generate`), :mod:`.truth` (:func:`load_truth` and the true labels), :mod:`.marker`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flarelib.data.phantom.build import AMOS_SEQUENCES, GenerateReport, draw_plan, generate
from flarelib.data.phantom.geometry import (
    GROUP_SPACING,
    MISALIGNED_DEG,
    MISALIGNED_MM,
    MOTION,
    SEQUENCE_GROUP,
)
from flarelib.data.phantom.label_errors import pseudo_label_errors
from flarelib.data.phantom.marker import write_marker
from flarelib.data.phantom.subsets import SUBSETS, case_ids, default_layouts, phantom_layouts
from flarelib.data.phantom.truth import (
    DIAGNOSTICS,
    load_truth,
    read_truth_label,
    truth_case,
    truth_label_path,
)
from flarelib.errors import FlareInputError
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.paths import data_root

__all__ = [
    "AMOS_SEQUENCES",
    "DIAGNOSTICS",
    "GROUP_SPACING",
    "MISALIGNED_DEG",
    "MISALIGNED_MM",
    "MOTION",
    "SEQUENCE_GROUP",
    "SUBSETS",
    "GenerateReport",
    "add_arguments",
    "add_cli",
    "case_ids",
    "draw_plan",
    "generate",
    "load_truth",
    "main",
    "phantom_layouts",
    "pseudo_label_errors",
    "read_truth_label",
    "run",
    "truth_case",
    "truth_label_path",
]


def __getattr__(name: str) -> Any:
    # LAYOUT: {subset: {"images": template, "labels": template or None}} of params/data/phantom.yaml,
    # for callers of the old constant; the generator itself follows params.data.subsets.
    if name == "LAYOUT":
        return {k: {"images": v.images, "labels": v.labels} for k, v in default_layouts().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

COMMAND = "generate"
_HELP = "write the procedural multi-sequence phantom (FLARE24 layout + diagnostics)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_params_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the params' data.root)")
    parser.add_argument("--workers", type=int, default=1, help="processes (output is the same for any value)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on an argparse subparsers object; its handler is ``args.func``."""
    parser = subparsers.add_parser(COMMAND, help=_HELP, description=_HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``flarelib generate``: 0 on success, 2 on bad input."""
    try:
        params = params_from_args(args)
        out = Path(args.out) if args.out else data_root(params)
        if args.workers < 1:
            raise FlareInputError("--workers", "must be >= 1", "pass --workers 1 or more")
        report = generate(params, out, progress=not args.no_progress, workers=args.workers)
        write_marker(params, out)  # so that `flarelib train/run` use it rather than generate it again
    except FlareInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flarelib.data.phantom.generate``: the ``generate`` command on its own."""
    parser = argparse.ArgumentParser(prog="python -m flarelib.data.phantom.generate", description=_HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
