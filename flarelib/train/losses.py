"""Segmentation losses: partial-label Dice + CE with deep supervision, and the consistency term.

Tensors are ``(B, C, Z, Y, X)`` logits and ``(B, Z, Y, X)`` integer targets (FLARE ids 0..13);
``annotated`` is a ``(B, C)`` boolean mask, True where sample ``b`` supervises class ``c``
(background is always True; see :meth:`flarelib.labels.LabelMap.annotated_mask`).

Partial labels (STUDY.md "Partial labels"). A sample that does not annotate organ ``u`` may contain
``u`` in voxels labelled background, so "background" there means "background or ``u``". We ignore
``u`` exactly by removing it from that sample's softmax:

* CE uses ``log_softmax`` over the sample's annotated classes only (the logits of unannotated classes
  are replaced by ``-inf`` with ``masked_fill``, whose backward passes no gradient to them);
* Dice uses the softmax over the annotated classes only and is computed only for annotated classes.

So ``d loss / d logit_u == 0`` exactly for every unannotated ``u`` of that sample (tested), while the
other samples of the batch still train ``u``. (The alternative "marginal loss", which merges
``p_u`` into background, does pass gradient to ``logit_u``; we do not use it.) Voxels whose target is
itself an unannotated class of their sample (inconsistent data) are ignored by both terms.

Deep supervision (eq. 2): one Dice + CE per head, targets downsampled by nearest neighbour to the
head's size, weights ``1, 1/2, 1/4, 1/8`` normalised to sum 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

DICE_SMOOTH = 1e-5


def deep_supervision_weights(n_heads: int) -> list[float]:
    """Weights ``2**-k``, ``k = 0..n_heads-1``, normalised to sum 1 (4 heads: (1,.5,.25,.125)/1.875)."""
    if n_heads < 1:
        raise ValueError("need at least one output head")
    raw = [0.5**k for k in range(n_heads)]
    total = sum(raw)
    return [w / total for w in raw]


def downsample_target(target: Tensor, size_zyx: tuple[int, int, int] | torch.Size) -> Tensor:
    """Nearest-neighbour resize of an integer target ``(B, Z, Y, X)`` to ``size_zyx`` (same dtype)."""
    size = tuple(int(s) for s in size_zyx)
    if tuple(target.shape[-3:]) == size:
        return target
    out = F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0]
    return out.to(target.dtype)


def masked_log_softmax(logits: Tensor, annotated: Tensor | None) -> Tensor:
    """``log_softmax`` over channel 1, over each sample's annotated classes only.

    ``logits`` (B, C, Z, Y, X); ``annotated`` (B, C) bool or None (= all classes). Unannotated
    channels come out as ``-inf`` and receive exactly zero gradient.
    """
    if annotated is not None and not bool(annotated.all()):
        drop = ~annotated.to(device=logits.device, dtype=torch.bool)
        drop = drop.view(*drop.shape, *([1] * (logits.ndim - 2)))
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logits, dim=1)


def partial_dice_ce(
    logits: Tensor,
    target: Tensor,
    annotated: Tensor | None = None,
    *,
    smooth: float = DICE_SMOOTH,
    dice_include_background: bool = False,
) -> dict[str, Tensor]:
    """Dice + CE of one head, nnU-Net style, ignoring each sample's unannotated classes.

    Dice is batch Dice (tp/fp/fn summed over the batch and the patch, per class; ``smooth`` added to
    numerator and denominator) averaged over the foreground classes that at least one sample of the
    batch annotates; the returned ``dice`` term is ``1 - mean dice``. CE is the mean over valid voxels.
    Computed in float32. Returns ``{"loss", "ce", "dice"}`` (scalars; ``loss = ce + dice``).
    """
    logits = logits.float()
    n, c = logits.shape[:2]
    target = target.long()
    if annotated is None:
        annotated = torch.ones(n, c, dtype=torch.bool, device=logits.device)
    annotated = annotated.to(device=logits.device, dtype=torch.bool)
    if annotated.shape != (n, c):
        raise ValueError(f"annotated must be (B, C) = {(n, c)}, got {tuple(annotated.shape)}")

    logp = masked_log_softmax(logits, annotated)
    # Voxels whose target class is not annotated in their own sample are ignored (inconsistent data).
    valid = torch.gather(annotated, 1, target.flatten(1)).view_as(target)
    all_valid = bool(valid.all())

    nll = -torch.gather(logp, 1, target[:, None])[:, 0]
    if all_valid:
        ce = nll.mean()
    else:
        ce = torch.where(valid, nll, torch.zeros_like(nll)).sum() / valid.sum().clamp_min(1)

    probs = logp.exp()  # exactly 0 on unannotated channels
    onehot = torch.zeros_like(probs).scatter_(1, target[:, None], 1.0)
    if not all_valid:
        vmask = valid[:, None].to(probs.dtype)
        probs = probs * vmask
        onehot = onehot * vmask
    # A class enters the batch sums only through the samples that annotate it.
    w = annotated.to(probs.dtype).view(n, c, *([1] * (logits.ndim - 2)))
    axes = [0, *range(2, logits.ndim)]
    tp = (probs * onehot * w).sum(axes)
    fp = (probs * (1 - onehot) * w).sum(axes)
    fn = ((1 - probs) * onehot * w).sum(axes)
    dc = (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(1e-8)
    classes = annotated.any(0)
    if not dice_include_background:
        classes = classes.clone()
        classes[0] = False
    dice = 1 - dc[classes].mean() if bool(classes.any()) else logits.sum() * 0
    return {"loss": ce + dice, "ce": ce, "dice": dice}


def deep_supervision_loss(
    outputs: Tensor | list[Tensor] | tuple[Tensor, ...],
    target: Tensor,
    annotated: Tensor | None = None,
    levels: int = 4,
) -> dict[str, Tensor]:
    """Eq. 2: sum over the first ``levels`` heads of ``w_k * (Dice + CE)`` (:func:`deep_supervision_weights`).

    ``outputs`` is the network's list ``[full, 1/2, 1/4, ...]`` (or one tensor); ``target`` is at full
    resolution and is downsampled (nearest) to each head's size. Returns ``{"loss", "ce", "dice"}``
    where ``ce``/``dice`` are the full-resolution head's terms (for logging).
    """
    heads = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    heads = heads[: max(1, levels)]
    weights = deep_supervision_weights(len(heads))
    total: Tensor | None = None
    first: dict[str, Tensor] = {}
    for k, (w, head) in enumerate(zip(weights, heads, strict=True)):
        terms = partial_dice_ce(head, downsample_target(target, head.shape[-3:]), annotated)
        total = w * terms["loss"] if total is None else total + w * terms["loss"]
        if k == 0:
            first = terms
    assert total is not None
    return {"loss": total, "ce": first["ce"].detach(), "dice": first["dice"].detach()}


def softmax_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Eq. 1: mean squared difference of the softmax outputs; the teacher side is detached."""
    ps = torch.softmax(student_logits.float(), dim=1)
    pt = torch.softmax(teacher_logits.detach().float(), dim=1)
    return ((ps - pt) ** 2).mean()


def consistency_lambda(progress: float, weight: float = 0.1, rampup: float = 5.0) -> float:
    """Eq. 3 ramp ``weight * exp(-rampup * (1 - p)**2)``; ``p`` in [0, 1] is the fraction of training done."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(weight * math.exp(-rampup * (1.0 - p) ** 2))
