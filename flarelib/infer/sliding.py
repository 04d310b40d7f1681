"""Sliding-window inference with Gaussian importance weighting and mirroring TTA (STUDY.md
"Inference and post-processing").

Axis order everywhere is (z, y, x): window sizes, step fractions, mirror axes and array shapes.

**Windows.** Window starts are computed per axis as nnU-Net does: ``n = ceil((size - window) /
(step * window)) + 1`` windows, spread evenly with the first at 0 and the last at ``size - window``
(starts rounded to integers). The paper's rule: step 0.5 of the window on every axis; when that
gives more than ``max_windows`` (20) windows, the step fractions become ``rule_fractions``
(default ``(1, 1, 0.5)``) **in (z, y, x) order**, as the authors' code applies them. The paper
prints the tuple next to a window written in (x, y, z) order, which would read as ``(0.5, 1, 1)``
in (z, y, x); the code is the reference here (STUDY.md), and ``rule_fractions`` makes the other
reading one params change away.

**One-slice windows (the 2d configuration).** An axis whose window is 1 voxel (z of a 2-D net's
``(1, Y, X)`` window) steps by exactly one voxel, whatever ``step`` and ``rule_fractions`` say, so
every slice is predicted once (a fraction 0.5 would predict each slice twice: the starts are
rounded) and none is skipped. Such an axis is also left out of the ``max_windows`` count: the rule
then counts the windows of one slice, the count it was written for (counted over every slice of a
volume it would always fire for a 2-D net). Its reported step fraction is 1.

**Padding.** A volume smaller than the window on some axis is padded to the window size on that
axis, symmetrically (``before = missing // 2``), with ``pad_value`` (default 0.0). The predictor
runs on z-scored volumes, where 0 is the volume's mean intensity: nnU-Net and MONAI pad with 0 as
well, so the three agree. The padding is cropped off the result.

**Gaussian.** :func:`gaussian_importance_map` is a separable Gaussian centred on the window's
geometric centre ``(n - 1) / 2`` (so it is exactly symmetric for even sizes too), sigma =
``sigma_scale * window`` per axis, normalised to max 1, with any zero (float underflow) replaced by
the smallest non-zero value, nnU-Net style. nnU-Net v2 instead filters a delta at ``n // 2`` (half a
voxel off-centre for even sizes, kernel truncated at 4 sigma); MONAI clamps the map to >= 1e-3. Both
differ from this map by less than 1e-3 relative in the window's core; the MONAI agreement test and
benchmark hand this very map to MONAI (``roi_weight_map``) so only the algorithms are compared.

**Mirroring TTA.** For mirror axes ``A`` (array axes, (z, y, x) order), every one of the ``2^len(A)``
subsets of ``A`` is applied: flip the window, predict, flip the logits back; the logits are averaged
(nnU-Net v2). The paper mirrors axes (0, 2) only (4 passes per window); the authors' code all three
(8 passes). A network trained with left/right flips that swap the paired labels
(``train.swap_lr_labels``: 2<->13, 7<->8) names a kidney by its side of the image, so on an x-flipped
window it answers "left" for the right kidney: after flipping its logits back, the paired channels
must be swapped too (``lr_pairs``), or the two kidneys' logits average to a tie. ``lr_pairs`` is
empty by default (nnU-Net and MONAI swap nothing) and :meth:`SlidingWindowPredictor.from_params`
sets it from ``swap_lr_labels``.

**Precision.** Logits and weights accumulate in float32 on every device. On CUDA with
``half_precision`` the forward pass runs under ``torch.autocast(float16)`` (the paper's half
precision); on CPU the torch forward is always float32 (DESIGN.md reports bfloat16 autocast ~90x
slower than fp32 on a CPU without native bf16; not re-measured here); where the CPU computes bf16
natively the OpenVINO runtime can run it (``infer.cpu_precision``).

**Runtimes.** The network can be a ``torch.nn.Module`` or an exported runtime (:func:`export_onnx`
then :class:`OnnxRuntimeBackend` or :class:`OpenVinoBackend`, CPU only, used only when the package is
installed: ``pip install flarelib[cpu-runtime]``). DESIGN.md measured OpenVINO ~2.7x and ONNX
Runtime ~1.2x faster than torch for the thin U-Net's 48x160x224 window on 2 cores.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from flarelib.config import InferParams
from flarelib.errors import FlareInputError
from flarelib.infer.runtimes import (
    OnnxRuntimeBackend,
    OpenVinoBackend,
    TorchBackend,
    WindowRuntime,
    export_onnx,
    make_runtime,
    resolve_runtime,
    runtime_available,
)
from flarelib.labels import LR_PAIRS

__all__ = [
    "OnnxRuntimeBackend",
    "OpenVinoBackend",
    "SlidingWindowPredictor",
    "TorchBackend",
    "WindowRuntime",
    "export_onnx",
    "gaussian_importance_map",
    "make_runtime",
    "mirror_combinations",
    "plan_windows",
    "resolve_runtime",
    "runtime_available",
    "window_slices",
    "window_steps",
]

Triple = tuple[int, int, int]


# --------------------------------------------------------------------------------------------------
# Gaussian importance map
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def gaussian_importance_map(window_zyx: Sequence[int], sigma_scale: float = 1.0 / 8) -> torch.Tensor:
    """Gaussian weight of each voxel of a window, float32 CPU tensor of shape ``window_zyx``.

    ``sigma = sigma_scale * window`` per axis (paper: window / 8), centred at ``(n - 1) / 2``,
    normalised so the maximum is exactly 1; zeros (underflow) are replaced by the smallest non-zero
    value so no voxel of a window has zero weight. Cached (``functools.lru_cache``; pass a tuple):
    the same tensor object is returned for the same arguments, so never modify it in place.
    """
    window = tuple(int(w) for w in window_zyx)
    if len(window) != 3 or min(window) < 1:
        raise FlareInputError("gaussian_importance_map", f"window_zyx must be 3 positive sizes, got {window}")
    if not sigma_scale > 0:
        raise FlareInputError("gaussian_importance_map", f"sigma_scale must be > 0, got {sigma_scale}")
    g = np.ones(window, dtype=np.float64)
    for axis, n in enumerate(window):
        sigma = n * float(sigma_scale)
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        shape = [1, 1, 1]
        shape[axis] = n
        g = g * np.exp(-(x**2) / (2.0 * sigma**2)).reshape(shape)
    g /= g.max()
    g = g.astype(np.float32)
    nonzero = g > 0
    if not nonzero.all():
        g[~nonzero] = g[nonzero].min()
    return torch.from_numpy(g)


# --------------------------------------------------------------------------------------------------
# Window placement
# --------------------------------------------------------------------------------------------------


def _steps_1d(size: int, window: int, fraction: float) -> list[int]:
    """nnU-Net's window starts on one axis (``size >= window``)."""
    if size <= window:
        return [0]
    target = window * fraction
    n = math.ceil((size - window) / target) + 1
    actual = (size - window) / (n - 1)
    return [round(actual * i) for i in range(n)]


