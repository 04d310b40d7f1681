"""What the training loop runs: a :class:`TrainSystem`, stepping through a :class:`StepContext`.

A system (:class:`~flarelib.train.mean_teacher.MeanTeacher`, :class:`~flarelib.train.cyclegan.CycleGAN`)
owns the networks, builds its optimizers, names their learning-rate schedule and does one training
step on a batch through a :class:`StepContext` (autocast, scaled backward, unscale, gradient-norm
clip, optimizer step). Everything else belongs to :func:`flarelib.train.loop.train`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from flarelib.train.distributed import DistInfo, all_reduce_mean


class StepContext:
    """What a system's ``training_step`` uses: autocast, and ``step(loss, optimizer)``."""

    def __init__(
        self,
        device: torch.device,
        amp: bool,
        scaler: torch.amp.GradScaler,
        dist_info: DistInfo,
        total_iterations: int,
        dtype: torch.dtype = torch.float16,
    ):
        self.device = device
        self.amp = amp
        self.dtype = dtype  # autocast dtype when ``amp``: fp16 on CUDA, bf16 on CPU
        self.scaler = scaler
        self.dist = dist_info
        self.total_iterations = int(total_iterations)
        self.iteration = 0  # index of the current step (iterations completed before it)
        self.manual_grad_sync = False  # set by the loop for systems not wrapped in DDP

    @property
    def progress(self) -> float:
        """Fraction of training done before this step, in [0, 1)."""
        return self.iteration / max(self.total_iterations, 1)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, *, clip: float | None = None
    ) -> float:
        """zero_grad, scaled backward, (gradient all-reduce), unscale, clip, optimizer step.

        Returns the gradient norm before clipping (nan when ``clip`` is None). Call
        ``scaler.update()`` is left to the loop (once per iteration, after all optimizers stepped).
        """
        params = [p for g in optimizer.param_groups for p in g["params"]]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.manual_grad_sync and self.dist.distributed:
            all_reduce_mean([p.grad for p in params if p.grad is not None], self.dist.world_size)
        norm = float("nan")
        if clip is not None and clip > 0:
            self.scaler.unscale_(optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        self.scaler.step(optimizer)
        return norm


class TrainSystem:
    """Base class of training systems. Subclasses implement the methods that raise."""

    #: The systems' evaluation model is put in eval mode for validation and saved as "best".
    eval_name: str = "model"

    def modules(self) -> dict[str, nn.Module]:
        """Networks to checkpoint, by name (the unwrapped modules)."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers, by name (called after the modules moved to the device)."""
        raise NotImplementedError

    def learning_rate(self, name: str, iteration: int, total: int) -> float:
        """Learning rate of optimizer ``name`` for step ``iteration`` of ``total``."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """One iteration on ``batch`` (already on the device); returns scalars to log."""
        raise NotImplementedError

    def eval_model(self) -> nn.Module | None:
        """The network that validation evaluates and model selection keeps (None: no validation)."""
        return None

    def to(self, device: torch.device) -> TrainSystem:
        for m in self.modules().values():
            m.to(device)
        return self

    def wrap_distributed(self, info: DistInfo) -> bool:
        """Wrap networks in DDP; return False to get manual gradient all-reduce from the loop."""
        return False

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint (plain types and tensors only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
