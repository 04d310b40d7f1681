"""Reduced precision on CPU: whether this CPU computes bfloat16 natively, and what a
``cpu_precision`` setting (``train.cpu_precision``, ``infer.cpu_precision``) resolves to.

On CPUs with AMX tiles, torch 2.13's oneDNN (v3.12) AMX kernels crash (SIGSEGV) or hang in the
bf16 backward pass of a convolution with 1-4 input channels (the U-Net's first, 1 x 3 x 3), measured
on the 2-core dev machine (Xeon with AMX, 2026-12-07): the quick profile's stage-1 kernel died at
its first training step. Importing :mod:`flarelib` therefore sets ``ONEDNN_MAX_CPU_ISA`` to
``AVX512_CORE_BF16`` unless it is set already (oneDNN reads it at its first convolution), so bf16
runs on the AVX512-BF16 kernels, as on CPUs without AMX; ``ONEDNN_MAX_CPU_ISA=ALL`` restores AMX
where it works."""

from __future__ import annotations

__all__ = ["CPU_PRECISIONS", "cpu_bf16", "native_bf16"]

CPU_PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX tiles (elsewhere bf16 is emulated, slower than fp32)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def cpu_bf16(precision: str) -> bool:
    """Whether ``precision`` means bf16 here: ``"bf16"`` always, ``"auto"`` on :func:`native_bf16`
    CPUs, ``"fp32"`` never."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if precision == "auto":
        return native_bf16()
    raise ValueError(f"cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, got {precision!r}")
