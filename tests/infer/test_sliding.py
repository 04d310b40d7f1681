"""Sliding-window predictor: step rule, window count, Gaussian map, mirroring, MONAI agreement,
exported runtimes. Tiny nets and volumes only."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from flarelib.config import InferParams
from flarelib.errors import FlareInputError
from flarelib.infer.sliding import (
    OnnxRuntimeBackend,
    OpenVinoBackend,
    SlidingWindowPredictor,
    export_onnx,
    gaussian_importance_map,
    mirror_combinations,
    plan_windows,
    resolve_runtime,
    runtime_available,
    window_slices,
    window_steps,
)
from flarelib.labels import LR_PAIRS
from flarelib.models.unet import UNet3D

TINY = {"channels": (4, 8, 16, 16), "pool_zyx": ((1, 2, 2), (2, 2, 2), (2, 2, 2)), "num_ds_heads": 2}


def tiny_unet(num_classes: int = 3, seed: int = 0) -> UNet3D:
    return UNet3D(num_classes=num_classes, generator=torch.Generator().manual_seed(seed), **TINY).eval()


class PositionalNet(nn.Module):
    """Not flip-equivariant: an asymmetric conv plus a ramp that depends on the voxel position."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.conv = nn.Conv3d(1, num_classes, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            self.conv.bias.copy_(torch.randn(num_classes, generator=gen))
        self.calls = 0
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        z, y, xx = (torch.linspace(0, 1, n) for n in x.shape[2:])
        ramp = z[:, None, None] + 2 * y[None, :, None] + 3 * xx[None, None, :] ** 2
        return self.conv(x) + ramp * torch.arange(1, self.conv.out_channels + 1).view(1, -1, 1, 1, 1)


# --------------------------------------------------------------------------------------------------
# Gaussian
# --------------------------------------------------------------------------------------------------


def test_gaussian_max_one_symmetric_and_sigma():
    window = (8, 24, 40)  # sigma = window / 8 = (1, 3, 5)
    g = gaussian_importance_map(window, 0.125).numpy().astype(np.float64)
    assert g.shape == window and g.dtype == np.float64
    assert g.max() == pytest.approx(1.0, abs=1e-7)
    for axis in range(3):
        np.testing.assert_allclose(g, np.flip(g, axis), rtol=1e-6)  # centred at (n - 1) / 2
    # 1-D profile through the centre: exp(-d^2 / (2 sigma^2)), d = distance to (n - 1) / 2
    for axis, n in enumerate(window):
        sigma = n / 8
        index = [w // 2 for w in window]
        index[axis] = slice(None)
        profile = g[tuple(index)]
        d = np.arange(n) - (n - 1) / 2
        expected = np.exp(-(d**2) / (2 * sigma**2))
        np.testing.assert_allclose(profile / profile.max(), expected / expected.max(), rtol=1e-5)


def test_gaussian_zeros_replaced_and_cached():
    g = gaussian_importance_map((4, 64, 64), 0.01).numpy()  # corners underflow to 0 in float32
    assert (g > 0).all()
    assert np.count_nonzero(g == g.min()) > 1  # the underflowed voxels hold the smallest non-zero value
    assert gaussian_importance_map((8, 16, 16), 0.125) is gaussian_importance_map((8, 16, 16), 0.125)


# --------------------------------------------------------------------------------------------------
# Windows and the step rule
# --------------------------------------------------------------------------------------------------


def test_window_steps_nnunet_placement():
    steps = window_steps((80, 256, 256), (48, 160, 224))  # 3 * 3 * 2 = 18 <= 20: step 0.5
    assert steps == [[0, 16, 32], [0, 48, 96], [0, 32]]
    for s, size, w in zip(steps, (80, 256, 256), (48, 160, 224), strict=True):
        assert s[0] == 0 and s[-1] == size - w
        assert all(b - a <= w * 0.5 + 1 for a, b in itertools.pairwise(s))


def test_step_rule_switches_to_zyx_fractions():
    shape, window = (100, 300, 300), (48, 160, 224)
    steps, fractions = plan_windows(shape, window, 0.5, 20, (1.0, 1.0, 0.5))
    assert math.prod(len(s) for s in window_steps(shape, window, 0.5, 0)) == 24  # rule off: 4*3*2
    assert fractions == (1.0, 1.0, 0.5)
    assert steps == [[0, 26, 52], [0, 140], [0, 76]]
    assert math.prod(len(s) for s in steps) == 12
    # the other reading of the tuple, (0.5, 1, 1) in (z, y, x), gives other windows
    other, _ = plan_windows(shape, window, 0.5, 20, (0.5, 1.0, 1.0))
    assert other == [[0, 17, 35, 52], [0, 140], [0, 76]]
    # exactly max_windows windows: the rule does not apply
    steps20, fr20 = plan_windows(shape, window, 0.5, 24, (1.0, 1.0, 0.5))
    assert fr20 == (0.5, 0.5, 0.5) and math.prod(len(s) for s in steps20) == 24


def test_window_count_and_small_volume():
    assert window_steps((10, 20, 30), (16, 48, 48)) == [[0], [0], [0]]  # padded: one window
    boxes = window_slices(window_steps((32, 80, 80), (16, 48, 48), 0.5, 0), (16, 48, 48))
    assert len(boxes) == 3 * 3 * 3
    with pytest.raises(FlareInputError):
        window_steps((32, 80, 80), (16, 48, 48), step=0.0)


def test_mirror_combinations():
    assert mirror_combinations(()) == [()]
    assert mirror_combinations((0, 2)) == [(), (0,), (2,), (0, 2)]
    assert len(mirror_combinations((0, 1, 2))) == 8
    with pytest.raises(FlareInputError):
        mirror_combinations((0, 3))


# --------------------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------------------


def reference_loop(net, image, window, step, mirror_axes, sigma_scale=0.125):
    """Plain per-window loop: flip, predict, flip back, average, Gaussian-weight, accumulate."""
    x = torch.from_numpy(image)
    steps = window_steps(image.shape, window, step, 0)
    g = gaussian_importance_map(window, sigma_scale)
    acc = torch.zeros((3, *image.shape))
    wsum = torch.zeros(image.shape)
    subsets = [c for k in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, k)]
    with torch.no_grad():
        for z, y, xx in itertools.product(*steps):
            box = (slice(z, z + window[0]), slice(y, y + window[1]), slice(xx, xx + window[2]))
            win = x[box][None, None]
            outs = []
            for axes in subsets:
                dims = [a + 2 for a in axes]
                out = net(torch.flip(win, dims) if dims else win)
                outs.append(torch.flip(out, dims) if dims else out)
            mean = torch.stack(outs).mean(0)[0]
            acc[(slice(None), *box)] += mean * g
            wsum[box] += g
    return (acc / wsum).numpy()


