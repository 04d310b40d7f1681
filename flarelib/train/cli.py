"""``flarelib train --params FILE --stage NAME``: argument parsing and printing around
:func:`flarelib.train.stages.run_stage` (the stage API; see its module docstring for the stages)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from flarelib.params_cli import params_from_args
    from flarelib.train.stages import run_stage

    params = params_from_args(args)
    result = run_stage(
        params,
        args.stage,
        Path(args.out) if args.out else None,
        restart=args.restart,
        device=args.device,
        progress=not args.no_progress,
        cyclegan=args.cyclegan,
    )
    best = "" if result.best_value is None else f", best {result.best_value:.4f} at {result.best_iteration}"
    print(
        f"{args.stage}: {result.iteration} iterations in {result.seconds:.1f} s "
        f"(data wait {100 * result.data_wait_fraction:.0f}%, {result.precision}){best}; "
        f"checkpoint {result.checkpoint}"
    )
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``flarelib train``."""
    from flarelib.params_cli import add_params_arguments

    p = subparsers.add_parser(
        "train",
        help="train one stage (CycleGAN, Mean Teacher or supervised U-Net); resumes its checkpoint",
        description="train one stage into outputs/<profile>/<run>/<stage>/ (checkpoint.pt resumed "
        "automatically; --restart starts over)",
    )
    add_params_arguments(p)
    p.add_argument(
        "--stage",
        required=True,
        metavar="NAME",
        help="'cyclegan'; 'stage1' (Mean Teacher on CT translated to fake MR by the run's CycleGAN); "
        "or any other name for the segmentation entry on the data as it is (e.g. baseline)",
    )
    p.add_argument(
        "--cyclegan",
        metavar="CKPT",
        help="stage1: the CycleGAN checkpoint (default outputs/<profile>/<run>/cyclegan/checkpoint.pt)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default outputs/<profile>/<run>/<stage>)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
    return p
