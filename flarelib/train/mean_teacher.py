"""Mean Teacher training system (paper eq. 1-3; STUDY.md "Semi-supervised training").

Each iteration: the student sees the labelled and unlabelled patches in one forward pass; the
supervised loss ``L_deep`` (partial-label Dice + CE with deep supervision, eq. 2) uses the labelled
half; the teacher (an EMA of the student, no gradient) sees the unlabelled patches plus clipped
Gaussian noise ``clip(N(0, std^2), -clip, clip)``, and the consistency loss ``L_con`` is the MSE
between the student's and the teacher's softmax on them (eq. 1). The optimised total is
``lambda(p) * L_con + L_deep`` with ``lambda(p) = w * exp(-rampup * (1 - p)^2)`` (eq. 3); unlike
the authors' code, the total is not overwritten by the supervised loss, so the consistency term
trains the student (tested).

``mode="supervised"`` drops the unlabelled half and the consistency term; the EMA teacher is still
kept so that inference can use teacher weights in every mode.

The teacher runs in eval mode (for the U-Net's instance norm that equals train mode; with batch
norm it uses the EMA'd running statistics). EMA: after optimizer step ``t`` (0-based),
``teacher = d * teacher + (1 - d) * student`` with ``d = min(1 - 1/(t + 1), ema_decay)``, over the
parameters and the floating-point buffers; integer buffers (e.g. ``num_batches_tracked``) are copied.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flarelib.config import TrainParams
from flarelib.train.distributed import DistInfo
from flarelib.train.losses import consistency_lambda, deep_supervision_loss, softmax_mse
from flarelib.train.schedules import poly_lr
from flarelib.train.systems import StepContext, TrainSystem


def ema_decay_at(step: int, ema_decay: float) -> float:
    """``min(1 - 1/(step + 1), ema_decay)`` (step 0 copies the student)."""
    return min(1.0 - 1.0 / (step + 1), float(ema_decay))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student`` for parameters and float buffers."""
    t_state = teacher.state_dict(keep_vars=True)
    for name, s in student.state_dict(keep_vars=True).items():
        t = t_state[name]
        if t.dtype.is_floating_point:
            t.data.mul_(decay).add_(s.data.to(t.dtype), alpha=1.0 - decay)
        else:
            t.data.copy_(s.data)


def _seed_of(*values: int) -> int:
    return int(
        np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1, np.uint64)[0] >> 1
    )