@pytest.mark.parametrize("mirror_axes", [(), (0, 2), (0, 1, 2)])
def test_mirroring_forward_count_and_flip_undone(mirror_axes):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(12, 20, 28)).astype(np.float32)
    window = (8, 12, 16)
    net = PositionalNet()
    pred = SlidingWindowPredictor(
        net, 3, window, step=0.5, max_windows=0, mirror_axes=mirror_axes, windows_per_batch=3
    )
    out = pred.predict_logits(image)
    n_windows = math.prod(len(s) for s in window_steps(image.shape, window, 0.5, 0))
    assert pred.last_num_windows == n_windows
    n_batches = math.ceil(n_windows / 3)
    assert net.calls == pred.last_forward_passes == n_batches * 2 ** len(mirror_axes)
    assert max(net.batch_sizes) == 3
    ref = reference_loop(PositionalNet(), image, window, 0.5, mirror_axes)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_mirroring_matters_for_non_equivariant_net():
    image = np.random.default_rng(1).normal(size=(8, 12, 16)).astype(np.float32)
    plain = SlidingWindowPredictor(PositionalNet(), 3, (8, 12, 16), mirror_axes=()).predict_logits(image)
    tta = SlidingWindowPredictor(PositionalNet(), 3, (8, 12, 16), mirror_axes=(0, 2)).predict_logits(image)
    assert np.abs(plain - tta).max() > 1e-2


class SideNet(torch.nn.Module):
    """Names its output by image side, as a net trained with label-swapping L/R flips does: class 2
    where intensity rises along x (axis 2), class 13 where it falls (14 channels, the rest 0)."""

    def forward(self, x):
        d = torch.zeros_like(x)
        d[..., 1:-1] = x[..., 2:] - x[..., :-2]
        out = torch.zeros(x.shape[0], 14, *x.shape[2:])
        out[:, 2], out[:, 13] = d[:, 0], -d[:, 0]
        return out


