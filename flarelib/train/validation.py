"""Validation during training and model selection.

A :data:`Validator` is ``validate(model) -> {name: value}`` (here: Dice on whole labelled volumes);
the loop calls it with the system's evaluation model in eval mode, and a :class:`BestModelKeeper`
keeps the weights at the highest value of the selection metric (``model_best.pt``). Volumes are
(z, y, x) arrays; logits are (C, z, y, x).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flarelib.evaluate.dice import dice
from flarelib.train.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from flarelib.train.sampling import TrainVolume

Validator = Callable[[nn.Module], dict[str, float]]


def _cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class BestModelKeeper:
    """Model selection: the weights at the highest finite ``metric`` value seen so far.

    ``loop_state`` is the dict the loop saves as its checkpoints' ``"loop"`` entry; its
    ``best_value`` and ``best_iteration`` are updated here, so a resumed run competes with the run
    before it. The kept weights are a CPU copy, never a reference to the live model. With ``save``
    they are also written atomically to ``path`` (``model_best.pt``) with the stage, params hash,
    network name (``which``), iteration, metric and value.
    """

    def __init__(
        self,
        path: Path,
        loop_state: dict[str, Any],
        *,
        stage: str,
        params_hash: str,
        which: str,
        metric: str = "dice_mean",
        save: bool = True,
    ):
        self.path = Path(path)
        self.loop_state = loop_state
        self.stage, self.params_hash, self.which = stage, params_hash, which
        self.metric, self.save = metric, save
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, model: nn.Module, metrics: dict[str, float], iteration: int) -> bool:
        """Keep ``model``'s weights if ``metrics[metric]`` beats the best so far; True when it did."""
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        best = self.loop_state.get("best_value")
        if not (best is None or value > best):
            return False
        self.loop_state["best_value"], self.loop_state["best_iteration"] = value, iteration
        self.state = _cpu_copy(model)  # a copy, never a reference to the live model
        if self.save:
            save_checkpoint(
                self.path,
                {
                    "format": FORMAT_VERSION,
                    "stage": self.stage,
                    "params_hash": self.params_hash,
                    "which": self.which,
                    "iteration": iteration,
                    "metric": self.metric,
                    "value": value,
                    "state_dict": self.state,
                },
            )
        return True

    def best_state(self) -> dict[str, torch.Tensor] | None:
        """The kept weights; when none was kept here, those in ``path`` of an earlier call of the run."""
        if self.state is None and self.loop_state.get("best_value") is not None and self.path.is_file():
            return load_checkpoint(self.path)["state_dict"]
        return self.state


def tiled_logits(
    model: nn.Module,
    image: np.ndarray,
    tile_zyx: Sequence[int],
    divisor: Sequence[int] = (1, 1, 1),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Logits (C, z, y, x) of ``model`` on a whole volume by non-overlapping tiles (no blending).

    The volume is padded (edge values) to a multiple of the tile, and each tile size is a multiple
    of ``divisor``. Kept to reproduce early diagnostics: it scores a net much lower than the
    sliding-window predictor does (tiles that are mostly padding change instance-norm statistics;
    organs cut at tile borders lose context; benchmarks/RESULTS.md).
    """
    shape = np.asarray(image.shape)
    tile = np.asarray(
        [
            max(int(d), math.ceil(min(t, s) / d) * int(d))
            for t, s, d in zip(tile_zyx, shape, divisor, strict=True)
        ]
    )
    padded_shape = np.ceil(shape / tile).astype(int) * tile
    pad = [(0, int(p - s)) for p, s in zip(padded_shape, shape, strict=True)]
    vol = torch.from_numpy(np.pad(image.astype(np.float32), pad, mode="edge"))
    out: torch.Tensor | None = None
    for z in range(0, padded_shape[0], tile[0]):
        for y in range(0, padded_shape[1], tile[1]):
            for x in range(0, padded_shape[2], tile[2]):
                sl = (slice(z, z + tile[0]), slice(y, y + tile[1]), slice(x, x + tile[2]))
                pred = model(vol[sl][None, None].to(device))
                if isinstance(pred, list | tuple):
                    pred = pred[0]
                pred = pred[0].float().cpu()
                if out is None:
                    out = torch.empty((pred.shape[0], *padded_shape.tolist()), dtype=torch.float32)
                out[(slice(None), *sl)] = pred
    assert out is not None
    return out[:, : shape[0], : shape[1], : shape[2]]


def dice_validator(
    volumes: Sequence[TrainVolume],
    window_zyx: Sequence[int],
    device: torch.device | str | None = None,
    predictor_factory: Callable[[nn.Module], Callable[[np.ndarray], np.ndarray]] | None = None,
) -> Validator:
    """``validate(model) -> {"dice_mean", "dice_<id>"...}`` on whole labelled volumes.

    Labels come from ``predictor_factory(model)(image)`` or, by default, from
    :class:`flarelib.infer.sliding.SlidingWindowPredictor` with window ``window_zyx`` (step 0.5 and the
    step rule, Gaussian, no mirroring) over the model's 14 FLARE classes. Per volume, Dice
    of each annotated organ present in the label or the prediction (absent in both: skipped);
    ``dice_mean`` is the mean over volumes of their mean organ Dice.
    """
    vols = [v for v in volumes if v.label is not None]

    def validate(model: nn.Module) -> dict[str, float]:
        if predictor_factory is not None:
            predict = predictor_factory(model)
        else:
            params = list(model.parameters())
            dev = device if device is not None else (params[0].device if params else torch.device("cpu"))

            from flarelib.infer.sliding import SlidingWindowPredictor
            from flarelib.labels import NUM_CLASSES

            swp = SlidingWindowPredictor(model, NUM_CLASSES, window_zyx, mirror_axes=(), device=dev)
            predict = swp.predict_labels

        per_class: dict[int, list[float]] = {}
        means = []
        for v in vols:
            pred = np.asarray(predict(v.image))
            scores = []
            for c in range(1, len(v.annotated)):
                if not v.annotated[c]:
                    continue
                d = dice(v.label == c, pred == c, empty=None)
                if d is None:
                    continue
                scores.append(d)
                per_class.setdefault(c, []).append(d)
            if scores:
                means.append(float(np.mean(scores)))
        out = {"dice_mean": float(np.mean(means)) if means else float("nan")}
        out.update({f"dice_{c}": float(np.mean(s)) for c, s in sorted(per_class.items())})
        return out

    return validate
