"""``flarelib train --params FILE --stage NAME``: train one stage into ``outputs/<profile>/<run>/<stage>/``.

Stages:

* ``cyclegan``: CycleGAN between CT (every labelled/pseudo-labelled CT, windowed to 0..255) and
  unlabelled MR of ``cyclegan.target_sequence`` (scaled to 0..255), both resampled to
  ``preprocess.target_spacing_zyx``. (The translation registration of STUDY.md stage 1 is not done
  here: the stage notebook prepares those crops.)
* ``stage1``: STUDY.md stage 1's MR network. Labelled = every labelled CT translated into fake MR
  by the run's CycleGAN (``g_ab`` of ``outputs/<profile>/<run>/cyclegan/checkpoint.pt``, or
  ``--cyclegan CKPT``; :mod:`flarelib.train.fake_mr`), keeping the CT labels; unlabelled = the real
  MR of ``cyclegan.target_sequence``; validation = the labelled MR validation cases.
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
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flarelib.errors import FlareInputError
from flarelib.train.sampling import TrainVolume

LABELLED_ROLES = ("ct_labeled", "ct_pseudo")
#: The stage that trains on fake MR translated by the run's CycleGAN (STUDY.md stage 1).
FAKE_MR_STAGE = "stage1"
UNLABELLED_ROLES = ("mr_lld", "mr_amos", "mr_unlabeled")
VALIDATION_ROLES = ("mr_val",)

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


def stage_seed(master_seed: int, stage: str) -> int:
    """The seed of one stage, derived from the run's master seed and the stage name."""
    ss = np.random.SeedSequence([int(master_seed) & 0xFFFFFFFF, zlib.crc32(stage.encode())])
    return int(ss.generate_state(1)[0])


def training_hash(params: Any, stage: str) -> str:
    """Hash of everything that determines what a stage trains (not logging/worker settings)."""
    from flarelib.config import params_hash, params_to_dict

    d = params_to_dict(params)
    train = {k: v for k, v in d["train"].items() if k not in OPERATIONAL_TRAIN_FIELDS}
    keep = {
        "seed": d["run"]["seed"],
        "data": d["data"],
        "phantom": d["phantom"],
        "preprocess": d["preprocess"],
    }
    if stage == "cyclegan":
        keep["cyclegan"] = d["cyclegan"]
    else:
        keep.update(unet=d["unet"], train=train)
    if stage == FAKE_MR_STAGE:  # its labelled data is what the CycleGAN makes
        keep["cyclegan"] = d["cyclegan"]
    return params_hash({"stage": stage, **keep})


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _resample(vol: Any, spacing_zyx: Sequence[float], is_label: bool) -> Any:
    """:func:`flarelib.preprocess.resample` (B-spline images, nearest labels), skipped when the
    spacing already matches."""
    from flarelib.preprocess import resample

    if np.allclose(vol.spacing_zyx, spacing_zyx, rtol=0, atol=1e-6):
        return vol
    return resample(vol, tuple(spacing_zyx), is_label=is_label)


def load_train_volume(
    case: Any, spacing_zyx: Sequence[float], intensity: str = "zscore", preprocess: Any = None
) -> TrainVolume:
    """Read a layout ``Case`` into a :class:`TrainVolume` at ``spacing_zyx``, reoriented to LPS
    first (STUDY.md's first preprocessing step; :class:`flarelib.infer.pipeline.CasePredictor`
    predicts on LPS arrays, so a net must train on them: BTCV and CHAOS store y flipped).

    ``intensity``: ``"zscore"`` (segmentation: CT is windowed to 0..255 first, with the
    ``preprocess`` section's window or 40/400), ``"ct255"`` / ``"mr255"`` (CycleGAN, with the
    ``preprocess`` params section).
    """
    from flarelib.data.layout import load_case
    from flarelib.io import reorient_to_lps
    from flarelib.preprocess import ct_window, mr_scale, zscore

    image, label = load_case(case)
    image = reorient_to_lps(image)[0]
    label = None if label is None else reorient_to_lps(label)[0]
    image = _resample(image, spacing_zyx, is_label=False)
    arr = image.array
    if intensity == "zscore":
        if case.modality == "CT":
            # windowed first (STUDY.md: CT window 40/400 -> 0..255, then z-score): on raw HU the
            # air/body contrast dominates the std and soft-tissue contrast shrinks to ~0.1 units.
            level = preprocess.ct_window_level if preprocess is not None else 40.0
            width = preprocess.ct_window_width if preprocess is not None else 400.0
            arr = ct_window(arr, level, width)
        arr = zscore(arr)
    elif intensity == "ct255":
        arr = ct_window(arr, preprocess.ct_window_level, preprocess.ct_window_width)
    elif intensity == "mr255":
        arr = mr_scale(arr, preprocess.mr_scaling, tuple(preprocess.mr_percentiles))
    lab = None
    annotated = None
    if label is not None:
        lab = _resample(label, spacing_zyx, is_label=True).array.astype(np.uint8)
        if lab.shape != arr.shape:
            raise FlareInputError(
                case.label,
                f"resampled label {lab.shape} != image {arr.shape}",
                "check that image and label share one grid",
            )
        if case.label_map is not None:
            annotated = case.label_map.annotated_mask()
    return TrainVolume(arr, lab, annotated, name=str(case.case_id), spacing_zyx=tuple(spacing_zyx))


