"""The one training loop of every stage (Mean Teacher, supervised, CycleGAN).

A *system* (:class:`~flarelib.train.systems.TrainSystem`: :class:`~flarelib.train.mean_teacher.MeanTeacher`,
:class:`~flarelib.train.cyclegan.CycleGAN`) owns the networks, builds its optimizers, names their
learning-rate schedule and does one training step on a batch through a
:class:`~flarelib.train.systems.StepContext`. The loop owns everything else:

* device, CPU threads, DDP process group (:mod:`flarelib.train.distributed`), broadcast of the
  initial weights from rank 0;
* AMP on CUDA (fp16 autocast + ``GradScaler``); on CPU fp32, or bf16 autocast (``cpu_precision``);
* batches from a :class:`~flarelib.train.sampling.BatchLoader` (background workers) and the time
  spent waiting for them (``data_wait``: fraction of the step);
* atomic checkpoints every ``checkpoint_every`` iterations and at the end (rank 0 only), exact
  resume (model, teacher, optimizers, scaler, RNG states, iteration; batches are a pure function
  of ``(seed, rank, iteration)``), refusal to resume another stage's checkpoint
  (:func:`resume_from_checkpoint`);
* a tqdm bar, scalars to ``train_log.csv`` / ``val_log.csv`` and TensorBoard (rank 0 only;
  :mod:`flarelib.train.train_log`);
* the validation hook ``validate(model) -> {name: value}`` (:mod:`flarelib.train.validation`) called
  with the system's evaluation model in eval mode; model selection keeps a CPU *copy* of the best
  weights (:class:`~flarelib.train.validation.BestModelKeeper`, ``model_best.pt``).

The pieces that moved out of this module stay importable from it.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from flarelib.paths import remove_stale_temps
from flarelib.precision import cpu_bf16
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
from flarelib.train.train_log import CsvLog, RunLogs
from flarelib.train.validation import BestModelKeeper, Validator, dice_validator, tiled_logits

__all__ = [
    "BestModelKeeper",
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
    "resume_from_checkpoint",
    "setup_distributed",
    "tiled_logits",
    "train",
]


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
    amp: bool = True  # CUDA only: fp16 autocast + GradScaler
    cpu_precision: str = "fp32"  # fp32 | bf16 | auto (:func:`flarelib.precision.cpu_bf16`)
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
    precision: str = "fp32"  # what the steps ran in: fp32, fp16 (CUDA AMP) or bf16 (CPU autocast)


def autocast_setting(device: torch.device, amp: bool, cpu_precision: str) -> tuple[bool, torch.dtype]:
    """``(autocast on, its dtype)``: fp16 on CUDA with ``amp``; bf16 on CPU per ``cpu_precision``."""
    if device.type == "cuda":
        return bool(amp), torch.float16
    return cpu_bf16(cpu_precision), torch.bfloat16


# --------------------------------------------------------------------------------------------------
# Checkpoint and resume
# --------------------------------------------------------------------------------------------------


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


def resume_from_checkpoint(
    ckpt_path: Path,
    cfg: LoopConfig,
    info: DistInfo,
    system: TrainSystem,
    optimizers: dict[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
) -> tuple[int, dict[str, Any]]:
    """Restore a run from ``ckpt_path`` when it exists and ``cfg.resume``; return ``(start, loop_state)``.

    ``start`` is the number of iterations already done (0: from scratch) and ``loop_state`` the
    checkpoint's ``"loop"`` entry (``best_value``, ``best_iteration``). Restores, in this order, the
    modules, optimizers, scaler (when enabled), system extras and the RNG states, after checking
    that the checkpoint is this stage's with these params
    (:func:`~flarelib.train.checkpoint.check_compatible`).
    The logs after ``start`` are dropped by :class:`~flarelib.train.train_log.RunLogs`.
    """
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
                stacklevel=3,
            )
    elif not cfg.resume and ckpt_path.is_file() and info.is_main:
        warnings.warn(
            f"{ckpt_path} exists but resume is off: training from scratch overwrites it", stacklevel=3
        )
    total = int(cfg.iterations)
    if start > total:
        raise ValueError(f"{ckpt_path}: checkpoint is at iteration {start} > iterations {total}")
    return start, loop_state


def _write_checkpoint(
    ckpt_path: Path,
    info: DistInfo,
    system: TrainSystem,
    optimizers: dict[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
    cfg: LoopConfig,
    iteration: int,
    loop_state: dict[str, Any],
) -> None:
    """Rank 0 writes the checkpoint of ``iteration``; every rank waits for it."""
    if info.is_main:
        save_checkpoint(
            ckpt_path,
            _checkpoint_state(system, optimizers, scaler, cfg, iteration, info.world_size, loop_state),
        )
    if info.distributed:
        dist.barrier()


# --------------------------------------------------------------------------------------------------
# Validation and model selection
# --------------------------------------------------------------------------------------------------


def _run_validation(
    iteration: int,
    system: TrainSystem,
    validate: Validator | None,
    info: DistInfo,
    logs: RunLogs,
    keeper: BestModelKeeper,
) -> dict[str, float] | None:
    """Rank 0 validates the eval model in eval mode, logs the row and offers the model to ``keeper``;
    every rank waits for it. Returns the row (None: no validation here)."""
    model = system.eval_model()
    if validate is None or model is None:
        return None
    row = None
    if info.is_main:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in validate(model).items()}
        model.train(was_training)
        row = logs.add_val(iteration, metrics)
        keeper.offer(model, metrics, iteration)
    if info.distributed:
        dist.barrier()
    return row


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _set_learning_rates(
    system: TrainSystem, optimizers: dict[str, torch.optim.Optimizer], iteration: int, total: int
) -> dict[str, float]:
    """Set every optimizer's learning rate for step ``iteration``; return them by optimizer name."""
    lrs = {}
    for name, opt in optimizers.items():
        lr = system.learning_rate(name, iteration, total)
        for group in opt.param_groups:
            group["lr"] = lr
        lrs[name] = lr
    return lrs


