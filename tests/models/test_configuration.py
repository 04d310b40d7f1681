"""The 3d / 2d configuration: 2-D nets are the 3-D modules with in-plane kernels only; 3-D nets keep
their structure and parameter counts; the params checks name the key."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from flarelib.config import Params
from flarelib.errors import FlareInputError
from flarelib.models.configuration import check_params, configuration_of, in_plane, kernel
from flarelib.models.cyclegan import (
    PAPER_DISCRIMINATOR_PARAMETERS,
    PAPER_GENERATOR_PARAMETERS,
    NLayerDiscriminator3D,
    ResnetGenerator3D,
    discriminator_from_params,
    generator_from_params,
)
from flarelib.models.unet import PAPER_WIDTH_PARAMETERS, UNet3D, count_parameters, unet_from_params

POOLS_2D = ((1, 2, 2),) * 3
CONV_TYPES = (nn.Conv3d, nn.ConvTranspose3d)


def _kernels(net: nn.Module) -> set[tuple[int, ...]]:
    return {tuple(m.kernel_size) for m in net.modules() if isinstance(m, CONV_TYPES)}


def _strides(net: nn.Module) -> set[tuple[int, ...]]:
    return {tuple(m.stride) for m in net.modules() if isinstance(m, CONV_TYPES)}


def _pads(net: nn.Module) -> set[tuple[int, ...]]:
    return {
        tuple(m.padding) for m in net.modules() if isinstance(m, nn.ReflectionPad3d | nn.ReplicationPad3d)
    }


def test_helpers():
    assert kernel("3d", 7) == (7, 7, 7) and kernel("2d", 7) == (1, 7, 7)
    assert in_plane("3d", 3) == (3, 3, 3) and in_plane("2d", 3) == (0, 3, 3)
    assert configuration_of(Params()) == "3d"
    with pytest.raises(FlareInputError, match=r"unet\.configuration.*'2.5d'.*Fix: use one of 3d, 2d"):
        kernel("2.5d", 3)


def test_3d_nets_unchanged_by_the_switch():
    assert count_parameters(UNet3D()) == PAPER_WIDTH_PARAMETERS
    assert count_parameters(ResnetGenerator3D(init_gain=None)) == PAPER_GENERATOR_PARAMETERS
    assert count_parameters(NLayerDiscriminator3D(init_gain=None)) == PAPER_DISCRIMINATOR_PARAMETERS
    assert _kernels(ResnetGenerator3D(ngf=2, n_blocks=1)) == {(7, 7, 7), (3, 3, 3)}
    assert _kernels(NLayerDiscriminator3D(ndf=2)) == {(4, 4, 4)}


def test_2d_unet_has_in_plane_kernels_only_and_the_closed_form_count():
    channels = (4, 8, 16, 16)
    net = UNet3D(channels=channels, pool_zyx=POOLS_2D, num_ds_heads=2, configuration="2d")
    assert all(k[0] == 1 for k in _kernels(net)) and all(s[0] == 1 for s in _strides(net))
    assert _kernels(net) == {(1, 3, 3), (1, 2, 2), (1, 1, 1)}
    # paper style, 1x3x3 convs (9 weights per channel pair), 1x2x2 down/up convs, non-affine IN
    n, prev = 0, 1
    for s, c in enumerate(channels):
        if s > 0:
            n += 4 * prev * c + c
            prev = c
        n += 9 * prev * c + c + 9 * c * c + c
        prev = c
    for s in range(len(channels) - 2, -1, -1):
        c = channels[s]
        n += 4 * channels[s + 1] * c + c + 9 * 2 * c * c + c + 9 * c * c + c
    n += sum(channels[k] * 14 + 14 for k in range(3))
    assert count_parameters(net) == n
    assert net.divisor == (1, 8, 8)
    net.eval()
    assert net(torch.randn(3, 1, 1, 16, 24)).shape == (3, 14, 1, 16, 24)


def test_2d_unet_is_a_per_slice_net():
    """Slices in the batch axis are predicted independently (nothing crosses them)."""
    torch.manual_seed(0)
    net = UNet3D(channels=(4, 8, 16), pool_zyx=POOLS_2D[:2], num_ds_heads=1, configuration="2d").eval()
    x = torch.randn(3, 1, 1, 16, 16)
    with torch.no_grad():
        whole = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(whole, single, rtol=1e-5, atol=1e-5)


def test_2d_unet_refusals_name_the_fix():
    with pytest.raises(FlareInputError, match=r"z-stride 1.*unet\.pool_zyx"):
        UNet3D(channels=(4, 8, 16), pool_zyx=((1, 2, 2), (2, 2, 2)), num_ds_heads=1, configuration="2d")
    with pytest.raises(FlareInputError, match="kernels of z-size 1"):
        UNet3D(
            channels=(4, 8), pool_zyx=((1, 2, 2),), num_ds_heads=0, kernel_sizes=(3, 3), configuration="2d"
        )
    net = UNet3D(channels=(4, 8), pool_zyx=((1, 2, 2),), num_ds_heads=0, configuration="2d")
    with pytest.raises(FlareInputError, match=r"one slice \(N, C, 1, Y, X\)"):
        net(torch.zeros(1, 1, 2, 8, 8))


def test_unet_from_params_reads_the_configuration():
    p = dataclasses.replace(Params().unet, channels=(4, 8, 16), pool_zyx=POOLS_2D[:2], configuration="2d")
    net = unet_from_params(p)
    assert net.configuration == "2d" and all(k[0] == 1 for k in _kernels(net))
    p3 = dataclasses.replace(p, configuration="3d")
    net3 = unet_from_params(p3)
    assert net3.configuration == "3d" and (3, 3, 3) in _kernels(net3)
    # the same modules, so the same state-dict keys: one checkpoint format
    assert list(net.state_dict()) == list(net3.state_dict())


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zero"])
def test_2d_cyclegan_nets(padding):
    g = ResnetGenerator3D(ngf=4, n_blocks=2, padding=padding, configuration="2d")
    d = NLayerDiscriminator3D(ndf=4, n_layers=2, configuration="2d")
    assert _kernels(g) == {(1, 7, 7), (1, 3, 3)}
    assert _strides(g) == {(1, 1, 1), (1, 2, 2)}
    assert _kernels(d) == {(1, 4, 4)} and _strides(d) == {(1, 2, 2), (1, 1, 1)}
    if padding != "zero":
        assert _pads(g) == {(3, 3, 3, 3, 0, 0), (1, 1, 1, 1, 0, 0)}  # F.pad order: x, y, z
    else:
        assert {tuple(m.padding) for m in g.modules() if isinstance(m, nn.Conv3d)} == {(0, 3, 3), (0, 1, 1)}
    x = torch.randn(2, 1, 1, 16, 24)
    assert g(x).shape == x.shape
    assert d(x).shape == (2, 1, 1, 2, 4)  # 16 -> 8 -> 4 -> 3 -> 2 in-plane, z stays one slice
    g3 = ResnetGenerator3D(ngf=4, n_blocks=2, padding=padding)
    assert list(g.state_dict()) == list(g3.state_dict())
    with pytest.raises(FlareInputError, match="Z = 1 and Y, X multiples of 4"):
        g(torch.randn(1, 1, 4, 16, 16))


def test_cyclegan_from_params_configuration():
    p = {"ngf": 2, "ndf": 2, "n_blocks": 1, "n_layers": 1}
    assert generator_from_params(p, configuration="2d").configuration == "2d"
    assert discriminator_from_params(p, configuration="2d").configuration == "2d"
    assert generator_from_params(p).configuration == "3d"
    assert discriminator_from_params({**p, "configuration": "2d"}).configuration == "2d"


def _params_2d(**sections) -> Params:
    p = Params()
    unet = dataclasses.replace(p.unet, pool_zyx=((1, 2, 2),) * 5, configuration="2d")
    p = dataclasses.replace(
        p,
        unet=unet,
        train=dataclasses.replace(p.train, patch_zyx=(1, 128, 128)),
        cyclegan=dataclasses.replace(p.cyclegan, patch_zyx=(1, 128, 128)),
        infer=dataclasses.replace(p.infer, window_zyx=(1, 128, 128)),
    )
    for name, changes in sections.items():
        p = dataclasses.replace(p, **{name: dataclasses.replace(getattr(p, name), **changes)})
    return p


def test_check_params_names_the_key():
    assert check_params(_params_2d()) == "2d"
    assert check_params(Params()) == "3d"  # 3-D patches and pools: nothing to say
    cases = {
        "unet": ({"pool_zyx": ((1, 2, 2), (2, 2, 2))}, r"unet\.pool_zyx: .*z-stride 1"),
        "train": (
            {"patch_zyx": (8, 128, 128)},
            r"train\.patch_zyx: .*z = 8.*Fix: set train\.patch_zyx to \[1, 128",
        ),
        "cyclegan": ({"patch_zyx": (4, 64, 64)}, r"cyclegan\.patch_zyx: .*one slice"),
        "infer": ({"window_zyx": (2, 64, 64)}, r"infer\.window_zyx: .*z = 2"),
    }
    for section, (changes, match) in cases.items():
        bad = _params_2d(**{section: changes})
        with pytest.raises(FlareInputError, match=match):
            check_params(bad)
        others = tuple(s for s in cases if s != section)
        assert check_params(bad, others) == "2d"  # only the sections asked for are checked
    assert math.prod(_params_2d().train.patch_zyx) == 128 * 128


def test_quick_2d_run_file_is_a_2d_run_with_every_profile():
    from flarelib.config import PROFILES, compose_params
    from flarelib.paths import project_root

    run_file = project_root() / "params" / "runs" / "quick_2d.yaml"
    for profile in PROFILES:
        p = compose_params(run_file, profile, "phantom")
        assert check_params(p) == "2d", profile
        assert p.unet.channels == (16, 32, 64, 128, 256, 256)
        assert p.train.patch_zyx == p.cyclegan.patch_zyx == p.infer.window_zyx == (1, 128, 128)
        assert (p.train.batch_labeled, p.train.batch_unlabeled) == (8, 8)
    p = compose_params(run_file, "quick", "phantom")
    assert p.preprocess.target_spacing_zyx[1:] == (3.0, 3.0)  # 128 x 128 x 3 mm: a whole axial slice
    net = unet_from_params(p.unet)
    assert net.configuration == "2d" and net.divisor == (1, 32, 32)
    g = generator_from_params(p.cyclegan, configuration=configuration_of(p))
    d = discriminator_from_params(p.cyclegan, configuration=configuration_of(p))
    assert _kernels(g) == {(1, 7, 7), (1, 3, 3)} and _kernels(d) == {(1, 4, 4)}
