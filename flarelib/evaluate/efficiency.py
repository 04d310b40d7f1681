"""FLARE-style efficiency measurement: per-case wall time and memory-time curves (STUDY.md "Evaluation").

The official FLARE evaluation runs each team's container once per case and measures:

* **time**: wall clock of the whole per-case run, process start, model load and I/O included. Here:
  :func:`measure_cases` starts ``python -m flarelib.infer.pipeline CASE OUT --model CKPT`` as a new
  process per case and times it from ``Popen`` to exit.
* **GPU memory**: sampled every 0.1 s as device ``total - free`` through NVML (the whole device,
  every process on it, as FLARE does); reported as the maximum (MB) and the area under the curve
  ``AUC = sum(samples) * 0.1`` (MB s). Needs ``pynvml`` (``pip install nvidia-ml-py``); without it,
  or without CUDA, the GPU columns are empty (NaN). The sampler never touches CUDA itself, so it
  adds no context of its own to the device.
* **RAM and CPU**: sampled at the same ticks. ``ram_scope="tree"`` (default): the summed RSS of the
  measured process and all its descendants (shared pages count once per process); ``"system"``:
  the machine's used memory (total - available), which is what the paper's Table 8 RAM figure
  (19.7 GB for one case) looks like. CPU is the process tree's CPU time per wall second in percent
  (100 = one core busy). Max and AUC as for the GPU. With psutil when installed, else /proc.

MB here is MiB (2^20 bytes), as NVML and FLARE's scripts report. The paper's Table 8 also lists a
"CPU AUC" of 262.62 next to 96.89 % over 11.8 s, which no plain definition reproduces (96.89 % x
11.8 s = 1143 % s); ours is ``sum(cpu % samples) * 0.1`` (% s) and is not comparable to it.

:func:`format_table` prints rows in the layout of the paper's Table 7 (per case: image size in
(x, y, z), running time, max GPU, GPU AUC; then our RAM/CPU columns) and :func:`format_summary` the
Table 8 averages, with the paper's numbers beside ours. :func:`table7_frame` and
:func:`table8_frame` are the same tables as pandas DataFrames (notebook 06): Table 7 ordered by
image size, each case beside the paper's case nearest in voxels; Table 8 as ours / paper / ratio.
:func:`spread_by_size` picks the cases to measure, evenly over the image sizes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PAPER_TABLE7",
    "PAPER_TABLE8",
    "TABLE7_COLUMNS",
    "TABLE8_ROWS",
    "CaseEfficiency",
    "ResourceSampler",
    "auc",
    "averages",
    "format_summary",
    "format_table",
    "measure_cases",
    "measure_command",
    "nvml_available",
    "paper_table7_frame",
    "spread_by_size",
    "table7_frame",
    "table8_frame",
    "voxels",
    "write_csv",
]

MB = float(2**20)
INTERVAL_S = 0.1

#: The paper's Table 7 (RTX 4090): case, image size (x, y, z), time s, max GPU MB, GPU AUC MB s.
PAPER_TABLE7: tuple[tuple[str, tuple[int, int, int], float, float, float], ...] = (
    ("amos_0540", (192, 192, 100), 9.11, 3534, 20018),
    ("amos_7324", (256, 256, 80), 9.45, 3540, 20379),
    ("amos_0507", (320, 290, 72), 9.1, 3522, 19493),
    ("amos_7236", (400, 400, 115), 10.61, 3526, 22968),
    ("amos_7799", (432, 432, 40), 13.33, 3575, 33938),
    ("amos_0557", (512, 152, 512), 15.51, 3563, 35943),
    ("amos_0546", (576, 468, 72), 10.44, 3534, 22395),
    ("amos_8082", (1024, 1024, 82), 22.36, 3539, 50420),
)
#: The paper's Table 8 (averages over 110 validation cases).
PAPER_TABLE8: dict[str, float] = {
    "time_s": 11.8,
    "max_gpu_mb": 3536.7,
    "gpu_auc_mbs": 26888.4,
    "cpu_percent": 96.89,
    "cpu_auc": 262.62,
    "max_ram_mb": 19673.5,
    "ram_auc_mbs": 218337.4,
}
#: Table 8's quantities in its order: :class:`CaseEfficiency` field -> (the paper's name, unit).
TABLE8_ROWS: dict[str, tuple[str, str]] = {
    "time_s": ("Time", "s"),
    "max_gpu_mb": ("GPU Memory", "MB"),
    "gpu_auc_mbs": ("AUC GPU Time", "MB s"),
    "cpu_percent": ("CPU Utilization", "%"),
    "cpu_auc": ("AUC CPU Time", "% s"),
    "max_ram_mb": ("RAM", "MB"),
    "ram_auc_mbs": ("AUC RAM Time", "MB s"),
}


def auc(samples: Sequence[float], interval_s: float = INTERVAL_S) -> float:
    """FLARE's area under a sampled curve: ``sum(samples) * interval`` (NaN samples ignored)."""
    vals = [v for v in samples if not math.isnan(v)]
    return float(sum(vals) * interval_s) if vals else math.nan


