"""The ``3d`` / ``2d`` configuration (params ``unet.configuration``) of every network of a run.

Tensors stay ``(N, C, Z, Y, X)`` in both. ``3d`` is the paper's: cubic kernels and strides.
``2d`` is the same code with every kernel and stride confined to the (y, x) plane, as DESIGN.md
plans ("a 2-D net can be the 3-D code with (1, 3, 3) kernels, (1, 2, 2) pools and one-slice
patches"): kernels ``(1, k, k)``, strides and pools ``(1, s, s)``, and patches and windows of one
slice, ``(1, Y, X)``. So checkpoints, the sliding-window predictor and its ONNX / OpenVINO
exports have a single code path; a 2-D net is a 3-D module that never mixes slices.

One slice is a requirement, not a default: an instance norm normalises over the whole (Z, Y, X)
extent it is given, so a 2-D net run on a five-slice window would normalise the five slices
together and answer differently from the same net run slice by slice. :func:`check_params` says so
naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flarelib.errors import FlareInputError

Triple = tuple[int, int, int]

#: The configurations, the paper's first.
CONFIGURATIONS: tuple[str, ...] = ("3d", "2d")


def check_configuration(configuration: str, where: str = "unet.configuration") -> str:
    """``configuration`` if it is one of :data:`CONFIGURATIONS`, else a :class:`FlareInputError`."""
    if configuration not in CONFIGURATIONS:
        raise FlareInputError(
            where, f"unknown configuration {configuration!r}", f"use one of {', '.join(CONFIGURATIONS)}"
        )
    return configuration


def kernel(configuration: str, k: int) -> Triple:
    """A kernel or stride of size ``k`` in ``configuration``: ``(k, k, k)`` in 3d, ``(1, k, k)`` in 2d."""
    check_configuration(configuration)
    return (k, k, k) if configuration == "3d" else (1, k, k)


def in_plane(configuration: str, p: int) -> Triple:
    """A padding of ``p`` voxels per side: ``(p, p, p)`` in 3d, ``(0, p, p)`` in 2d."""
    check_configuration(configuration)
    return (p, p, p) if configuration == "3d" else (0, p, p)


def _get(p: Any, name: str) -> Any:
    if isinstance(p, Mapping):
        return p.get(name)
    return getattr(p, name, None)


def configuration_of(params: Any) -> str:
    """The configuration of a run's params (``params.unet.configuration``; ``3d`` when absent)."""
    unet = _get(params, "unet")
    value = _get(unet, "configuration") if unet is not None else None
    return check_configuration(value or "3d")


#: The params keys that a 2d configuration constrains, by section.
SECTION_KEYS: dict[str, str] = {
    "unet": "unet.pool_zyx",
    "train": "train.patch_zyx",
    "cyclegan": "cyclegan.patch_zyx",
    "infer": "infer.window_zyx",
}


def check_params(params: Any, sections: Sequence[str] = tuple(SECTION_KEYS)) -> str:
    """Check the keys of ``sections`` against the run's configuration; return the configuration.

    In 2d: every ``unet.pool_zyx`` entry has z-stride 1, and ``train.patch_zyx``,
    ``cyclegan.patch_zyx`` and ``infer.window_zyx`` have z = 1. A violation is a
    :class:`FlareInputError` naming the key and the fix. In 3d nothing is constrained here (the
    stages check patch multiples against the pooling themselves).
    """
    conf = configuration_of(params)
    if conf == "3d":
        return conf
    for section in sections:
        if section not in SECTION_KEYS:
            raise ValueError(f"unknown section {section!r}: use one of {list(SECTION_KEYS)}")
        sec = _get(params, section)
        if sec is None:
            continue
        key = SECTION_KEYS[section]
        value = _get(sec, key.split(".")[1])
        if value is None:
            continue
        if section == "unet":
            bad = [list(p) for p in value if int(p[0]) != 1]
            if bad:
                raise FlareInputError(
                    key,
                    f"the 2d configuration needs z-stride 1 in every pool, got {[list(p) for p in value]}",
                    "use in-plane pools such as [1, 2, 2], or unet.configuration: 3d",
                )
        elif int(value[0]) != 1:
            raise FlareInputError(
                key,
                f"the 2d configuration works on one slice at a time, got {list(value)} (z = {value[0]})",
                f"set {key} to [1, {value[1]}, {value[2]}], or unet.configuration: 3d",
            )
    return conf