@pytest.mark.parametrize("mirror_axes", [(2,), (0, 2), (0, 1, 2)])
def test_lr_mirroring_swaps_the_paired_channels(mirror_axes):
    x = np.arange(16, dtype=np.float32)
    image = np.broadcast_to(x, (8, 12, 16)).copy()  # intensity rises along x everywhere
    plain = SlidingWindowPredictor(SideNet(), 14, (8, 12, 16), mirror_axes=()).predict_logits(image)
    inner = (slice(None), slice(None), slice(1, -1))
    assert (plain.argmax(0)[inner] == 2).all()
    swapped = SlidingWindowPredictor(
        SideNet(), 14, (8, 12, 16), mirror_axes=mirror_axes, lr_pairs=LR_PAIRS
    ).predict_logits(image)
    np.testing.assert_allclose(swapped, plain, atol=1e-6)
    # Without the swap the flipped passes vote for the other side: channels 2 and 13 tie.
    unswapped = SlidingWindowPredictor(SideNet(), 14, (8, 12, 16), mirror_axes=mirror_axes).predict_logits(
        image
    )
    np.testing.assert_allclose(unswapped[2][inner], unswapped[13][inner], atol=1e-6)


def test_from_params_swaps_only_for_swap_trained_nets():
    infer = InferParams(window_zyx=(8, 12, 16))
    assert SlidingWindowPredictor.from_params(SideNet(), infer, 14).lr_permutation is None
    perm = SlidingWindowPredictor.from_params(SideNet(), infer, 14, swap_lr_labels=True).lr_permutation
    assert perm is not None and perm[2] == 13 and perm[13] == 2 and perm[7] == 8 and perm[1] == 1
    with pytest.raises(FlareInputError, match="lr_pairs"):
        SlidingWindowPredictor(SideNet(), 3, (8, 12, 16), lr_pairs=LR_PAIRS)


def test_small_volume_padded_and_cropped():
    image = np.random.default_rng(2).normal(size=(5, 9, 30)).astype(np.float32)
    window = (8, 12, 16)
    pred = SlidingWindowPredictor(PositionalNet(), 3, window, mirror_axes=(), max_windows=0)
    out = pred.predict_logits(image)
    assert out.shape == (3, 5, 9, 30)
    padded = np.zeros((8, 12, 30), np.float32)
    padded[1:6, 1:10] = image  # symmetric: before = missing // 2
    ref = reference_loop(PositionalNet(), padded, window, 0.5, ())
    np.testing.assert_allclose(out, ref[:, 1:6, 1:10], atol=1e-5)
    labels = pred.predict_labels(image)
    assert labels.dtype == np.uint8 and labels.shape == (5, 9, 30)
    np.testing.assert_array_equal(labels, out.argmax(0))


def test_probabilities_and_cpu_precision():
    image = np.random.default_rng(3).normal(size=(16, 48, 48)).astype(np.float32)
    pred = SlidingWindowPredictor(tiny_unet(), 3, (16, 48, 48), mirror_axes=(), half_precision=True)
    assert pred.half_precision is False  # CPU: always fp32
    probs = pred.predict_logits(image, probabilities=True)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_window_must_fit_the_network():
    with pytest.raises(FlareInputError, match="divisor"):
        SlidingWindowPredictor(tiny_unet(), 3, (10, 48, 48))


# --------------------------------------------------------------------------------------------------
# One-slice windows (the 2d configuration)
# --------------------------------------------------------------------------------------------------

TINY_2D = {
    "channels": (4, 8, 16),
    "pool_zyx": ((1, 2, 2), (1, 2, 2)),
    "num_ds_heads": 1,
    "configuration": "2d",
}


class SliceIndexEcho(nn.Module):
    """Returns its input as every channel's logits: on a volume whose slice z holds the value z, the
    predictor's logits are the slice index wherever a window covered it (0/0 = NaN where none did)."""

    configuration = "2d"

    def __init__(self):
        super().__init__()
        self.windows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[2] == 1
        self.windows.append(int(x[0, 0, 0, 0, 0]))
        return x.repeat(1, 2, 1, 1, 1)


