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
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from flarelib.evaluate.dice import dice
from flarelib.paths import atomic_write_text
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
from flarelib.train.sampling import BatchLoader, TrainVolume

Validator = Callable[[nn.Module], dict[str, float]]


# --------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------


def poly_lr(base_lr: float, iteration: int, total: int, exponent: float = 0.9) -> float:
    """nnU-Net poly schedule ``base * (1 - t / T) ** exponent`` (t = iterations done)."""
    frac = min(max(iteration / max(total, 1), 0.0), 1.0)
    return float(base_lr * (1.0 - frac) ** exponent)


def linear_decay_lr(
    base_lr: float, iteration: int, iterations_per_epoch: int, decay_start_epoch: int, epochs: int
) -> float:
    """CycleGAN schedule: constant until ``decay_start_epoch``, then linear to 0 at ``epochs``."""
    epoch = iteration / max(iterations_per_epoch, 1)
    if epoch <= decay_start_epoch or epochs <= decay_start_epoch:
        return float(base_lr)
    return float(base_lr * max(0.0, 1.0 - (epoch - decay_start_epoch) / (epochs - decay_start_epoch)))


# --------------------------------------------------------------------------------------------------
# Distributed
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DistInfo:
    """Rank and device of this process. ``world_size == 1`` for a plain run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world <= 1:
        return DistInfo(device=base)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = base.type == "cuda"
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, created)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers equal to rank ``src``'s."""
    with torch.no_grad():
        for t in module.state_dict().values():
            dist.broadcast(t, src)


def _all_reduce_mean(tensors: Sequence[torch.Tensor], world: int) -> None:
    if not tensors:
        return
    flat = torch._utils._flatten_dense_tensors(list(tensors))
    dist.all_reduce(flat)
    flat /= world
    for t, synced in zip(tensors, torch._utils._unflatten_dense_tensors(flat, list(tensors)), strict=True):
        t.copy_(synced)


# --------------------------------------------------------------------------------------------------
# System interface and step context
# --------------------------------------------------------------------------------------------------


class StepContext:
    """What a system's ``training_step`` uses: autocast, and ``step(loss, optimizer)``."""

    def __init__(
        self,
        device: torch.device,
        amp: bool,
        scaler: torch.amp.GradScaler,
        dist_info: DistInfo,
        total_iterations: int,
    ):
        self.device = device
        self.amp = amp
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
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
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
            _all_reduce_mean([p.grad for p in params if p.grad is not None], self.dist.world_size)
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


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------


class CsvLog:
    """Append-only CSV of scalar rows keyed by ``iteration``; on resume, rows after it are dropped."""

    def __init__(self, path: Path, resume_iteration: int):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = list(reader.fieldnames or [])
                rows = [
                    r for r in reader if r.get("iteration") and int(float(r["iteration"])) <= resume_iteration
                ]
            if resume_iteration > 0 and fields:
                self.fields = fields
                atomic_write_text(self.path, self._render(rows, header=True))
            else:
                self.path.unlink()

    def _render(self, rows: Sequence[dict[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore", restval="")
        if header:
            w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows with one ``write`` (header from the first row of a new file)."""
        if not rows:
            return
        header = False
        if self.fields is None:
            self.fields = list(rows[0])
            header = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as fh:
            fh.write(self._render(rows, header))
            fh.flush()
            os.fsync(fh.fileno())


def _tensorboard(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # tensorboard not installed
        warnings.warn(f"TensorBoard logging off ({exc})", stacklevel=2)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


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
            writer = _tensorboard(out_dir / "tensorboard", purge_step=start + 1 if start else None)

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


# --------------------------------------------------------------------------------------------------
# Whole-volume validation
# --------------------------------------------------------------------------------------------------


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
