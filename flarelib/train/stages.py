"""The stage API: what ``flarelib train --stage NAME`` and the stage notebooks call to train one stage
into ``outputs/<profile>/<run>/<stage>/`` (:func:`run_stage`), or a stage on volumes of their own
(:func:`train_segmentation`, :func:`train_cyclegan`).

Stages:

* ``cyclegan``: CycleGAN between CT (every labelled/pseudo-labelled CT, windowed to 0..255) and
  unlabelled MR of ``cyclegan.target_sequence`` (scaled to 0..255), both resampled to
  ``preprocess.target_spacing_zyx``. (The translation registration of STUDY.md stage 1 is not done
  here: the stage notebook prepares those crops.)
* ``stage1``: STUDY.md stage 1's MR network. Labelled = every labelled CT translated into fake MR
  by the run's CycleGAN (``g_ab`` of ``outputs/<profile>/<run>/cyclegan/checkpoint.pt``, or
  ``--cyclegan CKPT``; :mod:`flarelib.train.fake_mr`), keeping the CT labels; unlabelled = the real
  MR of ``cyclegan.target_sequence``; validation = the labelled MR validation cases. Its
  intensity randomisation, foreground oversampling, unlabelled batch and iterations are
  ``train.stage1_*`` where those do not inherit (:func:`stage_params`).
* any other name (``mt_stage1``, ``baseline``, ...): the generic segmentation entry. Labelled =
  every CT case with a label (roles ``ct_labeled``, ``ct_pseudo``); unlabelled = every MR case
  without a label (``mr_lld``, ``mr_amos``, ``mr_unlabeled``); validation = the labelled MR
  validation cases (``mr_val``). Volumes are resampled to ``preprocess.target_spacing_zyx`` and
  z-scored. ``train.mode`` picks Mean Teacher or supervised. Stage-specific data assembly (fake
  T1W, transferred pseudo-labels, anatomy filter) belongs to the stage code, which calls
  :func:`train_segmentation` / :func:`train_cyclegan` with its own volumes.

The output folder gets ``checkpoint.pt`` (resumed automatically; ``--restart`` starts over),
``model_best.pt`` when validation ran, ``train_log.csv``, ``val_log.csv``, ``tensorboard/``,
``params.yaml`` and ``run.json``. Under ``torchrun`` every rank loads the data; rank 0 writes.
Every file is written atomically; after ``kill -9`` the same command resumes from the last
checkpoint and ends with the weights and logs of an uninterrupted run, having removed the temporary
files the killed run left (``*.flarelib-tmp-*``).
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from flarelib.config import (
    LATE_KEYS_NEUTRAL,
    STAGE1_OVERRIDES,
    Params,
    PreprocessParams,
    TrainParams,
    params_hash,
    params_to_dict,
)
from flarelib.data.layout import Case, discover, load_case
from flarelib.data.roles import LABELLED_ROLES, UNLABELLED_ROLES, VALIDATION_ROLES, select_cases
from flarelib.datasets import ensure_data
from flarelib.errors import FlareInputError
from flarelib.infer.sliding import SlidingWindowPredictor
from flarelib.io import Volume
from flarelib.models.configuration import check_params
from flarelib.models.cyclegan import discriminator_from_params, generator_from_params
from flarelib.models.unet import required_divisor, unet_from_params
from flarelib.paths import stage_dir
from flarelib.preprocess import PreparedCase, prepare_case
from flarelib.preprocess.prepare import Intensity
from flarelib.registration.translation_data import align_domains
from flarelib.repro import save_run_record
from flarelib.train.augment import AugmentConfig
from flarelib.train.cyclegan import CycleGAN
from flarelib.train.fake_mr import generator_input, load_translator, translate_to_fake_mr
from flarelib.train.intensity_aug import make_intensity_aug
from flarelib.train.loop import (
    DistInfo,
    LoopConfig,
    LoopResult,
    Validator,
    dice_validator,
    setup_distributed,
    train,
)
from flarelib.train.mean_teacher import MeanTeacher
from flarelib.train.sampling import REMAPPED_MODALITIES, SegmentationBatches, TrainVolume, UnpairedBatches
from flarelib.train.translation_select import SELECT_METRIC

__all__ = [
    "FAKE_MR_STAGE",
    "LABELLED_ROLES",
    "OPERATIONAL_TRAIN_FIELDS",
    "UNLABELLED_ROLES",
    "VALIDATION_ROLES",
    "augment_config",
    "cyclegan_domains",
    "fake_mr_volumes",
    "load_train_volume",
    "load_train_volumes",
    "prepare_layout_case",
    "run_stage",
    "segmentation_validator",
    "stage_params",
    "stage_seed",
    "train_cyclegan",
    "train_segmentation",
    "training_hash",
    "training_seed",
]

#: The stage that trains on fake MR translated by the run's CycleGAN (STUDY.md stage 1).
FAKE_MR_STAGE = "stage1"

#: Params fields that do not change what is trained (excluded from the checkpoint's params hash).
OPERATIONAL_TRAIN_FIELDS = (
    "checkpoint_every",
    "validate_every",
    "num_workers",
    "threads",
    "prefetch",
    "log_every",
    "validation_cases",
)


def training_seed(params: Params) -> int:
    """The master seed of the trainings: ``run.train_seed`` where set, else ``run.seed`` (which also
    makes the phantom, so a repeat on the same data sets ``run.train_seed``)."""
    return params.run.seed if params.run.train_seed is None else params.run.train_seed


def stage_seed(master_seed: int, stage: str) -> int:
    """The seed of one stage, derived from the run's master seed and the stage name."""
    ss = np.random.SeedSequence([int(master_seed) & 0xFFFFFFFF, zlib.crc32(stage.encode())])
    return int(ss.generate_state(1)[0])


