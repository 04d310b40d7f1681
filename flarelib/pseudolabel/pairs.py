"""Stage 2/3 training cases from the decision makers' results: ``(image, label, annotated)``.

* :func:`transfer_cases`: a stage-2 transfer table -> one case per accepted sequence (with the T1W
  reference by default): the sequence's image, its transferred label file, every class annotated.
  Rejected sequences are not here: they stay unlabelled MR (:func:`unlabelled_images`).
* :func:`anatomy_cases`: stage-3 pseudo-labels (files or arrays on their images' grids) checked by
  the anatomy module; ``drop_case`` (paper) leaves failing cases out, ``drop_organs`` keeps them with
  their failing organs unannotated (the partial-label loss then ignores those organs for that case).
* :func:`load_training_volumes`: the cases as :class:`flarelib.train.sampling.TrainVolume` (read,
  reoriented to LPS, resampled to the training spacing, z-scored: as
  :func:`flarelib.train.cli.load_train_volume`), with each case's ``annotated`` mask, ready for
  :func:`flarelib.train.cli.train_segmentation`.

So stage 2's labelled MR is ``load_training_volumes(transfer_cases(table), spacing)`` and stage 3's
``load_training_volumes(anatomy_cases(predictions, images, params.anatomy)[0], spacing)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flarelib.config import AnatomyParams
from flarelib.io import Volume, read_label
from flarelib.labels import NUM_CLASSES
from flarelib.pseudolabel import anatomy as A
from flarelib.pseudolabel.transfer import TransferTable

__all__ = [
    "TrainingCase",
    "anatomy_cases",
    "load_training_volumes",
    "transfer_cases",
    "unlabelled_images",
]


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingCase:
    """One labelled training case.

    ``label``: a label file, or a uint8 (z, y, x) array on the image's grid (as stored);
    ``annotated``: bool (14,), True where the class is supervised (background always True), as
    :class:`~flarelib.train.sampling.TrainVolume` takes it; ``source``: ``transfer``,
    ``transfer-reference`` (the T1W itself) or ``anatomy``; ``details``: the record / check behind it.
    """

    case: str
    image: Path
    label: Path | np.ndarray
    annotated: np.ndarray
    sequence: str | None = None
    source: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


def _all_annotated() -> np.ndarray:
    return np.ones(NUM_CLASSES, bool)


def transfer_cases(
    table: TransferTable | str | os.PathLike,
    *,
    include_reference: bool = True,
) -> list[TrainingCase]:
    """Accepted sequences of a transfer table (or its ``transfer.json``) as training cases.

    Needs the labels written (``transfer_patients(..., out_dir)``); records without a label file are
    skipped. ``include_reference``: the T1W volumes with their own pseudo-labels too.
    """
    if not isinstance(table, TransferTable):
        table = TransferTable.load(table)
    out = []
    for rec in table.accepted(include_reference):
        if not rec.label or not rec.image:
            continue
        out.append(
            TrainingCase(
                rec.case,
                Path(rec.image),
                Path(rec.label),
                _all_annotated(),
                rec.sequence,
                "transfer-reference" if rec.decision == "reference" else "transfer",
                {"dsc_right": rec.dsc_right, "dsc_left": rec.dsc_left, "reason": rec.reason},
            )
        )
    return out


def unlabelled_images(table: TransferTable | str | os.PathLike) -> list[tuple[str, Path]]:
    """``(case, image)`` of the rejected sequences: stage 2 trains on them as unlabelled MR."""
    if not isinstance(table, TransferTable):
        table = TransferTable.load(table)
    return [(r.case, Path(r.image)) for r in table.records if r.decision == "reject" and r.image]


def anatomy_cases(
    labels: Mapping[str, str | os.PathLike | np.ndarray | Volume],
    images: Mapping[str, str | os.PathLike],
    params: AnatomyParams,
    *,
    on_failure: str | None = None,
    sequences: Mapping[str, str] | None = None,
    base_annotated: Mapping[str, np.ndarray] | None = None,
    organs: Sequence[int] | None = None,
) -> tuple[list[TrainingCase], dict[str, A.AnatomyResult]]:
    """Check stage-3 pseudo-labels with constraints (6)-(8) and keep what passes.

    ``labels``: case -> label file, Volume, or array (on the image's grid; an array is checked with
    the image header's spacing). ``images``: case -> image file. ``on_failure``: ``drop_case`` or
    ``drop_organs`` (default ``params.on_failure``). ``base_annotated``: case -> the mask the case
    starts from (default all annotated). ``organs``: the organs checked (default all 13; a model
    that never learned an organ, e.g. BTCV's duodenum, cannot predict it). Returns
    ``(cases, results)``; ``results`` has every case's
    :class:`~flarelib.pseudolabel.anatomy.AnatomyResult`, kept or not.
    """
    from flarelib.io import read_image

    mode = on_failure or params.on_failure
    kept: list[TrainingCase] = []
    results: dict[str, A.AnatomyResult] = {}
    for case, lab in labels.items():
        if case not in images:
            raise KeyError(f"anatomy_cases: no image for case {case!r}")
        if isinstance(lab, Volume):
            vol, stored = lab, lab.array
        elif isinstance(lab, np.ndarray):
            header = read_image(images[case])
            vol, stored = header.with_array(lab), lab
        else:
            vol = read_label(lab)
            stored = Path(lab)
        res = A.check_anatomy(vol, params, case=case, **({} if organs is None else {"organs": organs}))
        results[case] = res
        base = None if base_annotated is None else base_annotated.get(case)
        mask = A.annotated_mask(res, mode, base)
        if mask is None:
            continue
        label: Path | np.ndarray = stored if isinstance(stored, Path) else np.asarray(stored, np.uint8)
        kept.append(
            TrainingCase(
                case,
                Path(images[case]),
                label,
                mask,
                None if sequences is None else sequences.get(case),
                "anatomy",
                res.to_dict(),
            )
        )
    return kept, results


def load_training_volumes(
    cases: Sequence[TrainingCase],
    spacing_zyx: Sequence[float],
    preprocess: Any = None,
    *,
    progress: bool = False,
) -> list:
    """The cases as z-scored :class:`~flarelib.train.sampling.TrainVolume` at ``spacing_zyx`` (mm),
    reoriented to LPS, each with its ``annotated`` mask (``preprocess``: the params section, for the
    CT window; MR needs none)."""
    from tqdm.auto import tqdm

    from flarelib.data.layout import Case
    from flarelib.io import read_image, reorient_to_lps
    from flarelib.preprocess import resample
    from flarelib.train.sampling import TrainVolume
    from flarelib.train.stages import load_train_volume

    out = []
    for tc in tqdm(cases, desc="loading pseudo-labelled MR", disable=not progress, leave=False):
        if isinstance(tc.label, np.ndarray):
            layout_case = Case("pseudolabel", "mr_pseudo", tc.case, tc.image, None, "MR", tc.sequence)
            tv = load_train_volume(layout_case, spacing_zyx, "zscore", preprocess)
            header = read_image(tc.image)
            lab = reorient_to_lps(header.with_array(np.asarray(tc.label, np.uint8)))[0]
            if not np.allclose(lab.spacing_zyx, spacing_zyx, rtol=0, atol=1e-6):
                lab = resample(lab, tuple(spacing_zyx), is_label=True)
            tv = TrainVolume(tv.image, lab.array, tc.annotated, tc.case, tuple(spacing_zyx))
        else:
            label = Path(tc.label)
            layout_case = Case("pseudolabel", "mr_pseudo", tc.case, tc.image, label, "MR", tc.sequence)
            tv = load_train_volume(layout_case, spacing_zyx, "zscore", preprocess)
            tv = TrainVolume(tv.image, tv.label, tc.annotated, tc.case, tv.spacing_zyx)
        out.append(tv)
    return out
