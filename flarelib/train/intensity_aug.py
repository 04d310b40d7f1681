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
* ``synth`` (after SynthSeg: Billot et al., Medical Image Analysis 2023, "SynthSeg: segmentation
  of brain MRI scans of any contrast and resolution without retraining"): the patch is redrawn
  from its label map. Every organ label, and ``background_classes`` (3) intensity classes of the
  label-0 voxels (split at the patch's own terciles: for CT air/fat, soft tissue, dense), gets a
  mean ~ U(0, 1) and a noise std ~ U(0, ``std_max``); then a Gaussian blur of sigma ~ U(0,
  ``blur_max``) voxels (in-plane for one-slice patches), a smooth multiplicative bias field
  (``exp`` of a ``bias_grid`` of N(0, ``bias_std``) values, cubic-interpolated), a gamma ``exp(N(0,
  gamma_std))`` on the min-max scaled result, and the result brought to the patch's mean and std.
  Nothing of the CT's own contrast survives, only the anatomy the label draws, so a net must learn
  shapes; an organ the label leaves unannotated falls into a background class.
* ``none``: the identity (draws nothing, so the patch stream is bit-identical to a run without it).

Each transform is TorchIO style: ``draw_params(rng)`` takes every random number from a numpy
``Generator`` (in training the batch's own stream, :func:`flarelib.train.sampling.batch_rng`
stream 1: a function of seed, rank and batch index, so a resumed run sees the same remappings and
the patches are those of a run without them), ``apply(image, params)`` is deterministic (a
torch CPU convolution; one and two threads gave bit-identical results; ``synth`` draws a noise
seed and makes its noise from it). Images are float32 ``(z, y, x)``; kernels are cubic (``(k, k,
k)``) for 3-D patches and in-plane (``(1, k, k)``) when ``in_plane`` (a 2-D configuration's
one-slice patches; :func:`make_intensity_aug` picks it from the patch size). Borders are padded by
replication. The label is never touched (``synth`` reads it: ``apply(image, params, label)``); the
sampler applies these to the image of labelled CT and fake MR patches only
(:class:`flarelib.train.sampling.PatchSampler`).
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
    "LabelSynth",
    "LabelSynthParams",
    "RandConv",
    "RandConvParams",
    "make_intensity_aug",
]

#: Values of ``train.intensity_aug``.
KINDS: tuple[str, ...] = ("none", "randconv", "gin", "synth")


class IntensityAug(Protocol):
    """A random intensity transform split into drawing and applying."""

    def draw_params(self, rng: np.random.Generator) -> Any: ...

    def apply(self, image: np.ndarray, params: Any, label: np.ndarray | None = None) -> np.ndarray: ...


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

    def apply(self, image: np.ndarray, params: RandConvParams, label: np.ndarray | None = None) -> np.ndarray:
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

    def apply(self, image: np.ndarray, params: GINParams, label: np.ndarray | None = None) -> np.ndarray:
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


@dataclasses.dataclass(frozen=True)
class LabelSynthParams:
    """One ``synth`` draw: per class (organ ids 0..13, then the background classes) ``means`` and
    ``stds`` (float64, on 0..1), ``blur`` sigma in voxels, the log bias field on its coarse grid
    ``bias`` (float64), ``gamma`` and the noise ``seed``."""

    means: np.ndarray
    stds: np.ndarray
    blur: float
    bias: np.ndarray
    gamma: float
    seed: int


@dataclasses.dataclass(frozen=True)
class LabelSynth:
    """Label-driven synthesis after SynthSeg (module docstring). Label ids are FLARE's 0..13; label
    0 voxels are split into ``background_classes`` by the patch's own intensities."""

    in_plane: bool = False
    n_labels: int = 14
    background_classes: int = 3
    std_max: float = 0.1
    blur_max: float = 1.0
    bias_std: float = 0.3
    bias_grid: tuple[int, int, int] = (2, 4, 4)
    gamma_std: float = 0.4

    def draw_params(self, rng: np.random.Generator) -> LabelSynthParams:
        n = self.n_labels + self.background_classes
        grid = (1, *self.bias_grid[1:]) if self.in_plane else self.bias_grid
        return LabelSynthParams(
            means=rng.uniform(0.0, 1.0, n),
            stds=rng.uniform(0.0, self.std_max, n),
            blur=float(rng.uniform(0.0, self.blur_max)),
            bias=rng.normal(0.0, self.bias_std, grid),
            gamma=float(np.exp(rng.normal(0.0, self.gamma_std))),
            seed=int(rng.integers(2**31)),
        )

    def classes(self, image: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Class per voxel (int64, the patch's shape): the organ id, or ``n_labels + k`` for the
        ``k``-th intensity class of the label-0 voxels."""
        cls = label.astype(np.int64)
        background = cls == 0
        if background.any() and self.background_classes > 1:
            q = np.linspace(0, 1, self.background_classes + 1)[1:-1]
            edges = np.quantile(image[background], q)
            cls[background] = self.n_labels + np.searchsorted(edges, image[background])
        elif background.any():
            cls[background] = self.n_labels
        return cls

    def apply(
        self, image: np.ndarray, params: LabelSynthParams, label: np.ndarray | None = None
    ) -> np.ndarray:
        from scipy import ndimage

        img = _check_image(image)
        if label is None or np.shape(label) != img.shape:
            raise ValueError(
                "synth intensity augmentation draws the image from its label: pass the patch's label"
            )
        cls = self.classes(img, np.asarray(label))
        noise = np.random.default_rng(params.seed).standard_normal(img.shape)
        out = params.means[cls] + params.stds[cls] * noise
        if params.blur > 0:
            sigma = (0.0, params.blur, params.blur) if self.in_plane else params.blur
            out = ndimage.gaussian_filter(out, sigma, mode="nearest")
        zoom = [s / g for s, g in zip(img.shape, params.bias.shape, strict=True)]
        out = out * np.exp(
            ndimage.zoom(
                params.bias,
                zoom,
                order=3 if min(params.bias.shape) > 1 else 1,
                mode="nearest",
                grid_mode=True,
            )
        )
        lo, hi = float(out.min()), float(out.max())
        out = ((out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)) ** params.gamma
        return _match(out, img).astype(np.float32)


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
    if kind == "synth":
        return LabelSynth(in_plane=in_plane)
    return None
