"""The 3D U-Net of the paper's Fig. 3, as a plain ``nn.Module``, in two block styles.

Tensors are ``(N, C, Z, Y, X)``; pools and kernels are given in (z, y, x) order.

Common to both styles (STUDY.md "Networks"): ``len(channels)`` resolution stages, conv blocks
[Conv3d (bias), InstanceNorm3d(eps=1e-5), LeakyReLU(0.01)], 3x3x3 kernels (padding 1) by default, a
decoder that upsamples with ConvTranspose3d(kernel = stride = pool) to the skip's channel count,
concatenates the skip and applies ``n_conv_per_stage_decoder`` conv blocks (2*c -> c, then c -> c),
a 1x1x1 segmentation head at full resolution plus ``num_ds_heads`` deep-supervision heads at the next
lower decoder resolutions (paper eq. 2: full, then pool 1, pools 1-2, pools 1-3). No max pooling.

``block_style="paper"`` (default; the authors' network):

* stage 0: ``n_conv_per_stage`` x [3x3x3 conv block];
* stage ``s > 0``: a separate downsampling block [Conv3d(kernel = stride = pool_zyx[s - 1],
  padding 0) channels[s-1] -> channels[s], norm, LeakyReLU], then ``n_conv_per_stage`` x [3x3x3
  conv block channels[s] -> channels[s]];
* decoder upsampling block: [ConvTranspose3d, norm, LeakyReLU];
* norms with PyTorch's defaults: ``InstanceNorm3d(affine=False)`` (``BatchNorm3d`` stays affine).

``block_style="nnunet"`` (nnU-Net's ``PlainConvUNet``): stage ``s > 0`` downsamples with the stride
of its *first* 3x3x3 conv (``stride = pool_zyx[s - 1]``); the transposed conv is bare (no norm or
activation); ``InstanceNorm3d(affine=True)``.

``configuration="2d"`` (params ``unet.configuration``, :mod:`flarelib.models.configuration`) is
the same network with in-plane kernels: 1x3x3 convs by default, every pool ``(1, s, s)``, inputs
of one slice ``(N, C, 1, Y, X)`` (an instance norm then normalises each slice on its own). Its
modules are the 3-D ones, so checkpoints, the predictor and the exports need no second path.

Parameter counts at the paper's width (channels 32-64-128-256-320-320, the paper's pools, 3x3x3
kernels, conv bias on, 14 classes, 1 full-resolution + 3 DS heads at 64, 128, 256 channels):

* ``paper``: **33,891,384** (33.89 M), exactly the paper's Table 3 figure. The 3.11 M over nnU-Net
  style come from the encoder stages s > 0: both 3x3x3 convs are channels[s] -> channels[s] (the
  nnU-Net style's first one is channels[s-1] -> channels[s]) plus the kernel = stride = pool down
  conv, less the affine norm parameters the nnU-Net style carries. With affine instance norm the
  paper-style net has 33,902,840 (33,897,112 with conv bias off), so the exact match pins
  ``affine=False``.
* ``nnunet``: 30,782,968 (30.78 M), which no choice left open by Fig. 3 brings to 33.89 M (conv
  bias off 30,778,328, no DS heads 30,776,654, heads at all 5 decoder levels 30,787,462).

The same counting convention reproduces the paper's CycleGAN count exactly (90.32 M, see
:mod:`flarelib.models.cyclegan`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from flarelib.errors import FlareInputError
from flarelib.models.configuration import check_configuration

Triple = tuple[int, int, int]

PAPER_CHANNELS: tuple[int, ...] = (32, 64, 128, 256, 320, 320)
PAPER_POOL_ZYX: tuple[Triple, ...] = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
#: Parameters of ``UNet3D()`` (paper width and ``block_style="paper"``, deep supervision on):
#: the paper's Table 3 figure, 33.89 M.
PAPER_WIDTH_PARAMETERS = 33_891_384
#: Parameters of ``UNet3D(block_style="nnunet")`` at the paper's width (30.78 M).
NNUNET_WIDTH_PARAMETERS = 30_782_968

_NORMS = ("instance", "batch")
BLOCK_STYLES = ("paper", "nnunet")


def _triple(v: int | Sequence[int], what: str) -> Triple:
    if isinstance(v, int):
        return (v, v, v)
    t = tuple(int(x) for x in v)
    if len(t) != 3:
        raise FlareInputError("UNet3D", f"{what} must have 3 entries (z, y, x), got {list(v)}")
    return t  # type: ignore[return-value]


def required_divisor(pool_zyx: Sequence[Sequence[int]]) -> Triple:
    """Per-axis product of the pools, (z, y, x): every input spatial size must be a multiple of it.

    >>> required_divisor(((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)))
    (8, 32, 32)
    """
    div = [1, 1, 1]
    for p in pool_zyx:
        for a, f in enumerate(_triple(p, "pool")):
            div[a] *= f
    return (div[0], div[1], div[2])


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameters of ``model``; shared tensors are counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _norm(kind: str, ch: int, affine: bool = True) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(ch, eps=1e-5, affine=affine)
    return nn.BatchNorm3d(ch, eps=1e-5, affine=affine)


class ConvBlock(nn.Sequential):
    """Conv3d -> norm -> LeakyReLU (nnU-Net's ``ConvDropoutNormReLU`` without dropout).

    ``padding=None`` pads ``k // 2`` ("same" for odd kernels at stride 1).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: Triple,
        stride: Triple = (1, 1, 1),
        bias: bool = True,
        norm: str = "instance",
        negative_slope: float = 0.01,
        affine: bool = True,
        padding: Triple | None = None,
    ):
        pad = tuple(k // 2 for k in kernel) if padding is None else padding
        super().__init__(
            nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=pad, bias=bias),
            _norm(norm, out_ch, affine),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


class UpBlock(nn.Sequential):
    """ConvTranspose3d(kernel = stride = pool) -> norm -> LeakyReLU (paper-style upsampling)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        pool: Triple,
        bias: bool = True,
        norm: str = "instance",
        negative_slope: float = 0.01,
        affine: bool = True,
    ):
        super().__init__(
            nn.ConvTranspose3d(in_ch, out_ch, pool, stride=pool, bias=bias),
            _norm(norm, out_ch, affine),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


def _stage(in_ch: int, out_ch: int, n_conv: int, kernel: Triple, stride: Triple, **kw: Any) -> nn.Sequential:
    blocks = [ConvBlock(in_ch, out_ch, kernel, stride, **kw)]
    blocks += [ConvBlock(out_ch, out_ch, kernel, **kw) for _ in range(n_conv - 1)]
    return nn.Sequential(*blocks)


def init_he(module: nn.Module, neg_slope: float = 0.01, generator: torch.Generator | None = None) -> None:
    """nnU-Net's ``InitWeights_He``: Kaiming-normal conv weights (``a=neg_slope``), zero biases.

    Norm layers keep their defaults (weight 1, bias 0). Call it on the whole model (it walks ``modules()``).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
            nn.init.kaiming_normal_(m.weight, a=neg_slope, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class UNet3D(nn.Module):
    """3D U-Net with deep supervision (paper Fig. 3). Input ``(N, C, Z, Y, X)``.

    Args:
        in_channels: input channels (1: one MR/CT volume).
        num_classes: output channels (14: background + 13 FLARE organs).
        channels: features per resolution stage, highest resolution first.
        pool_zyx: ``len(channels) - 1`` downsampling factors (z, y, x) between consecutive stages.
        deep_supervision: build the DS heads and, in train mode, return every head.
        num_ds_heads: DS heads below full resolution (paper: 3); at most ``len(channels) - 2``.
        kernel_sizes: conv kernel per stage (int or (z, y, x)); default 3x3x3 everywhere.
        n_conv_per_stage, n_conv_per_stage_decoder: conv blocks per encoder / decoder stage (2, 2).
        conv_bias: bias in convs and transposed convs (nnU-Net: True).
        norm: ``"instance"`` (paper) or ``"batch"``.
        negative_slope: LeakyReLU slope (0.01).
        block_style: ``"paper"`` (separate kernel = stride = pool downsampling conv block, upsampling
            with norm + LeakyReLU, non-affine instance norm; 33.89 M at paper width) or ``"nnunet"``
            (strided first conv of each stage, bare transposed conv, affine norm; 30.78 M). See the
            module docstring.
        generator: optional ``torch.Generator`` for the He initialisation (reproducible weights).
        configuration: ``"3d"`` (the paper's) or ``"2d"``: default kernels 1x3x3, and every pool
            and kernel must have z-size 1 (see the module docstring).

    Output: in train mode with deep supervision, a list of logits, highest resolution first:
    ``[full, /pool1, /pool1*pool2, ...]`` (``1 + num_ds_heads`` tensors; their per-axis
    downsampling factors are :attr:`output_strides`). In eval mode, or with
    ``deep_supervision=False``, the full-resolution logits tensor ``(N, num_classes, Z, Y, X)``.
    Input sizes must be multiples of :func:`required_divisor` ``(pool_zyx)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 14,
        channels: Sequence[int] = PAPER_CHANNELS,
        pool_zyx: Sequence[Sequence[int]] = PAPER_POOL_ZYX,
        deep_supervision: bool = True,
        num_ds_heads: int = 3,
        kernel_sizes: Sequence[int | Sequence[int]] | None = None,
        n_conv_per_stage: int = 2,
        n_conv_per_stage_decoder: int = 2,
        conv_bias: bool = True,
        norm: str = "instance",
        negative_slope: float = 0.01,
        block_style: str = "paper",
        generator: torch.Generator | None = None,
        configuration: str = "3d",
    ):
        super().__init__()
        check_configuration(configuration)
        channels = tuple(int(c) for c in channels)
        pools = tuple(_triple(p, "pool_zyx entry") for p in pool_zyx)
        n = len(channels)
        where = "UNet3D"
        if n < 2:
            raise FlareInputError(where, f"need at least 2 stages, got channels={list(channels)}")
        if len(pools) != n - 1:
            raise FlareInputError(
                where,
                f"pool_zyx has {len(pools)} entries for {n} stages",
                f"give len(channels) - 1 = {n - 1} pools (one between each pair of stages)",
            )
        if any(f < 1 for p in pools for f in p) or any(c < 1 for c in channels):
            raise FlareInputError(where, "channels and pools must be positive")
        if not 0 <= num_ds_heads <= n - 2:
            raise FlareInputError(
                where,
                f"num_ds_heads={num_ds_heads} but {n} stages give {n - 1} decoder resolutions",
                f"use 0 <= num_ds_heads <= {n - 2}",
            )
        if norm not in _NORMS:
            raise FlareInputError(where, f"unknown norm {norm!r}", f"use one of {_NORMS}")
        if block_style not in BLOCK_STYLES:
            raise FlareInputError(where, f"unknown block_style {block_style!r}", f"use one of {BLOCK_STYLES}")
        if min(n_conv_per_stage, n_conv_per_stage_decoder) < 1:
            raise FlareInputError(where, "n_conv_per_stage and n_conv_per_stage_decoder must be >= 1")
        if kernel_sizes is None:
            kernels: tuple[Triple, ...] = ((3, 3, 3) if configuration == "3d" else (1, 3, 3),) * n
        else:
            kernels = tuple(_triple(k, "kernel_sizes entry") for k in kernel_sizes)
            if len(kernels) != n:
                raise FlareInputError(where, f"kernel_sizes has {len(kernels)} entries for {n} stages")
        if configuration == "2d":
            if any(p[0] != 1 for p in pools):
                raise FlareInputError(
                    where,
                    "configuration 2d needs z-stride 1 in every pool (unet.pool_zyx), "
                    f"got {[list(p) for p in pools]}",
                    "use in-plane pools such as (1, 2, 2)",
                )
            if any(k[0] != 1 for k in kernels):
                raise FlareInputError(
                    where,
                    f"configuration 2d needs kernels of z-size 1, got {[list(k) for k in kernels]}",
                    "use in-plane kernels such as (1, 3, 3)",
                )

        self.in_channels = in_channels
        self.num_classes = num_classes
        self.channels = channels
        self.pool_zyx = pools
        self.kernel_sizes = kernels
        self.deep_supervision = deep_supervision
        self.num_ds_heads = num_ds_heads if deep_supervision else 0
        self.norm = norm
        self.block_style = block_style
        self.configuration = configuration
        self.divisor = required_divisor(pools)

        paper = block_style == "paper"
        # Paper style: PyTorch's norm defaults (InstanceNorm3d non-affine, BatchNorm3d affine).
        affine = norm == "batch" or not paper
        kw: dict[str, Any] = {
            "bias": conv_bias,
            "norm": norm,
            "negative_slope": negative_slope,
            "affine": affine,
        }
        # encoder[s]: paper style [down block, n_conv x conv] for s > 0; nnU-Net style n_conv x conv,
        # the first one strided. Either way encoder[s][1:] are stride-1 convs at channels[s].
        self.encoder = nn.ModuleList()
        prev = in_channels
        for s, c in enumerate(channels):
            if s == 0:
                self.encoder.append(_stage(prev, c, n_conv_per_stage, kernels[s], (1, 1, 1), **kw))
            elif paper:
                down = ConvBlock(prev, c, pools[s - 1], pools[s - 1], padding=(0, 0, 0), **kw)
                convs = [ConvBlock(c, c, kernels[s], **kw) for _ in range(n_conv_per_stage)]
                self.encoder.append(nn.Sequential(down, *convs))
            else:
                self.encoder.append(_stage(prev, c, n_conv_per_stage, kernels[s], pools[s - 1], **kw))
            prev = c

        # decoder[i] / upsample[i] work at stage s = n - 2 - i (bottleneck first).
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for s in range(n - 2, -1, -1):
            if paper:
                up: nn.Module = UpBlock(channels[s + 1], channels[s], pools[s], **kw)
            else:
                up = nn.ConvTranspose3d(
                    channels[s + 1], channels[s], pools[s], stride=pools[s], bias=conv_bias
                )
            self.upsample.append(up)
            self.decoder.append(
                _stage(2 * channels[s], channels[s], n_conv_per_stage_decoder, kernels[s], (1, 1, 1), **kw)
            )
        # heads[k] sits at stage k: heads[0] full resolution, heads[1..] deep supervision.
        self.heads = nn.ModuleList(
            nn.Conv3d(channels[k], num_classes, 1, bias=True) for k in range(1 + self.num_ds_heads)
        )
        init_he(self, negative_slope, generator)

    @property
    def output_strides(self) -> list[Triple]:
        """Per-axis (z, y, x) downsampling of each deep-supervision output, full resolution first."""
        out = [(1, 1, 1)]
        for k in range(self.num_ds_heads):
            out.append(required_divisor(self.pool_zyx[: k + 1]))
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise FlareInputError(
                "UNet3D input",
                f"expected shape (N, {self.in_channels}, Z, Y, X), got {tuple(x.shape)}",
            )
        zyx = tuple(x.shape[2:])
        if self.configuration == "2d" and zyx[0] != 1:
            raise FlareInputError(
                "UNet3D input",
                f"a 2d network takes one slice (N, C, 1, Y, X), got {tuple(x.shape)}",
                "cut one-slice patches and windows (z = 1)",
            )
        if any(s % d for s, d in zip(zyx, self.divisor, strict=True)):
            raise FlareInputError(
                "UNet3D input",
                f"spatial size {zyx} is not a multiple of {self.divisor} (product of pool_zyx)",
                "pad or crop the patch to multiples of required_divisor(pool_zyx)",
            )
        if self.norm == "instance" and math.prod(s // d for s, d in zip(zyx, self.divisor, strict=True)) < 2:
            raise FlareInputError(
                "UNet3D input",
                f"spatial size {zyx} leaves a 1x1x1 bottleneck, which instance norm cannot normalise",
                f"use a patch with at least one axis >= 2x the divisor {self.divisor}",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        self._check_input(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        n = len(self.channels)
        outputs: list[torch.Tensor] = []
        want_ds = self.deep_supervision and self.training and self.num_ds_heads > 0
        for i, (up, dec) in enumerate(zip(self.upsample, self.decoder, strict=True)):
            s = n - 2 - i
            x = dec(torch.cat((up(x), skips[s]), dim=1))
            if want_ds and 0 < s <= self.num_ds_heads:
                outputs.append(self.heads[s](x))
        full = self.heads[0](x)
        if not want_ds:
            return full
        return [full, *outputs[::-1]]


def _get(p: Any, name: str, default: Any = None) -> Any:
    if isinstance(p, Mapping):
        return p.get(name, default)
    return getattr(p, name, default)


def unet_from_params(p: Any) -> UNet3D:
    """Build :class:`UNet3D` from a params section (dataclass, namespace or mapping).

    Required attributes: ``channels``, ``pool_zyx``, ``num_classes``, ``in_channels``,
    ``deep_supervision``. Optional ones, used when present: ``num_ds_heads`` (default: 3, capped
    at ``len(channels) - 2`` so shallow smoke nets still build), ``kernel_sizes``, ``conv_bias``,
    ``norm``, ``negative_slope``, ``n_conv_per_stage``, ``n_conv_per_stage_decoder``,
    ``block_style`` (``"paper"`` or ``"nnunet"``; default ``"paper"``), ``configuration``
    (``"3d"`` or ``"2d"``; default ``"3d"``).
    """
    missing = [
        k
        for k in ("channels", "pool_zyx", "num_classes", "in_channels", "deep_supervision")
        if _get(p, k) is None
    ]
    if missing:
        raise FlareInputError("params unet", f"missing {missing}", "set them in the unet: section")
    channels = tuple(_get(p, "channels"))
    num_ds = _get(p, "num_ds_heads")
    if num_ds is None:
        num_ds = min(3, max(len(channels) - 2, 0))
    kw = {
        k: _get(p, k)
        for k in (
            "kernel_sizes",
            "conv_bias",
            "norm",
            "negative_slope",
            "n_conv_per_stage",
            "n_conv_per_stage_decoder",
            "block_style",
            "configuration",
        )
        if _get(p, k) is not None
    }
    return UNet3D(
        in_channels=int(_get(p, "in_channels")),
        num_classes=int(_get(p, "num_classes")),
        channels=channels,
        pool_zyx=tuple(tuple(q) for q in _get(p, "pool_zyx")),
        deep_supervision=bool(_get(p, "deep_supervision")),
        num_ds_heads=int(num_ds),
        **kw,
    )
