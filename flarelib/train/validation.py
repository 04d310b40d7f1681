"""Validation during training: ``validate(model) -> {name: value}`` on whole labelled volumes.

The loop calls a :data:`Validator` with the system's evaluation model in eval mode. Volumes are
(z, y, x) arrays; logits are (C, z, y, x).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from flarelib.evaluate.dice import dice
from flarelib.train.sampling import TrainVolume

Validator = Callable[[nn.Module], dict[str, float]]


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
