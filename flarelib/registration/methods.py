"""Translation and rigid registration with SimpleITK (by masks, labels or intensities); the
transform convention and reproducibility notes are :mod:`flarelib.registration`'s."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.evaluate.dice import dice
from flarelib.io import Volume
from flarelib.registration.result import RegistrationResult
from flarelib.registration.transforms import (
    _as_euler,
    _as_translation,
    _downcast,
    _grid_center,
    _matrix_offset,
    _rigid_from_matrix,
    apply_transform,
)


def _is_binary(vol: Volume) -> bool:
    arr = vol.array
    if arr.dtype == np.bool_:
        return True
    if not np.issubdtype(arr.dtype, np.integer):
        return False
    return bool(np.isin(np.unique(arr), (0, 1)).all())


def _float_image(vol: Volume, smooth_mm: float = 0.0) -> sitk.Image:
    img = vol.with_array(vol.array.astype(np.float32, copy=False)).to_sitk()
    if smooth_mm > 0:
        img = sitk.SmoothingRecursiveGaussian(img, float(smooth_mm))
    return img


def _centroid_world(vol: Volume, mask: np.ndarray) -> np.ndarray | None:
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    return vol.world_coords(idx.mean(axis=0))


def _axis_aligned(vol: Volume) -> bool:
    return bool(np.allclose(np.abs(vol.direction), np.eye(3), atol=1e-3))


def _slice_z(vol: Volume) -> np.ndarray:
    """World z (mm) of every slice of an axis-aligned volume."""
    k = np.arange(vol.shape[0], dtype=np.float64)
    return vol.world_coords(np.stack([k, np.zeros_like(k), np.zeros_like(k)], axis=1))[:, 2]


def _profile_z_offset(
    fixed: Volume, f_fg: np.ndarray, moving: Volume, m_fg: np.ndarray, min_ncc: float = 0.8
) -> float | None:
    """The z translation (mm, fixed -> moving) that best matches the two masks' slice-area profiles
    (normalised cross-correlation over an overlap of >= half the shorter foreground extent), or
    None when the grids are not axis-aligned, the profiles are too short or flat, or the best
    correlation is below ``min_ncc``.

    A body's cross-section along z (chest, liver, pelvis) is anatomy; the centre of mass of a mask
    cut by the field of view is not, where one volume covers more of the chest and another more of
    the pelvis."""
    if not (_axis_aligned(fixed) and _axis_aligned(moving)):
        return None
    profiles = []
    for vol, fg in ((fixed, f_fg), (moving, m_fg)):
        z = _slice_z(vol)
        area = fg.reshape(fg.shape[0], -1).sum(axis=1) * float(vol.spacing_zyx[1] * vol.spacing_zyx[2])
        order = np.argsort(z)
        z, area = z[order], area[order].astype(np.float64)
        if (area > 0).sum() < 4:
            return None
        profiles.append((z, area, *z[area > 0][[0, -1]]))
    (zf, af, lo_f, hi_f), (zm, am, lo_m, hi_m) = profiles
    step = float(min(fixed.spacing_zyx[0], moving.spacing_zyx[0]))
    grid = np.arange(lo_f, hi_f + step / 2, step)
    pf = np.interp(grid, zf, af)
    min_overlap = 0.5 * min(hi_f - lo_f, hi_m - lo_m)
    best, best_t = -np.inf, None
    for t in np.arange(lo_m - hi_f, hi_m - lo_f + step / 2, step / 2):
        inside = (grid + t >= lo_m) & (grid + t <= hi_m)
        if inside.sum() < 4 or inside.sum() * step < min_overlap:
            continue
        a, b = pf[inside], np.interp(grid[inside] + t, zm, am)
        if a.std() == 0 or b.std() == 0:
            continue
        ncc = float(np.mean((a - a.mean()) * (b - b.mean())) / (a.std() * b.std()))
        if ncc > best:
            best, best_t = ncc, float(t)
    return best_t if best >= min_ncc else None


def _initial_translation(
    fixed: Volume, f_fg: np.ndarray, moving: Volume, m_fg: np.ndarray
) -> tuple[np.ndarray, str]:
    """The start of a mask registration (fixed -> moving, mm x y z): z from the slice-area profiles
    (:func:`_profile_z_offset`) with x and y from the centres of mass of the overlapping slabs, or
    the difference of the world centres of mass where the profiles do not match."""
    t_com = _centroid_world(moving, m_fg) - _centroid_world(fixed, f_fg)
    tz = _profile_z_offset(fixed, f_fg, moving, m_fg)
    if tz is None:
        return t_com, "centre of mass"
    zf, zm = _slice_z(fixed), _slice_z(moving)
    lo, hi = max(zf.min(), zm.min() - tz), min(zf.max(), zm.max() - tz)  # the overlap, in fixed z
    f_slab = f_fg & ((zf >= lo) & (zf <= hi))[:, None, None]
    m_slab = m_fg & ((zm - tz >= lo) & (zm - tz <= hi))[:, None, None]
    t = t_com.copy()
    if f_slab.any() and m_slab.any():
        t = _centroid_world(moving, m_slab) - _centroid_world(fixed, f_slab)
    t[2] = tz
    return t, "slice-area profile"


def _levels(levels: int) -> tuple[list[int], list[float]]:
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    shrink = [2 ** (levels - 1 - i) for i in range(levels)]
    sigmas = [float(max(s - 1, 0)) for s in shrink]  # voxels: 3 levels -> shrink 4,2,1, sigma 3,1,0
    return shrink, sigmas


def _configure(
    reg: sitk.ImageRegistrationMethod,
    *,
    metric: str,
    sampling: float,
    seed: int,
    levels: int,
    iterations: int,
    optimizer: str,
    learning_rate: float,
    min_step: float,
    mi_bins: int,
    threads: int,
    relaxation: float = 0.5,
) -> None:
    if metric == "meansquares":
        reg.SetMetricAsMeanSquares()
    elif metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(mi_bins))
    else:
        raise ValueError(f"unknown metric {metric!r}; use 'meansquares' or 'mattes'")
    if not 0.0 < sampling <= 1.0:
        raise ValueError(f"sampling must be in (0, 1], got {sampling}")
    if seed == 0:
        raise ValueError("seed 0 means 'wall clock' in SimpleITK (not reproducible): use another seed")
    if sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(float(sampling), int(seed))
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    if optimizer == "regular_step":
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=float(learning_rate),
            minStep=float(min_step),
            numberOfIterations=int(iterations),
            relaxationFactor=float(relaxation),
            gradientMagnitudeTolerance=1e-8,
        )
    elif optimizer == "line_search":
        reg.SetOptimizerAsGradientDescentLineSearch(
            learningRate=float(learning_rate),
            numberOfIterations=int(iterations),
            convergenceMinimumValue=1e-6,
            convergenceWindowSize=10,
        )
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; use 'regular_step' or 'line_search'")
    reg.SetOptimizerScalesFromPhysicalShift()
    shrink, sigmas = _levels(levels)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sigmas)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetNumberOfThreads(int(threads))


def _execute(
    reg: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image
) -> tuple[sitk.Transform, float, int, list[int], str, float]:
    per_level: list[int] = []

    def on_level() -> None:
        per_level.append(0)

    def on_iter() -> None:
        if per_level:
            per_level[-1] = reg.GetOptimizerIteration() + 1

    reg.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    reg.AddCommand(sitk.sitkIterationEvent, on_iter)
    t0 = time.perf_counter()
    out = reg.Execute(fixed, moving)
    seconds = time.perf_counter() - t0
    return (
        _downcast(out),
        float(reg.GetMetricValue()),
        int(reg.GetOptimizerIteration()),
        per_level,
        reg.GetOptimizerStopConditionDescription(),
        seconds,
    )


def _mask_quality(fixed: Volume, moving: Volume, transform: sitk.Transform) -> float:
    warped = apply_transform(moving.with_array(moving.array != 0), transform, fixed, is_label=True)
    return dice(fixed.array, warped.array, empty=1.0)


# --------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------
def register_rigid(
    fixed: Volume,
    moving: Volume,
    *,
    metric: Literal["meansquares", "mattes"] = "meansquares",
    levels: int = 3,
    sampling: float = 0.2,
    iterations: int = 200,
    seed: int = 12345,
    initializer: Literal["auto", "geometry", "moments", "none"] = "auto",
    initial_transform: sitk.Transform | None = None,
    optimizer: Literal["regular_step", "line_search"] = "regular_step",
    learning_rate: float = 2.0,
    min_step: float = 1e-3,
    mi_bins: int = 50,
    threads: int = 1,
    quality_masks: tuple[Volume, Volume] | None = None,
    mask_smoothing_mm: float = 2.0,
    relaxation: float = 0.5,
) -> RegistrationResult:
    """Rigid (Euler3D: 3 rotations + 3 translations) registration of ``moving`` onto ``fixed``.

    ``metric="meansquares"`` for masks (or same-contrast images), ``"mattes"`` (Mattes mutual
    information, ``mi_bins`` bins) across contrasts. ``sampling`` is the fraction of fixed voxels
    sampled at random (fixed ``seed``; 1.0 = every voxel). ``levels`` resolution levels: shrink
    factors ``2**(levels-1) .. 1`` with Gaussian smoothing ``shrink - 1`` voxels.

    Initialisation: ``CenteredTransformInitializer`` with ``"geometry"`` (grid centres) or
    ``"moments"`` (intensity centres of mass); ``"auto"`` = moments for binary masks, geometry for
    images; ``"none"`` = identity rotation centred on the fixed grid's centre. ``initial_transform``
    (a translation or rigid fixed->moving transform, e.g. from :func:`register_translation`)
    replaces the initializer.

    Optimiser: ``"regular_step"`` (RegularStepGradientDescent; ``learning_rate`` = first step in mm,
    relaxation 0.5, stops below ``min_step`` mm) or ``"line_search"``
    (GradientDescentLineSearch), both with ``SetOptimizerScalesFromPhysicalShift``.

    Binary masks (values 0/1) are registered as float images smoothed by a Gaussian of
    ``mask_smoothing_mm`` (mm): a smoother MeanSquares landscape (measured on a 3 mm phantom, four
    transforms: max point error 0.25-0.49 mm with 2 mm smoothing, 0.37-0.72 mm without).
    ``relaxation`` is the step-length factor of the regular-step optimiser at each direction change.

    ``quality`` is the Dice of fixed vs warped moving when both inputs are binary masks, or of
    ``quality_masks`` = (fixed_mask, moving_mask) when given.
    """
    binary = _is_binary(fixed) and _is_binary(moving)
    smooth = mask_smoothing_mm if binary else 0.0
    f_img, m_img = _float_image(fixed, smooth), _float_image(moving, smooth)
    if initial_transform is not None:
        a, b = _matrix_offset(initial_transform)
        tx = _rigid_from_matrix(a, b, center=_grid_center(fixed))
        init_name = "given"
    else:
        init_name = ("moments" if binary else "geometry") if initializer == "auto" else initializer
        if init_name == "none":
            tx = sitk.Euler3DTransform()
            tx.SetCenter(tuple(_grid_center(fixed)))
        elif init_name in ("geometry", "moments"):
            mode = (
                sitk.CenteredTransformInitializerFilter.GEOMETRY
                if init_name == "geometry"
                else sitk.CenteredTransformInitializerFilter.MOMENTS
            )
            if init_name == "moments" and (not fixed.array.any() or not moving.array.any()):
                raise FlareInputError(
                    moving.path or fixed.path or "<volume>",
                    "cannot initialise by moments: a volume is all zeros",
                    "check the body masks (or use initializer='geometry')",
                )
            tx = _downcast(sitk.CenteredTransformInitializer(f_img, m_img, sitk.Euler3DTransform(), mode))
        else:
            raise ValueError(f"unknown initializer {initializer!r}")
    reg = sitk.ImageRegistrationMethod()
    _configure(
        reg,
        metric=metric,
        sampling=sampling,
        seed=seed,
        levels=levels,
        iterations=iterations,
        optimizer=optimizer,
        learning_rate=learning_rate,
        min_step=min_step,
        mi_bins=mi_bins,
        threads=threads,
        relaxation=relaxation,
    )
    reg.SetInitialTransform(tx, inPlace=False)
    out, value, iters, per_level, stop, seconds = _execute(reg, f_img, m_img)
    out = _as_euler(out)
    quality = None
    if quality_masks is not None:
        quality = _mask_quality(quality_masks[0], quality_masks[1], out)
    elif binary:
        quality = _mask_quality(fixed, moving, out)
    details = {
        "method": "rigid",
        "metric": metric,
        "levels": levels,
        "sampling": sampling,
        "seed": seed,
        "initializer": init_name,
        "optimizer": optimizer,
        "iterations_per_level": per_level,
        "threads": threads,
    }
    return RegistrationResult(out, value, iters, seconds, quality, stop, details)


def register_translation(
    fixed: Volume,
    moving: Volume,
    *,
    by: Literal["mask", "label"] = "mask",
    label_mode: Literal["centroids", "foreground"] = "centroids",
    refine: bool = True,
    levels: int = 2,
    sampling: float = 0.2,
    iterations: int = 200,
    seed: int = 12345,
    learning_rate: float = 2.0,
    min_step: float = 1e-3,
    threads: int = 1,
) -> RegistrationResult:
    """Translation-only registration of ``moving`` onto ``fixed`` (STUDY.md "Translation
    registration", used to align CycleGAN training data).

    * ``by="mask"``: ``fixed``/``moving`` are body masks (nonzero = body, e.g. :func:`body_mask`).
      The translation starts at the best match of the masks' slice-area profiles along z (x and y
      from the centres of mass of the overlapping slabs), else at the difference of their world
      centres of mass (``details["initializer"]``), and, with
      ``refine``, is optimised with MeanSquares on the masks (RegularStepGradientDescent, physical
      shift scales, ``levels`` resolutions, seeded sampling). MeanSquares counts only the overlap,
      so masks cut by different fields of view can slide apart until background meets background;
      a refinement that lowers the mask Dice is therefore dropped for its start
      (``details["initial_quality"]``, ``details["refined_quality"]``).
    * ``by="label"``: ``fixed``/``moving`` are label maps (FLARE ids). ``label_mode="centroids"``:
      the translation is the per-axis median, over the labels present in both, of the world
      centroid differences (robust to an organ cut by one field of view); no optimisation.
      ``label_mode="foreground"``: as ``by="mask"`` on the binary foreground (labels > 0).

    The result maps fixed points to moving points (``p_moving = p_fixed + t``). ``quality`` is the
    foreground Dice after warping; for labels ``details["label_dice"]`` has the per-label Dice.
    """
    t0 = time.perf_counter()
    if by not in ("mask", "label"):
        raise ValueError(f"register_translation: by must be 'mask' or 'label', got {by!r}")
    f_fg, m_fg = fixed.array != 0, moving.array != 0
    for vol, fg in ((fixed, f_fg), (moving, m_fg)):
        if not fg.any():
            raise FlareInputError(
                vol.path or "<volume>",
                f"cannot register by {by}: the {'mask' if by == 'mask' else 'label map'} is empty",
                "check the body mask / label file",
            )
    if by == "mask":
        for vol in (fixed, moving):
            if not _is_binary(vol):
                raise FlareInputError(
                    vol.path or "<volume>",
                    f"register_translation(by='mask') needs a binary mask, got {vol.array.dtype} values "
                    "other than 0/1",
                    "pass flarelib.preprocess.body_mask(volume), or by='label' for label maps",
                )
    details: dict[str, Any] = {"method": "translation", "by": by}
    if by == "label" and label_mode == "centroids":
        common = sorted(set(np.unique(fixed.array)) & set(np.unique(moving.array)) - {0})
        if not common:
            raise FlareInputError(
                moving.path or "<label>",
                "no label id is present in both label maps",
                "register by mask instead, or check the label maps",
            )
        offsets = []
        for lab in common:
            cf = _centroid_world(fixed, fixed.array == lab)
            cm = _centroid_world(moving, moving.array == lab)
            offsets.append(cm - cf)
        t = np.median(np.array(offsets), axis=0)
        tx = sitk.TranslationTransform(3, tuple(float(v) for v in t))
        details.update(label_mode="centroids", labels=[int(v) for v in common])
        result = RegistrationResult(tx, float("nan"), 0, 0.0, None, "label centroids", details)
    else:
        t_init, init_kind = _initial_translation(fixed, f_fg, moving, m_fg)
        tx = sitk.TranslationTransform(3, tuple(float(v) for v in t_init))
        details["initial_translation_mm"] = [float(v) for v in t_init]
        details["initializer"] = init_kind
        if by == "label":
            details["label_mode"] = "foreground"
        if refine:
            reg = sitk.ImageRegistrationMethod()
            _configure(
                reg,
                metric="meansquares",
                sampling=sampling,
                seed=seed,
                levels=levels,
                iterations=iterations,
                optimizer="regular_step",
                learning_rate=learning_rate,
                min_step=min_step,
                mi_bins=50,
                threads=threads,
            )
            reg.SetInitialTransform(tx, inPlace=False)
            f_img = fixed.with_array(f_fg.astype(np.float32)).to_sitk()
            m_img = moving.with_array(m_fg.astype(np.float32)).to_sitk()
            out, value, iters, per_level, stop, _ = _execute(reg, f_img, m_img)
            refined = _as_translation(out)
            details.update(levels=levels, sampling=sampling, seed=seed, iterations_per_level=per_level)
            # MeanSquares over the overlap only has a degenerate optimum: slide the masks apart until
            # only background overlaps. Keep the refinement only where it does not lower the Dice.
            q_init = _mask_quality(fixed.with_array(f_fg), moving.with_array(m_fg), tx)
            q_refined = _mask_quality(fixed.with_array(f_fg), moving.with_array(m_fg), refined)
            details.update(initial_quality=q_init, refined_quality=q_refined)
            if q_refined >= q_init - 1e-3:
                tx = refined
            else:
                stop = f"refinement lowered the mask Dice ({q_init:.3f} -> {q_refined:.3f}): kept the start"
            result = RegistrationResult(tx, value, iters, 0.0, None, stop, details)
        else:
            result = RegistrationResult(tx, float("nan"), 0, 0.0, None, "centre of mass", details)
    result.quality = _mask_quality(fixed.with_array(f_fg), moving.with_array(m_fg), result.transform)
    if by == "label":
        warped = apply_transform(moving, result.transform, fixed, is_label=True).array
        ids = sorted((set(np.unique(fixed.array)) | set(np.unique(moving.array))) - {0})
        result.details["label_dice"] = {int(i): dice(fixed.array == i, warped == i, empty=1.0) for i in ids}
    result.seconds = time.perf_counter() - t0
    return result
