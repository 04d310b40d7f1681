"""Training checks on the phantom: does the engine learn, does the CycleGAN move CT toward T1W, how fast.

Three parts (each can be run alone with ``--part``):

``convergence``
    Mean Teacher (CT labelled + unlabelled MR) for ``--iterations`` on the smoke phantom with the
    quick profile's U-Net, optimiser, patch and window; Dice of the teacher on the held-out CT case
    (whole volume, sliding window) for liver, spleen and both kidneys, at the end and every
    ``--validate-every`` iterations. Target (issue 5): above 0.8. The defaults (600 iterations,
    ``--augmentation none``) are the recipe that meets it on 2 CPU cores (about 60 minutes); with
    the nnU-Net-style augmentation only the liver and one kidney are learned by 500
    (benchmarks/RESULTS.md).
``cyclegan``
    A short CycleGAN run CT -> T1W; per organ, the mean intensity (0..255) of CT, of CT translated
    to fake T1W, and of real T1W (true labels from the phantom's diagnostics): the fake T1W should
    sit closer to the real T1W than the CT did.
``throughput``
    Iterations per second of the Mean Teacher step for the smoke and quick profiles (the quick one
    in fp32 and bf16 side by side), and the fraction of step time spent waiting for data.

Run: ``python benchmarks/bench_train.py [--part all|convergence|cyclegan|throughput]``; results are
printed as markdown and written to ``benchmarks/out/bench_train.md``.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flarelib.config import compose_params
from flarelib.data.layout import discover
from flarelib.datasets import ensure_data
from flarelib.labels import SHORT_NAMES
from flarelib.paths import project_root
from flarelib.train.stages import load_train_volume, train_cyclegan, train_segmentation

RUN = project_root() / "params" / "runs" / "default.yaml"
OUT = project_root() / "benchmarks" / "out"
EVAL_ORGANS = (1, 3, 2, 13)


def _params(profile: str, **sections):
    return compose_params(RUN, profile, "phantom", overrides=sections or None)


def _cases(params):
    ensure_data(params, log=lambda *_: None)
    return discover(params)


def convergence_params(iterations: int, validate_every: int = 0, augmentation: str = "none"):
    """The smoke phantom with the quick profile's U-Net, optimiser, patch and window."""
    quick = _params("quick")
    return _params(
        "smoke",
        unet={"channels": list(quick.unet.channels), "pool_zyx": [list(p) for p in quick.unet.pool_zyx]},
        train={
            "iterations": iterations,
            "optimizer": quick.train.optimizer,
            "lr": quick.train.lr,
            "patch_zyx": list(quick.train.patch_zyx),
            "validate_every": validate_every or iterations,
            "checkpoint_every": iterations,
            "num_workers": 1,
            "augmentation": augmentation,
        },
        infer={"window_zyx": list(quick.infer.window_zyx)},
    )


def convergence(
    iterations: int,
    validate_every: int,
    lines: list[str],
    keep: Path | None = None,
    augmentation: str = "none",
) -> None:
    params = convergence_params(iterations, validate_every, augmentation)
    cases = _cases(params)
    spacing = params.preprocess.target_spacing_zyx
    ct = cases["ct_manual"] + cases["ct_pseudo"]
    held_out = cases["ct_manual"][-1:]
    train_ct = [c for c in ct if c not in held_out]
    mr = [c for s in ("lld_mmr", "amos_mr") for c in cases[s]]
    labeled = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in train_ct]
    unlabeled = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in mr]
    validation = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in held_out]
    out = Path(tempfile.mkdtemp(prefix="bench_train_"))
    t0 = time.perf_counter()
    result = train_segmentation(
        params, "bench_convergence", out, labeled, unlabeled, validation, restart=True, progress=False
    )
    seconds = time.perf_counter() - t0
    final = result.val_history[-1]
    dices = {o: final.get(f"dice_{o}", float("nan")) for o in EVAL_ORGANS}
    trajectory = [
        f"| {int(row['iteration'])} | "
        + " | ".join(f"{row.get(f'dice_{o}', float('nan')):.3f}" for o in EVAL_ORGANS)
        + f" | {np.nanmean([row.get(f'dice_{o}', float('nan')) for o in EVAL_ORGANS]):.3f} |"
        for row in result.val_history
    ]
    first, last = result.history[0]["loss"], float(np.mean([r["loss"] for r in result.history[-10:]]))
    lines += [
        "## Convergence: Mean Teacher on phantom CT, Dice on held-out CT",
        "",
        f"Smoke phantom (6 x 4 x 4 mm), {len(labeled)} labelled CT + {len(unlabeled)} unlabelled MR, "
        f"held out: {', '.join(c.case_id for c in held_out)}; the quick profile's U-Net "
        f"{list(params.unet.channels)}, {params.train.optimizer} lr {params.train.lr}, patch "
        f"{'x'.join(map(str, params.train.patch_zyx))}, batch 2+2, augmentation "
        f"{params.train.augmentation}, {iterations} iterations in "
        f"{seconds:.0f} s (validation included).",
        f"Loss {first:.3f} (first iteration) -> {last:.3f} (mean of the last 10).",
        "",
        "| organ | Dice (teacher, held-out CT) |",
        "|---|---|",
        *[f"| {SHORT_NAMES[o]} | {dices[o]:.3f} |" for o in EVAL_ORGANS],
        f"| mean of the four | {np.nanmean(list(dices.values())):.3f} |",
        "",
        "Teacher Dice during training (sliding window, no mirroring):",
        "",
        "| iteration | " + " | ".join(SHORT_NAMES[o] for o in EVAL_ORGANS) + " | mean |",
        "|---" * (len(EVAL_ORGANS) + 2) + "|",
        *trajectory,
        "",
    ]
    if keep is not None:
        from flarelib.repro import save_run_record

        keep.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoint.pt", "model_best.pt", "train_log.csv", "val_log.csv"):
            if (out / name).is_file():
                shutil.copy2(out / name, keep / name)
        save_run_record(keep, params, extra={"stage": "bench_convergence"})
        lines.append(f"Model kept in {keep} (checkpoint.pt, params.yaml).")
    shutil.rmtree(out, ignore_errors=True)