def _load_all(
    cases: Sequence[Any], spacing, intensity, preprocess, what: str, progress: bool
) -> list[TrainVolume]:
    from tqdm.auto import tqdm

    return [
        load_train_volume(c, spacing, intensity, preprocess)
        for c in tqdm(cases, desc=f"loading {what}", disable=not progress or not cases, leave=False)
    ]


# --------------------------------------------------------------------------------------------------
# Stage runners (also the API the stage notebooks call with their own volumes)
# --------------------------------------------------------------------------------------------------


def _loop_config(
    params: Any,
    stage: str,
    out_dir: Path,
    iterations: int,
    *,
    restart: bool,
    device: str | None,
    progress: bool,
) -> Any:
    from flarelib.train.loop import LoopConfig

    t = params.train
    return LoopConfig(
        stage=stage,
        out_dir=out_dir,
        iterations=iterations,
        seed=stage_seed(params.run.seed, stage),
        params_hash=training_hash(params, stage),
        checkpoint_every=t.checkpoint_every,
        validate_every=t.validate_every,
        log_every=t.log_every,
        num_workers=t.num_workers,
        prefetch=t.prefetch,
        threads=t.threads,
        amp=t.amp,
        device=device,
        progress=progress,
        resume=not restart,
    )


def segmentation_validator(params: Any, volumes: Sequence[TrainVolume]) -> Any:
    """Dice on whole labelled volumes with :class:`flarelib.infer.sliding.SlidingWindowPredictor`
    (``infer`` params, no mirroring: a training-time check). Not the loop's non-overlapping tiles:
    those hide much of what a net has learned (benchmarks/RESULTS.md, convergence diagnostics)."""
    from flarelib.labels import NUM_CLASSES
    from flarelib.train.loop import dice_validator

    vols = [v for v in volumes if v.label is not None]
    if params.train.validation_cases > 0:
        vols = vols[: params.train.validation_cases]
    if not vols:
        return None
    from flarelib.infer.sliding import SlidingWindowPredictor

    inf = params.infer

    def predictor(model):
        swp = SlidingWindowPredictor(
            model,
            NUM_CLASSES,
            inf.window_zyx,
            step=inf.step,
            max_windows=inf.max_windows,
            rule_fractions=inf.step_rule_fractions_zyx,
            mirror_axes=(),
            sigma_scale=inf.gaussian_sigma_scale,
            windows_per_batch=inf.windows_per_batch,
            device=next(model.parameters()).device,
            half_precision=inf.half_precision,
            pad_value=inf.pad_value,
        )
        return swp.predict_labels

    return dice_validator(vols, params.infer.window_zyx, predictor_factory=predictor)


def augment_config(train_params: Any) -> Any:
    """The :class:`~flarelib.train.augment.AugmentConfig` of ``train.augmentation``: ``nnunet``
    (every transform at its default probability) or ``none`` (plain crops); both honour
    ``train.swap_lr_labels``."""
    from flarelib.train.augment import AugmentConfig

    swap = train_params.swap_lr_labels
    if train_params.augmentation == "none":
        return AugmentConfig.none(swap_lr_labels=swap)
    return AugmentConfig(swap_lr_labels=swap)


