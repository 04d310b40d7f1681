"""flarelib's cap on torch's oneDNN kernels: set at import unless the user chose one."""

import os
import subprocess
import sys

import pytest

_PRINT = "import flarelib, os; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"


def _run(env_isa: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if env_isa is not None:
        env["ONEDNN_MAX_CPU_ISA"] = env_isa
    out = subprocess.run([sys.executable, "-c", _PRINT], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_caps_onednn_at_avx512_bf16_and_keeps_a_users_choice():
    assert _run(None) == "AVX512_CORE_BF16"
    assert _run("ALL") == "ALL"  # e.g. a CPU whose AMX kernels work


@pytest.mark.parametrize("in_channels", [1, 4])
def test_bf16_backward_of_a_thin_first_convolution_completes(in_channels):
    """The U-Net's first convolution (1 input channel, 1 x 3 x 3) in bf16 autocast, forward and
    backward, in a fresh process as flarelib sets it up: on AMX CPUs oneDNN's AMX kernels crashed
    here (SIGSEGV) or hung before the cap; on other CPUs this is plain bf16 training."""
    code = f"""
import flarelib, torch
conv = torch.nn.Conv3d({in_channels}, 16, (1, 3, 3), padding=(0, 1, 1))
x = torch.randn(16, {in_channels}, 1, 128, 128)
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = conv(x)
y.float().mean().backward()
print(bool(torch.isfinite(conv.weight.grad).all()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"
