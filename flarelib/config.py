"""Strict YAML params: ``extends:`` inheritance, typed frozen dataclasses, unknown key = error.

A params file is YAML whose top-level keys are the sections of :class:`Params`. A file may say
``extends: ../base.yaml`` (a path relative to that file, or a list of them, applied left to right);
its own values then override the inherited ones, merging nested mappings key by key.

Every file is checked against the schema on its own, before merging, so an unknown or misspelled
key is reported with the file it appears in and the closest valid key; the merged values are then
checked for type and range (:mod:`flarelib.params_ranges`: a voxel size must be positive, an
iteration count at least 1, a fraction within 0..1)::

    params/runs/x.yaml: unknown key 'train.lr_intial'. Fix: did you mean 'train.lr_initial'?

``dump_params`` writes the fully resolved params (no ``extends``); ``load_params`` on that file gives
an equal :class:`Params` back.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from flarelib.errors import FlareInputError
from flarelib.params_ranges import check_ranges

# --------------------------------------------------------------------------------------------------
# Schema. Defaults are the paper's settings (STUDY.md); params/base.yaml restates them with comments.
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunParams:
    """Identity of a run: its name (ablation id), master seed, and profile."""

    name: str = "default"
    description: str = ""
    seed: int = 20240
    profile: Literal["smoke", "quick", "full"] = "full"
    train_seed: int | None = None  # seeds the trainings instead of seed (the data keep seed); None: seed


@dataclasses.dataclass(frozen=True)
class SubsetLayout:
    """One subset of a dataset, found by file-name templates relative to ``data.root``.

    ``images`` and ``labels`` hold ``{case}``; case ids are what ``{case}`` matches. For LLD-MMR
    style subsets (``role: mr_lld``) the case id is ``<patient>_<sequence tag>``.
    """

    role: Literal["ct_labeled", "ct_pseudo", "mr_lld", "mr_amos", "mr_unlabeled", "mr_val"]
    images: str
    labels: str | None = None
    dataset: str | None = None  # key into the manifest's "datasets" (label map, not-annotated organs)
    label_variant: str | None = None  # for manifests with several label sets (TotalSegmentator)
    modality: Literal["CT", "MR"] = "CT"
    sequence: str | None = None  # the MR sequence of every case (e.g. "T2W" for CHAOS T2-SPIR)


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Where the data lives and how its folders are laid out.

    ``root`` is relative to the project root unless absolute; for the real and flare24 tracks the
    environment variable ``FLARE_DATA`` overrides it. ``manifest`` is relative to ``root``.
    """

    track: Literal["phantom", "real", "flare24"] = "phantom"
    root: str = "data/phantom/{profile}"
    manifest: str = "dataset.json"
    subsets: dict[str, SubsetLayout] = dataclasses.field(default_factory=dict)
    sequences_required: tuple[str, ...] = ("T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "OP")
    #: the unlabelled MR has several sequences per patient (LLD-MMR-like), so stage 2's label
    #: transfer applies; false (the real track: CHAOS T2 only): stage 2 learns from stage 1's
    #: pseudo-labels of the target sequence instead (:func:`flarelib.study.flow.labelled_sources`)
    multi_sequence: bool = True


@dataclasses.dataclass(frozen=True)
class PhantomParams:
    """Size and variability of the procedural phantom (flarelib.data.phantom)."""

    n_ct_manual: int = 12
    n_ct_pseudo: int = 12
    n_lld_patients: int = 12
    n_amos: int = 6
    n_mr_val: int = 8
    ct_spacing_zyx: tuple[float, float, float] = (3.0, 1.5, 1.5)
    mr_spacing_zyx: tuple[float, float, float] = (3.0, 1.5, 1.5)
    scale: float = 1.0  # <1 shrinks the in-plane matrix (smoke); anatomy stays in mm
    long_ct_fraction: float = 0.3  # CT volumes covering chest to pelvis (> 150 slices at full scale)
    zflip_fraction: float = 0.25
    misaligned_fraction: float = 0.2
    # MR sequences every labelled CT case is also rendered as, into diagnostics/ only: the truth a
    # CT -> MR translation is measured against (flarelib.evaluate.translation)
    translation_truth: tuple[str, ...] = ("T1W", "T2W")


@dataclasses.dataclass(frozen=True)
class PreprocessParams:
    """Resampling and intensity settings (STUDY.md "Preprocessing")."""

    target_spacing_zyx: tuple[float, float, float] = (3.0, 1.2, 1.2)
    ct_window_level: float = 40.0
    ct_window_width: float = 400.0
    mr_scaling: Literal["minmax", "zscore_minmax", "percentile"] = "zscore_minmax"
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    body_mask: Literal["otsu", "otsu_percentile"] = "otsu"
    otsu_percentile: float = 80.0
    fix_zflip: bool = True


@dataclasses.dataclass(frozen=True)
class RegistrationParams:
    """SimpleITK registration settings (STUDY.md stage 2; DESIGN.md measured facts)."""

    levels: int = 3
    sampling_fraction: float = 0.2
    iterations: int = 200
    mi_bins: int = 50
    seed: int = 12345


@dataclasses.dataclass(frozen=True)
class UNetParams:
    """3D U-Net of the paper's Fig. 3: 33.89 M parameters at this width with ``block_style: paper``.

    ``paper``: a separate down-sampling conv (kernel = stride = pool) + norm + LeakyReLU before each
    stage's two 3x3x3 convs, and transposed conv + norm + LeakyReLU up (the authors' net, 33.89 M);
    ``nnunet``: the first conv of a stage is strided (nnU-Net's PlainConvUNet, 30.78 M).

    ``configuration`` is the run's one 3d / 2d switch: it also sets the CycleGAN's kernels, and in
    2d ``pool_zyx``, ``train.patch_zyx``, ``cyclegan.patch_zyx`` and ``infer.window_zyx`` must have
    z = 1 (:mod:`flarelib.models.configuration`).
    """

    in_channels: int = 1
    num_classes: int = 14
    channels: tuple[int, ...] = (32, 64, 128, 256, 320, 320)
    pool_zyx: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    deep_supervision: bool = True
    block_style: Literal["paper", "nnunet"] = "paper"
    configuration: Literal["3d", "2d"] = "3d"  # 2d: 1x3x3 kernels, (1,s,s) pools, one-slice patches


@dataclasses.dataclass(frozen=True)
class CycleGANParams:
    """3D CycleGAN (STUDY.md "Networks"; paper Table 2)."""

    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers: int = 3  # discriminator's stride-2 convs; each patch axis needs >= 3 * 2**n_layers voxels
    gan_loss: Literal["lsgan", "bce"] = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    patch_zyx: tuple[int, int, int] = (48, 160, 160)
    epochs: int = 400
    decay_start_epoch: int = 200
    iterations_per_epoch: int = 498
    pool_size: int = 50
    init_gain: float = 0.02
    translate_overlap: float = 0.5
    translate_blend: Literal["gaussian", "linear"] = "gaussian"  # tile blending of translate_volume
    target_sequence: str | None = "T1W"  # domain B: unlabelled MR of this sequence (None: all MR)
    align_domains: bool = True  # translation registration of CT and MR onto one reference (STUDY.md)
    fake_background: Literal["keep", "zero"] = "zero"  # fake MR outside the CT's body mask (see fake_mr)
    generator_norm: Literal["instance", "none"] = "instance"  # pix2pix's; none keeps absolute levels
    ct_input: Literal["window", "inverted"] = "window"  # the generator's CT (fake_mr.generator_input)
    # stage-1 rounds after the first whose fakes are moved organ by organ to the real MR's brightness
    # inside the previous round's pseudo-labels (flarelib.train.organ_refine; a deviation)
    refine_rounds: int = 0
    refine_erode: int = 1  # in-plane erosion (voxels) of the masks the organ brightnesses come from
    refine_iterations: int = 0  # each refinement round: warm start, these iterations (0: train.iterations)


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Mean Teacher / supervised training (STUDY.md "Semi-supervised training"; Table 3)."""

    mode: Literal["mean_teacher", "supervised"] = "mean_teacher"
    patch_zyx: tuple[int, int, int] = (48, 160, 224)
    batch_labeled: int = 2
    batch_unlabeled: int = 2
    iterations: int = 150000
    optimizer: Literal["sgd", "adam"] = "sgd"  # sgd: the paper's; adam: the CPU profiles' deviation
    lr: float = 0.01
    momentum: float = 0.99
    nesterov: bool = True
    weight_decay: float = 3e-5
    poly_exponent: float = 0.9
    ema_decay: float = 0.99
    consistency_weight: float = 0.1
    consistency_rampup: float = 5.0
    teacher_noise_std: float = 0.1
    teacher_noise_clip: float = 0.2
    deep_supervision_levels: int = 4
    foreground_oversample: float = 0.33
    swap_lr_labels: bool = True  # the authors' code does not swap 2<->13, 7<->8 on L/R flips
    augmentation: Literal["nnunet", "none"] = "nnunet"  # none: plain crops (the CPU profiles)
    intensity_aug: Literal["none", "randconv", "gin", "synth"] = "none"  # CT + fake MR (intensity_aug.py)
    # stage 1's own (its fake MR and CT); inherit: intensity_aug. Resolved by stages.stage_params
    stage1_intensity_aug: Literal["inherit", "none", "randconv", "gin", "synth"] = "inherit"
    # stage 1's foreground oversampling, unlabelled batch and iterations (its first round); None / 0: inherit
    stage1_foreground_oversample: float | None = None
    stage1_batch_unlabeled: int | None = None
    stage1_iterations: int = 0
    grad_clip: float = 12.0
    amp: bool = True  # CUDA only: fp16 autocast + gradient scaling
    cpu_precision: Literal["fp32", "bf16", "auto"] = "fp32"  # CPU; auto: bf16 where the CPU computes it
    checkpoint_every: int = 1000
    validate_every: int = 5000
    num_workers: int = 8  # full-size batches take ~1.4 s of one CPU core to build (H200 step: 0.19 s)
    threads: int = 0  # 0 = torch default
    prefetch: int = 2  # batches prepared ahead per loader worker
    log_every: int = 10  # iterations per flush of train_log.csv / TensorBoard
    validation_cases: int = 0  # labelled MR validation volumes used during training (0 = all)
    # start the network from this checkpoint's weights (teacher, else student; a fresh start only:
    # a stage's own checkpoint resumes as before). None: random init (the paper; it is silent on this)
    init_from: str | None = None


@dataclasses.dataclass(frozen=True)
class TransferParams:
    """T1W -> multi-sequence label transfer and the kidney-DSC filter (STUDY.md stage 2;
    :mod:`flarelib.pseudolabel.transfer`). Registration itself takes the ``registration`` section."""

    body_mask: Literal["otsu", "otsu_percentile"] = "otsu_percentile"  # otsu: plain Otsu everywhere
    otsu_percentile: float = 80.0
    percentile_sequences: tuple[str, ...] = ("T1W", "EAP", "PVP", "DP")  # authors: T1W, EAP, PVP
    registration_sampling: float | None = 0.05  # metric sampling fraction (None: registration's)
    registration_iterations: int | None = 50  # iterations per level (None: registration's)
    intensity_reference: str = "EAP"  # T2W and DWI are registered on intensities to this one, registered
    intensity_metric: Literal["mattes", "meansquares"] = "mattes"
    intensity_initializer: Literal["masks", "moments", "geometry"] = "masks"
    kidney_dilate_iterations: int = 6
    kidney_exclude_labels: tuple[int, ...] = (1, 3, 7, 8, 12)  # liver, spleen, adrenals, duodenum
    kidney_opening_iterations: int = 1
    dark_kidney_sequences: tuple[str, ...] = ("IP",)  # Otsu keeps the dark side here
    dce_accept_one: float = 0.85
    other_accept_both: float = 0.8
    other_accept_one: float = 0.85
    workers: int = 0  # patients in parallel processes; 0 = min(2, number of patients)


@dataclasses.dataclass(frozen=True)
class AnatomyParams:
    """Anatomy-aware pseudo-label filter (paper eq. 6-8; :mod:`flarelib.pseudolabel.anatomy`).

    Sizes are voxel counts on a grid of ``reference_spacing_zyx`` (the paper's 3 x 1.2 x 1.2 mm);
    on another grid they scale by the voxel volume (sizes) and the y spacing (the adrenals'
    anterior-posterior extent). ``reference_spacing_zyx: null`` counts raw voxels of any grid.
    """

    size_exist: int = 512
    size_tiny: int = 64
    adrenal_min_ap_extent: int = 15
    connectivity: Literal[6, 18, 26] = 6
    reference_spacing_zyx: tuple[float, float, float] | None = (3.0, 1.2, 1.2)
    on_failure: Literal["drop_case", "drop_organs"] = "drop_case"


@dataclasses.dataclass(frozen=True)
class InferParams:
    """Sliding-window inference (STUDY.md "Inference and post-processing")."""

    window_zyx: tuple[int, int, int] = (48, 160, 224)
    step: float = 0.5
    max_windows: int = 20
    step_rule_fractions_zyx: tuple[float, float, float] = (1.0, 1.0, 0.5)
    mirror_axes: tuple[int, ...] = (0, 2)
    gaussian_sigma_scale: float = 0.125
    half_precision: bool = True  # CUDA only; CPU runs fp32
    cpu_precision: Literal["fp32", "bf16", "auto"] = "fp32"  # the OpenVINO runtime's (flarelib.precision)
    windows_per_batch: int = 1
    weights: Literal["teacher", "student"] = "teacher"
    runtime: Literal["torch", "onnxruntime", "openvino", "auto"] = "auto"
    pad_value: float = 0.0  # pads volumes smaller than the window (z-scored space: 0 = mean)
    placement: Literal["even", "monai"] = "even"  # even: nnU-Net's (the paper's); monai: MONAI's


@dataclasses.dataclass(frozen=True)
class PostprocessParams:
    """Post-processing rules (STUDY.md), each switchable."""

    enabled: bool = True
    min_slices: int = 80
    liver_slab: bool = True
    liver_slab_margin: int = 8
    aorta_component: bool = True
    kidney_largest: bool = True
    orientation_rules: bool = True
    spleen_margin: int = 10
    connectivity: Literal[6, 18, 26] = 26  # connected components of the rules (cc3d)


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """FLARE24 evaluation settings."""

    official_zrange_off_by_one: bool = True


@dataclasses.dataclass(frozen=True)
class EfficiencyParams:
    """FLARE efficiency measurement of a run's final model (notebook 06, runs with
    ``study.efficiency``; :mod:`flarelib.evaluate.efficiency`): one predict process per case.

    ``cases``: how many labelled MR validation cases are measured, spread evenly over their image
    sizes, smallest and largest included (0: every case; the paper's Table 7 shows 8, its Table 8
    averages 110). ``ram_scope``: ``tree`` (RSS of the predict process and its children) or
    ``system`` (the machine's used memory, what the paper's 19.7 GB RAM figure looks like).
    Only notebook 06 reads this section: it is in no other stage's key."""

    cases: int = 8
    ram_scope: Literal["tree", "system"] = "tree"


LabelledSource = Literal["ct", "t1w_pseudo", "transferred", "oracle_mr"]
UnlabelledSource = Literal["lld", "amos"]


@dataclasses.dataclass(frozen=True)
class Stage2Params:
    """The run's multi-sequence model (notebook 03): what it learns from (STUDY.md stage 2; for
    runs without stage 1 it is the run's only model: Table 5's baseline and semi-supervised rows).

    ``labelled``: ``ct`` (labelled CT: manual, plus pseudo-labelled CT with more than
    ``ct_pseudo_min_slices`` slices), ``t1w_pseudo`` (real T1W with stage 1's pseudo-labels),
    ``transferred`` (the T1W pseudo-labels transferred to every accepted sequence, notebook 02, the
    T1W itself included), ``oracle_mr`` (the phantom's true labels of the unlabelled MR: a ceiling no
    method reaches). ``unlabelled``: the MR without labels a Mean Teacher learns from: ``lld``
    (LLD-MMR-like patients; with ``transferred``, only their rejected sequences), ``amos``."""

    labelled: tuple[LabelledSource, ...] = ("ct", "transferred")
    unlabelled: tuple[UnlabelledSource, ...] = ("lld",)
    mode: Literal["mean_teacher", "supervised"] = "mean_teacher"
    ct_pseudo_min_slices: int = 150  # STUDY.md stage 2: pseudo-labelled CT only with more slices than this


@dataclasses.dataclass(frozen=True)
class Stage3Params:
    """Anatomy-aware refinement and iterative learning (STUDY.md stage 3; notebook 04).

    Each iteration: the previous model predicts every MR volume of ``predict``; the anatomy filter
    (``anatomy`` section) keeps what passes (``anatomy_filter: false`` keeps all); a new model trains
    on the kept pseudo-labels + labelled CT (+ the other MR as unlabelled for a Mean Teacher).
    ``iterations: 0``: no stage 3. ``final_iteration``: the iteration whose model the run reports
    (0: the last), fixed in the run file beforehand, never picked on the validation scores."""

    iterations: int = 3
    anatomy_filter: bool = True
    mode: Literal["mean_teacher", "supervised"] = "mean_teacher"
    predict: tuple[UnlabelledSource, ...] = ("lld", "amos")
    final_iteration: int = 0
    warm_start: bool = False  # start each iteration from the previous model (train.init_from); paper: silent
    train_iterations: int = 0  # training iterations of each iteration's model (0: train.iterations)


@dataclasses.dataclass(frozen=True)
class StudyParams:
    """Which stages a run has and what each learns from (``flarelib.study``). The defaults are the
    proposed method; each file in ``params/runs`` changes what its ablation changes."""

    stage1: bool = True  # CycleGAN + stage-1 model + T1W pseudo-labels (notebook 01)
    stage2: Stage2Params = dataclasses.field(default_factory=Stage2Params)
    stage3: Stage3Params = dataclasses.field(default_factory=Stage3Params)
    efficiency: bool = False  # notebook 06: FLARE efficiency of the final model (settings: efficiency)
    export: bool = False  # notebook 05: the reported model + model card to outputs/models/<profile>/
    groups: tuple[str, ...] = ()  # `make reproduce RUNS=...` groups: table5 table6 fig6 phantom real


@dataclasses.dataclass(frozen=True)
class Params:
    """All params of one run. Top-level YAML keys are these fields (plus ``extends``)."""

    run: RunParams = dataclasses.field(default_factory=RunParams)
    data: DataParams = dataclasses.field(default_factory=DataParams)
    phantom: PhantomParams = dataclasses.field(default_factory=PhantomParams)
    preprocess: PreprocessParams = dataclasses.field(default_factory=PreprocessParams)
    registration: RegistrationParams = dataclasses.field(default_factory=RegistrationParams)
    unet: UNetParams = dataclasses.field(default_factory=UNetParams)
    cyclegan: CycleGANParams = dataclasses.field(default_factory=CycleGANParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    transfer: TransferParams = dataclasses.field(default_factory=TransferParams)
    anatomy: AnatomyParams = dataclasses.field(default_factory=AnatomyParams)
    infer: InferParams = dataclasses.field(default_factory=InferParams)
    postprocess: PostprocessParams = dataclasses.field(default_factory=PostprocessParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)
    efficiency: EfficiencyParams = dataclasses.field(default_factory=EfficiencyParams)
    study: StudyParams = dataclasses.field(default_factory=StudyParams)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FlareInputError(
            path,
            "params file not found",
            "check the path (relative paths in 'extends' are relative to the file that names them)",
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FlareInputError(path, f"not valid YAML{where}", "fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FlareInputError(path, "a params file must be a mapping of sections", "see params/base.yaml")
    return data


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _resolve_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and everything it extends; check each file's keys; return the merged mapping."""
    shown, path = path, path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise FlareInputError(path, f"'extends' forms a cycle ({cycle})", "remove one of the links")
    raw = _read_yaml(path)
    parents = raw.pop("extends", None)
    _check_keys(raw, Params, path, prefix="")
    merged: dict[str, Any] = {}
    if parents is not None:
        for parent in [parents] if isinstance(parents, str) else list(parents):
            target = path.parent / str(parent)
            if not target.is_file():  # name the file that says 'extends', not only the missing one
                raise FlareInputError(
                    shown,
                    f"'extends: {parent}' names a file that does not exist ({target})",
                    "correct the 'extends' path: it is relative to this file's folder",
                )
            merged = _deep_merge(merged, _resolve_raw(target, (*chain, path)))
    return _deep_merge(merged, raw)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _check_keys(raw: Mapping[str, Any], cls: type, path: Path, prefix: str) -> None:
    """Raise on the first key of ``raw`` that ``cls`` does not have, with the closest valid key."""
    hints = get_type_hints(cls)
    valid = list(hints)
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            options = [f"{prefix}{v}" for v in valid]
            close = difflib.get_close_matches(dotted, options, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(options)}"
            raise FlareInputError(path, f"unknown key '{dotted}'", hint)
        tp = _strip_optional(hints[key])
        if _is_dataclass_type(tp) and isinstance(value, Mapping):
            _check_keys(value, tp, path, prefix=f"{dotted}.")
        elif get_origin(tp) is dict and isinstance(value, Mapping):
            inner = _strip_optional(get_args(tp)[1])
            if _is_dataclass_type(inner):
                for name, sub in value.items():
                    if isinstance(sub, Mapping):
                        _check_keys(sub, inner, path, prefix=f"{dotted}.{name}.")


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Convert a YAML value to the annotated type, or raise naming the key."""

    def fail(expected: str) -> FlareInputError:
        return FlareInputError(
            source, f"'{where}' must be {expected}, got {value!r}", f"set '{where}' to {expected}"
        )

    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, source)
            except FlareInputError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        options = get_args(tp)
        if value not in options:
            close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of {list(options)}"
            raise FlareInputError(source, f"'{where}' must be one of {list(options)}, got {value!r}", hint)
        return value
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise fail(f"a mapping of {tp.__name__} fields")
        return _build(tp, value, where + ".", source)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        kt, vt = get_args(tp)
        return {
            _convert(k, kt, f"{where}.{k}", source): _convert(v, vt, f"{where}.{k}", source)
            for k, v in value.items()
        }
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise fail("a list")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise fail(f"a list of {len(args)} values")
            return tuple(
                _convert(v, a, f"{where}[{i}]", source)
                for i, (v, a) in enumerate(zip(value, args, strict=False))
            )
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    raise TypeError(f"unsupported params type {tp!r} at {where}")


def _build(cls: type, raw: Mapping[str, Any], prefix: str, source: str) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = _convert(raw[f.name], hints[f.name], f"{prefix}{f.name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FlareInputError(
                source,
                f"missing required key '{prefix}{f.name}'",
                f"add '{prefix}{f.name}' (see params/base.yaml)",
            )
    return cls(**kwargs)


def params_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Params:
    """Build :class:`Params` from a plain mapping (checked like a file)."""
    _check_keys(raw, Params, Path(source), prefix="")
    return check_ranges(_build(Params, raw, "", source), source)


def load_params(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> Params:
    """Load a params file with its ``extends`` chain; ``overrides`` (nested mapping) apply last.

    Raises :class:`FlareInputError` naming the file and key for unknown keys and wrong types.
    """
    path = Path(path)
    merged = _resolve_raw(path)
    if overrides:
        _check_keys(overrides, Params, Path("<overrides>"), prefix="")
        merged = _deep_merge(merged, overrides)
    return check_ranges(_build(Params, merged, "", str(path)), str(path))


def parse_override(text: str) -> dict[str, Any]:
    """``"train.iterations=20"`` -> ``{"train": {"iterations": 20}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise FlareInputError(None, f"override {text!r} is not KEY=VALUE", "write e.g. train.iterations=20")
    key, value = text.split("=", 1)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)
    return out


def parse_overrides(texts: typing.Sequence[str]) -> dict[str, Any]:
    """Several ``KEY=VALUE`` texts (``--set`` options) as one nested mapping; later ones win."""
    out: dict[str, Any] = {}
    for text in texts:
        out = _deep_merge(out, parse_override(text))
    return out


# --------------------------------------------------------------------------------------------------
# Writing and hashing
# --------------------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def params_to_dict(params: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples) of a params dataclass."""
    return _plain(params)


def dump_params(params: Params, path: str | os.PathLike) -> Path:
    """Write the resolved params as YAML, atomically. ``load_params`` reads back an equal object."""
    from flarelib.paths import atomic_write_text

    text = RESOLVED_HEADER + " (no 'extends'): written by flarelib.config.dump_params\n"
    text += yaml.safe_dump(params_to_dict(params), sort_keys=False, default_flow_style=None, width=100)
    return atomic_write_text(Path(path), text)


#: Stage 1's own training settings (resolved by :func:`flarelib.train.stages.stage_params`):
#: ``train.<key>`` -> (the ``train`` field it replaces for stage 1, the value that means "inherit").
STAGE1_OVERRIDES: dict[str, tuple[str, Any]] = {
    "stage1_intensity_aug": ("intensity_aug", "inherit"),
    "stage1_foreground_oversample": ("foreground_oversample", None),
    "stage1_batch_unlabeled": ("batch_unlabeled", None),
    "stage1_iterations": ("iterations", 0),
}

#: Keys added after results were first written, with the value that reproduces those results: at
#: that value the training and stage hashes leave them out, so the results stay current.
LATE_KEYS_NEUTRAL: dict[tuple[str, str], Any] = {
    ("run", "train_seed"): None,
    ("cyclegan", "generator_norm"): "instance",
    ("cyclegan", "ct_input"): "window",
    ("cyclegan", "refine_rounds"): 0,
    ("cyclegan", "refine_erode"): 1,
    ("cyclegan", "refine_iterations"): 0,
    **{("train", key): inherit for key, (_, inherit) in STAGE1_OVERRIDES.items()},
}


def drop_neutral_keys(d: dict, neutral: typing.Mapping[tuple[str, str], Any] = LATE_KEYS_NEUTRAL) -> dict:
    """``d`` (a params dict, modified in place and returned) without the ``(section, key)`` entries
    that hold their ``neutral`` value."""
    for (section, key), value in neutral.items():
        if section in d and key in d[section] and d[section][key] == value:
            del d[section][key]
    return d


def params_hash(params: Any, sections: typing.Iterable[str] | None = None, length: int = 12) -> str:
    """Stable short hash of the params (or of the named top-level sections only)."""
    plain = params_to_dict(params)
    if sections is not None:
        plain = {s: plain[s] for s in sections}
    blob = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


# --------------------------------------------------------------------------------------------------
# Composing a run: profile + data track + run file
# --------------------------------------------------------------------------------------------------

PROFILES = ("smoke", "quick", "full")
DATA_TRACKS = ("phantom", "real", "flare24")


def load_layers(
    paths: typing.Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None
) -> Params:
    """Merge several params files in order (each with its own ``extends`` chain), then overrides."""
    merged: dict[str, Any] = {}
    for p in paths:
        merged = _deep_merge(merged, _resolve_raw(Path(p)))
    if overrides:
        _check_keys(overrides, Params, Path("<overrides>"), prefix="")
        merged = _deep_merge(merged, overrides)
    source = " + ".join(str(p) for p in paths)
    return check_ranges(_build(Params, merged, "", source), source)


def compose_params(
    run_file: str | os.PathLike,
    profile: str,
    data: str | None = None,
    params_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Params:
    """The params of one run: ``profiles/<profile>.yaml`` + ``data/<data>.yaml`` (+
    ``data/<data>.<profile>.yaml``, a track's settings for one profile, where it exists) +
    ``run_file``.

    Run files are overlays: they hold only what a run changes and never extend base.yaml (that
    would undo the profile); they may extend other run files.
    """
    from flarelib.paths import project_root

    params_dir = params_dir or project_root() / "params"
    if profile not in PROFILES:
        raise FlareInputError(None, f"unknown profile {profile!r}", f"use one of {', '.join(PROFILES)}")
    layers: list[Path] = [params_dir / "profiles" / f"{profile}.yaml"]
    if data is not None:
        if data not in DATA_TRACKS:
            raise FlareInputError(
                None, f"unknown data track {data!r}", f"use one of {', '.join(DATA_TRACKS)}"
            )
        layers.append(params_dir / "data" / f"{data}.yaml")
        per_profile = params_dir / "data" / f"{data}.{profile}.yaml"
        if per_profile.is_file():
            layers.append(per_profile)
    layers.append(Path(run_file))
    return load_layers(layers, overrides)


RESOLVED_HEADER = "# resolved params"


def load_stage_params(params_file: str | os.PathLike, profile: str, data: str = "phantom") -> Params:
    """What a notebook's parameters cell leads to: the runner passes a resolved ``params.yaml``;
    run interactively, the notebook's defaults name a run file, composed with the profile and data track.
    """
    path = Path(params_file)
    if path.is_file() and path.read_text().startswith(RESOLVED_HEADER):
        return load_params(path)
    return compose_params(path, profile, data)