def train_segmentation(
    params: Any,
    stage: str,
    out_dir: Path,
    labeled: Sequence[TrainVolume],
    unlabeled: Sequence[TrainVolume],
    validation: Sequence[TrainVolume] = (),
    *,
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    dist_info: Any = None,
) -> Any:
    """Train a Mean Teacher (or supervised, ``train.mode``) U-Net on the given volumes; returns the
    :class:`~flarelib.train.loop.LoopResult`."""
    import torch

    from flarelib.models.unet import required_divisor, unet_from_params
    from flarelib.train.loop import setup_distributed, train
    from flarelib.train.mean_teacher import MeanTeacher
    from flarelib.train.sampling import SegmentationBatches

    t = params.train
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
    seed = stage_seed(params.run.seed, stage)
    torch.manual_seed(seed)
    student = unet_from_params(params.unet)
    system = MeanTeacher(student, params=t, seed=seed, eval_weights=params.infer.weights)
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
    )
    cfg = _loop_config(
        params,
        stage,
        out_dir,
        t.iterations,
        restart=restart,
        device=device,
        progress=progress and info.is_main,
    )
    validate = segmentation_validator(params, validation) if validation else None
    return train(system, batches, cfg, validate, dist_info=info)


def train_cyclegan(
    params: Any,
    out_dir: Path,
    domain_a: Sequence[TrainVolume],
    domain_b: Sequence[TrainVolume],
    *,
    stage: str = "cyclegan",
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    dist_info: Any = None,
) -> Any:
    """Train the CycleGAN (A -> B) on 0..255 volumes; returns the LoopResult."""
    import torch

    from flarelib.models.cyclegan import discriminator_from_params, generator_from_params
    from flarelib.train.cyclegan import CycleGAN
    from flarelib.train.loop import setup_distributed, train
    from flarelib.train.sampling import UnpairedBatches

    c = params.cyclegan
    if not domain_a or not domain_b:
        raise FlareInputError(
            "data.subsets",
            f"CycleGAN needs volumes in both domains (A: {len(domain_a)}, B: {len(domain_b)})",
            "check the CT subsets and cyclegan.target_sequence",
        )
    if any(p % 4 for p in c.patch_zyx):
        raise FlareInputError(
            "cyclegan.patch_zyx",
            f"{list(c.patch_zyx)} must be multiples of 4",
            "use multiples of 4 (two stride-2 downsamplings)",
        )
    min_d = 3 * 2**c.n_layers
    if min(c.patch_zyx) < min_d:
        raise FlareInputError(
            "cyclegan.patch_zyx",
            f"{list(c.patch_zyx)} is too small for a discriminator with "
            f"n_layers={c.n_layers} (every axis needs >= {min_d})",
            "enlarge the patch or lower cyclegan.n_layers",
        )
    info = dist_info or setup_distributed(device)
    seed = stage_seed(params.run.seed, stage)
    gen = torch.Generator().manual_seed(seed)
    system = CycleGAN(
        generator_from_params(c, gen),
        generator_from_params(c, gen),
        discriminator_from_params(c, gen),
        discriminator_from_params(c, gen),
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
    return train(system, batches, cfg, None, dist_info=info)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def run_stage(
    params: Any,
    stage: str,
    out_dir: Path | None = None,
    *,
    restart: bool = False,
    device: str | None = None,
    progress: bool = True,
    cyclegan: str | Path | None = None,
) -> Any:
    """Discover the data of ``params``, load it and train ``stage`` (see the module docstring).

    ``cyclegan``: the CycleGAN checkpoint of stage ``stage1`` (default: the run's cyclegan stage)."""
    import torch.distributed as dist

    from flarelib.data.layout import discover
    from flarelib.paths import stage_dir
    from flarelib.repro import save_run_record
    from flarelib.train.loop import setup_distributed

    info = setup_distributed(device)
    out = Path(out_dir) if out_dir is not None else stage_dir(params.run.profile, params.run.name, stage)
    extra: dict[str, Any] = {"stage": stage, "world_size": info.world_size}
    if stage == FAKE_MR_STAGE and cyclegan is None:
        cyclegan = stage_dir(params.run.profile, params.run.name, "cyclegan") / "checkpoint.pt"
    if info.is_main:
        try:
            from flarelib.data.prepare import ensure_data

            ensure_data(params)
        except ImportError:
            pass
        save_run_record(out, params, extra=extra)
    if info.distributed:
        dist.barrier()
    subsets = discover(params)
    cases = [c for cs in subsets.values() for c in cs]
    spacing = params.preprocess.target_spacing_zyx
    show = progress and info.is_main
    if stage == "cyclegan":
        seq = params.cyclegan.target_sequence
        a_cases = [c for c in cases if c.role in LABELLED_ROLES]
        b_cases = [
            c
            for c in cases
            if c.role in UNLABELLED_ROLES and c.label is None and (seq is None or c.sequence == seq)
        ]
        a = _load_all(a_cases, spacing, "ct255", params.preprocess, "CT", show)
        b = _load_all(b_cases, spacing, "mr255", params.preprocess, f"MR {seq or ''}".strip(), show)
        return train_cyclegan(
            params, out, a, b, stage=stage, restart=restart, device=device, progress=progress, dist_info=info
        )
    labelled_cases = [c for c in cases if c.role in LABELLED_ROLES and c.label is not None]
    unlabelled_cases = [c for c in cases if c.role in UNLABELLED_ROLES and c.label is None]
    if stage == FAKE_MR_STAGE:
        labeled, translator = _fake_mr(params, labelled_cases, cyclegan, info.device, show)
        if info.is_main:
            save_run_record(out, params, extra={**extra, "cyclegan": translator})
        seq = params.cyclegan.target_sequence
        unlabelled_cases = [c for c in unlabelled_cases if seq is None or c.sequence == seq]
    else:
        labeled = _load_all(labelled_cases, spacing, "zscore", params.preprocess, "labelled", show)
    unlabeled = []
    if params.train.mode == "mean_teacher":
        unlabeled = _load_all(unlabelled_cases, spacing, "zscore", params.preprocess, "unlabelled", show)
    val_cases = [c for c in cases if c.role in VALIDATION_ROLES and c.label is not None]
    if params.train.validation_cases > 0:
        val_cases = val_cases[: params.train.validation_cases]
    validation = _load_all(val_cases, spacing, "zscore", params.preprocess, "validation", show)
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
    )