#: Params added after checkpoints were first written, with the value that reproduces the older
#: training: at that value they are left out of the hash, so those checkpoints still resume.
_HASH_NEUTRAL = {
    ("unet", "configuration"): "3d",
    ("train", "intensity_aug"): "none",
    ("train", "init_from"): None,
    **LATE_KEYS_NEUTRAL,
}


def stage_params(params: Params, stage: str) -> Params:
    """The params ``stage`` trains with: for stage 1 (:data:`FAKE_MR_STAGE`), each
    ``train.stage1_<key>`` of :data:`STAGE1_OVERRIDES` that does not say "inherit" replaces
    ``train.<key>``; other stages, and stage 1 without an override, get ``params`` itself. The
    result says "inherit" everywhere, so its training hash equals that of the same training asked
    for with ``train.<key>`` directly."""
    if stage != FAKE_MR_STAGE:
        return params
    changes: dict[str, Any] = {}
    for own, (field, inherit) in STAGE1_OVERRIDES.items():
        value = getattr(params.train, own)
        if value != inherit:
            changes[field] = value
            changes[own] = inherit
    if not changes:
        return params
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))


def training_hash(params: Params, stage: str, organ_targets: Mapping[int, float] | None = None) -> str:
    """Hash of everything that determines what a stage trains (not logging/worker settings);
    ``organ_targets``: those of a stage-1 refinement round (:mod:`.organ_refine`)."""
    d = params_to_dict(params)
    for (section, key), neutral in _HASH_NEUTRAL.items():
        if d[section].get(key) == neutral:
            del d[section][key]
    train = {k: v for k, v in d["train"].items() if k not in OPERATIONAL_TRAIN_FIELDS}
    keep = {
        "seed": d["run"]["seed"],
        "data": d["data"],
        "phantom": d["phantom"],
        "preprocess": d["preprocess"],
    }
    if "train_seed" in d["run"]:  # set (not None): the data keep run.seed
        keep["train_seed"] = d["run"]["train_seed"]
    if stage == "cyclegan":  # the refinement of its fakes (refine_*) happens after it
        keep["cyclegan"] = {k: v for k, v in d["cyclegan"].items() if not k.startswith("refine_")}
        if "configuration" in d["unet"]:  # the run's 3d/2d switch builds the CycleGAN too
            keep["configuration"] = d["unet"]["configuration"]
    else:
        keep.update(unet=d["unet"], train=train)
    if stage == FAKE_MR_STAGE:  # its labelled data is what the CycleGAN makes
        keep["cyclegan"] = d["cyclegan"]
    if organ_targets:  # ... moved to these organ brightnesses (a refinement round)
        keep["organ_targets"] = {str(k): round(float(v), 3) for k, v in sorted(organ_targets.items())}
    return params_hash({"stage": stage, **keep})


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def prepare_layout_case(
    case: Case,
    spacing_zyx: Sequence[float],
    intensity: Intensity = "zscore",
    preprocess: PreprocessParams | None = None,
) -> PreparedCase:
    """Read a layout case and prepare it (:func:`flarelib.preprocess.prepare_case`), keeping the
    geometry of the training grid."""
    image, label = load_case(case)
    return prepare_case(
        image,
        label,
        spacing_zyx=spacing_zyx,
        intensity=intensity,
        modality=case.modality,
        preprocess=preprocess,
    )


