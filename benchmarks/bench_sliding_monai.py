"""Benchmark (a): our sliding-window predictor against MONAI's ``sliding_window_inference``.

    python benchmarks/bench_sliding_monai.py [--quick] [--runs 5] [--threads 0] [--model CKPT]
        [--runtimes openvino onnxruntime]

Same network and weights (the quick profile's thin U-Net, random He weights seeded, or ``--model``),
same window (the quick profile's 24x64x64 by default), overlap / step 0.5 on every axis (our step
rule off: ``max_windows=0``), Gaussian blending with sigma_scale 0.125, no mirroring, one window per
forward pass, fp32 on CPU. Volume: the first phantom MR validation case when the phantom is
generated (resampled to the profile spacing), else a synthetic MR-like volume; z-scored.

Window placement differs: MONAI steps ``int(window * 0.5)`` voxels and clamps the last window to the
border, nnU-Net and we (``infer.placement: even``, the paper's) spread the windows evenly between
the borders; the two coincide only where ``size = window + k * window / 2``. With instance norm each
window's output depends on its content, so different placements give visibly different logits where
the windows differ. A third comparison therefore runs ours with ``placement="monai"`` on the whole
volume: that one isolates the rest (padding, Gaussian weighting, accumulation, border windows) and
should agree to float rounding.

Reported:
* agreement of the softmax probabilities (max abs difference) and of the argmax (% voxels), ours vs
  MONAI with its own Gaussian map and vs MONAI given our map (``roi_weight_map``): the second
  isolates the algorithm (window placement, accumulation); the first adds the map difference (MONAI
  clamps its map to >= 1e-3; ours keeps the true Gaussian tails);
* time: each run in its own fresh process (imports and model build excluded from the timed call,
  process wall time reported too), runs interleaved ours/MONAI, median of ``--runs`` (5);
  ratio MONAI / ours;
* ours also on each installed exported CPU runtime of ``--runtimes`` (``infer.runtime``; ONNX export
  and compile count as model loading: outside the call time, inside the process wall time).

Writes ``benchmarks/out/bench_sliding_monai.md``. ``--quick``: a tiny net and volume, one run each,
to check that the script works (its timings mean nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _infer_common import (
    PAPER_POOLS,
    THIN_CHANNELS,
    TINY_CHANNELS,
    TINY_POOLS,
    NetSpec,
    agreement,
    bench_volume,
    build_unet,
    machine,
    run_worker,
    save_net,
    write_report,
)

from flarelib.infer.sliding import runtime_available

SCRIPT = Path(__file__).resolve()


def worker(job: dict) -> dict:
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    net = NetSpec(**job["net"]).build()
    image = np.load(job["volume"])
    window = tuple(job["window"])
    if job["impl"] == "ours":
        from flarelib.infer.sliding import SlidingWindowPredictor, make_runtime, plan_windows

        runtime = job.get("runtime", "torch")
        # The ONNX export and compile belong to model loading: outside the timed call, inside the
        # process wall time.
        model = net if runtime == "torch" else make_runtime(runtime, net, window, threads=job["threads"])
        pred = SlidingWindowPredictor(
            model,
            net.num_classes,
            window,
            step=0.5,
            max_windows=0,
            mirror_axes=(),
            sigma_scale=0.125,
            windows_per_batch=1,
            placement=job.get("placement", "even"),
        )
        t = time.perf_counter()
        out = pred.predict_logits(image)
        seconds = time.perf_counter() - t
        starts, _ = plan_windows(image.shape, window, 0.5, 0, placement=job.get("placement", "even"))
        n_windows = math.prod(len(s) for s in starts)
    else:
        from monai.inferers import sliding_window_inference

        from flarelib.infer.sliding import gaussian_importance_map

        kw = {}
        if not job["monai_own_gaussian"]:
            kw["roi_weight_map"] = gaussian_importance_map(window, 0.125)
        calls = {"n": 0}

        def predictor(x):
            calls["n"] += x.shape[0]
            return net(x)

        with torch.inference_mode():
            t = time.perf_counter()
            out = sliding_window_inference(
                torch.from_numpy(image)[None, None],
                window,
                1,
                predictor,
                overlap=0.5,
                mode="gaussian",
                sigma_scale=0.125,
                **kw,
            )[0].numpy()
            seconds = time.perf_counter() - t
        n_windows = calls["n"]
    if job.get("save"):
        np.save(job["save"], out.astype(np.float32))
    return {"seconds": seconds, "windows": n_windows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny net and volume, one run: checks the script")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each worker (0: default)")
    ap.add_argument("--shape", type=int, nargs=3, default=(40, 112, 112), help="synthetic volume (z y x)")
    ap.add_argument("--window", type=int, nargs=3, default=(24, 64, 64))
    ap.add_argument("--spacing", type=float, nargs=3, default=(4.0, 3.0, 3.0))
    ap.add_argument("--model", type=Path, help="a flarelib checkpoint instead of random weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--runtimes",
        nargs="*",
        default=["openvino", "onnxruntime"],
        help="exported CPU runtimes to time as well (those installed: pip install 'flarelib[cpu-runtime]')",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    try:
        import monai  # noqa: F401
    except ImportError:
        print("MONAI is not installed (pip install monai); nothing to compare against.")
        return 0

    if args.quick:
        channels, pools, window, shape, runs = TINY_CHANNELS, TINY_POOLS, (8, 32, 32), (20, 56, 48), 1
    else:
        channels, pools, window, shape, runs = (
            THIN_CHANNELS,
            PAPER_POOLS,
            tuple(args.window),
            tuple(args.shape),
            args.runs,
        )
    tmp = Path(tempfile.mkdtemp(prefix="bench-monai-"))
    if args.model:
        from flarelib.infer.pipeline import load_model

        net, params, _ = load_model(args.model)
        net_desc = f"{args.model} ({params.unet.channels})"
    else:
        net = build_unet(channels, pools, seed=args.seed)
        net_desc = f"random He-initialised U-Net, channels {channels}"
    spec = save_net(net, tmp)
    image, source = bench_volume(shape, tuple(args.spacing), prefer_phantom=not args.quick, seed=args.seed)
    np.save(tmp / "volume.npy", image)

    base = {
        "net": spec.__dict__,
        "volume": str(tmp / "volume.npy"),
        "window": list(window),
        "threads": args.threads,
    }
    jobs = {
        "ours": {**base, "impl": "ours"},
        **{
            f"ours_{rt}": {**base, "impl": "ours", "runtime": rt}
            for rt in args.runtimes
            if runtime_available(rt)
        },
        "monai": {**base, "impl": "monai", "monai_own_gaussian": True},
        "monai_our_map": {**base, "impl": "monai", "monai_own_gaussian": False},
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    walls: dict[str, list[float]] = {k: [] for k in jobs}
    windows: dict[str, int] = {}
    for r in range(runs):
        for name, job in jobs.items():
            job = {**job, "save": str(tmp / f"{name}.npy") if r == 0 else None}
            t = time.perf_counter()
            res = run_worker(SCRIPT, job)
            walls[name].append(time.perf_counter() - t)
            times[name].append(res["seconds"])
            windows[name] = res["windows"]
            print(f"run {r + 1}/{runs} {name}: {res['seconds']:.3f} s ({res['windows']} windows)", flush=True)

    # Window placement: MONAI steps int(window * 0.5) and clamps the last window to the border;
    # nnU-Net/ours spread the windows evenly. Ours with MONAI's placement isolates everything else
    # (padding, Gaussian, accumulation, border windows) on the whole volume.
    ours_jobs = [k for k in jobs if k.startswith("ours")]
    for k in ours_jobs:
        run_worker(SCRIPT, {**jobs[k], "placement": "monai", "save": str(tmp / f"{k}_monai_placement.npy")})
    ours = np.load(tmp / "ours.npy")
    agree = {k: agreement(ours, np.load(tmp / f"{k}.npy")) for k in ("monai", "monai_our_map")}
    for k in jobs:
        if k.startswith("ours_"):
            agree[k] = agreement(np.load(tmp / f"{k}.npy"), np.load(tmp / "monai.npy"))
    for k in ours_jobs:
        agree[f"placement_{k}"] = agreement(
            np.load(tmp / f"{k}_monai_placement.npy"), np.load(tmp / "monai_our_map.npy")
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    medw = {k: statistics.median(v) for k, v in walls.items()}
    lines = [
        "## Sliding window: flarelib vs MONAI sliding_window_inference"
        + (" (--quick: plumbing check only)" if args.quick else ""),
        "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/{SCRIPT.name} {' '.join(sys.argv[1:])}`; {dt.date.today()}.",
        f"Network: {net_desc}; window {window}; volume: {source}; overlap 0.5, Gaussian sigma 1/8, "
        "no mirroring, 1 window per forward, fp32.",
        "",
        "| comparison | max abs prob diff | max abs logit diff | argmax agreement (%) |",
        "|---|---|---|---|",
    ]
    for k, label in (
        ("monai", "ours vs MONAI (its own Gaussian)"),
        ("monai_our_map", "ours vs MONAI (our Gaussian map)"),
        *(
            (f"placement_{k}", f'ours ({k[5:] or "torch"}, `placement="monai"`) vs MONAI (our map)')
            for k in ours_jobs
        ),
        *((k, f"ours ({k[5:]}) vs MONAI (its own Gaussian)") for k in jobs if k.startswith("ours_")),
    ):
        a = agree[k]
        lines.append(
            f"| {label} | {a['max_abs_prob_diff']:.2e} | {a['max_abs_logit_diff']:.2e} | {a['argmax_agreement_pct']:.4f} |"  # noqa: E501
        )
    lines += [
        "",
        f"| implementation | windows | median call time (s), {runs} runs | median process wall (s) | ratio vs ours | time / MONAI's |",  # noqa: E501
        "|---|---|---|---|---|---|",
    ]
    for k, label in (
        ("ours", "flarelib SlidingWindowPredictor"),
        *((k, f"flarelib, runtime {k[5:]}") for k in jobs if k.startswith("ours_")),
        ("monai", "MONAI (own map)"),
        ("monai_our_map", "MONAI (our map)"),
    ):
        lines.append(
            f"| {label} | {windows[k]} | {med[k]:.3f} | {medw[k]:.2f} | {med[k] / med['ours']:.2f}x | "
            f"{med[k] / med['monai']:.2f} |"
        )
    text = "\n".join(lines)
    print()
    print(text)
    print(f"\nwritten to {write_report('bench_sliding_monai' + ('_quick' if args.quick else ''), text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
