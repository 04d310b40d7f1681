"""The checkpoint format, shared by training (:mod:`flarelib.train`) and prediction
(:mod:`flarelib.infer`), which both import it and not each other.

A checkpoint is a ``torch.save`` dict holding only tensors and plain Python values (so it loads with
``weights_only=True``)::

    {"format": 1, "stage", "params_hash", "iteration", "total_iterations", "world_size",
     "modules": {name: state_dict}, "optimizers": {name: state_dict}, "scaler": state_dict,
     "system": {...system extras...}, "rng": {...}, "loop": {best metric, ...}}

``model_best.pt`` holds ``{"state_dict", "which", ...}``; a model file of :func:`save_model_file` is
the loop's layout plus the resolved ``"params"``. Every file is written through a temporary file in
the same folder and ``os.replace``, so a crash never leaves a half-written checkpoint.

**Params discovery** (:func:`load_model`): the network's params come from the ``params`` argument
when given, else from the checkpoint's ``"params"`` entry, else from a resolved ``params.yaml``
beside the checkpoint or one folder up (what :func:`flarelib.repro.save_run_record` writes), else it
is an error that says to pass ``--params``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from flarelib.config import Params, load_params, params_from_dict, params_hash, params_to_dict
from flarelib.errors import FlareInputError
from flarelib.models.unet import UNet3D, unet_from_params
from flarelib.paths import atomic_writer

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "model_best.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    with atomic_writer(Path(path)) as fh:
        torch.save(state, fh)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FlareInputError(path, "checkpoint not found", "train the stage first or check the path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file: never advise deleting it (it may be the only copy)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "Weights only load failed" in first or type(exc).__name__ == "UnpicklingError":
            detail = "not a torch.save file of tensors and plain values: truncated, corrupt or foreign"
        else:
            detail = f"{type(exc).__name__}: {first[:160]}"
        raise FlareInputError(
            path,
            f"cannot read checkpoint ({detail}); the file is left as it is",
            "point at a checkpoint written by flarelib train; to train this stage again from scratch, "
            "run flarelib train with --restart (or --out a new folder)",
        ) from None


def save_model_file(
    path: str | Path,
    params: Params,
    modules: Mapping[str, Mapping[str, torch.Tensor]],
    stage: str = "export",
    **meta: Any,
) -> Path:
    """Write a self-contained model file for ``flarelib predict``: the training loop's checkpoint
    layout (``format``, ``stage``, ``params_hash``, ``modules``) plus the resolved ``params``.

    ``modules`` maps names (``"teacher"``, ``"student"``) to state dicts. Written atomically.
    """
    state = {
        "format": FORMAT_VERSION,
        "stage": stage,
        "params_hash": params_hash(params),
        "modules": {k: dict(v) for k, v in modules.items()},
        "params": params_to_dict(params),
        **meta,
    }
    return save_checkpoint(path, state)


def _params_for(ckpt: Mapping[str, Any], path: Path, params_file: str | Path | None) -> Params:
    if params_file is not None:
        return load_params(params_file)
    if isinstance(ckpt.get("params"), Mapping):
        return params_from_dict(ckpt["params"], source=str(path))
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "params.yaml"
        if candidate.is_file():
            return load_params(candidate)
    raise FlareInputError(
        path,
        "the checkpoint holds no params and there is no params.yaml beside it",
        "pass --params FILE (the resolved params.yaml of the run that trained it)",
    )


def _state_dict_for(ckpt: Mapping[str, Any], path: Path, which: str) -> tuple[dict[str, Any], str]:
    if "modules" in ckpt:
        modules = ckpt["modules"]
        if which in modules:
            return modules[which], which
        nets = [k for k in modules if k in ("teacher", "student", "model")]
        if len(nets) == 1:
            return modules[nets[0]], nets[0]
        raise FlareInputError(
            path,
            f"no '{which}' weights (the checkpoint has {sorted(modules)})",
            f"set infer.weights to one of {sorted(nets) or sorted(modules)}",
        )
    if "state_dict" in ckpt:
        return ckpt["state_dict"], str(ckpt.get("which", "model"))
    raise FlareInputError(
        path,
        "not a flarelib model checkpoint (no 'modules' or 'state_dict')",
        "pass checkpoint.pt / model_best.pt of a training stage, or a file of save_model_file",
    )


def init_weights(model: torch.nn.Module, checkpoint: str | Path, which: str = "teacher") -> str:
    """Load a checkpoint's ``which`` network (else its only one) into ``model`` in place, to start a
    training from it (``train.init_from``). Returns the network loaded; a checkpoint of another
    architecture is a FlareInputError naming the file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FlareInputError(path, "train.init_from: checkpoint not found", "train that stage first")
    state, loaded = _state_dict_for(load_checkpoint(path), path, which)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FlareInputError(
            path,
            f"train.init_from: weights do not fit this network ({str(exc).splitlines()[0][:160]})",
            "start from a checkpoint trained with the same unet params",
        ) from None
    return loaded


def load_model(
    checkpoint: str | Path,
    params: Params | str | Path | None = None,
    weights: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[UNet3D, Params, dict[str, Any]]:
    """Build the U-Net of the checkpoint's params and load its weights; eval mode on ``device``.

    ``params``: a :class:`Params`, a params file, or None (from the checkpoint, see the module
    docstring). ``weights``: ``"teacher"`` / ``"student"``, default ``params.infer.weights``.
    Returns ``(model, params, info)`` with ``info["weights"]`` the network actually loaded.
    """
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    p = params if isinstance(params, Params) else _params_for(ckpt, path, params)
    which = weights or p.infer.weights
    state, loaded = _state_dict_for(ckpt, path, which)
    model = unet_from_params(p.unet)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FlareInputError(
            path,
            f"weights do not fit the params' network ({str(exc).splitlines()[0][:160]})",
            "pass the --params of the run that trained this checkpoint",
        ) from None
    model.eval().to(torch.device(device))
    info = {
        k: v for k, v in ckpt.items() if k not in ("modules", "optimizers", "state_dict", "rng", "params")
    }
    info["weights"] = loaded
    return model, p, info
