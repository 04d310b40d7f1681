"""3D CycleGAN networks: parameter count vs the paper, shapes, init statistics, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flarelib.errors import FlareInputError
from flarelib.models.cyclegan import (
    PAPER_DISCRIMINATOR_PARAMETERS,
    PAPER_GENERATOR_PARAMETERS,
    NLayerDiscriminator3D,
    ResnetGenerator3D,
    discriminator_from_params,
    generator_from_params,
    init_weights,
)
from flarelib.models.unet import count_parameters


def test_paper_width_parameter_count_matches_table_2():
    g = count_parameters(ResnetGenerator3D(init_gain=None))
    d = count_parameters(NLayerDiscriminator3D(init_gain=None))
    assert (g, d) == (PAPER_GENERATOR_PARAMETERS, PAPER_DISCRIMINATOR_PARAMETERS)
    assert round((2 * g + 2 * d) / 1e6, 2) == 90.32


def test_reflection_pad_3d_available():
    assert hasattr(nn, "ReflectionPad3d")
    assert any(isinstance(m, nn.ReflectionPad3d) for m in ResnetGenerator3D(ngf=2, n_blocks=1).modules())


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zero"])
@pytest.mark.parametrize("shape", [(1, 1, 8, 16, 12), (2, 1, 12, 8, 16)])
def test_generator_preserves_shape(shape, padding):
    g = ResnetGenerator3D(ngf=4, n_blocks=2, padding=padding)
    y = g(torch.randn(shape))
    assert y.shape == shape
    assert y.abs().max() <= 1.0  # tanh


def test_generator_rejects_sizes_not_divisible_by_4():
    with pytest.raises(FlareInputError, match="multiples of 4"):
        ResnetGenerator3D(ngf=4, n_blocks=1)(torch.randn(1, 1, 8, 10, 12))


def test_discriminator_shapes():
    d = NLayerDiscriminator3D(ndf=4)
    assert d(torch.randn(2, 1, 24, 32, 48)).shape == (2, 1, 1, 2, 4)
    assert [m.out_channels for m in d.modules() if isinstance(m, nn.Conv3d)] == [4, 8, 16, 32, 1]
    assert [m.stride for m in d.modules() if isinstance(m, nn.Conv3d)] == [(2,) * 3] * 3 + [(1,) * 3] * 2
    assert all(m.kernel_size == (4, 4, 4) for m in d.modules() if isinstance(m, nn.Conv3d))


def test_gradients_reach_every_parameter():
    g, d = ResnetGenerator3D(ngf=4, n_blocks=1), NLayerDiscriminator3D(ndf=4)
    d(g(torch.randn(1, 1, 24, 24, 24))).mean().backward()
    for net in (g, d):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_init_statistics():
    g = ResnetGenerator3D(ngf=16, n_blocks=2, generator=torch.Generator().manual_seed(0))
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)])
    assert w.std().item() == pytest.approx(0.02, rel=0.03)
    assert abs(w.mean().item()) < 1e-3
    assert all(torch.all(m.bias == 0) for m in g.modules() if isinstance(m, nn.Conv3d) and m.bias is not None)
    # instance norm (paper) has no affine parameters; batch norm weights ~ N(1, 0.02)
    assert not any(p.numel() for m in g.modules() if isinstance(m, nn.InstanceNorm3d) for p in m.parameters())
    d = NLayerDiscriminator3D(ndf=64, norm="batch", generator=torch.Generator().manual_seed(0))
    nw = torch.cat([m.weight for m in d.modules() if isinstance(m, nn.BatchNorm3d)])
    assert nw.mean().item() == pytest.approx(1.0, abs=0.005) and nw.std().item() == pytest.approx(
        0.02, rel=0.15
    )
    # batch norm: convs before it carry no bias (pix2pix rule)
    assert sum(m.bias is None for m in d.modules() if isinstance(m, nn.Conv3d)) == 3
    # seeded init is reproducible; init_weights returns the net
    g2 = ResnetGenerator3D(ngf=16, n_blocks=2, init_gain=None)
    assert init_weights(g2, 0.02, torch.Generator().manual_seed(0)) is g2
    assert all(
        torch.equal(a, b) for a, b in zip(g.state_dict().values(), g2.state_dict().values(), strict=True)
    )


def test_from_params_duck_typed():
    p = {"ngf": 4, "ndf": 4, "n_blocks": 1, "init_gain": 0.02}
    assert generator_from_params(p)(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    assert count_parameters(discriminator_from_params(p)) == count_parameters(NLayerDiscriminator3D(ndf=4))
    with pytest.raises(FlareInputError, match="unknown norm"):
        ResnetGenerator3D(norm="group")