@pytest.mark.parametrize("placement", ["even", "monai"])
@pytest.mark.parametrize("rule", [(1.0, 1.0, 0.5), (0.5, 0.5, 0.5)])
def test_one_slice_windows_step_one_slice_and_stay_outside_the_rule(placement, rule):
    shape = (7, 40, 40)
    steps, fractions = plan_windows(shape, (1, 32, 32), 0.5, 20, rule, placement)
    assert steps[0] == list(range(7))  # every slice once, with fraction 0.5 too
    assert fractions[0] == 1.0
    # 7 slices x 2 x 2 in-plane windows = 28 > 20, but the rule counts one slice's 4: not applied
    assert fractions[1:] == (0.5, 0.5) and len(steps[1]) == len(steps[2]) == 2
    # more than 20 windows in one slice: the rule applies in-plane, z still steps one slice
    steps, fractions = plan_windows((7, 200, 200), (1, 32, 32), 0.5, 20, rule, placement)
    assert steps[0] == list(range(7)) and fractions == (1.0, *rule[1:])


def test_2d_predictor_covers_every_slice_once():
    shape = (9, 20, 24)
    image = np.broadcast_to(np.arange(9, dtype=np.float32)[:, None, None], shape).copy()
    net = SliceIndexEcho()
    swp = SlidingWindowPredictor(net, 2, (1, 16, 16), mirror_axes=(), max_windows=20)
    logits = swp.predict_logits(image)
    np.testing.assert_allclose(logits[0], image, rtol=0, atol=1e-5)
    assert swp.last_step_fractions == (1.0, 0.5, 0.5)
    assert sorted(set(net.windows)) == list(range(9))
    assert swp.last_num_windows == 9 * 2 * 2  # 2 x 2 in-plane windows per slice


def test_2d_unet_predictor_equals_the_net_slice_by_slice():
    net = UNet3D(num_classes=3, generator=torch.Generator().manual_seed(0), **TINY_2D).eval()
    image = np.random.default_rng(3).normal(size=(5, 16, 24)).astype(np.float32)
    swp = SlidingWindowPredictor(net, 3, (1, 16, 24), mirror_axes=(), windows_per_batch=2)
    logits = swp.predict_logits(image)
    with torch.no_grad():
        ref = torch.cat([net(torch.from_numpy(image[z : z + 1])[None, None]) for z in range(5)], dim=2)[0]
    np.testing.assert_allclose(logits, ref.numpy(), rtol=1e-5, atol=1e-5)
    assert swp.last_num_windows == 5 and swp.last_forward_passes == 3  # 2 + 2 + 1 slices per pass


def test_2d_net_refuses_a_multi_slice_window():
    net = UNet3D(num_classes=3, **TINY_2D)
    with pytest.raises(
        FlareInputError, match=r"infer\.window_zyx: .*2d.*Fix: set infer\.window_zyx to \[1, 16, 16\]"
    ):
        SlidingWindowPredictor(net, 3, (4, 16, 16))


def test_2d_unet_exports_like_the_3d_one(tmp_path):
    if not runtime_available("onnxruntime"):
        pytest.skip("onnxruntime is not installed (pip install 'flarelib[cpu-runtime]')")
    pytest.importorskip("onnx", reason="torch's ONNX exporter needs the 'onnx' package")
    net = UNet3D(num_classes=3, generator=torch.Generator().manual_seed(0), **TINY_2D).eval()
    path = export_onnx(net, (1, 16, 16), tmp_path / "tiny2d.onnx")
    image = np.random.default_rng(5).normal(size=(4, 24, 16)).astype(np.float32)
    kw = {"mirror_axes": (2,), "windows_per_batch": 3}
    ref = SlidingWindowPredictor(net, 3, (1, 16, 16), **kw).predict_logits(image)
    out = SlidingWindowPredictor(OnnxRuntimeBackend(path), 3, (1, 16, 16), **kw).predict_logits(image)
    assert np.abs(out - ref).max() < 1e-4


def _monai_reference(monai_utils, net, image, window, batch):
    """MONAI's ``sliding_window_inference`` (overlap 0.5, given our Gaussian map) on a (z, y, x) array."""
    with torch.no_grad():
        return monai_utils.sliding_window_inference(
            torch.from_numpy(image)[None, None],
            window,
            batch,
            net,
            overlap=0.5,
            mode="gaussian",
            sigma_scale=0.125,
            roi_weight_map=gaussian_importance_map(window, 0.125),
        )[0].numpy()


