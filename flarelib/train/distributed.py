"""Device and DDP process group of a training run (``torchrun``: env ``WORLD_SIZE > 1``).

nccl on CUDA, gloo on CPU; rank 0's initial weights are broadcast to every rank; systems not
wrapped in DDP get their gradients averaged over ranks by :func:`all_reduce_mean`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


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


def all_reduce_mean(tensors: Sequence[torch.Tensor], world: int) -> None:
    """Replace each tensor, in place, by its mean over the ``world`` ranks (one flat all-reduce)."""
    if not tensors:
        return
    flat = torch._utils._flatten_dense_tensors(list(tensors))
    dist.all_reduce(flat)
    flat /= world
    for t, synced in zip(tensors, torch._utils._unflatten_dense_tensors(flat, list(tensors)), strict=True):
        t.copy_(synced)