class MeanTeacher(TrainSystem):
    """Mean Teacher (or supervised) segmentation system around a student network.

    ``student`` returns a list of deep-supervision logits in train mode (or one tensor);
    ``teacher`` defaults to ``copy.deepcopy(student)``. ``params`` is :class:`flarelib.config.TrainParams`
    (mode, optimizer, EMA, consistency, noise, deep supervision, gradient clip); ``seed`` and the
    rank drive the teacher noise, one stream per iteration (reproducible on resume).
    ``eval_weights`` picks the network validation evaluates and model selection keeps.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None = None,
        params: TrainParams | None = None,
        *,
        seed: int = 0,
        eval_weights: str = "teacher",
    ):
        self.params = params if params is not None else TrainParams()
        self.student = student.train()
        self.teacher = copy.deepcopy(student) if teacher is None else teacher
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()
        self._forward: nn.Module = self.student
        self.seed = int(seed)
        self.rank = 0
        if eval_weights not in ("teacher", "student"):
            raise ValueError(f"eval_weights must be 'teacher' or 'student', got {eval_weights!r}")
        self.eval_name = eval_weights
        self.optimizer: torch.optim.Optimizer | None = None

    # ---- TrainSystem ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student, "teacher": self.teacher}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``train.optimizer``: the paper's SGD (Nesterov, ``momentum``), or Adam (default betas), the
        deviation of the CPU profiles (benchmarks/RESULTS.md: at a few hundred small patches the
        paper's SGD learns only the liver). Both with ``weight_decay`` and the poly schedule."""
        p = self.params
        if p.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.student.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(
                self.student.parameters(),
                lr=p.lr,
                momentum=p.momentum,
                nesterov=p.nesterov,
                weight_decay=p.weight_decay,
            )
        return {p.optimizer: self.optimizer}

    def learning_rate(self, name: str, iteration: int, total: int) -> float:
        return poly_lr(self.params.lr, iteration, total, self.params.poly_exponent)

    def wrap_distributed(self, info: DistInfo) -> bool:
        from torch.nn.parallel import DistributedDataParallel as DDP

        self.rank = info.rank
        n_heads = 1 + int(getattr(self.student, "num_ds_heads", 0))
        unused = self.params.deep_supervision_levels < n_heads
        ids = [info.device.index] if info.device.type == "cuda" else None
        self._forward = DDP(self.student, device_ids=ids, find_unused_parameters=unused)
        return True

    def eval_model(self) -> nn.Module:
        return self.teacher if self.eval_name == "teacher" else self.student

    # ---- the method ----------------------------------------------------------------------------
    def teacher_noise(self, x: Tensor, iteration: int) -> Tensor:
        """``clip(N(0, std^2), -clip, clip)`` shaped like ``x``, from the (seed, rank, iteration) stream."""
        gen = torch.Generator(device=x.device)
        gen.manual_seed(_seed_of(self.seed, self.rank, iteration, 7))
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=torch.float32)
        clip = self.params.teacher_noise_clip
        return (noise * self.params.teacher_noise_std).clamp_(-clip, clip).to(x.dtype)

    def compute_losses(
        self, batch: dict[str, Tensor], progress: float, iteration: int = 0, ctx: StepContext | None = None
    ) -> dict[str, Tensor]:
        """Forward passes and losses of one iteration (no backward). Keys: ``loss`` (eq. 3),
        ``loss_sup``, ``ce``, ``dice``, ``loss_con``, ``lambda``."""
        p = self.params
        image_l, label_l = batch["image_l"], batch["label_l"]
        annotated = batch.get("annotated_l")
        use_u = p.mode == "mean_teacher" and "image_u" in batch and batch["image_u"].shape[0] > 0
        n_l = image_l.shape[0]
        autocast = ctx.autocast() if ctx is not None else torch.autocast("cpu", enabled=False)
        x = torch.cat([image_l, batch["image_u"]]) if use_u else image_l
        with autocast:
            out = self._forward(x)
        heads = [out] if isinstance(out, Tensor) else list(out)
        sup = deep_supervision_loss([h[:n_l] for h in heads], label_l, annotated, p.deep_supervision_levels)
        zero = sup["loss"].new_zeros(())
        lam = consistency_lambda(progress, p.consistency_weight, p.consistency_rampup) if use_u else 0.0
        con = zero
        if use_u:
            image_u = batch["image_u"]
            with torch.no_grad(), autocast:
                t_out = self.teacher(image_u + self.teacher_noise(image_u, iteration))
            if not isinstance(t_out, Tensor):
                t_out = t_out[0]
            con = softmax_mse(heads[0][n_l:], t_out)
        total = sup["loss"] + lam * con if use_u else sup["loss"]
        return {
            "loss": total,
            "loss_sup": sup["loss"],
            "ce": sup["ce"],
            "dice": sup["dice"],
            "loss_con": con,
            "lambda": torch.tensor(lam),
        }

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, float]:
        if self.optimizer is None:
            raise RuntimeError("make_optimizers() first (the training loop does it)")
        label = batch["label_l"]
        if label.dtype != torch.long:
            batch = {**batch, "label_l": label.long()}
        losses = self.compute_losses(batch, ctx.progress, ctx.iteration, ctx)
        norm = ctx.step(losses["loss"], self.optimizer, clip=self.params.grad_clip)
        ema_update(self.teacher, self.student, ema_decay_at(ctx.iteration, self.params.ema_decay))
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["grad_norm"] = norm
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"eval_weights": self.eval_name}
