"""Reproducibility: seeding, and the run record (params, versions, git sha) saved beside results."""

from __future__ import annotations

import json
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
