"""Benchmark (b): our sliding-window predictor against nnU-Net v2's ``nnUNetPredictor``.

    python benchmarks/bench_nnunet.py [--quick] [--runs 5] [--nnunet-python /tmp/nnunet-venv/bin/python]
                                      [--device cpu|cuda] [--model CKPT]
                                      [--case IMAGE --label LABEL --modality CT|MR]
                                      [--skip ours_nnunet_settings ours_paper]

nnU-Net v2 lives in its own virtual environment (it would otherwise pull a CUDA torch into ours;
DESIGN.md). Set it up once (about a minute on an idle machine; torch pinned to ours)::

    python3.11 -m venv /tmp/nnunet-venv
    echo "torch==2.13.0" > /tmp/nnunet-constraints.txt
    /tmp/nnunet-venv/bin/pip install -c /tmp/nnunet-constraints.txt "torch==2.13.0" nnunetv2

nnU-Net's predictor runs **our network** (the same module and weights, rebuilt in the nnU-Net
environment from ``flarelib.models.unet``, which needs only torch): the predictor is given the
network, the patch size (our window) and the number of output heads, and its
``predict_sliding_window_return_logits`` does the rest: its own window placement, Gaussian
(``compute_gaussian``, sigma 1/8, value scale 10), mirroring, padding and accumulation (fp16
accumulators in nnU-Net v2, also on CPU).

Compared, each run in its own fresh process, runs interleaved, median of ``--runs`` (5):

* nnU-Net defaults: step 0.5, Gaussian, mirroring on all three axes (8 passes per window);
* ours with the same settings (step 0.5 on every axis, no window-count rule, mirror (0, 1, 2));
* ours with the paper's settings (step rule: 0.5, or (1, 1, 0.5) beyond 20 windows; mirror (0, 2)).
* on CPU, ours with the paper's settings on each installed exported runtime of ``--runtimes``
  (default OpenVINO; export and compile outside the timed call).

Reported: call time and ratio, softmax-probability max abs difference and argmax agreement against
nnU-Net. With a trained ``--model`` and a labelled ``--case``/``--label`` (read, reoriented to LPS,
resampled to the model's spacing and normalised as ``flarelib predict`` does; the label by nearest
neighbour), also the Dice of each predictor's argmax (no post-processing) for every organ in the
label; ours with the paper's settings then swaps the L/R paired channels of x-mirrored passes when
the model was trained with ``swap_lr_labels`` (as ``flarelib predict`` does), nnU-Net cannot.
Writes ``benchmarks/out/bench_nnunet.md``. Without the nnU-Net environment the script says how to
make it and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
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

SCRIPT = Path(__file__).resolve()
DEFAULT_NNUNET_PYTHON = "/tmp/nnunet-venv/bin/python"
SETUP = (
    "python3.11 -m venv /tmp/nnunet-venv && echo 'torch==2.13.0' > /tmp/nnunet-constraints.txt && "
    "/tmp/nnunet-venv/bin/pip install -c /tmp/nnunet-constraints.txt 'torch==2.13.0' nnunetv2"
)


def worker(job: dict) -> dict:
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    net = NetSpec(**job["net"]).build().to(device)
    image = np.load(job["volume"])
    window = tuple(job["window"])
    if job["impl"] == "nnunet":
        from types import SimpleNamespace

        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        pred = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=True,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            allow_tqdm=False,
        )
        pred.network = net
        pred.configuration_manager = SimpleNamespace(patch_size=list(window))
        pred.label_manager = SimpleNamespace(num_segmentation_heads=net.num_classes)
        pred.allowed_mirroring_axes = (0, 1, 2)
        calls = {"n": 0}
        forward = net.forward

        def counted(x):
            calls["n"] += 1
            return forward(x)

        net.forward = counted
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = pred.predict_sliding_window_return_logits(torch.from_numpy(image)[None])
        out = out.float().cpu().numpy()
        seconds = time.perf_counter() - t
        passes = calls["n"]
        import nnunetv2

        version = getattr(nnunetv2, "__version__", "")
        if not version:
            from importlib.metadata import version as _v

            version = _v("nnunetv2")
    else:
        from flarelib.infer.sliding import SlidingWindowPredictor, make_runtime

        paper = job["impl"].startswith("ours_paper")
        runtime = job.get("runtime", "torch")
        # Export + compile are model loading: outside the timed call, as nnU-Net's network build is.
        model = net if runtime == "torch" else make_runtime(runtime, net, window, threads=job["threads"])
        pred = SlidingWindowPredictor(
            model,
            net.num_classes,
            window,
            step=0.5,
            max_windows=20 if paper else 0,
            rule_fractions=(1.0, 1.0, 0.5),
            mirror_axes=(0, 2) if paper else (0, 1, 2),
            sigma_scale=0.125,
            device=device,
            half_precision=True,
            lr_pairs=[tuple(p) for p in job.get("lr_pairs", [])] if paper else (),
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = pred.predict_logits(image)
        seconds = time.perf_counter() - t
        passes = pred.last_forward_passes
        version = ""
    if job.get("save"):
        np.save(job["save"], out.astype(np.float32))
    return {"seconds": seconds, "forward_passes": passes, "version": version}


def labelled_case(image_path: Path, label_path: Path | None, modality: str, params) -> tuple:
    """(z-scored image, label or None, description) on the model's grid, as ``flarelib predict``
    prepares a case (LPS, ``preprocess.target_spacing_zyx``, CT window for CT, z-score)."""
    from flarelib.io import read_image, read_label, reorient_to_lps
    from flarelib.preprocess import ct_window, resample, zscore

    spacing = tuple(params.preprocess.target_spacing_zyx)
    vol, _ = reorient_to_lps(read_image(image_path))
    vol = resample(vol, spacing, is_label=False)
    arr = vol.array
    if modality == "CT":
        arr = ct_window(arr, params.preprocess.ct_window_level, params.preprocess.ct_window_width)
    label = None
    if label_path is not None:
        lab, _ = reorient_to_lps(read_label(label_path))
        label = resample(lab, spacing, is_label=True).array
        if label.shape != vol.shape:
            raise SystemExit(f"{label_path}: label grid {label.shape} differs from the image's {vol.shape}")
    return zscore(arr), label, f"{image_path.name} ({modality}) resampled to {vol.shape}"


def _organ_dice(probs: np.ndarray, label: np.ndarray) -> dict[int, float]:
    pred = probs.argmax(0)
    out = {}
    for o in sorted(int(v) for v in np.unique(label) if v > 0):
        g, p = label == o, pred == o
        out[o] = 2.0 * float((g & p).sum()) / float(g.sum() + p.sum())
    return out


def _dsc_cell(probs: np.ndarray, label: np.ndarray | None) -> str:
    return "-" if label is None else f"{np.mean(list(_organ_dice(probs, label).values())):.4f}"


def _dsc_table(tmp: Path, jobs: dict, label: np.ndarray) -> list[str]:
    from flarelib.labels import SHORT_NAMES

    dices = {k: _organ_dice(np.load(tmp / f"{k}.npy"), label) for k in jobs}
    organs = list(dices["nnunet"])
    rows = [
        "| predictor | " + " | ".join(SHORT_NAMES[o] for o in organs) + " |",
        "|---" * (len(organs) + 1) + "|",
    ]
    rows += [f"| {k} | " + " | ".join(f"{d[o]:.3f}" for o in organs) + " |" for k, d in dices.items()]
    return rows


def nnunet_ok(python: str) -> str | None:
    """None when ``python`` imports nnUNetPredictor, else the reason."""
    if not Path(python).exists():
        return f"{python} does not exist"
    proc = subprocess.run(
        [python, "-c", "from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor"],
        capture_output=True,
        text=True,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny net and volume, one run: checks the script")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nnunet-python", default=DEFAULT_NNUNET_PYTHON)
    ap.add_argument("--shape", type=int, nargs=3, default=(40, 112, 112), help="synthetic volume (z y x)")
    ap.add_argument("--window", type=int, nargs=3, default=(24, 64, 64))
    ap.add_argument("--spacing", type=float, nargs=3, default=(4.0, 3.0, 3.0))
    ap.add_argument("--model", type=Path, help="a flarelib checkpoint instead of random weights")
    ap.add_argument("--params", type=Path, help="the model's params file (default: with the checkpoint)")
    ap.add_argument("--case", type=Path, help="a labelled image instead of the phantom MR volume")
    ap.add_argument("--label", type=Path, help="the label of --case: Dice per predictor")
    ap.add_argument("--modality", choices=("MR", "CT"), default="MR", help="of --case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--runtimes",
        nargs="*",
        default=["openvino"],
        help="exported CPU runtimes for ours with the paper's settings (those installed)",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=("ours_nnunet_settings", "ours_paper"),
        help="leave these torch predictors out (e.g. to score many cases in less time)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    why = nnunet_ok(args.nnunet_python)
    if why is not None:
        print(f"nnU-Net v2 is not available ({why}).\nSet it up in its own venv, then rerun:\n  {SETUP}")
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
    tmp = Path(tempfile.mkdtemp(prefix="bench-nnunet-"))
    lr_pairs: list = []
    if args.model:
        from flarelib.infer.pipeline import load_model
        from flarelib.labels import LR_PAIRS

        net, params, _ = load_model(args.model, args.params)
        net_desc = f"{args.model} ({params.unet.channels})"
        if not args.quick:
            window = tuple(params.infer.window_zyx)
        lr_pairs = [list(p) for p in LR_PAIRS] if params.train.swap_lr_labels else []
    else:
        net = build_unet(channels, pools, seed=args.seed)
        net_desc = f"random He-initialised U-Net, channels {channels}"
    spec = save_net(net, tmp)
    label = None
    if args.case is not None:
        if not args.model:
            ap.error("--case needs --model (a trained network)")
        image, label, source = labelled_case(args.case, args.label, args.modality, params)
    else:
        image, source = bench_volume(
            shape, tuple(args.spacing), prefer_phantom=not args.quick, seed=args.seed
        )
    np.save(tmp / "volume.npy", image)
    base = {
        "net": spec.__dict__,
        "volume": str(tmp / "volume.npy"),
        "window": list(window),
        "threads": args.threads,
        "device": args.device,
        "lr_pairs": lr_pairs,
    }
    jobs = {
        "nnunet": args.nnunet_python,
        "ours_nnunet_settings": sys.executable,
        "ours_paper": sys.executable,
    }
    for name in args.skip:
        jobs.pop(name)
    from flarelib.infer.sliding import runtime_available  # not in the worker: nnU-Net's venv lacks it

    runtimes = {}
    if args.device == "cpu":
        for rt in args.runtimes:
            if runtime_available(rt):
                jobs[f"ours_paper_{rt}"] = sys.executable
                runtimes[f"ours_paper_{rt}"] = rt
    times: dict[str, list[float]] = {k: [] for k in jobs}
    info: dict[str, dict] = {}
    for r in range(runs):
        for name, python in jobs.items():
            job = {**base, "impl": name, "save": str(tmp / f"{name}.npy") if r == 0 else None}
            if name in runtimes:
                job["runtime"] = runtimes[name]
            res = run_worker(SCRIPT, job, python=python)
            times[name].append(res["seconds"])
            info[name] = res
            print(
                f"run {r + 1}/{runs} {name}: {res['seconds']:.3f} s ({res['forward_passes']} forward passes)",
                flush=True,
            )
    ref = np.load(tmp / "nnunet.npy")
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        "## Sliding window: flarelib vs nnU-Net v2 nnUNetPredictor"
        + (" (--quick: plumbing check only)" if args.quick else ""),
        "",
        f"Machine: {machine()}; device {args.device}; nnU-Net v2 {info['nnunet']['version']} in {args.nnunet_python}.",  # noqa: E501
        f"Command: `python benchmarks/{SCRIPT.name} {' '.join(sys.argv[1:])}`; {dt.date.today()}.",
        f"Network: {net_desc} (the same module and weights in both predictors); window {window}; "
        f"volume: {source}.",
        "",
        f"| predictor | settings | forward passes | median time (s), {runs} runs | ratio vs nnU-Net | max abs prob diff | argmax agreement (%) | mean DSC |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|",
        f"| nnU-Net v2 | step 0.5, Gaussian, mirror (0, 1, 2), fp16 accumulators | {info['nnunet']['forward_passes']} "  # noqa: E501
        f"| {med['nnunet']:.3f} | 1.00x | - | - | {_dsc_cell(ref, label)} |",
    ]
    for k, settings in (
        ("ours_nnunet_settings", "step 0.5, Gaussian, mirror (0, 1, 2), fp32 accumulators"),
        (
            "ours_paper",
            "paper: step rule (1, 1, 0.5) beyond 20 windows, mirror (0, 2)"
            + (", L/R channel swap" if lr_pairs else ""),
        ),
        *((k, f"paper settings, exported runtime {rt}") for k, rt in runtimes.items()),
    ):
        if k not in jobs:
            continue
        a = agreement(np.load(tmp / f"{k}.npy"), ref)
        lines.append(
            f"| flarelib | {settings} | {info[k]['forward_passes']} | {med[k]:.3f} | {med[k] / med['nnunet']:.2f}x "  # noqa: E501
            f"| {a['max_abs_prob_diff']:.2e} | {a['argmax_agreement_pct']:.4f} | "
            f"{_dsc_cell(np.load(tmp / f'{k}.npy'), label)} |"
        )
    if label is not None:
        lines += ["", "Dice per organ (argmax, no post-processing):", "", *_dsc_table(tmp, jobs, label)]
    text = "\n".join(lines)
    print()
    print(text)
    print(f"\nwritten to {write_report('bench_nnunet' + ('_quick' if args.quick else ''), text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
