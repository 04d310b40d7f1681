"""Efficiency sampler: RAM curve of a subprocess, AUC definition, /proc fallback, NVML on CUDA."""

from __future__ import annotations

import math
import os
import sys

import pytest

from flarelib.evaluate.efficiency import (
    CaseEfficiency,
    ResourceSampler,
    _TreeProbe,
    auc,
    format_summary,
    format_table,
    measure_command,
    nvml_available,
    predict_command,
    write_csv,
)

ALLOC_MB = 200
CHILD = (
    "import time, numpy as np\n"
    "time.sleep(0.6)\n"
    f"a = np.ones({ALLOC_MB} * 2**20 // 8)\n"  # np.ones touches every page
    "time.sleep(1.2)\n"
)


def test_ram_curve_of_a_subprocess_rises_by_its_allocation():
    r = measure_command([sys.executable, "-c", CHILD], case="alloc", gpu_index=None)
    assert r.returncode == 0, r.output_tail
    s = r.samples
    assert s is not None and len(s.ram_mb) == len(s.t) == len(s.cpu_percent)
    ram = [v for v in s.ram_mb if not math.isnan(v)]
    rise = max(ram) - min(ram)
    assert ALLOC_MB * 0.9 <= rise <= ALLOC_MB + 120, ram  # interpreter + numpy start below 120 MB
    assert r.max_ram_mb == pytest.approx(max(ram))
    # the curve is low first, high at the end
    assert ram[-1] > ram[0] + ALLOC_MB * 0.8 or max(ram) > ram[0] + ALLOC_MB * 0.8
    # FLARE's AUC: sum of the samples times the 0.1 s interval
    assert r.ram_auc_mbs == pytest.approx(sum(ram) * 0.1, rel=1e-12)
    assert r.ram_auc_mbs == pytest.approx(auc(s.ram_mb, 0.1))
    # one sample per 0.1 s over the run
    assert abs(len(s.t) - r.time_s / 0.1) <= max(3, 0.2 * len(s.t))
    assert r.time_s >= 1.8
    assert math.isnan(r.max_gpu_mb) and math.isnan(r.gpu_auc_mbs)  # no GPU sampled
    assert all(c >= 0 for c in s.cpu_percent if not math.isnan(c))


def test_proc_fallback_matches_psutil():
    psutil = pytest.importorskip("psutil", reason="psutil not installed: only the /proc probe exists")
    probe = _TreeProbe(os.getpid())
    rss_ps, cpu_ps = probe.sample()
    probe._psutil = None  # force the /proc reader
    rss_proc, cpu_proc = probe.sample()
    assert rss_proc == pytest.approx(rss_ps, rel=0.2)
    assert cpu_proc == pytest.approx(cpu_ps, abs=1.0)
    assert psutil.Process().memory_info().rss > 0


def test_sampler_context_and_tables(tmp_path):
    with ResourceSampler(interval_s=0.05, gpu_index=None) as sampler:
        sum(i * i for i in range(300_000))
    s = sampler.samples.summary()
    assert s["n_samples"] >= 1 and s["max_ram_mb"] > 10
    row = CaseEfficiency("c1", (256, 256, 80), 9.5, 0, 3540.0, 20379.0, 900.0, 8000.0, 95.0, 100.0, 900.0)
    table = format_table([row])
    assert "| c1 | (256, 256, 80) | 9.50 | 3540 | 20379 | 900 | 8000 | 95.0 | 0 |" in table
    assert "paper amos_7324 | (256, 256, 80) | 9.45 | 3540 | 20379" in table
    assert "paper (n=110, RTX 4090)" in format_summary([row])
    text = write_csv([row], tmp_path / "eff.csv").read_text()
    assert text.splitlines()[0].startswith("case,size_xyz,time_s")
    cmd = predict_command("a_0000.nii.gz", "out", "m.pt")
    assert cmd[1:4] == ["-m", "flarelib.infer.pipeline", "a_0000.nii.gz"]


def test_gpu_memory_curve_with_nvml():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: GPU memory sampling is measured only on a GPU machine")
    if not nvml_available(0):
        pytest.skip("pynvml (nvidia-ml-py) not installed or NVML unusable: pip install nvidia-ml-py")
    child = (
        "import time, torch\n"
        "time.sleep(0.3)\n"
        "x = torch.ones(512 * 2**20 // 4, device='cuda')\n"
        "torch.cuda.synchronize(); time.sleep(1.0)\n"
    )
    r = measure_command([sys.executable, "-c", child], case="gpu", gpu_index=0)
    assert r.returncode == 0, r.output_tail
    gpu = [v for v in r.samples.gpu_mb if not math.isnan(v)]
    assert max(gpu) - min(gpu) >= 500  # 512 MB tensor plus the CUDA context
    assert r.gpu_auc_mbs == pytest.approx(sum(gpu) * 0.1)
