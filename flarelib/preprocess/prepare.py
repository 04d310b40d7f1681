"""The one preprocessing path of training and prediction (STUDY.md "Preprocessing").

``reorient to LPS -> resample to the training spacing -> intensity`` for an image and, optionally,
its label. :func:`flarelib.train.stages.load_train_volume` and
:meth:`flarelib.infer.pipeline.CasePredictor.predict_volume` both call :func:`prepare_case`, so a
network is always fed arrays made the way it was trained on (they diverged twice before: training
did not reorient to LPS, and only prediction resampled volumes already at the target spacing).

Intensity modes (``intensity``):

* ``"zscore"``: the segmentation network's input. CT is windowed to 0..255 first (level/width from
  ``preprocess``, default 40/400: on raw HU the air/body contrast dominates the standard deviation
  and soft-tissue contrast shrinks to ~0.1 units), then every volume is z-scored.
* ``"ct255"``: CT window to 0..255 (the CycleGAN's CT domain).
* ``"mr255"``: MR scaled to 0..255 with ``preprocess.mr_scaling`` (the CycleGAN's MR domain).

Arrays are ``(z, y, x)``, spacings mm in ``(z, y, x)`` order, world coordinates LPS mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from flarelib.config import PreprocessParams
from flarelib.errors import FlareInputError
from flarelib.io import Volume, reorient_to_lps
from flarelib.preprocess.intensity import ct_window, mr_scale, zscore
from flarelib.preprocess.resample import resample

Intensity = Literal["zscore", "ct255", "mr255"]
INTENSITY_MODES: tuple[str, ...] = ("zscore", "ct255", "mr255")


@dataclass(frozen=True)
class PreparedCase:
    """A case on the training grid.

    ``image``: float32 ``(z, y, x)`` after the intensity mode; ``label``: uint8 FLARE ids on the same
    grid or None; ``grid``: the geometry of those arrays (LPS, training spacing; its ``array`` is the
    resampled image before the intensity map); ``lps``: the input reoriented to LPS (the grid a
    prediction is resampled back onto); ``orientation``: the input's orientation code, to undo the
    reorientation (:func:`flarelib.io.reorient`).
    """

    image: np.ndarray
    label: np.ndarray | None
    grid: Volume
    lps: Volume
    orientation: str


def _at_spacing(vol: Volume, spacing_zyx: Sequence[float], is_label: bool) -> Volume:
    """:func:`resample` (B-spline images, nearest labels), skipped when the spacing already matches
    (then the arrays are the input's exactly, not a B-spline's near-copy)."""
    if np.allclose(vol.spacing_zyx, spacing_zyx, rtol=0, atol=1e-6):
        return vol
    return resample(vol, tuple(float(s) for s in spacing_zyx), is_label=is_label)


def intensity_map(
    array: np.ndarray, intensity: Intensity, modality: str, preprocess: PreprocessParams | None = None
) -> np.ndarray:
    """The intensity mode of the module docstring on a ``(z, y, x)`` array; float32 out."""
    pre = preprocess if preprocess is not None else PreprocessParams()
    if intensity == "zscore":
        arr = ct_window(array, pre.ct_window_level, pre.ct_window_width) if modality == "CT" else array
        arr = zscore(arr)
    elif intensity == "ct255":
        arr = ct_window(array, pre.ct_window_level, pre.ct_window_width)
    elif intensity == "mr255":
        arr = mr_scale(array, pre.mr_scaling, tuple(pre.mr_percentiles))
    else:
        raise ValueError(f"unknown intensity mode {intensity!r}; use one of {INTENSITY_MODES}")
    return np.asarray(arr, dtype=np.float32)


def prepare_case(
    image: Volume,
    label: Volume | None = None,
    *,
    spacing_zyx: Sequence[float],
    intensity: Intensity = "zscore",
    modality: str = "MR",
    preprocess: PreprocessParams | None = None,
) -> PreparedCase:
    """Reorient ``image`` (and ``label``) to LPS, resample to ``spacing_zyx`` (mm, z y x) and apply
    the ``intensity`` mode for ``modality`` (``"CT"`` or ``"MR"``); see the module docstring."""
    if modality not in ("CT", "MR"):
        raise ValueError(f"unknown modality {modality!r}; use CT or MR")
    lps, code = reorient_to_lps(image)
    grid = _at_spacing(lps, spacing_zyx, is_label=False)
    arr = intensity_map(grid.array, intensity, modality, preprocess)
    lab = None
    if label is not None:
        lab_lps = reorient_to_lps(label)[0]
        lab = _at_spacing(lab_lps, spacing_zyx, is_label=True).array.astype(np.uint8, copy=False)
        if lab.shape != arr.shape:
            raise FlareInputError(
                label.path or "<label>",
                f"resampled label {lab.shape} != image {arr.shape}",
                "check that image and label share one grid",
            )
    return PreparedCase(arr, lab, grid, lps, code)
