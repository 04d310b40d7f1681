"""Transform algebra (components, composition, application) and JSON I/O of SimpleITK transforms.

Convention: a transform maps a FIXED-space world point (LPS mm) to the MOVING-space point (see
:mod:`flarelib.registration`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io import Volume
from flarelib.preprocess import resample_to_reference


def _downcast(tx: sitk.Transform) -> sitk.Transform:
    """The concrete SimpleITK class of a generic ``sitk.Transform`` (e.g. Euler3DTransform)."""
    try:
        return tx.Downcast()
    except (AttributeError, RuntimeError):  # pragma: no cover - old SimpleITK
        return tx


def _matrix_offset(tx: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with ``tx(p) = A p + b`` for a linear transform (identity, translation, Euler, affine,
    composite of those). Raises ValueError for non-linear transforms."""
    tx = _downcast(tx)
    if isinstance(tx, sitk.CompositeTransform):
        a, b = np.eye(3), np.zeros(3)
        # the last transform in the stack is applied first
        for i in reversed(range(tx.GetNumberOfTransforms())):
            ai, bi = _matrix_offset(tx.GetNthTransform(i))
            a, b = ai @ a, ai @ b + bi
        return a, b
    origin = np.zeros(3)
    b = np.array(tx.TransformPoint(tuple(origin)))
    a = np.column_stack([np.array(tx.TransformPoint(tuple(e))) - b for e in np.eye(3)])
    # check linearity at a few far points
    for p in (np.array([100.0, -50.0, 25.0]), np.array([-30.0, 80.0, -120.0])):
        if not np.allclose(np.array(tx.TransformPoint(tuple(p))), a @ p + b, atol=1e-6):
            raise ValueError(f"{tx.GetName()} is not a linear (matrix + offset) transform")
    return a, b


def _translation(tx: sitk.Transform) -> tuple[float, float, float]:
    tx = _downcast(tx)
    if hasattr(tx, "GetTranslation"):
        return tuple(float(v) for v in tx.GetTranslation())  # type: ignore[return-value]
    if isinstance(tx, sitk.TranslationTransform):
        return tuple(float(v) for v in tx.GetOffset())  # type: ignore[return-value]
    _, b = _matrix_offset(tx)
    return tuple(float(v) for v in b)  # type: ignore[return-value]


def _euler_angles_deg(tx: sitk.Transform) -> tuple[float, float, float]:
    tx = _downcast(tx)
    if isinstance(tx, sitk.Euler3DTransform):
        return tuple(math.degrees(v) for v in (tx.GetAngleX(), tx.GetAngleY(), tx.GetAngleZ()))  # type: ignore[return-value]
    if isinstance(tx, sitk.TranslationTransform):
        return (0.0, 0.0, 0.0)
    a, _ = _matrix_offset(tx)
    e = sitk.Euler3DTransform()
    e.SetMatrix(tuple(a.ravel()), 1e-4)
    return tuple(math.degrees(v) for v in (e.GetAngleX(), e.GetAngleY(), e.GetAngleZ()))  # type: ignore[return-value]


