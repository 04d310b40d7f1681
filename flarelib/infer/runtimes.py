"""Window runtimes for the sliding-window predictor: torch, or a model exported to ONNX and run by
ONNX Runtime or OpenVINO (faster on CPU; ``infer.runtime: auto`` picks the fastest installed).

A runtime maps a batch of windows ``(n, 1, z, y, x)`` float32 to logits ``(n, classes, z, y, x)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from flarelib.errors import FlareInputError


class WindowRuntime(Protocol):
    """Anything that maps a float32 CPU batch ``(N, 1, Z, Y, X)`` to logits ``(N, C, Z, Y, X)``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    """A ``torch.nn.Module`` in eval mode on ``device``; fp16 autocast on CUDA when ``half``."""

    def __init__(self, model: nn.Module, device: torch.device, half: bool = False):
        self.model = model.eval().to(device)
        self.device = device
        self.half = bool(half and device.type == "cuda")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.half else contextlib.nullcontext()
        with ctx:
            out = self.model(x)
        if isinstance(out, list | tuple):  # a deep-supervision model left in train mode
            out = out[0]
        return out.float()


_RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def runtime_available(kind: str) -> bool:
    """True when the package of ``kind`` (``"torch"``, ``"onnxruntime"``, ``"openvino"``) is installed."""
    if kind == "torch":
        return True
    return importlib.util.find_spec(_RUNTIME_PACKAGES[kind]) is not None


def resolve_runtime(kind: str, device: torch.device | str = "cpu") -> str:
    """The concrete runtime for ``kind`` on ``device``.

    ``"auto"``: torch on CUDA; on CPU the fastest installed exported runtime (OpenVINO, then ONNX
    Runtime; both need the ``onnx`` package for the export), else torch. On this project's 2-core CPU
    OpenVINO ran the thin U-Net's windows ~7x faster than torch at the same outputs
    (benchmarks/RESULTS.md, issue 6a). Other kinds are returned unchanged.
    """
    if kind != "auto":
        return kind
    if torch.device(device).type != "cpu" or importlib.util.find_spec("onnx") is None:
        return "torch"
    for candidate in ("openvino", "onnxruntime"):
        if runtime_available(candidate):
            return candidate
    return "torch"


def export_onnx(
    model: nn.Module, window_zyx: Sequence[int], path: str | os.PathLike, opset: int = 17
) -> Path:
    """Export ``model`` (eval mode, fp32, CPU copy) to ONNX for windows of ``window_zyx``.

    The batch axis is dynamic (``windows_per_batch`` and mirroring reuse one file); the spatial axes
    are fixed to the window. Uses torch's TorchScript-based exporter (``dynamo=False``), which needs
    no extra package. Written atomically.
    """
    import copy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).cpu().float().eval()
    dummy = torch.zeros((1, getattr(net, "in_channels", 1), *(int(w) for w in window_zyx)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with torch.no_grad(), _quiet_warnings():
            torch.onnx.export(
                net,
                (dummy,),
                tmp,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _missing_runtime(kind: str) -> FlareInputError:
    return FlareInputError(
        "infer.runtime",
        f"runtime '{kind}' requested but the '{_RUNTIME_PACKAGES[kind]}' package is not installed",
        "pip install 'flarelib[cpu-runtime]' (or set infer.runtime: torch)",
    )


class OnnxRuntimeBackend:
    """ONNX Runtime CPU session on an exported model (:func:`export_onnx`)."""

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 0):
        if not runtime_available("onnxruntime"):
            raise _missing_runtime("onnxruntime")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])


class OpenVinoBackend:
    """OpenVINO CPU compiled model read from an exported ONNX file (:func:`export_onnx`)."""

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 0, precision: str = "fp32"):
        if not runtime_available("openvino"):
            raise _missing_runtime("openvino")
        import openvino as ov

        from flarelib.precision import cpu_bf16

        core = ov.Core()
        config: dict[str, Any] = {}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        # Explicit either way: OpenVINO would otherwise pick bf16 on some CPUs (AMX) by itself.
        self.precision = "bf16" if cpu_bf16(precision) else "fp32"
        config["INFERENCE_PRECISION_HINT"] = "bf16" if self.precision == "bf16" else "f32"
        self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        self.output = self.compiled.outputs[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(np.asarray(self.compiled(arr)[self.output]))


def make_runtime(
    kind: str,
    model: nn.Module,
    window_zyx: Sequence[int],
    device: torch.device | str = "cpu",
    half_precision: bool = False,
    cache_dir: str | os.PathLike | None = None,
    threads: int = 0,
    cpu_precision: str = "fp32",
) -> WindowRuntime:
    """The window runtime of ``kind`` for ``model``: ``"torch"`` or an exported CPU runtime.

    ``onnxruntime`` / ``openvino`` export the model to ONNX first (into ``cache_dir``, kept;
    default a temporary folder removed with the runtime) and run on CPU only; a missing package is
    a :class:`FlareInputError` with the install command. ``"auto"`` picks one with
    :func:`resolve_runtime`. ``cpu_precision``
    (fp32 | bf16 | auto, :func:`flarelib.precision.cpu_bf16`) is OpenVINO's inference precision;
    torch and ONNX Runtime run fp32 on CPU.
    """
    device = torch.device(device)
    kind = resolve_runtime(kind, device)
    if kind == "torch":
        return TorchBackend(model, device, half_precision)
    if kind not in _RUNTIME_PACKAGES:
        raise FlareInputError(
            "infer.runtime", f"unknown runtime {kind!r}", "use torch, onnxruntime or openvino"
        )
    if not runtime_available(kind):
        raise _missing_runtime(kind)
    if device.type != "cpu":
        raise FlareInputError(
            "infer.runtime", f"runtime '{kind}' runs on CPU only", "set infer.runtime: torch on GPU"
        )
    temporary = cache_dir is None
    folder = Path(tempfile.mkdtemp(prefix="flarelib-onnx-")) if temporary else Path(cache_dir)
    try:
        onnx_path = export_onnx(model, window_zyx, folder / "model.onnx")
        if kind == "onnxruntime":
            backend: WindowRuntime = OnnxRuntimeBackend(onnx_path, threads)
        else:
            backend = OpenVinoBackend(onnx_path, threads, cpu_precision)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if temporary:
        # The temporary export lives as long as the runtime that read it and is removed when the
        # runtime is collected or the process exits (left behind, a study filled /tmp with ~20 MB per
        # predictor). Not removed right after loading: an attempt that did so preceded segfaults of
        # the test suite at exit (cause not found; benchmarks/RESULTS.md, session 10).
        weakref.finalize(backend, shutil.rmtree, str(folder), True)
    return backend