def _prepared_arrays(
    case: Case,
    spacing_zyx: Sequence[float],
    intensity: Intensity,
    preprocess: PreprocessParams | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``prepare_layout_case``'s image and label arrays, through the preprocessed-volume cache
    (:mod:`flarelib.preprocess.cache`: bit-identical, keyed by the files and every setting)."""
    from flarelib.preprocess import cache

    key = None
    if cache.cache_dir() is not None and case.image.is_file():
        label = case.label if case.label is not None and case.label.is_file() else None
        if label is not None or case.label is None:
            key = cache.cache_key(
                case.image,
                label,
                spacing_zyx=spacing_zyx,
                intensity=intensity,
                modality=case.modality,
                preprocess=preprocess,
                label_map=case.label_map,
            )
            hit = cache.load(key, with_label=label is not None)
            if hit is not None:
                return hit
    prep = prepare_layout_case(case, spacing_zyx, intensity, preprocess)
    if key is not None:
        cache.store(key, prep.image, prep.label)
    return prep.image, prep.label


def load_train_volume(
    case: Case,
    spacing_zyx: Sequence[float],
    intensity: Intensity = "zscore",
    preprocess: PreprocessParams | None = None,
) -> TrainVolume:
    """Read a layout :class:`~flarelib.data.layout.Case` into a :class:`TrainVolume` at
    ``spacing_zyx`` (mm, z y x) through :func:`flarelib.preprocess.prepare_case`, the path
    prediction takes too (LPS, spacing, intensity).

    ``intensity``: ``"zscore"`` (segmentation: CT is windowed to 0..255 first, with the
    ``preprocess`` section's window or 40/400), ``"ct255"`` / ``"mr255"`` (CycleGAN, with the
    ``preprocess`` params section).
    """
    image, label = _prepared_arrays(case, spacing_zyx, intensity, preprocess)
    annotated = None
    if label is not None and case.label_map is not None:
        annotated = case.label_map.annotated_mask()
    return TrainVolume(
        image,
        label,
        annotated,
        name=str(case.case_id),
        spacing_zyx=tuple(spacing_zyx),
        modality=case.modality,
    )


def load_train_volumes(
    cases: Sequence[Case],
    spacing: Sequence[float],
    intensity: Intensity,
    preprocess: PreprocessParams,
    what: str,
    progress: bool,
) -> list[TrainVolume]:
    """:func:`load_train_volume` of every case (``what`` names them in the progress bar)."""
    return [
        load_train_volume(c, spacing, intensity, preprocess)
        for c in tqdm(cases, desc=f"loading {what}", disable=not progress or not cases, leave=False)
    ]


# --------------------------------------------------------------------------------------------------
# Stage runners (also the API the stage notebooks call with their own volumes)
# --------------------------------------------------------------------------------------------------


def _loop_config(
    params: Params,
    stage: str,
    out_dir: Path,
    iterations: int,
    *,
    restart: bool,
    device: str | None,
    progress: bool,
    organ_targets: Mapping[int, float] | None = None,
) -> LoopConfig:
    t = params.train
    return LoopConfig(
        stage=stage,
        out_dir=out_dir,
        iterations=iterations,
        seed=stage_seed(training_seed(params), stage),
        params_hash=training_hash(params, stage, organ_targets),
        checkpoint_every=t.checkpoint_every,
        validate_every=t.validate_every,
        log_every=t.log_every,
        num_workers=t.num_workers,
        prefetch=t.prefetch,
        threads=t.threads,
        amp=t.amp,
        cpu_precision=t.cpu_precision,
        device=device,
        progress=progress,
        resume=not restart,
    )


def segmentation_validator(params: Params, volumes: Sequence[TrainVolume]) -> Validator | None:
    """Dice on whole labelled volumes, predicted by the predictor inference uses
    (:meth:`SlidingWindowPredictor.from_params` of the ``infer`` section: window, step rule,
    placement, Gaussian, L/R pairs), without mirroring (a training-time check). Not the loop's
    non-overlapping tiles: those hide much of what a net has learned (benchmarks/RESULTS.md,
    convergence diagnostics)."""
    vols = [v for v in volumes if v.label is not None]
    if params.train.validation_cases > 0:
        vols = vols[: params.train.validation_cases]
    if not vols:
        return None
    infer = dataclasses.replace(params.infer, mirror_axes=())

    def predictor(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
        swp = SlidingWindowPredictor.from_params(
            model,
            infer,
            params.unet.num_classes,
            device=next(model.parameters()).device,
            swap_lr_labels=params.train.swap_lr_labels,
        )
        return swp.predict_labels

    return dice_validator(vols, infer.window_zyx, predictor_factory=predictor)


def augment_config(train_params: TrainParams) -> AugmentConfig:
    """The :class:`~flarelib.train.augment.AugmentConfig` of ``train.augmentation``: ``nnunet``
    (every transform at its default probability) or ``none`` (plain crops); both honour
    ``train.swap_lr_labels``."""
    swap = train_params.swap_lr_labels
    if train_params.augmentation == "none":
        return AugmentConfig.none(swap_lr_labels=swap)
    return AugmentConfig(swap_lr_labels=swap)


def train_segmentation(
    params: Params,
    stage: str,
    out_dir: Path,
    labeled: Sequence[TrainVolume],
    unlabeled: Sequence[TrainVolume],
    validation: Sequence[TrainVolume] = (),
    *,
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    dist_info: DistInfo | None = None,
    organ_targets: Mapping[int, float] | None = None,
) -> LoopResult:
    """Train a Mean Teacher (or supervised, ``train.mode``) U-Net on the given volumes; returns the
    :class:`~flarelib.train.loop.LoopResult`. ``organ_targets``: those the labelled fakes were
    refined to (a stage-1 refinement round), part of the checkpoint's training hash.

    ``unet.configuration`` 2d trains on one-slice patches (``train.patch_zyx`` z = 1, validated
    with ``infer.window_zyx`` z = 1); ``train.intensity_aug`` remaps the labelled volumes of
    CT and of CT translated to MR (:data:`~flarelib.train.sampling.REMAPPED_MODALITIES`); stage 1
    takes ``train.stage1_*`` where those do not inherit (:func:`stage_params`)."""
    params = stage_params(params, stage)
    t = params.train
    check_params(params, ("unet", "train", "infer"))
    div = required_divisor(params.unet.pool_zyx)
    if any(p % d for p, d in zip(t.patch_zyx, div, strict=True)):
        raise FlareInputError(
            "train.patch_zyx",
            f"{list(t.patch_zyx)} is not a multiple of {list(div)} (the U-Net's pooling)",
            f"use multiples of {list(div)}",
        )
    if not labeled:
        raise FlareInputError(
            "data.subsets",
            "no labelled volumes to train on",
            "add a subset with role ct_labeled or ct_pseudo and labels",
        )
    info = dist_info or setup_distributed(device)
    seed = stage_seed(training_seed(params), stage)
    torch.manual_seed(seed)
    student = unet_from_params(params.unet)
    if t.init_from:  # a fresh start from another stage's weights; a checkpoint of this stage resumes
        from flarelib.checkpoint import init_weights

        init_weights(student, t.init_from, params.infer.weights)
    system = MeanTeacher(student, params=t, seed=seed, eval_weights=params.infer.weights)
    intensity_aug = make_intensity_aug(t.intensity_aug, t.patch_zyx)
    if intensity_aug is not None and not any(v.modality in REMAPPED_MODALITIES for v in labeled):
        warnings.warn(
            f"train.intensity_aug: {t.intensity_aug} remaps labelled CT and fake MR only, and none of "
            f"the {len(labeled)} labelled volumes is either (TrainVolume.modality): it changes nothing here",
            stacklevel=2,
        )
    batches = SegmentationBatches(
        labeled,
        unlabeled if t.mode == "mean_teacher" else None,
        t.patch_zyx,
        batch_labeled=t.batch_labeled,
        batch_unlabeled=t.batch_unlabeled,
        foreground_oversample=t.foreground_oversample,
        augment=augment_config(t),
        seed=seed,
        rank=info.rank,
        intensity_aug=intensity_aug,
    )
    cfg = _loop_config(
        params,
        stage,
        out_dir,
        t.iterations,
        restart=restart,
        device=device,
        progress=progress and info.is_main,
        organ_targets=organ_targets,
    )
    validate = segmentation_validator(params, validation) if validation else None
    return train(system, batches, cfg, validate, dist_info=info)


def train_cyclegan(
    params: Params,
    out_dir: Path,
    domain_a: Sequence[TrainVolume],
    domain_b: Sequence[TrainVolume],
    *,
    stage: str = "cyclegan",
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    dist_info: DistInfo | None = None,
    validate: Validator | None = None,
    validate_every: int = 0,
) -> LoopResult:
    """Train the CycleGAN (A -> B) on 0..255 volumes; returns the LoopResult. Its networks are 2-D
    (in-plane kernels, one-slice ``cyclegan.patch_zyx``) when ``unet.configuration`` is 2d.

    ``validate`` (a :data:`Validator` of ``g_ab``, e.g.
    :func:`~flarelib.train.translation_select.translation_validator`; none by default) runs every
    ``validate_every`` iterations (0: at the end) and is logged to ``val_log.csv``; the loop keeps
    the generator of its highest :data:`~flarelib.train.translation_select.SELECT_METRIC` in
    ``model_best.pt``. Stage 1 translates with the last generator (``checkpoint.pt``) whatever it
    says: no label-free criterion measured so far picks better generators (benchmarks/RESULTS.md)."""
    c = params.cyclegan
    conf = check_params(params, ("cyclegan",))
    # the axes the networks downsample: all three in 3d, y and x in 2d (z is one slice)
    axes = c.patch_zyx if conf == "3d" else c.patch_zyx[1:]
    if not domain_a or not domain_b:
        raise FlareInputError(
            "data.subsets",
            f"CycleGAN needs volumes in both domains (A: {len(domain_a)}, B: {len(domain_b)})",
            "check the CT subsets and cyclegan.target_sequence",
        )
    if any(p % 4 for p in axes):
        raise FlareInputError(
            "cyclegan.patch_zyx",
            f"{list(c.patch_zyx)} must be multiples of 4" + (" in y and x" if conf == "2d" else ""),
            "use multiples of 4 (two stride-2 downsamplings)",
        )
    min_d = 3 * 2**c.n_layers
    if min(axes) < min_d:
        raise FlareInputError(
            "cyclegan.patch_zyx",
            f"{list(c.patch_zyx)} is too small for a discriminator with "
            f"n_layers={c.n_layers} ({'every axis needs' if conf == '3d' else 'y and x need'} >= {min_d})",
            "enlarge the patch or lower cyclegan.n_layers",
        )
    info = dist_info or setup_distributed(device)
    seed = stage_seed(training_seed(params), stage)
    gen = torch.Generator().manual_seed(seed)
    system = CycleGAN(
        generator_from_params(c, gen, conf),
        generator_from_params(c, gen, conf),
        discriminator_from_params(c, gen, conf),
        discriminator_from_params(c, gen, conf),
        c,
        seed=seed,
    )
    batches = UnpairedBatches(domain_a, domain_b, c.patch_zyx, batch_size=1, seed=seed, rank=info.rank)
    cfg = _loop_config(
        params,
        stage,
        out_dir,
        c.epochs * c.iterations_per_epoch,
        restart=restart,
        device=device,
        progress=progress and info.is_main,
    )
    cfg.amp = params.train.amp
    if validate is not None:
        cfg.validate_every = int(validate_every)
        cfg.select_metric = SELECT_METRIC
    return train(system, batches, cfg, validate, dist_info=info)


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------


def run_stage(
    params: Params,
    stage: str,
    out_dir: Path | None = None,
    *,
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    cyclegan: str | Path | None = None,
    organ_targets: Mapping[int, float] | None = None,
) -> LoopResult:
    """Discover the data of ``params``, load it and train ``stage`` (see the module docstring).

    ``cyclegan``: the CycleGAN checkpoint of stage ``stage1`` (default: the run's cyclegan stage);
    ``organ_targets``: stage ``stage1``'s fakes refined organ by organ to these brightnesses
    (:mod:`.organ_refine`; ``cyclegan.refine_rounds``)."""
    params = stage_params(params, stage)
    info = setup_distributed(device)
    out = Path(out_dir) if out_dir is not None else stage_dir(params.run.profile, params.run.name, stage)
    extra: dict[str, Any] = {"stage": stage, "world_size": info.world_size}
    if stage == FAKE_MR_STAGE and cyclegan is None:
        cyclegan = stage_dir(params.run.profile, params.run.name, "cyclegan") / "checkpoint.pt"
    if info.is_main:
        ensure_data(params)
        save_run_record(out, params, extra=extra)
    if info.distributed:
        dist.barrier()
    cases = discover(params)
    spacing = params.preprocess.target_spacing_zyx
    show = progress and info.is_main
    if stage == "cyclegan":
        a, b, record = cyclegan_domains(params, cases, show)
        if record and info.is_main:
            save_run_record(out, params, extra={**extra, "align_domains": record})
        return train_cyclegan(
            params, out, a, b, stage=stage, restart=restart, device=device, progress=progress, dist_info=info
        )
    labelled_cases = select_cases(cases, "labelled")
    unlabelled_cases = select_cases(cases, "unlabelled")
    if stage == FAKE_MR_STAGE:
        labeled, translator = fake_mr_volumes(
            params, labelled_cases, cyclegan, info.device, show, organ_targets
        )
        if organ_targets:
            extra["organ_targets"] = {int(k): float(v) for k, v in organ_targets.items()}
        if info.is_main:
            save_run_record(out, params, extra={**extra, "cyclegan": translator})
        unlabelled_cases = select_cases(cases, "unlabelled", sequence=params.cyclegan.target_sequence)
    else:
        labeled = load_train_volumes(labelled_cases, spacing, "zscore", params.preprocess, "labelled", show)
    unlabeled = []
    if params.train.mode == "mean_teacher":
        unlabeled = load_train_volumes(
            unlabelled_cases, spacing, "zscore", params.preprocess, "unlabelled", show
        )
    val_cases = select_cases(cases, "validation")
    if params.train.validation_cases > 0:
        val_cases = val_cases[: params.train.validation_cases]
    validation = load_train_volumes(val_cases, spacing, "zscore", params.preprocess, "validation", show)
    return train_segmentation(
        params,
        stage,
        out,
        labeled,
        unlabeled,
        validation,
        restart=restart,
        device=device,
        progress=progress,
        dist_info=info,
        organ_targets=organ_targets,
    )


def cyclegan_domains(
    params: Params, cases: Sequence[Case], show: bool = False
) -> tuple[list[TrainVolume], list[TrainVolume], dict[str, Any]]:
    """The CycleGAN's two domains as stage ``cyclegan`` trains on them: A = every labelled CT
    (0..255 windowed; air cleared with ``cyclegan.fake_background: zero``, inverted with
    ``cyclegan.ct_input: inverted``: :func:`~flarelib.train.fake_mr.generator_input`), B = the unlabelled MR
    of ``cyclegan.target_sequence`` (0..255), at the training spacing, aligned when
    ``cyclegan.align_domains`` (the record of that alignment, else ``{}``)."""
    spacing = params.preprocess.target_spacing_zyx
    seq = params.cyclegan.target_sequence
    a_cases = select_cases(cases, "labelled")
    b_cases = select_cases(cases, "unlabelled", sequence=seq)
    record: dict[str, Any] = {}
    if params.cyclegan.align_domains and a_cases and b_cases:
        a, b, record = _aligned_domains(params, a_cases, b_cases, show)
    else:
        a = load_train_volumes(a_cases, spacing, "ct255", params.preprocess, "CT", show)
        b = load_train_volumes(b_cases, spacing, "mr255", params.preprocess, f"MR {seq or ''}".strip(), show)
    c = params.cyclegan
    a = [dataclasses.replace(v, image=generator_input(v.image, c.fake_background, c.ct_input)) for v in a]
    return a, b, record


def _aligned_domains(
    params: Params, ct_cases: Sequence[Case], mr_cases: Sequence[Case], show: bool
) -> tuple[list[TrainVolume], list[TrainVolume], dict[str, Any]]:
    """The CycleGAN's two domains at the training spacing (CT 0..255, MR 0..255), aligned onto the
    MR reference by :func:`flarelib.registration.translation_data.align_domains`; the record holds
    every case's transform and the references."""
    spacing = params.preprocess.target_spacing_zyx

    def prepared(case: Case, intensity: Intensity) -> tuple[Volume, Volume | None]:
        prep = prepare_layout_case(case, spacing, intensity, params.preprocess)
        lab = None if prep.label is None else prep.grid.with_array(prep.label)
        return prep.grid.with_array(prep.image), lab

    cts = [(c.case_id, *prepared(c, "ct255")) for c in tqdm(ct_cases, desc="CT", disable=not show)]
    mrs = [(c.case_id, prepared(c, "mr255")[0]) for c in tqdm(mr_cases, desc="MR", disable=not show)]
    r = params.registration
    aligned = align_domains(cts, mrs, levels=r.levels, sampling=r.sampling_fraction, seed=r.seed)
    sp = tuple(spacing)
    a = [
        TrainVolume(_content_slab(v.array), None, None, name=c[0], spacing_zyx=sp, modality="CT")
        for c, v in zip(cts, aligned.ct, strict=True)
    ]
    b = [
        TrainVolume(_content_slab(v.array), None, None, name=m[0], spacing_zyx=sp, modality="MR")
        for m, v in zip(mrs, aligned.mr, strict=True)
    ]
    record = {"reference_ct": aligned.reference_ct, "reference_mr": aligned.reference_mr, **aligned.record}
    return a, b, record


def _content_slab(array: np.ndarray, min_fraction: float = 0.05) -> np.ndarray:
    """``array`` (z, y, x) cut in z to the slices from the first to the last with more than
    ``min_fraction`` nonzero voxels: a volume resampled onto the reference grid is 0 outside its own
    field of view, and the CycleGAN's random slices would teach its discriminator that an empty
    slice is MR (or CT)."""
    filled = (array.reshape(array.shape[0], -1) > 0).mean(axis=1) > min_fraction
    if not filled.any():
        return array
    k = np.flatnonzero(filled)
    return array[k[0] : k[-1] + 1]


def fake_mr_volumes(
    params: Params,
    cases: Sequence[Case],
    cyclegan: str | Path,
    device: torch.device,
    show: bool,
    organ_targets: Mapping[int, float] | None = None,
) -> tuple[list[TrainVolume], dict[str, Any]]:
    """Labelled CT cases as z-scored fake MR volumes with their CT labels (:mod:`.fake_mr`), and
    the record of the CycleGAN checkpoint that made them; ``organ_targets``: each organ moved to
    that brightness first (:mod:`.organ_refine`)."""
    expect = training_hash(params, "cyclegan")
    generator, record = load_translator(cyclegan, params, device, expect_hash=expect)
    ct = load_train_volumes(
        cases, params.preprocess.target_spacing_zyx, "ct255", params.preprocess, "CT", show
    )
    c = params.cyclegan
    fake = translate_to_fake_mr(
        generator,
        ct,
        c.patch_zyx,
        overlap=c.translate_overlap,
        blend=c.translate_blend,
        background=c.fake_background,
        ct_input=c.ct_input,
        device=device,
        progress=show,
        organ_targets=organ_targets,
        refine_erode=c.refine_erode,
        mr_scaling=params.preprocess.mr_scaling,
        mr_percentiles=params.preprocess.mr_percentiles,
    )
    return fake, record
