"""The one training loop of every stage (Mean Teacher, supervised, CycleGAN).

A *system* (:class:`TrainSystem`: :class:`~flarelib.train.mean_teacher.MeanTeacher`,
:class:`~flarelib.train.cyclegan.CycleGAN`) owns the networks, builds its optimizers, names their
learning-rate schedule and does one training step on a batch through a :class:`StepContext`
(autocast, scaled backward, unscale, gradient-norm clip, optimizer step). The loop owns everything
else:

* device, CPU threads, DDP process group (``torchrun``: env ``WORLD_SIZE > 1``; nccl on CUDA, gloo
  on CPU), broadcast of the initial weights from rank 0;
* AMP on CUDA (fp16 autocast + ``GradScaler``), fp32 on CPU;
* batches from a :class:`~flarelib.train.sampling.BatchLoader` (background workers) and the time
  spent waiting for them (``data_wait``: fraction of the step);
* atomic checkpoints every ``checkpoint_every`` iterations and at the end (rank 0 only), exact
  resume (model, teacher, optimizers, scaler, RNG states, iteration; batches are a pure function
  of ``(seed, rank, iteration)``), refusal to resume another stage's checkpoint;
* a tqdm bar, scalars to ``train_log.csv`` / ``val_log.csv`` and TensorBoard (rank 0 only);
* the validation hook ``validate(model) -> {name: value}`` called with the system's evaluation
  model in eval mode; model selection keeps a CPU *copy* of the best weights (``model_best.pt``).

Schedules (:mod:`.schedules`), DDP helpers (:mod:`.distributed`), the system interface
(:mod:`.systems`), CSV/TensorBoard logs (:mod:`.train_log`) and validation (:mod:`.validation`) live
in their own modules and stay importable from here.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from flarelib.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    capture_rng,
    check_compatible,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from flarelib.train.distributed import DistInfo, broadcast_module, resolve_device, setup_distributed
from flarelib.train.sampling import BatchLoader
from flarelib.train.schedules import linear_decay_lr, poly_lr
from flarelib.train.systems import StepContext, TrainSystem
from flarelib.train.train_log import CsvLog, tensorboard_writer
from flarelib.train.validation import Validator, dice_validator, tiled_logits

__all__ = [
    "CsvLog",
    "DistInfo",
    "LoopConfig",
    "LoopResult",
    "StepContext",
    "TrainSystem",
    "Validator",
    "broadcast_module",
    "dice_validator",
    "linear_decay_lr",
    "poly_lr",
    "resolve_device",
    "setup_distributed",
    "tiled_logits",
    "train",
]


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LoopConfig:
    """Settings of one training run (one stage). ``out_dir`` receives checkpoint and logs."""

    stage: str
    out_dir: Path
    iterations: int
    seed: int = 0
    params_hash: str = ""
    checkpoint_every: int = 1000
    validate_every: int = 0  # 0: validate only at the end (when a validator is given)
    log_every: int = 10  # rows are flushed to CSV/TensorBoard every this many iterations
    num_workers: int = 0
    prefetch: int = 2
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    amp: bool = True  # CUDA only
    device: str | None = None  # None/"auto": CUDA if available
    tensorboard: bool = True
    progress: bool = True
    resume: bool = True
    select_metric: str = "dice_mean"  # higher is better
    save_best: bool = True


@dataclasses.dataclass
class LoopResult:
    """What a run did: the rows it logged (this process's part of the run) and the best model."""

    iteration: int
    history: list[dict[str, float]]
    val_history: list[dict[str, float]]
    best_value: float | None
    best_iteration: int | None
    best_state: dict[str, torch.Tensor] | None
    checkpoint: Path
    data_wait_fraction: float
    seconds: float


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _checkpoint_state(
    system: TrainSystem,
    optimizers: dict[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
    cfg: LoopConfig,
    iteration: int,
    world: int,
    loop_state: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "stage": cfg.stage,
        "params_hash": cfg.params_hash,
        "iteration": int(iteration),
        "total_iterations": int(cfg.iterations),
        "world_size": int(world),
        "modules": {k: m.state_dict() for k, m in system.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "scaler": scaler.state_dict(),
        "system": system.extra_state(),
        "rng": capture_rng(),
        "loop": dict(loop_state),
    }


def train(
    system: TrainSystem,
    batches: Callable[[int], dict[str, torch.Tensor]],
    cfg: LoopConfig,
    validate: Validator | None = None,
    *,
    stop_after: int | None = None,
    dist_info: DistInfo | None = None,
) -> LoopResult:
    """Train ``system`` on ``batches(i)`` for ``cfg.iterations`` iterations (resuming if possible).

    ``stop_after`` ends this call after that many completed iterations (a checkpoint is written),
    as an interruption would; calling again resumes. ``dist_info`` defaults to
    :func:`setup_distributed`. Only rank 0 writes files.
    """
    t_start = time.perf_counter()
    info = dist_info or setup_distributed(cfg.device)
    device = info.device
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = bool(cfg.amp and device.type == "cuda")
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    total = int(cfg.iterations)

    system.to(device)
    if info.distributed:
        for m in system.modules().values():
            broadcast_module(m)
    uses_ddp = system.wrap_distributed(info) if info.distributed else False
    optimizers = system.make_optimizers()
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    ctx = StepContext(device, amp, scaler, info, total)
    ctx.manual_grad_sync = info.distributed and not uses_ddp

    # ---- resume -------------------------------------------------------------------------------
    start = 0
    loop_state: dict[str, Any] = {"best_value": None, "best_iteration": None}
    if ckpt_path.is_file() and cfg.resume:
        # CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
        ckpt = load_checkpoint(ckpt_path, map_location="cpu")
        check_compatible(ckpt, ckpt_path, cfg.stage, cfg.params_hash)
        for name, module in system.modules().items():
            module.load_state_dict(ckpt["modules"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        if ckpt.get("scaler") and scaler.is_enabled():  # empty when written by a CPU (fp32) run
            scaler.load_state_dict(ckpt["scaler"])
        system.load_extra_state(ckpt.get("system", {}))
        restore_rng(ckpt["rng"])
        loop_state.update(ckpt.get("loop", {}))
        start = int(ckpt["iteration"])
        if ckpt.get("world_size", 1) != info.world_size and info.is_main:
            warnings.warn(
                f"{ckpt_path}: written with {ckpt.get('world_size')} processes, resumed with "
                f"{info.world_size}: later batches differ from an uninterrupted run",
                stacklevel=2,
            )
    elif not cfg.resume and ckpt_path.is_file() and info.is_main:
        warnings.warn(
            f"{ckpt_path} exists but resume is off: training from scratch overwrites it", stacklevel=2
        )
    if start > total:
        raise ValueError(f"{ckpt_path}: checkpoint is at iteration {start} > iterations {total}")

    # ---- logging ------------------------------------------------------------------------------
    train_csv = val_csv = writer = None
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        train_csv = CsvLog(out_dir / "train_log.csv", start)
        val_csv = CsvLog(out_dir / "val_log.csv", start)
        if cfg.tensorboard:
            writer = tensorboard_writer(out_dir / "tensorboard", purge_step=start + 1 if start else None)

    history: list[dict[str, float]] = []
    val_history: list[dict[str, float]] = []
    pending: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    wait_total = step_total = 0.0

    def flush() -> None:
        if train_csv is not None:
            train_csv.append(pending)
        if writer is not None:
            for row in pending:
                for k, v in row.items():
                    if k != "iteration" and isinstance(v, float) and math.isfinite(v):
                        writer.add_scalar(f"train/{k}", v, int(row["iteration"]))
            writer.flush()
        pending.clear()

    def write_checkpoint(iteration: int) -> None:
        if info.is_main:
            save_checkpoint(
                ckpt_path,
                _checkpoint_state(system, optimizers, scaler, cfg, iteration, info.world_size, loop_state),
            )
        if info.distributed:
            dist.barrier()

    def run_validation(iteration: int) -> None:
        nonlocal best_state
        model = system.eval_model()
        if validate is None or model is None:
            return
        if info.is_main:
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in validate(model).items()}
            model.train(was_training)
            row = {"iteration": float(iteration), **metrics}
            val_history.append(row)
            if val_csv is not None:
                val_csv.append([row])
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(f"val/{k}", v, iteration)
                writer.flush()
            value = metrics.get(cfg.select_metric)
            if value is not None and math.isfinite(value):
                best = loop_state.get("best_value")
                if best is None or value > best:
                    loop_state["best_value"], loop_state["best_iteration"] = value, iteration
                    best_state = _cpu_copy(model)  # a copy, never a reference to the live model
                    if cfg.save_best:
                        save_checkpoint(
                            out_dir / BEST_NAME,
                            {
                                "format": FORMAT_VERSION,
                                "stage": cfg.stage,
                                "params_hash": cfg.params_hash,
                                "which": system.eval_name,
                                "iteration": iteration,
                                "metric": cfg.select_metric,
                                "value": value,
                                "state_dict": best_state,
                            },
                        )
        if info.distributed:
            dist.barrier()

    # ---- iterate ------------------------------------------------------------------------------
    stop = total if stop_after is None else min(total, int(stop_after))
    loader = BatchLoader(
        batches,
        start,
        max(start, stop),
        num_workers=cfg.num_workers,
        prefetch=cfg.prefetch,
        pin_memory=device.type == "cuda",
    )
    bar = None
    if info.is_main and cfg.progress and stop > start:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc=cfg.stage, dynamic_ncols=True, mininterval=1.0)
    iteration = start
    it_loader: Iterator[dict[str, torch.Tensor]] = iter(loader)
    try:
        for it in range(start, stop):
            t_prev = time.perf_counter()  # validation and checkpoint time is not part of a step
            batch = next(it_loader)
            t_data = time.perf_counter()
            batch = _to_device(batch, device)
            ctx.iteration = it
            lrs = {}
            for name, opt in optimizers.items():
                lr = system.learning_rate(name, it, total)
                for group in opt.param_groups:
                    group["lr"] = lr
                lrs[name] = lr
            scalars = system.training_step(batch, ctx)
            scaler.update()
            iteration = it + 1
            t_end = time.perf_counter()
            wait, step_t = t_data - t_prev, t_end - t_prev
            wait_total += wait
            step_total += step_t
            row: dict[str, float] = {"iteration": float(iteration)}
            row.update({f"lr_{k}" if len(lrs) > 1 else "lr": v for k, v in lrs.items()})
            row.update({k: float(v) for k, v in scalars.items()})
            row["data_wait"] = wait / step_t if step_t > 0 else 0.0
            row["step_seconds"] = step_t
            history.append(row)
            pending.append(row)
            if bar is not None:
                bar.update(1)
                if "loss" in scalars:
                    bar.set_postfix(loss=f"{scalars['loss']:.4f}", wait=f"{row['data_wait']:.2f}")
            if len(pending) >= max(1, cfg.log_every):
                flush()
            last = iteration == stop
            if cfg.validate_every and iteration % cfg.validate_every == 0 and iteration < total:
                run_validation(iteration)
            if (cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0) or last:
                if iteration == total:
                    run_validation(iteration)  # the final validation is part of the final checkpoint
                flush()
                write_checkpoint(iteration)
    finally:
        flush()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        del it_loader
    if info.initialized_here:
        dist.destroy_process_group()

    if best_state is None and loop_state.get("best_value") is not None and (out_dir / BEST_NAME).is_file():
        best_state = load_checkpoint(out_dir / BEST_NAME)["state_dict"]
    return LoopResult(
        iteration=iteration,
        history=history,
        val_history=val_history,
        best_value=loop_state.get("best_value"),
        best_iteration=loop_state.get("best_iteration"),
        best_state=best_state,
        checkpoint=ckpt_path,
        data_wait_fraction=wait_total / step_total if step_total > 0 else 0.0,
        seconds=time.perf_counter() - t_start,
    )
