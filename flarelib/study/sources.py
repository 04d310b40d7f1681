"""What a run's models learn from: the training volumes of stage 2 (``study.stage2``) and stage 3
(``study.stage3``), assembled from the data layout and the products of earlier stages.

Labelled sources (``study.stage2.labelled``):

* ``ct``: labelled CT, manual (role ``ct_labeled``) and pseudo-labelled (``ct_pseudo``) with more
  than ``study.stage2.ct_pseudo_min_slices`` slices (STUDY.md stage 2), windowed then z-scored;
* ``t1w_pseudo``: the real T1W volumes with stage 1's pseudo-labels (``01_stage1/pseudo_labels``);
* ``transferred``: the sequences the kidney-DSC filter accepted, with the transferred T1W
  pseudo-label, the T1W itself included (``02_transfer``);
* ``oracle_mr``: the unlabelled MR with the phantom's TRUE labels (``diagnostics/``): the ceiling.

Unlabelled sources (``study.stage2.unlabelled``): ``lld`` (roles ``mr_lld`` and ``mr_unlabeled``)
and ``amos`` (``mr_amos``); volumes used as labelled are left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flarelib.config import Params
from flarelib.data.layout import Case, discover
from flarelib.data.roles import select_cases
from flarelib.errors import FlareInputError
from flarelib.io import read_header
from flarelib.pseudolabel.pairs import TrainingCase, load_training_volumes, transfer_cases
from flarelib.train.sampling import TrainVolume

__all__ = [
    "UNLABELLED_ROLES_OF",
    "StageData",
    "ct_cases",
    "labelled_ct",
    "learnable_mask",
    "mr_cases",
    "pseudo_label_file",
    "stage2_data",
    "validation_volumes",
]

UNLABELLED_ROLES_OF: dict[str, tuple[str, ...]] = {"lld": ("mr_lld", "mr_unlabeled"), "amos": ("mr_amos",)}


@dataclasses.dataclass
class StageData:
    """A stage's training volumes and a record of where each came from (for the notebook's table)."""

    labelled: list[TrainVolume]
    unlabelled: list[TrainVolume]
    validation: list[TrainVolume]
    record: dict[str, Any]


def _load(cases: Sequence[Case], params: Params) -> list[TrainVolume]:
    from flarelib.train.stages import load_train_volume

    spacing = params.preprocess.target_spacing_zyx
    return [load_train_volume(c, spacing, "zscore", params.preprocess) for c in cases]


def ct_cases(params: Params, cases: Any = None) -> tuple[list[Case], list[str]]:
    """The labelled CT of stage 2: every manual case, and pseudo-labelled cases with more than
    ``study.stage2.ct_pseudo_min_slices`` slices on their stored grid. Returns (kept, left out)."""
    cases = discover(params) if cases is None else cases
    kept, left = [], []
    for c in select_cases(cases, "labelled"):
        if c.role == "ct_pseudo":
            n_slices = read_header(c.image).array.shape[0]
            if n_slices <= params.study.stage2.ct_pseudo_min_slices:
                left.append(c.case_id)
                continue
        kept.append(c)
    return kept, left


def labelled_ct(params: Params, cases: Any = None) -> tuple[list[TrainVolume], dict[str, Any]]:
    kept, left = ct_cases(params, cases)
    return _load(kept, params), {
        "ct": [c.case_id for c in kept],
        "ct_pseudo_left_out": left,
    }


def learnable_mask(params: Params, cases: Any = None):
    """bool (14,), background True: the organs some labelled CT annotates, i.e. those a model of
    this study can learn (all 13 on the phantom and FLARE24; BTCV leaves the duodenum out). A
    model's pseudo-labels are trusted for these organs only: elsewhere the partial-label loss
    ignores them and the anatomy filter does not check them."""
    import numpy as np

    from flarelib.labels import NUM_CLASSES

    cases = discover(params) if cases is None else cases
    mask = np.zeros(NUM_CLASSES, bool)
    mask[0] = True
    for c in select_cases(cases, "labelled"):
        if c.modality != "CT":
            continue
        annotated = c.label_map.annotated if c.label_map is not None else range(1, NUM_CLASSES)
        mask[list(annotated)] = True
    return mask if mask[1:].any() else np.ones(NUM_CLASSES, bool)


def mr_cases(params: Params, sources: Iterable[str], cases: Any = None) -> list[Case]:
    """Unlabelled MR cases of the named sources (``lld``, ``amos``), in discovery order."""
    cases = discover(params) if cases is None else cases
    roles = {r for s in sources for r in UNLABELLED_ROLES_OF[s]}
    return [c for c in select_cases(cases, "unlabelled") if c.role in roles]


def pseudo_label_file(folder: Path, image: Path) -> Path:
    """Where ``predict_paths`` wrote the prediction of ``image`` into ``folder``."""
    from flarelib.infer.pipeline import output_name

    return Path(folder) / output_name(image)


def _pseudo_cases(mr: Sequence[Case], folder: Path, source: str, annotated) -> list[TrainingCase]:
    out = []
    for c in mr:
        lab = pseudo_label_file(folder, c.image)
        if not lab.is_file():
            raise FlareInputError(lab, f"no pseudo-label for {c.case_id}", "rerun the stage that predicts it")
        out.append(TrainingCase(c.case_id, c.image, lab, annotated.copy(), c.sequence, source))
    return out


def _oracle_cases(params: Params, mr: Sequence[Case]) -> list[TrainingCase]:
    import numpy as np

    from flarelib.data.phantom import truth_label_path
    from flarelib.labels import NUM_CLASSES
    from flarelib.paths import data_root

    root = data_root(params)
    out = []
    for c in mr:
        lab = truth_label_path(root, c.subset, c.case_id)
        out.append(TrainingCase(c.case_id, c.image, lab, np.ones(NUM_CLASSES, bool), c.sequence, "oracle"))
    return out


def validation_volumes(params: Params, cases: Any = None) -> list[TrainVolume]:
    """The labelled MR validation volumes used during training (``train.validation_cases``; 0: all)."""
    cases = discover(params) if cases is None else cases
    val = select_cases(cases, "validation")
    if params.train.validation_cases > 0:
        val = val[: params.train.validation_cases]
    return _load(val, params)


def stage2_data(
    params: Params,
    *,
    stage1_dir: Path | None = None,
    transfer_dir: Path | None = None,
    validation: bool = False,
    progress: bool = False,
) -> StageData:
    """Stage 2's volumes from ``study.stage2`` (see the module docstring). ``stage1_dir``: the
    ``01_stage1`` folder (for ``t1w_pseudo``); ``transfer_dir``: the ``02_transfer`` folder's
    transfer table folder (for ``transferred``)."""
    from flarelib.study.flow import labelled_sources

    s2 = params.study.stage2
    sources = labelled_sources(params)
    cases = discover(params)
    spacing = params.preprocess.target_spacing_zyx
    labelled: list[TrainVolume] = []
    record: dict[str, Any] = {}
    used: set[str] = set()
    if "ct" in sources:
        vols, rec = labelled_ct(params, cases)
        labelled += vols
        record.update(rec)
    mr_labelled: list[TrainingCase] = []
    if "t1w_pseudo" in sources:
        if stage1_dir is None:
            raise FlareInputError(
                "study.stage2.labelled", "t1w_pseudo needs stage 1's folder", "run 01_stage1"
            )
        t1w = [c for c in mr_cases(params, ("lld",), cases) if c.sequence == params.cyclegan.target_sequence]
        pl_dir = Path(stage1_dir) / "pseudo_labels"
        mr_labelled += _pseudo_cases(t1w, pl_dir, "t1w_pseudo", learnable_mask(params, cases))
    if "transferred" in sources:
        if transfer_dir is None:
            raise FlareInputError("study.stage2.labelled", "transferred needs the transfer table", "run 02")
        mr_labelled += transfer_cases(Path(transfer_dir) / "transfer.json")
    if "oracle_mr" in sources:
        mr_labelled += _oracle_cases(params, mr_cases(params, ("lld", "amos"), cases))
    seen: set[str] = set()
    unique = []
    for tc in mr_labelled:
        if tc.case not in seen:
            seen.add(tc.case)
            unique.append(tc)
    labelled += load_training_volumes(unique, spacing, params.preprocess, progress=progress)
    used.update(seen)
    record["mr_labelled"] = {tc.case: tc.source for tc in unique}
    unl_cases = [c for c in mr_cases(params, s2.unlabelled, cases) if c.case_id not in used]
    unlabelled = _load(unl_cases, params) if s2.mode == "mean_teacher" else []
    record["unlabelled"] = [c.case_id for c in unl_cases] if s2.mode == "mean_teacher" else []
    val = validation_volumes(params, cases) if validation else []
    return StageData(labelled, unlabelled, val, record)
