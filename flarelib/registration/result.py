"""The record of one registration: transform, parameters, quality, timings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from flarelib.registration.transforms import (
    _euler_angles_deg,
    _translation,
    rotation_angle_deg,
    transform_to_dict,
)


@dataclass
class RegistrationResult:
    """What a registration returns.

    Attributes:
        transform: fixed-space point -> moving-space point (SimpleITK convention), an
            ``Euler3DTransform`` (rigid) or ``TranslationTransform``.
        metric_value: the metric at the end (MeanSquares: lower is better; Mattes MI: more negative
            is better); NaN when no optimisation ran.
        iterations: optimiser iterations of the last (finest) level, summed over levels in
            ``details["iterations_per_level"]``.
        seconds: wall time of the registration.
        quality: Dice of the fixed mask vs the moving mask warped into fixed space (nearest
            neighbour), when masks (or label maps) were registered; None otherwise.
        stop_condition: the optimiser's stop reason.
        details: method, metric, levels, seed, per-level iterations, per-label Dice, ...
    """

    transform: sitk.Transform
    metric_value: float
    iterations: int
    seconds: float
    quality: float | None = None
    stop_condition: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        """The transform's translation (LPS mm, x y z). For Euler3D this is ``t`` in
        ``R (p - c) + c + t``: the displacement of the centre ``c``."""
        return _translation(self.transform)

    @property
    def rotation_deg(self) -> tuple[float, float, float]:
        """Euler angles about x, y, z in degrees (Euler3D); zeros for a translation."""
        return _euler_angles_deg(self.transform)

    @property
    def rotation_angle_deg(self) -> float:
        """Total rotation angle (degrees) of the transform's linear part (axis-angle magnitude)."""
        return rotation_angle_deg(self.transform)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the transform through :func:`transform_to_dict`)."""
        return {
            "transform": transform_to_dict(self.transform),
            "metric_value": float(self.metric_value),
            "iterations": int(self.iterations),
            "seconds": float(self.seconds),
            "quality": None if self.quality is None else float(self.quality),
            "stop_condition": self.stop_condition,
            "translation_mm": list(self.translation_mm),
            "rotation_deg": list(self.rotation_deg),
            "details": _jsonable(self.details),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
