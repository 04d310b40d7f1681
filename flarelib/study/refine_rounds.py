"""Stage 1's refinement rounds (``cyclegan.refine_rounds``; a deviation, :mod:`flarelib.train.organ_refine`).

Round 1 is the paper's stage 1: the Mean Teacher on the CycleGAN's fakes, whose teacher pseudo-labels
the real MR of the target sequence. Each further round ``r``:

1. the real MR volumes, scaled to 0..255 as the CycleGAN's MR domain, give each organ's brightness
   inside round ``r-1``'s pseudo-labels (:func:`stage1_organ_targets`);
2. the CycleGAN's fakes are moved organ by organ to those brightnesses;
3. the Mean Teacher trains on them, warm-started from round ``r-1``'s model for
   ``cyclegan.refine_iterations`` (0: ``train.iterations``), into ``01_stage1/stage1_round<r>/``;
4. its teacher pseudo-labels the real MR again.

The last round's model and pseudo-labels are stage 1's products; earlier rounds' pseudo-labels stay
in ``01_stage1/pseudo_labels_round<r>/``. The notebook ``01_stage1`` runs the rounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from flarelib.config import Params
from flarelib.data.layout import Case
from flarelib.io import read_image, read_label
from flarelib.preprocess import prepare_case
from flarelib.study.selftrain import with_training
from flarelib.train.organ_refine import organ_targets

__all__ = ["best_model", "round_params", "stage1_organ_targets"]


def stage1_organ_targets(
    params: Params, mr_cases: Sequence[Case], pseudo_labels: Sequence[str | Path]
) -> dict[int, float]:
    """Organ id -> brightness (0..255, ``preprocess.mr_scaling``) of the real MR ``mr_cases``
    inside their ``pseudo_labels`` (one file per case, in order, on the case's grid), each case
    prepared on the training grid as stage 1 sees it; masks eroded by ``cyclegan.refine_erode``."""
    if len(mr_cases) != len(pseudo_labels):
        raise ValueError(f"{len(mr_cases)} MR cases but {len(pseudo_labels)} pseudo-labels")
    pre = params.preprocess
    images, labels = [], []
    for case, label_file in zip(mr_cases, pseudo_labels, strict=True):
        prep = prepare_case(
            read_image(case.image),
            read_label(label_file),
            spacing_zyx=pre.target_spacing_zyx,
            intensity="mr255",
            modality="MR",
            preprocess=pre,
        )
        images.append(prep.image)
        labels.append(prep.label)
    return organ_targets(images, labels, erode=params.cyclegan.refine_erode)


def round_params(params: Params, previous_model: str | Path) -> Params:
    """The params of a refinement round: warm start from ``previous_model``, for
    ``cyclegan.refine_iterations`` (0: ``train.iterations``; ``train.stage1_iterations`` is the
    first round's alone)."""
    iterations = params.cyclegan.refine_iterations or params.train.iterations
    rounds = dataclasses.replace(params, train=dataclasses.replace(params.train, stage1_iterations=0))
    return with_training(rounds, params.train.mode, init_from=str(previous_model), iterations=iterations)


def best_model(stage_dir: Path) -> Path:
    """A trained stage's model file: ``model_best.pt`` (the validation's best) where it exists, else
    ``checkpoint.pt``."""
    best = Path(stage_dir) / "model_best.pt"
    return best if best.is_file() else Path(stage_dir) / "checkpoint.pt"