def test_agrees_with_monai_sliding_window_inference():
    monai_utils = pytest.importorskip("monai.inferers.utils", reason="MONAI not installed")
    net = tiny_unet(num_classes=4)
    window = (8, 16, 16)
    # sizes = window + k * window / 2: MONAI's and nnU-Net's window starts coincide
    image = np.random.default_rng(4).normal(size=(16, 40, 32)).astype(np.float32)
    ours = SlidingWindowPredictor(
        net, 4, window, step=0.5, max_windows=0, mirror_axes=(), windows_per_batch=2
    )
    out = ours.predict_logits(image)
    ref = _monai_reference(monai_utils, net, image, window, batch=2)
    assert np.abs(out - ref).max() < 1e-4


def test_monai_placement_is_monais_window_starts():
    monai_utils = pytest.importorskip("monai.inferers.utils", reason="MONAI not installed")
    from monai.data.utils import dense_patch_slices

    for size, window in itertools.product((8, 9, 16, 17, 23, 40, 41, 97), (8, 15, 16)):
        image_size = (size, max(size, window), 1)
        roi = (window, window, 1)
        interval = monai_utils._get_scan_interval(image_size, roi, 3, (0.5, 0.5, 0.5))
        ref = sorted({s[0].start for s in dense_patch_slices(image_size, roi, interval)})
        ours, _ = plan_windows((size, 1, 1), (window, 1, 1), 0.5, 0, placement="monai")
        assert ours[0] == (ref if size > window else [0]), (size, window)
    with pytest.raises(FlareInputError, match="placement"):
        plan_windows((20, 20, 20), (8, 8, 8), placement="middle")


def test_monai_placement_reproduces_monai_on_any_volume():
    """Sizes where nnU-Net's and MONAI's window starts differ: with ``placement="monai"`` the whole
    volume agrees with ``sliding_window_inference``, with the default placement it does not."""
    monai_utils = pytest.importorskip("monai.inferers.utils", reason="MONAI not installed")
    net = tiny_unet(num_classes=4)
    window = (8, 16, 16)
    image = np.random.default_rng(5).normal(size=(19, 45, 37)).astype(np.float32)
    ref = _monai_reference(monai_utils, net, image, window, batch=1)
    kw = {"step": 0.5, "max_windows": 0, "mirror_axes": ()}
    monai_like = SlidingWindowPredictor(net, 4, window, placement="monai", **kw).predict_logits(image)
    even = SlidingWindowPredictor(net, 4, window, **kw).predict_logits(image)
    assert np.abs(monai_like - ref).max() < 1e-4
    assert np.abs(even - ref).max() > 1e-3