def _fake_mr(
    params: Any, cases: Sequence[Any], cyclegan: Any, device: Any, show: bool
) -> tuple[list[TrainVolume], dict[str, Any]]:
    """Labelled CT cases as z-scored fake MR volumes with their CT labels (:mod:`.fake_mr`), and
    the record of the CycleGAN checkpoint that made them."""
    from flarelib.train.fake_mr import load_translator, translate_to_fake_mr

    expect = training_hash(params, "cyclegan")
    generator, record = load_translator(cyclegan, params, device, expect_hash=expect)
    ct = _load_all(cases, params.preprocess.target_spacing_zyx, "ct255", params.preprocess, "CT", show)
    c = params.cyclegan
    fake = translate_to_fake_mr(
        generator, ct, c.patch_zyx, overlap=c.translate_overlap, device=device, progress=show
    )
    return fake, record


def _run(args: argparse.Namespace) -> int:
    from flarelib.params_cli import params_from_args

    params = params_from_args(args)
    result = run_stage(
        params,
        args.stage,
        Path(args.out) if args.out else None,
        restart=args.restart,
        device=args.device,
        progress=not args.no_progress,
        cyclegan=args.cyclegan,
    )
    best = "" if result.best_value is None else f", best {result.best_value:.4f} at {result.best_iteration}"
    print(
        f"{args.stage}: {result.iteration} iterations in {result.seconds:.1f} s "
        f"(data wait {100 * result.data_wait_fraction:.0f}%){best}; checkpoint {result.checkpoint}"
    )
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``flarelib train``."""
    from flarelib.params_cli import add_params_arguments

    p = subparsers.add_parser(
        "train",
        help="train one stage (CycleGAN, Mean Teacher or supervised U-Net); resumes its checkpoint",
        description=__doc__.split("\n\n")[0],
    )
    add_params_arguments(p)
    p.add_argument(
        "--stage",
        required=True,
        metavar="NAME",
        help="'cyclegan'; 'stage1' (Mean Teacher on CT translated to fake MR by the run's CycleGAN); "
        "or any other name for the segmentation entry on the data as it is (e.g. baseline)",
    )
    p.add_argument(
        "--cyclegan",
        metavar="CKPT",
        help="stage1: the CycleGAN checkpoint (default outputs/<profile>/<run>/cyclegan/checkpoint.pt)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default outputs/<profile>/<run>/<stage>)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
    return p