def cyclegan(iterations: int, lines: list[str]) -> None:
    from diag_fake_mr import intensity_table

    params = _params(
        "smoke",
        cyclegan={
            "epochs": 1,
            "decay_start_epoch": 1,
            "iterations_per_epoch": iterations,
            "patch_zyx": [16, 48, 48],
            "ngf": 8,
            "ndf": 8,
            "n_blocks": 3,
            "n_layers": 2,
        },
        train={"checkpoint_every": iterations, "num_workers": 1},
    )
    cases = _cases(params)
    spacing = params.preprocess.target_spacing_zyx
    ct_cases = cases["ct_manual"] + cases["ct_pseudo"]
    t1w_cases = [c for c in cases["lld_mmr"] if c.sequence == "T1W"]
    domain_a = [load_train_volume(c, spacing, "ct255", params.preprocess) for c in ct_cases]
    domain_b = [load_train_volume(c, spacing, "mr255", params.preprocess) for c in t1w_cases]
    out = Path(tempfile.mkdtemp(prefix="bench_gan_"))
    t0 = time.perf_counter()
    train_cyclegan(params, out, domain_a, domain_b, stage="bench_cyclegan", restart=True, progress=False)
    seconds = time.perf_counter() - t0
    from flarelib.train.fake_mr import load_translator

    g_ab, _ = load_translator(out / "checkpoint.pt", params)
    rows, gap_ct, gap_fake = intensity_table(params, g_ab, domain_a, t1w_cases)
    lines += [
        "## CycleGAN: does translated CT move toward T1W?",
        "",
        f"Smoke phantom, {len(domain_a)} CT vs {len(domain_b)} T1W volumes, generator ngf 8 with 3 blocks, "
        f"{iterations} iterations in {seconds:.0f} s. Mean intensity (0..255) per organ:",
        "",
        "| organ | CT (windowed) | CT -> fake T1W | real T1W |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Mean |organ mean - real T1W|: CT {gap_ct:.1f}, fake T1W {gap_fake:.1f} "
        f"({'closer' if gap_fake < gap_ct else 'NOT closer'}).",
        "",
    ]
    shutil.rmtree(out, ignore_errors=True)


def throughput(iterations: int, lines: list[str]) -> None:
    """Seconds per Mean Teacher step of the smoke and quick profiles; the quick one in fp32 and in
    bf16 autocast (``train.cpu_precision``) side by side, with the ratio."""
    lines += [
        "## Throughput: Mean Teacher iterations per second",
        "",
        "| profile | U-Net channels | patch (z,y,x) | batch | workers | precision | it/s | s/it | "
        "vs fp32 | data wait |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    # smoke's tiny 3-D maps: bf16 weight gradients came out nondeterministic there (base.yaml)
    for profile, precisions in (("smoke", ("fp32",)), ("quick", ("fp32", "bf16"))):
        fp32_sec = None
        for precision in precisions:
            train = {"iterations": iterations, "checkpoint_every": iterations, "cpu_precision": precision}
            params = _params(profile, train=train)
            cases = _cases(params)
            spacing = params.preprocess.target_spacing_zyx
            ct = cases["ct_manual"][:3]
            labeled = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in ct]
            mr = cases["lld_mmr"][:4]
            unlabeled = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in mr]
            out = Path(tempfile.mkdtemp(prefix="bench_tp_"))
            result = train_segmentation(
                params, f"bench_tp_{profile}", out, labeled, unlabeled, restart=True, progress=False
            )
            steps = result.history[2:]  # the first steps pay for warm-up
            sec = float(np.mean([r["step_seconds"] for r in steps]))
            wait = float(np.mean([r["data_wait"] for r in steps]))
            fp32_sec = sec if precision == "fp32" else fp32_sec
            t = params.train
            lines.append(
                f"| {profile} | {list(params.unet.channels)} | {list(t.patch_zyx)} | "
                f"{t.batch_labeled}+{t.batch_unlabeled} | {t.num_workers} | {result.precision} | "
                f"{1 / sec:.2f} | {sec:.2f} | {sec / fp32_sec:.2f}x | {wait:.1%} |"
            )
            shutil.rmtree(out, ignore_errors=True)
    lines.append("")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="all", choices=("all", "convergence", "cyclegan", "throughput"))
    ap.add_argument("--iterations", type=int, default=600, help="convergence iterations")
    ap.add_argument("--validate-every", type=int, default=0, help="convergence: 0 = at the end only")
    ap.add_argument("--augmentation", choices=("nnunet", "none"), default="none", help="convergence")
    ap.add_argument("--keep", type=Path, help="convergence: copy the trained model and its params here")
    ap.add_argument("--gan-iterations", type=int, default=300)
    ap.add_argument("--tp-iterations", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"# bench_train ({time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__})",
        "",
    ]
    if args.part in ("all", "throughput"):
        throughput(args.tp_iterations, lines)
    if args.part in ("all", "convergence"):
        convergence(args.iterations, args.validate_every, lines, args.keep, args.augmentation)
    if args.part in ("all", "cyclegan"):
        cyclegan(args.gan_iterations, lines)
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"bench_train_{args.part}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
