"""3D CycleGAN networks (pix2pix/CycleGAN's ResnetGenerator and NLayerDiscriminator, in 3D).

Tensors are ``(N, C, Z, Y, X)``. Plain ``nn.Module``s; the CycleGAN training system (losses,
image pool, schedules) lives in :mod:`flarelib.train`.

Parameter count at the paper's width (ngf = ndf = 64, 9 residual blocks, instance norm without
affine parameters and convs with bias, as pix2pix does for instance norm): generator
34,111,489, discriminator 11,047,873; two of each = **90,318,724 = 90.32 M**, exactly the paper's
Table 2 figure.

``configuration="2d"`` (params ``unet.configuration``, :mod:`flarelib.models.configuration`)
builds the same networks with in-plane kernels and strides: the generator's 7^3 stem and head
become 1x7x7, its 3^3 convs 1x3x3 and its stride-2 downs and ups (1, 2, 2); the discriminator's 4^3
kernels become 1x4x4 with strides (1, 2, 2); paddings are in-plane only. Tensors stay
``(N, C, Z, Y, X)``, with one slice (Z = 1) per patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from flarelib.errors import FlareInputError
from flarelib.models.configuration import check_configuration, in_plane, kernel

#: Parameters at ngf=64 / ndf=64 (2 x generator + 2 x discriminator = 90,318,724; paper: 90.32 M).
PAPER_GENERATOR_PARAMETERS = 34_111_489
PAPER_DISCRIMINATOR_PARAMETERS = 11_047_873

_NORMS = ("instance", "batch", "none")
_PADS = ("reflect", "replicate", "zero")


def _norm_layer(kind: str, ch: int) -> nn.Module:
    if kind == "instance":  # pix2pix: affine=False, track_running_stats=False
        return nn.InstanceNorm3d(ch, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm3d(ch, affine=True)
    return nn.Identity()


def _check_norm(kind: str, where: str) -> bool:
    """Validate ``kind``; return whether convs followed by this norm carry a bias (pix2pix rule)."""
    if kind not in _NORMS:
        raise FlareInputError(where, f"unknown norm {kind!r}", f"use one of {_NORMS}")
    return kind != "batch"


def _pad(kind: str, p: int, configuration: str = "3d") -> list[nn.Module]:
    """Explicit padding of ``p`` voxels per side (every axis in 3d, y and x in 2d); none for "zero"
    (the convs pad with zeros themselves)."""
    pad: int | tuple[int, ...] = p if configuration == "3d" else (p, p, p, p, 0, 0)  # F.pad: x, y, z
    if kind == "reflect":
        return [nn.ReflectionPad3d(pad)]
    if kind == "replicate":
        return [nn.ReplicationPad3d(pad)]
    return []


def init_weights(net: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """CycleGAN's ``init_type='normal'``: conv / transposed-conv weights ~ N(0, gain), biases 0;
    affine norm weights ~ N(1, gain), norm biases 0. Returns ``net`` (modified in place)."""
    for m in net.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._NormBase) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(m.bias)
    return net


class ResnetBlock3D(nn.Module):
    """x + [pad, conv 3^3, norm, ReLU, (dropout), pad, conv 3^3, norm](x) (1x3x3 in 2d)."""

    def __init__(
        self, ch: int, padding: str, norm: str, use_dropout: bool, bias: bool, configuration: str = "3d"
    ):
        super().__init__()
        p = in_plane(configuration, 0 if padding != "zero" else 1)
        k = kernel(configuration, 3)
        layers: list[nn.Module] = [
            *_pad(padding, 1, configuration),
            nn.Conv3d(ch, ch, k, padding=p, bias=bias),
            _norm_layer(norm, ch),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            *_pad(padding, 1, configuration),
            nn.Conv3d(ch, ch, k, padding=p, bias=bias),
            _norm_layer(norm, ch),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator3D(nn.Module):
    """3D ResNet generator: 7^3 stem, two stride-2 3^3 downs, ``n_blocks`` residual blocks at
    ``4 * ngf`` channels, two stride-2 transposed-conv ups, 7^3 conv, tanh.

    Input and output ``(N, in_ch, Z, Y, X)`` / ``(N, out_ch, Z, Y, X)``, same spatial size; every
    spatial size must be a multiple of 4 (in 2d: Y and X, and Z = 1; every kernel and stride is
    in-plane, see the module docstring). ``padding`` is ``"reflect"`` (pix2pix default,
    ``nn.ReflectionPad3d``), ``"replicate"`` or ``"zero"``. With ``init_gain`` set (default 0.02)
    the weights are initialised by :func:`init_weights`; ``None`` keeps torch's defaults.
    """

    def __init__(
        self,
        in_ch: int = 1,
        out_ch: int = 1,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        use_dropout: bool = False,
        padding: str = "reflect",
        init_gain: float | None = 0.02,
        generator: torch.Generator | None = None,
        configuration: str = "3d",
    ):
        super().__init__()
        bias = _check_norm(norm, "ResnetGenerator3D")
        self.configuration = conf = check_configuration(configuration)
        if padding not in _PADS:
            raise FlareInputError("ResnetGenerator3D", f"unknown padding {padding!r}", f"use one of {_PADS}")
        if n_blocks < 0 or ngf < 1:
            raise FlareInputError("ResnetGenerator3D", "need ngf >= 1 and n_blocks >= 0")
        self.in_ch, self.out_ch = in_ch, out_ch
        p7 = in_plane(conf, 0 if padding != "zero" else 3)
        k7, k3, s2, p1 = kernel(conf, 7), kernel(conf, 3), kernel(conf, 2), in_plane(conf, 1)
        layers: list[nn.Module] = [
            *_pad(padding, 3, conf),
            nn.Conv3d(in_ch, ngf, k7, padding=p7, bias=bias),
            _norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            layers += [
                nn.Conv3d(c, 2 * c, k3, stride=s2, padding=p1, bias=bias),
                _norm_layer(norm, 2 * c),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock3D(4 * ngf, padding, norm, use_dropout, bias, conf) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose3d(c, c // 2, k3, stride=s2, padding=p1, output_padding=p1, bias=bias),
                _norm_layer(norm, c // 2),
                nn.ReLU(True),
            ]
        layers += [*_pad(padding, 3, conf), nn.Conv3d(ngf, out_ch, k7, padding=p7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        if init_gain is not None:
            init_weights(self, init_gain, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        two_d = self.configuration == "2d"
        if two_d:
            ok = x.ndim == 5 and x.shape[2] == 1 and not any(s % 4 for s in x.shape[3:])
        else:
            ok = x.ndim == 5 and not any(s % 4 for s in x.shape[2:])
        if not ok or x.shape[1] != self.in_ch:
            want = "Z = 1 and Y, X multiples of 4" if two_d else "Z, Y, X multiples of 4"
            raise FlareInputError(
                "ResnetGenerator3D input",
                f"expected (N, {self.in_ch}, Z, Y, X) with {want}, got {tuple(x.shape)}",
                "cut one-slice patches with Y, X multiples of 4"
                if two_d
                else "pad or crop the patch to multiples of 4",
            )
        return self.model(x)


class NLayerDiscriminator3D(nn.Module):
    """3D PatchGAN: 4^3 convs, ``ndf``-``2ndf``-``4ndf``-``8ndf``-1 for ``n_layers=3``.

    The first ``n_layers`` convs have stride 2, the last two stride 1 (padding 1 throughout);
    LeakyReLU(0.2); no norm after the first conv. Output: a map of raw logits ``(N, 1, z, y, x)``
    (for a 48x160x160 patch: 4x18x18). With n_layers=3 each axis needs at least 24 voxels. In 2d
    the kernels are 1x4x4 with strides (1, 2, 2) (a one-slice patch gives a one-slice map; only Y and
    X need the 24 voxels).
    """

    def __init__(
        self,
        in_ch: int = 1,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        init_gain: float | None = 0.02,
        generator: torch.Generator | None = None,
        configuration: str = "3d",
    ):
        super().__init__()
        bias = _check_norm(norm, "NLayerDiscriminator3D")
        self.configuration = conf = check_configuration(configuration)
        k4, s2, s1, p1 = kernel(conf, 4), kernel(conf, 2), kernel(conf, 1), in_plane(conf, 1)
        if n_layers < 1 or ndf < 1:
            raise FlareInputError("NLayerDiscriminator3D", "need ndf >= 1 and n_layers >= 1")
        self.in_ch = in_ch
        layers: list[nn.Module] = [nn.Conv3d(in_ch, ndf, k4, stride=s2, padding=p1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv3d(ndf * prev, ndf * mult, k4, stride=s2, padding=p1, bias=bias),
                _norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv3d(ndf * prev, ndf * mult, k4, stride=s1, padding=p1, bias=bias),
            _norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv3d(ndf * mult, 1, k4, stride=s1, padding=p1),
        ]
        self.model = nn.Sequential(*layers)
        if init_gain is not None:
            init_weights(self, init_gain, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_ch:
            raise FlareInputError(
                "NLayerDiscriminator3D input", f"expected (N, {self.in_ch}, Z, Y, X), got {tuple(x.shape)}"
            )
        return self.model(x)


def _get(p: Any, name: str, default: Any) -> Any:
    if isinstance(p, Mapping):
        return p.get(name, default)
    return getattr(p, name, default)


def generator_from_params(
    p: Any, generator: torch.Generator | None = None, configuration: str | None = None
) -> ResnetGenerator3D:
    """:class:`ResnetGenerator3D` from a params section with ``ngf``, ``n_blocks`` (optional:
    ``generator_norm`` or else ``norm``, ``init_gain``, ``in_ch``, ``out_ch``, ``configuration``);
    duck-typed (dataclass, namespace, mapping). ``configuration`` (``"3d"``/``"2d"``; the run's is
    ``unet.configuration``, which the callers pass) overrides the section's; default ``"3d"``."""
    return ResnetGenerator3D(
        in_ch=int(_get(p, "in_ch", 1)),
        out_ch=int(_get(p, "out_ch", 1)),
        ngf=int(_get(p, "ngf", 64)),
        n_blocks=int(_get(p, "n_blocks", 9)),
        norm=str(_get(p, "generator_norm", _get(p, "norm", "instance"))),
        init_gain=_get(p, "init_gain", 0.02),
        generator=generator,
        configuration=configuration or str(_get(p, "configuration", "3d")),
    )


def discriminator_from_params(
    p: Any, generator: torch.Generator | None = None, configuration: str | None = None
) -> NLayerDiscriminator3D:
    """:class:`NLayerDiscriminator3D` from a params section with ``ndf`` (optional: ``n_layers``,
    ``norm``, ``init_gain``, ``in_ch``, ``configuration``; ``configuration`` as in
    :func:`generator_from_params`)."""
    return NLayerDiscriminator3D(
        in_ch=int(_get(p, "in_ch", 1)),
        ndf=int(_get(p, "ndf", 64)),
        n_layers=int(_get(p, "n_layers", 3)),
        norm=str(_get(p, "norm", "instance")),
        init_gain=_get(p, "init_gain", 0.02),
        generator=generator,
        configuration=configuration or str(_get(p, "configuration", "3d")),
    )
