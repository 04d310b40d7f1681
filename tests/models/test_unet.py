"""UNet3D (paper Fig. 3), both block styles: parameter counts, deep-supervision shapes, eval output,
gradients, init, params wiring."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from flarelib.config import UNetParams
from flarelib.errors import FlareInputError
from flarelib.models.unet import (
    NNUNET_WIDTH_PARAMETERS,
    PAPER_POOL_ZYX,
    PAPER_WIDTH_PARAMETERS,
    UNet3D,
    count_parameters,
    required_divisor,
    unet_from_params,
)

TINY = (4, 8, 16, 32, 32, 32)
STYLES = ("paper", "nnunet")


@pytest.fixture(scope="module")
def nets() -> dict[str, UNet3D]:
    return {
        s: UNet3D(channels=TINY, block_style=s, generator=torch.Generator().manual_seed(0)) for s in STYLES
    }


@pytest.fixture(params=STYLES)
def tiny(request, nets) -> UNet3D:
    return nets[request.param]


def _expected_count(channels, pools, style="paper", ncls=14, cin=1, heads=4) -> int:
    """Closed form, 3x3x3 convs and k = s (transposed) convs with bias.

    paper: separate k = s down conv + norm, up block with norm, non-affine IN (no norm parameters);
    nnunet: first 3x3x3 conv of a stage strided, bare transposed conv, affine IN (2 per channel).
    """
    paper = style == "paper"
    a = 0 if paper else 2
    n, prev = 0, cin
    for s, c in enumerate(channels):
        if paper and s > 0:
            n += math.prod(pools[s - 1]) * prev * c + c  # down block
            prev = c
        n += 27 * prev * c + c + a * c + 27 * c * c + c + a * c
        prev = c
    for s in range(len(channels) - 2, -1, -1):
        c = channels[s]
        n += math.prod(pools[s]) * channels[s + 1] * c + c
        n += 27 * 2 * c * c + c + a * c + 27 * c * c + c + a * c
    return n + sum(channels[k] * ncls + ncls for k in range(heads))


def test_paper_width_parameter_count():
    """Paper style: exactly the paper's 33.89 M (33,891,384), with non-affine instance norm."""
    with torch.device("meta"):  # count only: no memory, no init cost
        m = UNet3D()
    assert m.block_style == "paper"
    n = count_parameters(m)
    assert n == PAPER_WIDTH_PARAMETERS == 33_891_384 == _expected_count(m.channels, m.pool_zyx, "paper")
    assert round(n / 1e6, 2) == 33.89


def test_nnunet_width_parameter_count():
    """nnU-Net style (strided first conv): 30,782,968 (30.78 M), short of the paper's figure."""
    with torch.device("meta"):
        m = UNet3D(block_style="nnunet")
    n = count_parameters(m)
    assert n == NNUNET_WIDTH_PARAMETERS == 30_782_968 == _expected_count(m.channels, m.pool_zyx, "nnunet")
    assert round(n / 1e6, 2) == 30.78


@pytest.mark.parametrize("style", STYLES)
def test_deep_supervision_heads_are_counted(style):
    n_ds = count_parameters(UNet3D(channels=TINY, block_style=style))
    assert n_ds == _expected_count(TINY, PAPER_POOL_ZYX, style)
    assert count_parameters(UNet3D(channels=TINY, block_style=style, deep_supervision=False)) == n_ds - sum(
        c * 14 + 14 for c in TINY[1:4]
    )


def test_required_divisor():
    assert required_divisor(PAPER_POOL_ZYX) == (8, 32, 32)
    assert required_divisor([[1, 2, 2], [2, 2, 2], [2, 2, 2]]) == (4, 8, 8)
    assert required_divisor([]) == (1, 1, 1)


# All shapes on the default (paper) net; the strides logic is shared, so one shape for nnunet.
_SHAPES = [(1, 1, 16, 64, 64), (2, 1, 16, 32, 32), (2, 1, 8, 32, 64)]


