"""Random intensity remappings of labelled CT patches (params ``train.intensity_aug``).

Two published ways to make a net trained on one modality look past its intensities, for single-
source domain generalisation (here: CT-labelled -> MR):

* ``randconv`` (Xu, Liu, Yang, Niethammer, ICLR 2021, "Robust and generalizable visual
  representation learning via random convolutions", the RandConv-mix variant): one random
  convolution with a kernel size drawn from {1, 3, 5, 7} and weights ~ N(0, 1 / fan_in) (fan_in =
  k^2 C for a (1, k, k) kernel on C = 1 channel, k^3 C for a cubic one), its output brought to the
  patch's mean and std, mixed with the patch as ``alpha x + (1 - alpha) conv(x)``, alpha ~ U(0, 1),
  and the mix brought to the patch's mean and std again. A size-1 kernel is a random gain: with a
  negative weight, a contrast inversion.
* ``gin`` (Ouyang, Chen, Li, Li, Bai, Rueckert, IEEE TMI 2022, "Causality-inspired single-source
  domain generalization for medical image segmentation", Global Intensity Non-linear
  augmentation): a random shallow net of ``n_layers`` (4) convolutions, 1 -> 2 -> 2 -> 2 -> 1
  channels, kernel sizes drawn per layer from {1, 3}, weights and biases ~ N(0, 1), LeakyReLU
  (0.01) between layers; its output brought to the patch's mean and std, mixed with the patch with
  alpha ~ U(0, 1), and the mix brought to the patch's mean and std (the authors match the
  Frobenius norm; on a z-scored patch the two agree up to the mean).
* ``none``: the identity (draws nothing, so the patch stream is bit-identical to a run without it).

Each transform is TorchIO style: ``draw_params(rng)`` takes every random number from a numpy
``Generator`` (in training the batch's own stream, :func:`flarelib.train.sampling.batch_rng`
stream 1: a function of seed, rank and batch index, so a resumed run sees the same remappings and
the patches are those of a run without them), ``apply(image, params)`` is deterministic (a
torch CPU convolution; one and two threads gave bit-identical results). Images are float32
``(z, y, x)``; kernels are cubic (``(k, k, k)``) for 3-D patches and in-plane (``(1, k, k)``) when
``in_plane`` (a 2-D configuration's one-slice patches; :func:`make_intensity_aug` picks it from the
patch size). Borders are padded by replication. The label is never touched: the sampler applies
these to the image of labelled CT patches only (:class:`flarelib.train.sampling.PatchSampler`).
Not done: restricting the remapping to the body mask (the air around the body is remapped with
the rest of the patch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from flarelib.errors import FlareInputError

__all__ = [
    "GIN",
    "KINDS",
    "GINParams",
    "IntensityAug",
    "RandConv",
    "RandConvParams",
    "make_intensity_aug",
]

#: Values of ``train.intensity_aug``.
KINDS: tuple[str, ...] = ("none", "randconv", "gin")


class IntensityAug(Protocol):
    """A random intensity transform split into drawing and applying."""

    def draw_params(self, rng: np.random.Generator) -> Any: ...

    def apply(self, image: np.ndarray, params: Any) -> np.ndarray: ...


def _kernel_shape(k: int, in_plane: bool) -> tuple[int, int, int]:
    return (1, k, k) if in_plane else (k, k, k)


def _conv(x: torch.Tensor, weight: np.ndarray, bias: np.ndarray | None = None) -> torch.Tensor:
    """``x`` (C, Z, Y, X) convolved ("same" size, replicated borders) with ``weight`` (O, C, kz, ky, kx)."""
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
    kz, ky, kx = w.shape[2:]
    pad = (kx // 2, kx // 2, ky // 2, ky // 2, kz // 2, kz // 2)  # F.pad: last axis first
    xp = F.pad(x[None], pad, mode="replicate") if any(pad) else x[None]
    b = None if bias is None else torch.from_numpy(np.asarray(bias, dtype=np.float32))
    return F.conv3d(xp, w, b)[0]


def _match(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``y`` shifted and scaled to the mean and std of ``ref`` (float64 statistics)."""
    y = y.astype(np.float64)
    std = float(y.std())
    centred = y - y.mean()
    if std > 1e-12:
        centred = centred / std
    return centred * float(ref.std(dtype=np.float64)) + float(ref.mean(dtype=np.float64))


