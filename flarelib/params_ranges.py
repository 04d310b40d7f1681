"""Allowed ranges of the numeric params, checked by the strict loader after the types.

:func:`flarelib.config.load_params` (and ``params_from_dict``, ``load_layers``) call
:func:`check_ranges` on the merged params: a voxel size of 0, a negative iteration count or a
fraction above 1 stops with one line naming the params file, the key and the allowed range::

    params/runs/x.yaml: 'train.iterations' must be >= 1, got -5. Fix: set 'train.iterations' >= 1
"""

from __future__ import annotations

from typing import Any

from flarelib.errors import FlareInputError

#: Allowed ranges of numeric params, checked after the types (:func:`check_ranges`): dotted key ->
#: ``(low, high, low_inclusive, high_inclusive)``; ``None`` is unbounded. A tuple-valued key applies
#: to each of its numbers. Keys missing from the schema are skipped.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "run.seed": (0, None, True, True),
    "run.train_seed": (0, None, True, True),
    **{f"phantom.{k}": (0, None, True, True) for k in ("n_ct_manual", "n_ct_pseudo", "n_lld_patients")},
    **{f"phantom.{k}": (0, None, True, True) for k in ("n_amos", "n_mr_val")},
    "phantom.ct_spacing_zyx": (0, None, False, True),
    "phantom.mr_spacing_zyx": (0, None, False, True),
    "phantom.scale": (0, None, False, True),
    **{f"phantom.{k}": (0, 1, True, True) for k in ("long_ct_fraction", "zflip_fraction")},
    "phantom.misaligned_fraction": (0, 1, True, True),
    "preprocess.target_spacing_zyx": (0, None, False, True),
    "preprocess.ct_window_width": (0, None, False, True),
    "preprocess.mr_percentiles": (0, 100, True, True),
    "preprocess.otsu_percentile": (0, 100, True, True),
    "registration.levels": (1, None, True, True),
    "registration.sampling_fraction": (0, 1, False, True),
    "registration.iterations": (1, None, True, True),
    "registration.mi_bins": (2, None, True, True),
    "unet.in_channels": (1, None, True, True),
    "unet.num_classes": (2, None, True, True),
    "unet.channels": (1, None, True, True),
    "unet.pool_zyx": (1, None, True, True),
    **{f"cyclegan.{k}": (1, None, True, True) for k in ("ngf", "ndf", "n_layers", "epochs")},
    "cyclegan.iterations_per_epoch": (1, None, True, True),
    **{
        f"cyclegan.{k}": (0, None, True, True)
        for k in (
            "n_blocks",
            "pool_size",
            "decay_start_epoch",
            "refine_rounds",
            "refine_erode",
            "refine_iterations",
        )
    },
    **{f"cyclegan.{k}": (0, None, True, True) for k in ("lambda_cycle", "lambda_identity")},
    "cyclegan.lr": (0, None, False, True),
    "cyclegan.betas": (0, 1, True, False),
    "cyclegan.patch_zyx": (1, None, True, True),
    "cyclegan.init_gain": (0, None, False, True),
    "cyclegan.translate_overlap": (0, 1, True, False),
    "train.patch_zyx": (1, None, True, True),
    "train.batch_labeled": (1, None, True, True),
    "train.batch_unlabeled": (0, None, True, True),
    "train.iterations": (1, None, True, True),
    "train.lr": (0, None, False, True),
    "train.momentum": (0, 1, True, False),
    **{f"train.{k}": (0, None, True, True) for k in ("weight_decay", "poly_exponent", "grad_clip")},
    "train.ema_decay": (0, 1, True, True),
    **{f"train.{k}": (0, None, True, True) for k in ("consistency_weight", "consistency_rampup")},
    **{f"train.{k}": (0, None, True, True) for k in ("teacher_noise_std", "teacher_noise_clip")},
    "train.deep_supervision_levels": (1, None, True, True),
    "train.foreground_oversample": (0, 1, True, True),
    "train.stage1_foreground_oversample": (0, 1, True, True),
    "train.stage1_batch_unlabeled": (0, None, True, True),
    "train.stage1_iterations": (0, None, True, True),
    **{f"train.{k}": (0, None, True, True) for k in ("checkpoint_every", "validate_every")},
    **{f"train.{k}": (0, None, True, True) for k in ("num_workers", "threads", "validation_cases")},
    **{f"train.{k}": (1, None, True, True) for k in ("prefetch", "log_every")},
    "transfer.kidney_dilate_iterations": (0, None, True, True),
    **{f"transfer.{k}": (0, 1, True, True) for k in ("dce_accept_one", "other_accept_both")},
    "transfer.other_accept_one": (0, 1, True, True),
    **{f"anatomy.{k}": (0, None, True, True) for k in ("size_exist", "size_tiny")},
    "anatomy.adrenal_min_ap_extent": (0, None, True, True),
    "infer.window_zyx": (1, None, True, True),
    "infer.step": (0, 1, False, True),
    "infer.max_windows": (1, None, True, True),
    "infer.step_rule_fractions_zyx": (0, 1, False, True),
    "infer.mirror_axes": (0, 2, True, True),
    "infer.gaussian_sigma_scale": (0, None, False, True),
    "infer.windows_per_batch": (1, None, True, True),
    **{f"postprocess.{k}": (0, None, True, True) for k in ("min_slices", "liver_slab_margin")},
    "postprocess.spleen_margin": (0, None, True, True),
    "efficiency.cases": (0, None, True, True),
}


def _range_text(lo, hi, lo_inc: bool, hi_inc: bool) -> str:
    if hi is None:
        return f"{'>=' if lo_inc else '>'} {lo:g}"
    if lo is None:
        return f"{'<=' if hi_inc else '<'} {hi:g}"
    return f"in {'[' if lo_inc else '('}{lo:g}, {hi:g}{']' if hi_inc else ')'}"


def _numbers(value: Any) -> list[float]:
    if isinstance(value, tuple | list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return []


def check_ranges(params: Any, source: str = "<params>") -> Any:
    """Raise :class:`FlareInputError` naming ``source`` and the key when a number is out of its
    :data:`RANGES` (a voxel size of 0, a negative iteration count, a fraction above 1, ...)."""
    for key, (lo, hi, lo_inc, hi_inc) in RANGES.items():
        node: Any = params
        for part in key.split("."):
            node = getattr(node, part, None)
        for v in _numbers(node):
            ok = (lo is None or (v >= lo if lo_inc else v > lo)) and (
                hi is None or (v <= hi if hi_inc else v < hi)
            )
            if not ok:
                want = _range_text(lo, hi, lo_inc, hi_inc)
                if isinstance(node, tuple | list):
                    problem, fix = f"'{key}' must hold values {want}", f"set every value of '{key}' {want}"
                else:
                    problem, fix = f"'{key}' must be {want}", f"set '{key}' {want}"
                raise FlareInputError(source, f"{problem}, got {_plain(node)!r}", fix)
    return params


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
