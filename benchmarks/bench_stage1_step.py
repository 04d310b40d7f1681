"""Where a Mean Teacher step of the quick profile's 2d U-Net spends its time, by batch composition.

One step as :class:`flarelib.train.mean_teacher.MeanTeacher` computes it, without the data loader:
the student's forward and backward on ``L`` labelled + ``U`` unlabelled slices (1 x 128 x 128) in
one pass, the teacher's forward on the ``U`` unlabelled slices, an Adam step; bf16 autocast where
the CPU computes it (as ``train.cpu_precision: auto``), random inputs. Median of ``--steps`` steps
after one warm-up, every composition in the same process (ratios side by side, not absolute
budgets). Also contiguous against ``channels_last_3d`` for 8 + 8.

    python benchmarks/bench_stage1_step.py [--steps 6] [--threads 2]

Session 16 (2 cores, AMX capped at AVX512-BF16): 8+8 0.88 s, 8+8 channels_last 0.89 s, 8+4 0.65 s,
8+0 0.40 s, 4+4 0.46 s, 12+4 0.82 s: the unlabelled half costs more than half the step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from flarelib.config import load_params
from flarelib.models.unet import unet_from_params
from flarelib.paths import project_root
from flarelib.precision import native_bf16

COMPOSITIONS = ((8, 8, False), (8, 8, True), (8, 4, False), (8, 0, False), (4, 4, False), (12, 4, False))


def step_seconds(unet, labelled: int, unlabelled: int, channels_last: bool, steps: int, bf16: bool) -> float:
    torch.manual_seed(0)
    student, teacher = unet_from_params(unet), unet_from_params(unet)
    teacher.eval()
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    student, teacher = student.to(memory_format=fmt), teacher.to(memory_format=fmt)
    opt = torch.optim.Adam(student.parameters(), 1e-3)
    x = torch.randn(labelled + unlabelled, 1, 1, 128, 128).contiguous(memory_format=fmt)
    xu = x[labelled:].clone()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = sum(o.float().mean() for o in student(x))
            if unlabelled:
                with torch.no_grad():
                    teacher(xu)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = load_params(project_root() / "params" / "profiles" / "quick.yaml")
    bf16 = native_bf16()
    print(f"quick 2d U-Net {p.unet.channels}, {'bf16' if bf16 else 'fp32'}, {args.threads} threads")
    print("| labelled + unlabelled slices | memory format | s / step | vs 8 + 8 |")
    print("|---|---|---|---|")
    base = None
    for labelled, unlabelled, cl in COMPOSITIONS:
        s = step_seconds(p.unet, labelled, unlabelled, cl, args.steps, bf16)
        base = base or s
        fmt = "channels_last_3d" if cl else "contiguous"
        print(f"| {labelled} + {unlabelled} | {fmt} | {s:.3f} | {s / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