# --------------------------------------------------------------------------------------------------
# Exported runtimes
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    if not (runtime_available("onnxruntime") or runtime_available("openvino")):
        pytest.skip("neither onnxruntime nor openvino is installed (pip install 'flarelib[cpu-runtime]')")
    pytest.importorskip(
        "onnx", reason="torch's ONNX exporter needs the 'onnx' package (flarelib[cpu-runtime])"
    )
    net = tiny_unet()
    path = export_onnx(net, (16, 48, 48), tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return net, path


@pytest.mark.parametrize(
    "backend, package, tol",
    [(OnnxRuntimeBackend, "onnxruntime", 1e-4), (OpenVinoBackend, "openvino", 1e-3)],
)
def test_exported_runtime_agrees_with_torch(onnx_model, backend, package, tol):
    if not runtime_available(package):
        pytest.skip(f"{package} is not installed (pip install 'flarelib[cpu-runtime]')")
    net, path = onnx_model
    image = np.random.default_rng(5).normal(size=(16, 72, 48)).astype(np.float32)
    kw = {"step": 0.5, "max_windows": 0, "mirror_axes": (2,), "windows_per_batch": 2}
    ref = SlidingWindowPredictor(net, 3, (16, 48, 48), **kw).predict_logits(image)
    out = SlidingWindowPredictor(backend(path), 3, (16, 48, 48), **kw).predict_logits(image)
    assert np.abs(out - ref).max() < tol


@pytest.mark.parametrize(
    "installed, device, expected",
    [
        ({"onnx", "openvino", "onnxruntime"}, "cpu", "openvino"),
        ({"onnx", "onnxruntime"}, "cpu", "onnxruntime"),
        ({"openvino", "onnxruntime"}, "cpu", "torch"),  # no exporter package: no export possible
        (set(), "cpu", "torch"),
        ({"onnx", "openvino", "onnxruntime"}, "cuda", "torch"),
    ],
)
def test_auto_runtime_picks_the_fastest_installed(monkeypatch, installed, device, expected):
    import importlib.util

    import flarelib.infer.runtimes as runtimes

    real = importlib.util.find_spec
    monkeypatch.setattr(
        runtimes.importlib.util,
        "find_spec",
        lambda name, *a: (
            (real("json") if name in installed else None)
            if name in ("onnx", "openvino", "onnxruntime")
            else real(name, *a)
        ),
    )
    assert resolve_runtime("auto", device) == expected
    assert resolve_runtime("onnxruntime", device) == "onnxruntime"  # explicit kinds pass through


def test_cuda_half_precision_agrees_with_cpu_fp32():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the fp16 autocast path runs only on a GPU")
    image = np.random.default_rng(6).normal(size=(16, 72, 48)).astype(np.float32)
    net = tiny_unet()
    kw = {"step": 0.5, "max_windows": 20, "mirror_axes": (0, 2), "windows_per_batch": 2}
    ref = SlidingWindowPredictor(net, 3, (16, 48, 48), **kw).predict_logits(image)
    gpu = SlidingWindowPredictor(tiny_unet(), 3, (16, 48, 48), device="cuda", half_precision=True, **kw)
    assert gpu.half_precision is True
    out = gpu.predict_logits(image)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 5e-2  # fp16 forward, fp32 accumulation
    assert (out.argmax(0) == ref.argmax(0)).mean() > 0.99


def test_openvino_bf16_is_asked_for_and_stays_close_to_fp32(onnx_model):
    if not runtime_available("openvino"):
        pytest.skip("openvino is not installed (pip install 'flarelib[cpu-runtime]')")
    _net, path = onnx_model
    # In a process of its own: with these backends alive in the suite's process, the whole suite
    # segfaulted at exit now and then (cause not found; scripts doing the same exit cleanly).
    code = f"""
import json, numpy as np, torch
from flarelib.infer.runtimes import OpenVinoBackend
fp32 = OpenVinoBackend({str(path)!r}, precision="fp32")
bf16 = OpenVinoBackend({str(path)!r}, precision="bf16")
x = torch.from_numpy(np.random.default_rng(6).normal(size=(2, 1, 16, 48, 48)).astype(np.float32))
a, b = fp32(x).numpy(), bf16(x).numpy()
print(json.dumps({{
    "precisions": [fp32.precision, bf16.precision],
    "hints": [str(m.compiled.get_property("INFERENCE_PRECISION_HINT")) for m in (fp32, bf16)],
    "dtype": str(b.dtype), "diff": float(np.abs(a - b).mean()), "scale": float(np.abs(a).mean()),
    "agree": float((a.argmax(1) == b.argmax(1)).mean())}}))
"""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["precisions"] == ["fp32", "bf16"] and r["dtype"] == "float32"
    assert "float32" in r["hints"][0] and "bfloat16" in r["hints"][1]
    # measured on this random tiny net: mean |diff| 3% of mean |logit|, 98.5% of argmaxes alike
    assert 0 < r["diff"] < 0.06 * r["scale"]  # bf16 differs from fp32, a little
    assert r["agree"] > 0.95


@pytest.mark.parametrize("package", ["onnxruntime", "openvino"])
def test_temporary_onnx_export_is_removed_with_its_runtime_and_at_exit(tmp_path, package):
    import importlib.util

    if not runtime_available(package) or importlib.util.find_spec("onnx") is None:
        pytest.skip(f"{package} or onnx is not installed (pip install 'flarelib[cpu-runtime]')")
    # In a process of its own (see the bf16 test); TMPDIR points its temporary folders at tmp_path.
    code = f"""
import gc, os, torch
from flarelib.infer.runtimes import make_runtime
from flarelib.models.unet import UNet3D
net = UNet3D(num_classes=3, **{TINY!r}).eval()
def exports():
    return sorted(p.name for p in os.scandir({str(tmp_path)!r}) if p.name.startswith("flarelib-onnx-"))
first = make_runtime({package!r}, net, (8, 16, 16))
out = first(torch.zeros(1, 1, 8, 16, 16))
print("alive", len(exports()), tuple(out.shape))
del first
gc.collect()
print("collected", len(exports()))
kept = make_runtime({package!r}, net, (8, 16, 16))
print("kept", len(exports()))
"""
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[:3] == ["alive 1 (1, 3, 8, 16, 16)", "collected 0", "kept 1"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("flarelib-onnx-")]  # gone at exit
