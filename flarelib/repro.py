"""Reproducibility: seeding, the run record (params, versions, git sha) saved beside results, and
the description of the machine a measurement ran on (:func:`describe_machine`)."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from flarelib.paths import atomic_write_text, project_root

#: Packages whose versions are recorded with every result.
TRACKED_PACKAGES = (
    "flarelib",
    "torch",
    "numpy",
    "scipy",
    "SimpleITK",
    "nibabel",
    "scikit-image",
    "connected-components-3d",
    "PyYAML",
    "papermill",
    "jupytext",
    "matplotlib",
    "pandas",
)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy's legacy global state and torch (if installed); return a numpy Generator.

    Library code takes Generators explicitly; this only tames third-party code that uses globals.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the global state
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.random.default_rng(seed)


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_sha(root: Path | None = None) -> str:
    """The project's git commit (``+dirty`` when the tree has changes), or ``unknown``."""
    root = root or project_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(float(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    return None


def _gpus() -> list[dict]:
    """Name and memory (MiB) of each NVIDIA GPU, through NVML or ``nvidia-smi``; never through
    CUDA, so that describing the machine adds no CUDA context to a device being measured."""
    try:
        import pynvml

        pynvml.nvmlInit()
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            out.append({"name": name, "memory_mb": round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20)})
        return out
    except Exception:  # no package, no driver, no device
        pass
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    out = []
    for line in text.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            out.append({"name": name.strip(), "memory_mb": int(float(mem))})
        except ValueError:
            continue
    return out


def describe_machine() -> dict:
    """The machine a measurement ran on: CPU model, logical cores (and those this process may use),
    RAM (GiB), GPUs (name, memory MiB; ``gpu`` is the first one's name or None), torch and its CUDA
    build, platform and python. Reads no CUDA state (see :func:`_gpus`)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        import torch

        torch_version, torch_cuda = torch.__version__, torch.version.cuda
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version, torch_cuda = "not installed", None
    gpus = _gpus()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": _ram_gib(),
        "gpu": gpus[0]["name"] if gpus else None,
        "gpus": gpus,
        "torch": torch_version,
        "torch_cuda": torch_cuda,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def run_record(extra: dict | None = None) -> dict:
    """What is saved beside every result: versions, git sha, machine, time."""
    record = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "versions": package_versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": sys.executable,
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),  # flarelib's default cap
        },
    }
    if extra:
        record.update(extra)
    return record


def save_run_record(folder: Path, params=None, extra: dict | None = None) -> Path:
    """Write ``run.json`` (and ``params.yaml`` when params are given) into ``folder``, atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if params is not None:
        from flarelib.config import dump_params

        dump_params(params, folder / "params.yaml")
    return atomic_write_text(folder / "run.json", json.dumps(run_record(extra), indent=2) + "\n")
