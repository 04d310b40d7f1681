"""Training checkpoints: RNG capture/restore, stage/params checks on resume (the file format and
atomic writes are :mod:`flarelib.checkpoint`'s).

A checkpoint is a ``torch.save`` dict holding only tensors and plain Python values (so it loads with
``weights_only=True``)::

    {"format": 1, "stage", "params_hash", "iteration", "total_iterations", "world_size",
     "modules": {name: state_dict}, "optimizers": {name: state_dict}, "scaler": state_dict,
     "system": {...system extras...}, "rng": {...}, "loop": {best metric, ...}}

It is written through a temporary file in the same folder and ``os.replace``, so a crash never
leaves a half-written checkpoint. A stage never resumes another stage's checkpoint: a different
``stage`` or ``params_hash`` is an error naming the file and the fix.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flarelib.checkpoint import (  # the format lives in flarelib.checkpoint; re-exported here
    BEST_NAME,
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    load_checkpoint,
    save_checkpoint,
)
from flarelib.errors import FlareInputError

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "capture_rng",
    "check_compatible",
    "load_checkpoint",
    "load_model_weights",
    "restore_rng",
    "save_checkpoint",
]


def check_compatible(ckpt: dict[str, Any], path: Path, stage: str, params_hash: str) -> None:
    """Raise :class:`FlareInputError` when ``ckpt`` belongs to another stage or other params."""
    fix = (
        f"run with --restart to train stage '{stage}' from scratch (it replaces {path.name}), "
        "or pass --out a new folder, or use the output folder of the stage that wrote it"
    )
    if ckpt.get("format") != FORMAT_VERSION:
        raise FlareInputError(path, f"checkpoint format {ckpt.get('format')!r} is not {FORMAT_VERSION}", fix)
    if ckpt.get("stage") != stage:
        raise FlareInputError(path, f"checkpoint belongs to stage '{ckpt.get('stage')}', not '{stage}'", fix)
    if params_hash and ckpt.get("params_hash") != params_hash:
        raise FlareInputError(
            path,
            f"checkpoint was trained with params hash {ckpt.get('params_hash')}, these params hash to "
            f"{params_hash}",
            fix,
        )


# --------------------------------------------------------------------------------------------------
# RNG state
# --------------------------------------------------------------------------------------------------


def capture_rng(np_generator: np.random.Generator | None = None) -> dict[str, Any]:
    """Python, numpy (legacy global and ``np_generator``), torch CPU and CUDA RNG states (plain types)."""
    legacy = np.random.get_state()  # noqa: NPY002 - restored for third-party code that uses it
    state: dict[str, Any] = {
        "python": _plain(random.getstate()),
        "numpy_legacy": [legacy[0], torch.from_numpy(np.asarray(legacy[1]).astype(np.int64)), *legacy[2:]],
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if np_generator is not None:
        state["numpy_generator"] = np_generator.bit_generator.state
    return state


def restore_rng(state: dict[str, Any], np_generator: np.random.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    leg = state["numpy_legacy"]
    np.random.set_state((leg[0], np.asarray(leg[1], dtype=np.uint32), *leg[2:]))  # noqa: NPY002
    torch.set_rng_state(state["torch_cpu"])
    if state.get("torch_cuda") and torch.cuda.is_available():
        cuda = state["torch_cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    if np_generator is not None and "numpy_generator" in state:
        np_generator.bit_generator.state = state["numpy_generator"]


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


def load_model_weights(
    module: torch.nn.Module, path: str | os.PathLike, which: str = "teacher"
) -> dict[str, Any]:
    """Load ``which`` (``"teacher"``, ``"student"``, ``"model"``, ...) from a checkpoint or a
    ``model_best.pt`` into ``module``; returns the file's metadata (everything but the weights)."""
    ckpt = load_checkpoint(path)
    if "modules" in ckpt:
        modules = ckpt["modules"]
        if which not in modules:
            raise FlareInputError(
                path, f"no '{which}' weights (has {sorted(modules)})", f"use one of {sorted(modules)}"
            )
        module.load_state_dict(modules[which])
    else:
        module.load_state_dict(ckpt["state_dict"])
    return {k: v for k, v in ckpt.items() if k not in ("modules", "optimizers", "state_dict")}