@pytest.mark.parametrize(("style", "shape"), [*(("paper", sh) for sh in _SHAPES), ("nnunet", _SHAPES[2])])
def test_deep_supervision_shapes(nets, style, shape):
    tiny = nets[style]
    tiny.train()
    out = tiny(torch.randn(shape))
    assert isinstance(out, list) and len(out) == 4
    n, _, z, y, x = shape
    strides = [(1, 1, 1), (1, 2, 2), (2, 4, 4), (4, 8, 8)]
    assert tiny.output_strides == strides
    for o, (sz, sy, sx) in zip(out, strides, strict=True):
        assert o.shape == (n, 14, z // sz, y // sy, x // sx)


def test_eval_returns_single_tensor(tiny: UNet3D):
    tiny.eval()
    with torch.no_grad():
        out = tiny(torch.randn(2, 1, 16, 32, 32))
    tiny.train()
    assert isinstance(out, torch.Tensor) and out.shape == (2, 14, 16, 32, 32)


def test_no_deep_supervision_returns_tensor_in_train_mode():
    m = UNet3D(channels=TINY, deep_supervision=False).train()
    assert len(m.heads) == 1
    out = m(torch.randn(1, 1, 8, 32, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 14, 8, 32, 64)


def test_gradient_reaches_every_parameter(tiny: UNet3D):
    tiny.train()
    tiny.zero_grad(set_to_none=True)
    out = tiny(torch.randn(1, 1, 16, 32, 32))
    sum(o.float().pow(2).mean() for o in out).backward()
    missing = [name for name, p in tiny.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in tiny.parameters())
    tiny.zero_grad(set_to_none=True)


def test_bad_inputs_give_clear_errors(tiny: UNet3D):
    with pytest.raises(FlareInputError, match="multiple of"):
        tiny(torch.randn(1, 1, 12, 64, 64))
    with pytest.raises(FlareInputError, match="expected shape"):
        tiny(torch.randn(1, 2, 16, 64, 64))
    # (8, 32, 32) is exactly the divisor: a 1x1x1 bottleneck that instance norm cannot normalise.
    with pytest.raises(FlareInputError, match="1x1x1 bottleneck"):
        tiny(torch.randn(2, 1, 8, 32, 32))
    with pytest.raises(FlareInputError, match="pool_zyx"):
        UNet3D(channels=(4, 8, 16), pool_zyx=((2, 2, 2),))
    with pytest.raises(FlareInputError, match="num_ds_heads"):
        UNet3D(channels=(4, 8, 16), pool_zyx=((2, 2, 2), (2, 2, 2)), num_ds_heads=3)
    with pytest.raises(FlareInputError, match="block_style"):
        UNet3D(channels=(4, 8, 16), pool_zyx=((2, 2, 2), (2, 2, 2)), num_ds_heads=1, block_style="resnet")


@pytest.mark.parametrize("style", STYLES)
def test_he_init_and_seeded_reproducibility(style):
    m = UNet3D(channels=TINY, block_style=style, generator=torch.Generator().manual_seed(1))
    conv = m.encoder[3][1][0]  # 32 -> 32, 3x3x3 (both styles)
    assert isinstance(conv, nn.Conv3d)
    fan_in = 32 * 27
    std = math.sqrt(2.0 / (1 + 0.01**2) / fan_in)
    assert conv.weight.std().item() == pytest.approx(std, rel=0.05)
    assert abs(conv.weight.mean().item()) < 0.1 * std
    assert all(torch.all(c.bias == 0) for c in m.modules() if isinstance(c, nn.Conv3d))
    assert all(
        torch.all(c.bias == 0)
        for c in m.modules()
        if isinstance(c, nn.ConvTranspose3d) and c.bias is not None
    )
    norms = [c for c in m.modules() if isinstance(c, nn.InstanceNorm3d)]
    assert norms and all(c.eps == 1e-5 and c.affine == (style == "nnunet") for c in norms)
    m2 = UNet3D(channels=TINY, block_style=style, generator=torch.Generator().manual_seed(1))
    assert all(
        torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True)
    )


def test_unet_from_params_duck_typed():
    @dataclasses.dataclass(frozen=True)
    class P:
        in_channels: int = 1
        num_classes: int = 5
        channels: tuple = (4, 8, 16, 16)
        pool_zyx: tuple = ((1, 2, 2), (2, 2, 2), (2, 2, 2))
        deep_supervision: bool = True

    m = unet_from_params(P())
    assert m.num_ds_heads == 2  # capped: 4 stages give 3 decoder resolutions
    out = m.train()(torch.randn(1, 1, 8, 16, 16))
    assert [tuple(o.shape) for o in out] == [(1, 5, 8, 16, 16), (1, 5, 8, 8, 8), (1, 5, 4, 4, 4)]
    m = unet_from_params({**dataclasses.asdict(P()), "pool_zyx": [[1, 2, 2], [2, 2, 2], [2, 2, 2]]})
    assert m.pool_zyx == ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    with pytest.raises(FlareInputError, match="missing"):
        unet_from_params({"channels": (4, 8)})


def test_block_structure():
    paper = UNet3D(channels=TINY)
    down = paper.encoder[1][0][0]  # separate down block: k = s = pool, no padding, 4 -> 8
    assert (down.in_channels, down.out_channels) == (4, 8)
    assert down.kernel_size == down.stride == (1, 2, 2) and down.padding == (0, 0, 0)
    assert len(paper.encoder[0]) == 2 and all(len(e) == 3 for e in paper.encoder[1:])
    assert all(isinstance(e[1][0], nn.Conv3d) and e[1][0].kernel_size == (3, 3, 3) for e in paper.encoder[1:])
    up = paper.upsample[0]
    assert isinstance(up[0], nn.ConvTranspose3d) and isinstance(up[1], nn.InstanceNorm3d)
    assert isinstance(up[2], nn.LeakyReLU)
    nnunet = UNet3D(channels=TINY, block_style="nnunet")
    first = nnunet.encoder[1][0][0]  # strided 3x3x3 conv
    assert first.kernel_size == (3, 3, 3) and first.stride == (1, 2, 2)
    assert all(len(e) == 2 for e in nnunet.encoder)
    assert isinstance(nnunet.upsample[0], nn.ConvTranspose3d)


def test_unet_from_params_block_style():
    p = dataclasses.replace(UNetParams(), channels=TINY)
    assert unet_from_params(p).block_style == "paper"
    m = unet_from_params(dataclasses.replace(p, block_style="nnunet"))
    assert m.block_style == "nnunet"
    assert count_parameters(m) == _expected_count(TINY, PAPER_POOL_ZYX, "nnunet")
    assert unet_from_params({**dataclasses.asdict(p), "block_style": "paper"}).block_style == "paper"