def _steps_1d_monai(size: int, window: int, fraction: float) -> list[int]:
    """MONAI's window starts on one axis (``sliding_window_inference`` with overlap ``1 - fraction``):
    every ``int(window * fraction)`` voxels, the last window moved back to end at the border."""
    if size <= window:
        return [0]
    interval = max(int(window * fraction), 1)
    starts: list[int] = []
    for start in itertools.count(0, interval):
        if start + window >= size:
            starts.append(size - window)
            return starts
        starts.append(start)
    raise AssertionError("unreachable")  # pragma: no cover


#: Window placements: nnU-Net's (the paper's; windows spread evenly between the borders) and MONAI's.
PLACEMENTS = {"even": _steps_1d, "monai": _steps_1d_monai}


def plan_windows(
    shape_zyx: Sequence[int],
    window_zyx: Sequence[int],
    step: float = 0.5,
    max_windows: int = 20,
    rule_fractions: Sequence[float] = (1.0, 1.0, 0.5),
    placement: str = "even",
) -> tuple[list[list[int]], tuple[float, float, float]]:
    """Window starts per axis and the step fractions (z, y, x) that produced them.

    ``shape_zyx`` is the (padded) volume shape; an axis smaller than the window counts as the window
    size (one window, the volume is padded). Step ``step`` on every axis; if that needs more than
    ``max_windows`` windows (``max_windows <= 0`` disables the rule) the per-axis ``rule_fractions``
    are used instead. ``placement``: ``"even"`` (nnU-Net's, the paper's) or ``"monai"`` (MONAI's
    ``sliding_window_inference``, to reproduce its outputs exactly). An axis with a window of 1
    (a 2-D net's z) steps one voxel at a time and is not counted by the rule (module docstring).
    """
    if placement not in PLACEMENTS:
        raise FlareInputError("infer.placement", f"unknown placement {placement!r}", "use even or monai")
    steps_1d = PLACEMENTS[placement]
    shape = [max(int(s), int(w)) for s, w in zip(shape_zyx, window_zyx, strict=True)]
    window = [int(w) for w in window_zyx]
    if not 0 < step <= 1 or not all(0 < f <= 1 for f in rule_fractions):
        raise FlareInputError(
            "infer params", f"step fractions must be in (0, 1], got step={step}, rule={tuple(rule_fractions)}"
        )
    one_voxel = [w == 1 for w in window]  # one-slice windows: every slice once, outside the rule

    def plan(fracs: Sequence[float]) -> tuple[list[list[int]], tuple[float, ...]]:
        fracs = tuple(1.0 if one else float(f) for one, f in zip(one_voxel, fracs, strict=True))
        starts = [
            list(range(s)) if one else steps_1d(s, w, f)
            for s, w, f, one in zip(shape, window, fracs, one_voxel, strict=True)
        ]
        return starts, fracs

    steps, fractions = plan((float(step),) * 3)
    counted = math.prod(len(s) for s, one in zip(steps, one_voxel, strict=True) if not one)
    if max_windows > 0 and counted > max_windows:
        steps, fractions = plan(rule_fractions)
    return steps, fractions  # type: ignore[return-value]