def _train_row(
    iteration: int, lrs: dict[str, float], scalars: dict[str, float], wait: float, step_t: float
) -> dict[str, float]:
    """The ``train_log.csv`` row of a step: iteration, lr (``lr_<name>`` for several optimizers),
    the system's scalars, ``data_wait`` (fraction of the step) and ``step_seconds``."""
    row: dict[str, float] = {"iteration": float(iteration)}
    row.update({f"lr_{k}" if len(lrs) > 1 else "lr": v for k, v in lrs.items()})
    row.update({k: float(v) for k, v in scalars.items()})
    row["data_wait"] = wait / step_t if step_t > 0 else 0.0
    row["step_seconds"] = step_t
    return row


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
    amp, dtype = autocast_setting(device, cfg.amp, cfg.cpu_precision)
    out_dir = Path(cfg.out_dir)
    if info.is_main:
        remove_stale_temps(out_dir)  # half-written files of a run killed mid-write
    ckpt_path = out_dir / CHECKPOINT_NAME
    total = int(cfg.iterations)

    system.to(device)
    if info.distributed:
        for m in system.modules().values():
            broadcast_module(m)
    uses_ddp = system.wrap_distributed(info) if info.distributed else False
    optimizers = system.make_optimizers()
    # bf16 keeps fp32's exponent range: no loss scaling
    scaler = torch.amp.GradScaler(device.type, enabled=amp and dtype == torch.float16)
    ctx = StepContext(device, amp, scaler, info, total, dtype)
    ctx.manual_grad_sync = info.distributed and not uses_ddp

    start, loop_state = resume_from_checkpoint(ckpt_path, cfg, info, system, optimizers, scaler)
    logs = RunLogs(
        out_dir if info.is_main else None, start, log_every=cfg.log_every, tensorboard=cfg.tensorboard
    )
    keeper = BestModelKeeper(
        out_dir / BEST_NAME,
        loop_state,
        stage=cfg.stage,
        params_hash=cfg.params_hash,
        which=system.eval_name,
        metric=cfg.select_metric,
        save=cfg.save_best,
    )
    history: list[dict[str, float]] = []
    val_history: list[dict[str, float]] = []
    wait_total = step_total = 0.0

    def validation(iteration: int) -> None:
        row = _run_validation(iteration, system, validate, info, logs, keeper)
        if row is not None:
            val_history.append(row)

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
            lrs = _set_learning_rates(system, optimizers, it, total)
            scalars = system.training_step(batch, ctx)
            scaler.update()
            iteration = it + 1
            t_end = time.perf_counter()
            wait, step_t = t_data - t_prev, t_end - t_prev
            wait_total += wait
            step_total += step_t
            row = _train_row(iteration, lrs, scalars, wait, step_t)
            history.append(row)
            if bar is not None:
                bar.update(1)
                if "loss" in scalars:
                    bar.set_postfix(loss=f"{scalars['loss']:.4f}", wait=f"{row['data_wait']:.2f}")
            logs.add_train(row)
            last = iteration == stop
            if cfg.validate_every and iteration % cfg.validate_every == 0 and iteration < total:
                validation(iteration)
            if (cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0) or last:
                if iteration == total:
                    validation(iteration)  # the final validation is part of the final checkpoint
                logs.flush()
                _write_checkpoint(ckpt_path, info, system, optimizers, scaler, cfg, iteration, loop_state)
    finally:
        logs.close()
        if bar is not None:
            bar.close()
        del it_loader
    if info.initialized_here:
        dist.destroy_process_group()

    return LoopResult(
        iteration=iteration,
        history=history,
        val_history=val_history,
        best_value=loop_state.get("best_value"),
        best_iteration=loop_state.get("best_iteration"),
        best_state=keeper.best_state(),
        checkpoint=ckpt_path,
        data_wait_fraction=wait_total / step_total if step_total > 0 else 0.0,
        seconds=time.perf_counter() - t_start,
        precision={torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype] if amp else "fp32",
    )
