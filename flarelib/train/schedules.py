"""Learning-rate schedules of the training systems (``t`` = iterations done before the step)."""

from __future__ import annotations


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