def window_steps(
    shape_zyx: Sequence[int],
    window_zyx: Sequence[int],
    step: float = 0.5,
    max_windows: int = 20,
    rule_fractions: Sequence[float] = (1.0, 1.0, 0.5),
) -> list[list[int]]:
    """Window start indices per axis ``[z_starts, y_starts, x_starts]`` (the paper's step rule).

    See :func:`plan_windows`. The number of windows is the product of the list lengths.

    >>> window_steps((100, 300, 300), (48, 160, 224))  # 4*3*2 = 24 > 20: rule (1, 1, 0.5)
    [[0, 26, 52], [0, 140], [0, 76]]
    """
    return plan_windows(shape_zyx, window_zyx, step, max_windows, rule_fractions)[0]


def window_slices(steps: Sequence[Sequence[int]], window_zyx: Sequence[int]) -> list[tuple[slice, ...]]:
    """All window boxes as (z, y, x) slice tuples, z slowest."""
    return [
        tuple(slice(s, s + int(w)) for s, w in zip(start, window_zyx, strict=True))
        for start in itertools.product(*steps)
    ]


def mirror_combinations(mirror_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``mirror_axes`` (array axes, (z, y, x) order), the empty one first.

    >>> mirror_combinations((0, 2))
    [(), (0,), (2,), (0, 2)]
    """
    axes = tuple(int(a) for a in mirror_axes)
    if len(set(axes)) != len(axes) or any(a not in (0, 1, 2) for a in axes):
        raise FlareInputError(
            "infer params", f"mirror_axes must be distinct values of 0, 1, 2 (z, y, x), got {axes}"
        )
    return [c for k in range(len(axes) + 1) for c in itertools.combinations(axes, k)]


# --------------------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------------------


class SlidingWindowPredictor:
    """Gaussian-weighted sliding-window prediction of a whole (z, y, x) volume.

    Args:
        model_or_runtime: a ``torch.nn.Module`` (put in eval mode, moved to ``device``) or a
            :class:`WindowRuntime` (``(N, 1, Z, Y, X)`` float32 -> ``(N, C, Z, Y, X)`` logits).
        num_classes: output channels C.
        window_zyx: window size (z, y, x); for a U-Net a multiple of its ``required_divisor``.
        step, max_windows, rule_fractions: the step rule (:func:`plan_windows`).
        mirror_axes: array axes (z, y, x order) for mirroring TTA; ``()`` disables it.
        sigma_scale: Gaussian sigma as a fraction of the window (1/8).
        windows_per_batch: windows stacked into one forward pass.
        device: where the forward passes and the accumulators live (``"cpu"``, ``"cuda"``...).
        half_precision: fp16 autocast for the forward on CUDA; ignored on CPU (always fp32).
        pad_value: value for padding volumes smaller than the window (0 = mean of a z-scored volume).
        progress: show a tqdm bar over the windows.
        lr_pairs: channel pairs swapped in the logits of every pass that flipped ``lr_axis``
            (``flarelib.labels.LR_PAIRS`` for a network trained with ``swap_lr_labels``).
        lr_axis: the left/right array axis (2: x of a (z, y, x) LPS volume).
        placement: ``"even"`` (nnU-Net's window starts, the paper's) or ``"monai"`` (MONAI's
            ``sliding_window_inference``; :func:`plan_windows`).
    """

    def __init__(
        self,
        model_or_runtime: nn.Module | WindowRuntime | Callable[[torch.Tensor], torch.Tensor],
        num_classes: int,
        window_zyx: Sequence[int],
        step: float = 0.5,
        max_windows: int = 20,
        rule_fractions: Sequence[float] = (1.0, 1.0, 0.5),
        mirror_axes: Sequence[int] = (0, 2),
        sigma_scale: float = 0.125,
        windows_per_batch: int = 1,
        device: torch.device | str = "cpu",
        half_precision: bool = False,
        pad_value: float = 0.0,
        progress: bool = False,
        lr_pairs: Sequence[tuple[int, int]] = (),
        lr_axis: int = 2,
        placement: str = "even",
    ):
        self.device = torch.device(device)
        self.num_classes = int(num_classes)
        self.window_zyx: Triple = tuple(int(w) for w in window_zyx)  # type: ignore[assignment]
        if len(self.window_zyx) != 3 or min(self.window_zyx) < 1:
            raise FlareInputError(
                "infer.window_zyx", f"need 3 positive sizes (z, y, x), got {list(window_zyx)}"
            )
        if getattr(model_or_runtime, "configuration", "3d") == "2d" and self.window_zyx[0] != 1:
            raise FlareInputError(
                "infer.window_zyx",
                f"the network is 2d (one slice at a time) but the window is {list(self.window_zyx)}",
                f"set infer.window_zyx to [1, {self.window_zyx[1]}, {self.window_zyx[2]}]",
            )
        divisor = getattr(model_or_runtime, "divisor", None)
        if divisor is not None and any(w % d for w, d in zip(self.window_zyx, divisor, strict=True)):
            raise FlareInputError(
                "infer.window_zyx",
                f"window {self.window_zyx} is not a multiple of the network's divisor {tuple(divisor)}",
                "choose a window whose sizes are multiples of required_divisor(unet.pool_zyx)",
            )
        if placement not in PLACEMENTS:
            raise FlareInputError("infer.placement", f"unknown placement {placement!r}", "use even or monai")
        self.placement = placement
        self.step = float(step)
        self.max_windows = int(max_windows)
        self.rule_fractions = tuple(float(f) for f in rule_fractions)
        self.mirror_axes = tuple(int(a) for a in mirror_axes)
        self.mirror_sets = mirror_combinations(self.mirror_axes)
        self.sigma_scale = float(sigma_scale)
        self.windows_per_batch = max(1, int(windows_per_batch))
        self.half_precision = bool(half_precision) and self.device.type == "cuda"
        self.pad_value = float(pad_value)
        self.progress = progress
        self.lr_axis = int(lr_axis)
        self.lr_permutation: list[int] | None = None
        if lr_pairs:
            perm = list(range(self.num_classes))
            for a, b in lr_pairs:
                if not (0 <= a < self.num_classes and 0 <= b < self.num_classes):
                    raise FlareInputError("lr_pairs", f"pair {(a, b)} outside 0..{self.num_classes - 1}")
                perm[a], perm[b] = b, a
            self.lr_permutation = perm
        if isinstance(model_or_runtime, nn.Module):
            self.runtime: Callable[[torch.Tensor], torch.Tensor] = TorchBackend(
                model_or_runtime, self.device, self.half_precision
            )
        else:
            self.runtime = model_or_runtime
        #: Forward passes (runtime calls) and windows of the last :meth:`predict_logits` call.
        self.last_forward_passes = 0
        self.last_num_windows = 0
        self.last_step_fractions: tuple[float, float, float] | None = None

    @classmethod
    def from_params(
        cls,
        model_or_runtime: nn.Module | WindowRuntime,
        infer: InferParams,
        num_classes: int,
        device: torch.device | str = "cpu",
        progress: bool = False,
        swap_lr_labels: bool = False,
    ) -> SlidingWindowPredictor:
        """Build from an :class:`~flarelib.config.InferParams` section; ``swap_lr_labels``: the
        network was trained with label-swapping left/right flips (``train.swap_lr_labels``)."""
        return cls(
            model_or_runtime,
            num_classes,
            infer.window_zyx,
            step=infer.step,
            max_windows=infer.max_windows,
            rule_fractions=infer.step_rule_fractions_zyx,
            mirror_axes=infer.mirror_axes,
            sigma_scale=infer.gaussian_sigma_scale,
            windows_per_batch=infer.windows_per_batch,
            device=device,
            half_precision=infer.half_precision,
            pad_value=infer.pad_value,
            progress=progress,
            lr_pairs=LR_PAIRS if swap_lr_labels else (),
            placement=infer.placement,
        )

    # --- helpers ---------------------------------------------------------------------------------
    def _pad(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]]:
        shape = image.shape
        pads: list[tuple[int, int]] = []
        for s, w in zip(shape, self.window_zyx, strict=True):
            missing = max(w - s, 0)
            pads.append((missing // 2, missing - missing // 2))
        if not any(a or b for a, b in pads):
            return image, (slice(None),) * 3
        # F.pad wants the last axis first.
        flat = [p for pair in reversed(pads) for p in pair]
        padded = torch.nn.functional.pad(image[None, None], flat, mode="constant", value=self.pad_value)[0, 0]
        crop = tuple(slice(a, a + s) for (a, _), s in zip(pads, shape, strict=True))
        return padded, crop

    def _forward_tta(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean of the logits over every mirror subset; float32 ``(N, C, Z, Y, X)`` on the device."""
        total: torch.Tensor | None = None
        for axes in self.mirror_sets:
            dims = [a + 2 for a in axes]
            x = torch.flip(batch, dims) if dims else batch
            out = self.runtime(x)
            self.last_forward_passes += 1
            out = out.to(self.device, torch.float32)
            if dims:
                out = torch.flip(out, dims)
                if self.lr_permutation is not None and self.lr_axis in axes:
                    out = out[:, self.lr_permutation]
            total = out if total is None else total + out
        assert total is not None
        if len(self.mirror_sets) > 1:
            total = total / len(self.mirror_sets)
        return total

    # --- prediction ------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_logits_tensor(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Weighted-average logits ``(C, Z, Y, X)``, float32, on ``self.device`` (:meth:`predict_logits`)."""
        img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim != 3:
            raise FlareInputError(
                "SlidingWindowPredictor", f"expected a (z, y, x) volume, got shape {tuple(img.shape)}"
            )
        img = img.to(self.device, torch.float32)
        padded, crop = self._pad(img)
        steps, fractions = plan_windows(
            padded.shape, self.window_zyx, self.step, self.max_windows, self.rule_fractions, self.placement
        )
        boxes = window_slices(steps, self.window_zyx)
        self.last_forward_passes = 0
        self.last_num_windows = len(boxes)
        self.last_step_fractions = fractions
        gauss = gaussian_importance_map(self.window_zyx, self.sigma_scale).to(self.device)
        logits = torch.zeros((self.num_classes, *padded.shape), dtype=torch.float32, device=self.device)
        weights = torch.zeros(padded.shape, dtype=torch.float32, device=self.device)
        chunks = [boxes[i : i + self.windows_per_batch] for i in range(0, len(boxes), self.windows_per_batch)]
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(boxes), desc="windows", leave=False, dynamic_ncols=True)
        for chunk in chunks:
            batch = torch.stack([padded[box] for box in chunk])[:, None]
            pred = self._forward_tta(batch)
            if pred.shape[1] != self.num_classes or tuple(pred.shape[2:]) != self.window_zyx:
                raise FlareInputError(
                    "SlidingWindowPredictor",
                    f"network returned shape {tuple(pred.shape)} for windows {tuple(batch.shape)}",
                    f"num_classes must be {pred.shape[1]} and the network must keep the window size",
                )
            for b, box in enumerate(chunk):
                logits[(slice(None), *box)] += pred[b] * gauss
                weights[box] += gauss
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        logits /= weights
        return logits[(slice(None), *crop)]

    def predict_logits(self, image: np.ndarray | torch.Tensor, probabilities: bool = False) -> np.ndarray:
        """Predict a whole volume.

        Args:
            image: ``(z, y, x)`` (or ``(1, z, y, x)``) float image, already normalised.
            probabilities: return the softmax of the averaged logits instead of the logits.

        Returns:
            float32 numpy array ``(C, z, y, x)`` on the input's grid.
        """
        out = self.predict_logits_tensor(image)
        if probabilities:
            out = torch.softmax(out, dim=0)
        return out.cpu().numpy()

    def predict_labels(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """Argmax of the averaged logits as a uint8 ``(z, y, x)`` array (argmax on the device)."""
        return self.predict_logits_tensor(image).argmax(0).to(torch.uint8).cpu().numpy()