def _mix(image: np.ndarray, remapped: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * image + (1 - alpha) * remapped`` (remapped first matched to the image), matched
    again to the image's mean and std; float32, the image's shape."""
    img = image.astype(np.float64)
    out = alpha * img + (1.0 - alpha) * _match(remapped, img)
    return _match(out, img).astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    # a copy: torch takes no negative strides, which a flipped one-slice axis keeps even in a
    # "contiguous" numpy array (a size-1 axis counts as contiguous whatever its stride)
    img = np.array(image, dtype=np.float32, order="C", copy=True)
    if img.ndim != 3:
        raise ValueError(f"intensity augmentation needs a (z, y, x) patch, got shape {img.shape}")
    return img


@dataclasses.dataclass(frozen=True)
class RandConvParams:
    """One RandConv draw: ``weight`` (kz, ky, kx) float32 and the mixing weight ``alpha``."""

    weight: np.ndarray
    alpha: float


@dataclasses.dataclass(frozen=True)
class RandConv:
    """RandConv-mix (Xu et al. 2021; module docstring)."""

    in_plane: bool = False
    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7)
    alpha_range: tuple[float, float] = (0.0, 1.0)

    def draw_params(self, rng: np.random.Generator) -> RandConvParams:
        k = int(self.kernel_sizes[int(rng.integers(len(self.kernel_sizes)))])
        shape = _kernel_shape(k, self.in_plane)
        std = 1.0 / math.sqrt(math.prod(shape))  # fan_in = k^2 (in-plane) or k^3, one channel
        weight = rng.normal(0.0, std, size=shape).astype(np.float32)
        return RandConvParams(weight, float(rng.uniform(*self.alpha_range)))

    def apply(self, image: np.ndarray, params: RandConvParams) -> np.ndarray:
        img = _check_image(image)
        with torch.no_grad():
            y = _conv(torch.from_numpy(img)[None], params.weight[None, None])[0].numpy()
        return _mix(img, y, params.alpha)


@dataclasses.dataclass(frozen=True)
class GINParams:
    """One GIN draw: per layer ``weights[i]`` (out, in, kz, ky, kx) and ``biases[i]`` (out,), float32,
    and the mixing weight ``alpha``."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    alpha: float


@dataclasses.dataclass(frozen=True)
class GIN:
    """Global Intensity Non-linear augmentation (Ouyang et al. 2022; module docstring)."""

    in_plane: bool = False
    n_layers: int = 4
    channels: int = 2
    kernel_sizes: tuple[int, ...] = (1, 3)
    negative_slope: float = 0.01
    alpha_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.n_layers < 1 or self.channels < 1:
            raise ValueError("GIN needs n_layers >= 1 and channels >= 1")

    def draw_params(self, rng: np.random.Generator) -> GINParams:
        weights, biases = [], []
        for i in range(self.n_layers):
            c_in = 1 if i == 0 else self.channels
            c_out = 1 if i == self.n_layers - 1 else self.channels
            k = int(self.kernel_sizes[int(rng.integers(len(self.kernel_sizes)))])
            shape = (c_out, c_in, *_kernel_shape(k, self.in_plane))
            weights.append(rng.normal(0.0, 1.0, size=shape).astype(np.float32))
            biases.append(rng.normal(0.0, 1.0, size=c_out).astype(np.float32))
        return GINParams(tuple(weights), tuple(biases), float(rng.uniform(*self.alpha_range)))

    def apply(self, image: np.ndarray, params: GINParams) -> np.ndarray:
        img = _check_image(image)
        with torch.no_grad():
            x = torch.from_numpy(img)[None]
            last = len(params.weights) - 1
            for i, (w, b) in enumerate(zip(params.weights, params.biases, strict=True)):
                x = _conv(x, w, b)
                if i < last:
                    x = F.leaky_relu(x, self.negative_slope)
            y = x[0].numpy()
        return _mix(img, y, params.alpha)


def make_intensity_aug(kind: str, patch_zyx: Sequence[int] | None = None) -> IntensityAug | None:
    """The transform of ``train.intensity_aug``: None for ``"none"``; in-plane kernels when the
    patch has one slice (``patch_zyx[0] == 1``, the 2d configuration), cubic ones otherwise."""
    if kind not in KINDS:
        raise FlareInputError(
            "train.intensity_aug",
            f"unknown intensity augmentation {kind!r}",
            f"use one of {', '.join(KINDS)}",
        )
    in_plane = patch_zyx is not None and int(patch_zyx[0]) == 1
    if kind == "randconv":
        return RandConv(in_plane=in_plane)
    if kind == "gin":
        return GIN(in_plane=in_plane)
    return None