# --------------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------------


class _Nvml:
    """Device memory (total - free, MiB) through pynvml; ``None`` when unavailable."""

    def __init__(self, index: int):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))

    def used_mb(self) -> float:
        info = self._nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return (float(info.total) - float(info.free)) / MB


def nvml_available(index: int = 0) -> bool:
    """True when pynvml is installed and can see GPU ``index``."""
    try:
        _Nvml(index).used_mb()
    except Exception:  # no package, no driver, no device
        return False
    return True


def _clock_ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


class _TreeProbe:
    """RSS (MiB) and cumulative CPU seconds of a process and its descendants."""

    def __init__(self, pid: int):
        self.pid = pid
        self._root = None
        try:
            import psutil

            self._psutil = psutil
            try:
                self._root = psutil.Process(pid)
            except psutil.Error:  # already gone
                self._root = None
        except ImportError:
            self._psutil = None
        self._ticks = _clock_ticks()

    # -- psutil ------------------------------------------------------------------------------------
    def _sample_psutil(self) -> tuple[float, float]:
        ps = self._psutil
        if self._root is None:
            return math.nan, math.nan
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except ps.Error:
            return math.nan, math.nan
        rss = cpu = 0.0
        for p in procs:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    if p is self._root:  # children it already reaped
                        cpu += t.children_user + t.children_system
            except ps.Error:
                continue
        return rss / MB, cpu

    # -- /proc ----------------------------------------------------------------------------------
    def _children_proc(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read().decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(parents.get(pid, []))
        return out

    def _sample_proc(self) -> tuple[float, float]:
        rss = cpu = 0.0
        found = False
        for pid in self._children_proc():
            try:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    fields = fh.read().decode(errors="replace")
                fields_after = fields[fields.rindex(")") + 2 :].split()
                with open(f"/proc/{pid}/status") as fh:
                    status = fh.read()
            except OSError:
                continue
            found = True
            utime, stime, cutime, cstime = (int(fields_after[i]) for i in (11, 12, 13, 14))
            cpu += (utime + stime + (cutime + cstime if pid == self.pid else 0)) / self._ticks
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    rss += float(line.split()[1]) * 1024
                    break
        return (rss / MB, cpu) if found else (math.nan, math.nan)

    def sample(self) -> tuple[float, float]:
        """(RSS MiB, cumulative CPU seconds) of the tree now; NaN when the process is gone."""
        return self._sample_psutil() if self._psutil is not None else self._sample_proc()


def _system_used_mb() -> float:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return (vm.total - vm.available) / MB
    except ImportError:
        info = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, value = line.split(":", 1)
                info[key] = float(value.split()[0]) * 1024
        return (info["MemTotal"] - info.get("MemAvailable", info.get("MemFree", 0.0))) / MB


# --------------------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Samples:
    """Sampled curves at ``interval_s``: times (s since start), GPU MB, RAM MB, CPU %."""

    interval_s: float
    t: list[float] = dataclasses.field(default_factory=list)
    gpu_mb: list[float] = dataclasses.field(default_factory=list)
    ram_mb: list[float] = dataclasses.field(default_factory=list)
    cpu_percent: list[float] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """max and AUC (sum x interval) of each curve, mean CPU %."""

        def vmax(v: list[float]) -> float:
            vals = [x for x in v if not math.isnan(x)]
            return max(vals) if vals else math.nan

        cpu = [c for c in self.cpu_percent if not math.isnan(c)]
        return {
            "max_gpu_mb": vmax(self.gpu_mb),
            "gpu_auc_mbs": auc(self.gpu_mb, self.interval_s),
            "max_ram_mb": vmax(self.ram_mb),
            "ram_auc_mbs": auc(self.ram_mb, self.interval_s),
            "cpu_percent": sum(cpu) / len(cpu) if cpu else math.nan,
            "max_cpu_percent": vmax(self.cpu_percent),
            "cpu_auc": auc(self.cpu_percent, self.interval_s),
            "n_samples": float(len(self.t)),
        }


class ResourceSampler:
    """Background thread sampling GPU memory, RAM and CPU every ``interval_s`` seconds.

    Args:
        pid: the process whose tree is measured (default: this process).
        interval_s: sampling period (FLARE: 0.1 s). Ticks follow a fixed schedule, so a slow
            sample does not stretch the time axis.
        gpu_index: NVML device index, or None for no GPU sampling. ``"auto"``: device 0 when NVML
            works (never initialises CUDA in this process).
        ram_scope: ``"tree"`` (RSS of the process tree) or ``"system"`` (used memory of the machine).

    Use as a context manager or ``start()`` / ``stop()``; the curves are in :attr:`samples`.
    """

    def __init__(
        self,
        pid: int | None = None,
        interval_s: float = INTERVAL_S,
        gpu_index: int | Literal["auto"] | None = "auto",
        ram_scope: Literal["tree", "system"] = "tree",
    ):
        self.pid = os.getpid() if pid is None else int(pid)
        self.interval_s = float(interval_s)
        self.samples = Samples(self.interval_s)
        self.ram_scope = ram_scope
        self._probe = _TreeProbe(self.pid)
        self._gpu: _Nvml | None = None
        if gpu_index == "auto":
            gpu_index = 0 if nvml_available(0) else None
        if gpu_index is not None:
            self._gpu = _Nvml(int(gpu_index))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flarelib-sampler", daemon=True)
        self._t0 = 0.0

    @property
    def has_gpu(self) -> bool:
        return self._gpu is not None

    def _sample(self, prev: tuple[float, float] | None) -> tuple[float, float]:
        now = time.perf_counter()
        rss, cpu_s = self._probe.sample()
        ram = _system_used_mb() if self.ram_scope == "system" else rss
        gpu = self._gpu.used_mb() if self._gpu is not None else math.nan
        if prev is None or math.isnan(cpu_s) or math.isnan(prev[1]) or now <= prev[0]:
            cpu_pct = math.nan
        else:
            cpu_pct = max(cpu_s - prev[1], 0.0) / (now - prev[0]) * 100.0
        s = self.samples
        s.t.append(now - self._t0)
        s.gpu_mb.append(gpu)
        s.ram_mb.append(ram)
        s.cpu_percent.append(cpu_pct)
        return now, cpu_s

    def _run(self) -> None:
        prev = None
        k = 0
        while True:
            prev = self._sample(prev)
            k += 1
            wait = self._t0 + k * self.interval_s - time.perf_counter()
            if self._stop.wait(max(wait, 0.0)):
                break

    def start(self) -> ResourceSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> Samples:
        self._stop.set()
        self._thread.join()
        return self.samples

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Per-command / per-case measurement
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CaseEfficiency:
    """One measured run (FLARE Table 7/8 quantities; MB = MiB, AUC in MB s, CPU in %)."""

    case: str
    size_xyz: tuple[int, ...] | None
    time_s: float
    returncode: int
    max_gpu_mb: float
    gpu_auc_mbs: float
    max_ram_mb: float
    ram_auc_mbs: float
    cpu_percent: float
    max_cpu_percent: float
    cpu_auc: float
    samples: Samples | None = dataclasses.field(default=None, repr=False)
    output_tail: str = dataclasses.field(default="", repr=False)

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("samples")
        d.pop("output_tail")
        d["size_xyz"] = "x".join(map(str, self.size_xyz)) if self.size_xyz else ""
        return d


def measure_command(
    cmd: Sequence[str],
    case: str = "",
    size_xyz: tuple[int, ...] | None = None,
    interval_s: float = INTERVAL_S,
    gpu_index: int | Literal["auto"] | None = "auto",
    ram_scope: Literal["tree", "system"] = "tree",
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout_s: float | None = None,
) -> CaseEfficiency:
    """Run ``cmd`` as a new process and measure it (wall time from start to exit, sampled curves).

    The command's output is collected (its last 2000 characters are kept in ``output_tail``).
    """
    with open(os.devnull, "rb") as stdin:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        sampler = ResourceSampler(proc.pid, interval_s, gpu_index, ram_scope).start()
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        elapsed = time.perf_counter() - t0
        samples = sampler.stop()
        reader.join()
    s = samples.summary()
    tail = b"".join(chunks).decode(errors="replace")[-2000:]
    return CaseEfficiency(
        case,
        size_xyz,
        elapsed,
        rc,
        s["max_gpu_mb"],
        s["gpu_auc_mbs"],
        s["max_ram_mb"],
        s["ram_auc_mbs"],
        s["cpu_percent"],
        s["max_cpu_percent"],
        s["cpu_auc"],
        samples,
        tail,
    )


def image_size_xyz(path: str | os.PathLike) -> tuple[int, ...] | None:
    """Image size in (x, y, z) as the paper's Table 7 prints it (header only), or None."""
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return tuple(int(v) for v in reader.GetSize())
    except RuntimeError:
        return None


def predict_command(
    case: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: str | os.PathLike,
    params: str | os.PathLike | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The per-case command: ``python -m flarelib.infer.pipeline CASE OUT --model CKPT ...``."""
    cmd = [
        python,
        "-m",
        "flarelib.infer.pipeline",
        str(case),
        str(out_dir),
        "--model",
        str(model),
        "--no-progress",
    ]
    if params is not None:
        cmd += ["--params", str(params)]
    return cmd + list(extra)


def measure_cases(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model: str | os.PathLike,
    params: str | os.PathLike | None = None,
    extra: Sequence[str] = (),
    interval_s: float = INTERVAL_S,
    gpu_index: int | Literal["auto"] | None = "auto",
    ram_scope: Literal["tree", "system"] = "tree",
    progress: bool = True,
) -> list[CaseEfficiency]:
    """FLARE-faithful measurement: one ``flarelib predict`` process per case, timed and sampled."""
    from tqdm.auto import tqdm

    results = []
    for case in tqdm(list(inputs), desc="efficiency", unit="case", disable=not progress):
        cmd = predict_command(case, out_dir, model, params, extra)
        name = Path(case).name.split(".")[0].removesuffix("_0000")  # FLARE naming: no channel suffix
        results.append(measure_command(cmd, name, image_size_xyz(case), interval_s, gpu_index, ram_scope))
    return results


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _f(v: float, digits: int = 1) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_table(results: Sequence[CaseEfficiency], paper: bool = True) -> str:
    """Markdown table in the paper's Table 7 layout plus RAM/CPU columns; with ``paper``, the
    paper's Table 7 rows follow (RTX 4090, time and GPU only)."""
    head = (
        "| Case ID | Image Size (x, y, z) | Running Time (s) | Max GPU (MB) | Total GPU (MB s) "
        "| Max RAM (MB) | Total RAM (MB s) | CPU (%) | exit |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in results:
        size = f"({', '.join(map(str, r.size_xyz))})" if r.size_xyz else ""
        lines.append(
            f"| {r.case} | {size} | {_f(r.time_s, 2)} | {_f(r.max_gpu_mb, 0)} | {_f(r.gpu_auc_mbs, 0)} "
            f"| {_f(r.max_ram_mb, 0)} | {_f(r.ram_auc_mbs, 0)} | {_f(r.cpu_percent, 1)} | {r.returncode} |"
        )
    if paper:
        for case, size, t, gmax, gauc in PAPER_TABLE7:
            lines.append(f"| paper {case} | {size} | {t:.2f} | {gmax:.0f} | {gauc:.0f} |  |  |  |  |")
    return "\n".join(lines)


def format_summary(results: Sequence[CaseEfficiency], paper: bool = True) -> str:
    """Table 8 layout: averages over the cases (ours, and the paper's row)."""
    keys = tuple(TABLE8_ROWS)
    names = tuple(name for name, _ in TABLE8_ROWS.values())

    def mean(key: str) -> float:
        vals = [getattr(r, key) for r in results if not math.isnan(getattr(r, key))]
        return sum(vals) / len(vals) if vals else math.nan

    lines = ["| | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    lines.append(f"| ours (n={len(results)}) | " + " | ".join(_f(mean(k), 2) for k in keys) + " |")
    if paper:
        lines.append("| paper (n=110, RTX 4090) | " + " | ".join(_f(PAPER_TABLE8[k], 2) for k in keys) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Tables as DataFrames (notebook 06)
# --------------------------------------------------------------------------------------------------


def voxels(size: Sequence[int] | None) -> int | None:
    """Number of voxels of an image size, or None when the size is unknown."""
    return math.prod(int(v) for v in size) if size else None


def _size_text(size: Sequence[int] | None) -> str:
    return f"({', '.join(map(str, size))})" if size else ""


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def spread_by_size(items: Sequence[Any], sizes: Sequence[Sequence[int] | None], n: int) -> list[Any]:
    """Up to ``n`` of ``items``, spread evenly over their image sizes (number of voxels), the
    smallest and the largest included (``n`` = 1: the median), in increasing size; ``n`` <= 0 or
    at least ``len(items)``: every item, in increasing size. Items of unknown size (None) sort last.
    """
    if len(items) != len(sizes):
        raise ValueError(f"{len(items)} items but {len(sizes)} sizes")
    order = sorted(range(len(items)), key=lambda i: (sizes[i] is None, voxels(sizes[i]) or 0, i))
    if n <= 0 or n >= len(order):
        return [items[i] for i in order]
    if n == 1:
        picks = [(len(order) - 1) // 2]
    else:
        step = (len(order) - 1) / (n - 1)
        picks = [math.floor(k * step + 0.5) for k in range(n)]
    return [items[order[p]] for p in picks]


#: Column names of :func:`table7_frame` (ours, then the paper's nearest case).
TABLE7_COLUMNS: tuple[str, ...] = (
    "size (x, y, z)",
    "voxels",
    "time (s)",
    "max GPU (MB)",
    "GPU AUC (MB s)",
    "max RAM (MB)",
    "RAM AUC (MB s)",
    "CPU (%)",
    "exit",
    "paper case",
    "paper size (x, y, z)",
    "paper voxels",
    "paper time (s)",
    "paper max GPU (MB)",
    "paper GPU AUC (MB s)",
)


def _nearest_paper_case(n_voxels: int | None) -> tuple | None:
    """The paper's Table 7 row whose image has the number of voxels nearest (in ratio) to ours."""
    if not n_voxels:
        return None
    return min(PAPER_TABLE7, key=lambda row: abs(math.log(math.prod(row[1]) / n_voxels)))


def table7_frame(results: Sequence[CaseEfficiency]):
    """Our Table 7 as a DataFrame indexed by case, in increasing image size (voxels; unknown size
    last), columns :data:`TABLE7_COLUMNS`: our time and memory figures, then the paper's case of
    Table 7 nearest in voxels (RTX 4090: time and GPU only; empty when our size is unknown)."""
    import pandas as pd

    rows = []
    for r in results:
        nv = voxels(r.size_xyz)
        near = _nearest_paper_case(nv)
        rows.append(
            {
                "case": r.case,
                "size (x, y, z)": _size_text(r.size_xyz),
                "voxels": nv,
                "time (s)": r.time_s,
                "max GPU (MB)": r.max_gpu_mb,
                "GPU AUC (MB s)": r.gpu_auc_mbs,
                "max RAM (MB)": r.max_ram_mb,
                "RAM AUC (MB s)": r.ram_auc_mbs,
                "CPU (%)": r.cpu_percent,
                "exit": r.returncode,
                "paper case": near[0] if near else "",
                "paper size (x, y, z)": _size_text(near[1]) if near else "",
                "paper voxels": math.prod(near[1]) if near else None,
                "paper time (s)": _nan(near[2] if near else None),
                "paper max GPU (MB)": _nan(near[3] if near else None),
                "paper GPU AUC (MB s)": _nan(near[4] if near else None),
            }
        )
    frame = pd.DataFrame(rows, columns=["case", *TABLE7_COLUMNS])
    frame["_unknown"] = frame["voxels"].isna()
    frame = frame.sort_values(["_unknown", "voxels"], kind="stable").drop(columns="_unknown")
    for col in ("voxels", "paper voxels"):
        frame[col] = frame[col].astype("Int64")
    return frame.set_index("case")


def paper_table7_frame():
    """The paper's Table 7 (RTX 4090) as a DataFrame indexed by case, in the paper's order."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "case": case,
                "size (x, y, z)": _size_text(size),
                "voxels": math.prod(size),
                "time (s)": t,
                "max GPU (MB)": float(gmax),
                "GPU AUC (MB s)": float(gauc),
            }
            for case, size, t, gmax, gauc in PAPER_TABLE7
        ]
    ).set_index("case")


def averages(results: Sequence[CaseEfficiency]) -> dict[str, float]:
    """Table 8: the mean of each :data:`TABLE8_ROWS` quantity over the cases that ran to the end
    (exit status 0; NaN values, e.g. the GPU figures without a GPU, are skipped: all NaN gives
    NaN), and ``n_cases``, the number of those cases."""
    ok = [r for r in results if r.returncode == 0]
    out: dict[str, float] = {}
    for key in TABLE8_ROWS:
        vals = [float(getattr(r, key)) for r in ok if not math.isnan(getattr(r, key))]
        out[key] = sum(vals) / len(vals) if vals else math.nan
    out["n_cases"] = len(ok)
    return out


def table8_frame(results: Sequence[CaseEfficiency]):
    """Table 8 as a DataFrame indexed by the paper's names (Time, GPU Memory, ...): ``unit``,
    ``ours`` (:func:`averages`), ``paper`` (:data:`PAPER_TABLE8`, 110 cases on an RTX 4090) and
    ``ours / paper``. The paper's AUC CPU Time has no definition we reproduce (module docstring)."""
    import pandas as pd

    ours = averages(results)
    rows = []
    for key, (name, unit) in TABLE8_ROWS.items():
        paper = PAPER_TABLE8[key]
        rows.append(
            {
                "quantity": name,
                "unit": unit,
                "ours": ours[key],
                "paper": paper,
                "ours / paper": ours[key] / paper,
            }
        )
    return pd.DataFrame(rows).set_index("quantity")


def write_csv(results: Sequence[CaseEfficiency], path: str | os.PathLike) -> Path:
    """One row per case (:meth:`CaseEfficiency.row`), written atomically."""
    from flarelib.paths import atomic_write_text

    buf = io.StringIO()
    rows = [r.row() for r in results]
    fields = list(rows[0]) if rows else [f.name for f in dataclasses.fields(CaseEfficiency)][:11]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(Path(path), buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.evaluate.efficiency IN OUT --model CKPT [--params P] [--csv F]``."""
    from flarelib.infer.pipeline import find_inputs

    ap = argparse.ArgumentParser(
        prog="python -m flarelib.evaluate.efficiency", description=__doc__.split("\n")[0]
    )
    ap.add_argument("input", type=Path, help="image file or folder")
    ap.add_argument("output", type=Path, help="prediction folder")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--params", type=Path)
    ap.add_argument("--csv", type=Path, help="write per-case rows here")
    ap.add_argument("--ram-scope", choices=("tree", "system"), default="tree")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="arguments passed to predict")
    args = ap.parse_args(argv)
    results = measure_cases(
        find_inputs(args.input), args.output, args.model, args.params, args.extra, ram_scope=args.ram_scope
    )
    print(format_table(results))
    print()
    print(format_summary(results))
    if args.csv:
        write_csv(results, args.csv)
    return 1 if any(r.returncode for r in results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