def rotation_angle_deg(tx: sitk.Transform | np.ndarray) -> float:
    """Rotation angle (degrees, 0..180) of a transform's linear part, or of a 3x3 rotation matrix."""
    a = np.asarray(tx, dtype=np.float64) if isinstance(tx, np.ndarray) else _matrix_offset(tx)[0]
    cos = (np.trace(a) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _grid_center(vol: Volume) -> np.ndarray:
    return vol.world_coords((np.array(vol.shape, dtype=np.float64) - 1.0) / 2.0)


def _rigid_from_matrix(a: np.ndarray, b: np.ndarray, center: np.ndarray | None = None) -> sitk.Transform:
    """Euler3D with ``p -> a p + b`` (``a`` a rotation), centred at ``center``."""
    e = sitk.Euler3DTransform()
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    e.SetCenter(tuple(float(v) for v in c))
    e.SetMatrix(tuple(float(v) for v in a.ravel()), 1e-5)
    # T(p) = A (p - c) + c + t = A p + b  ->  t = b - c + A c
    e.SetTranslation(tuple(float(v) for v in (b - c + a @ c)))
    return e


def _as_euler(tx: sitk.Transform) -> sitk.Transform:
    tx = _downcast(tx)
    if isinstance(tx, sitk.Euler3DTransform):
        return tx
    if isinstance(tx, sitk.CompositeTransform) and tx.GetNumberOfTransforms() == 1:
        return _as_euler(tx.GetNthTransform(0))
    a, b = _matrix_offset(tx)
    return _rigid_from_matrix(a, b)


def _as_translation(tx: sitk.Transform) -> sitk.Transform:
    tx = _downcast(tx)
    if isinstance(tx, sitk.TranslationTransform):
        return tx
    if isinstance(tx, sitk.CompositeTransform) and tx.GetNumberOfTransforms() == 1:
        return _as_translation(tx.GetNthTransform(0))
    _, b = _matrix_offset(tx)
    return sitk.TranslationTransform(3, tuple(float(v) for v in b))


def compose(*transforms: sitk.Transform) -> sitk.Transform:
    """The transform that applies ``transforms`` in the order given: ``compose(a, b)(p) = b(a(p))``.

    Chaining registrations: if ``a`` maps A-space points to B-space (A fixed, B moving) and ``b``
    maps B to C, ``compose(a, b)`` maps A to C, so ``apply_transform(vol_C, compose(a, b), vol_A)``
    brings C into A's space. Linear transforms (translation, Euler, affine) fold into one transform
    (``TranslationTransform`` if all are translations, ``Euler3DTransform`` if the product is a
    rotation, else ``AffineTransform``); anything else gives a ``CompositeTransform``.
    """
    if not transforms:
        return sitk.Transform(3, sitk.sitkIdentity)
    txs = [_downcast(t) for t in transforms]
    try:
        a, b = np.eye(3), np.zeros(3)
        for t in txs:
            ai, bi = _matrix_offset(t)
            a, b = ai @ a, ai @ b + bi
    except ValueError:
        return sitk.CompositeTransform(list(reversed(txs)))  # SimpleITK applies the last one first
    if all(isinstance(t, sitk.TranslationTransform) for t in txs):
        return sitk.TranslationTransform(3, tuple(float(v) for v in b))
    if np.allclose(a @ a.T, np.eye(3), atol=1e-6) and np.linalg.det(a) > 0:
        centers = [np.array(t.GetCenter()) for t in txs if hasattr(t, "GetCenter")]
        return _rigid_from_matrix(a, b, center=centers[0] if centers else None)
    aff = sitk.AffineTransform(3)
    aff.SetMatrix(tuple(float(v) for v in a.ravel()))
    aff.SetTranslation(tuple(float(v) for v in b))
    return aff


def apply_transform(
    moving: Volume,
    transform: sitk.Transform,
    reference: Volume,
    *,
    is_label: bool = False,
    default_value: float | None = None,
) -> Volume:
    """Resample ``moving`` onto ``reference``'s grid through ``transform`` (fixed -> moving points,
    as returned by the registrations): voxel ``[z, y, x]`` of the result holds ``moving`` at
    ``transform(world point of reference voxel [z, y, x])``.

    Images: cubic B-spline, float32, outside = ``default_value`` (default: ``moving``'s minimum).
    Labels: nearest neighbour, uint8, outside = 0.
    """
    return resample_to_reference(
        moving, reference, is_label, default_value=default_value, transform=transform
    )


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
_CONSTRUCTORS = {
    "TranslationTransform": lambda: sitk.TranslationTransform(3),
    "Euler3DTransform": sitk.Euler3DTransform,
    "VersorRigid3DTransform": sitk.VersorRigid3DTransform,
    "Similarity3DTransform": sitk.Similarity3DTransform,
    "ScaleTransform": lambda: sitk.ScaleTransform(3),
    "AffineTransform": lambda: sitk.AffineTransform(3),
    "IdentityTransform": lambda: sitk.Transform(3, sitk.sitkIdentity),
}


def transform_to_dict(tx: sitk.Transform) -> dict[str, Any]:
    """JSON-ready description: ``{"type", "parameters", "fixed_parameters"}``; a CompositeTransform
    gives ``{"type": "CompositeTransform", "transforms": [...]}`` in APPLICATION order (first applied
    first), which :func:`transform_from_dict` restores."""
    tx = _downcast(tx)
    if isinstance(tx, sitk.CompositeTransform):
        n = tx.GetNumberOfTransforms()
        parts = [transform_to_dict(tx.GetNthTransform(i)) for i in reversed(range(n))]
        return {"type": "CompositeTransform", "transforms": parts}
    name = tx.GetName()
    if name not in _CONSTRUCTORS:
        raise ValueError(f"transform_to_dict: unsupported transform type {name}")
    return {
        "type": name,
        "parameters": [float(v) for v in tx.GetParameters()],
        "fixed_parameters": [float(v) for v in tx.GetFixedParameters()],
    }


def transform_from_dict(d: Mapping[str, Any]) -> sitk.Transform:
    """Rebuild a transform written by :func:`transform_to_dict` (exactly: same parameters)."""
    kind = d.get("type")
    if kind == "CompositeTransform":
        parts = [transform_from_dict(p) for p in d["transforms"]]
        return sitk.CompositeTransform(list(reversed(parts)))  # SimpleITK applies the last first
    if kind not in _CONSTRUCTORS:
        raise FlareInputError(
            None,
            f"unknown transform type {kind!r}",
            f"use one of {sorted([*_CONSTRUCTORS, 'CompositeTransform'])}",
        )
    tx = _CONSTRUCTORS[kind]()
    if d.get("fixed_parameters"):
        tx.SetFixedParameters(tuple(float(v) for v in d["fixed_parameters"]))
    params: Sequence[float] = d.get("parameters", ())
    if params:
        tx.SetParameters(tuple(float(v) for v in params))
    return tx
