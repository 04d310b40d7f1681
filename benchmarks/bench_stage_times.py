"""Benchmark (d): where the time of one case goes, stage by stage.

    python benchmarks/bench_stage_times.py [--quick] [--model CKPT [--params FILE]] [--profile quick]
        [--input IMAGE] [--shape 80 256 256] [--spacing 3.0 1.5 1.5] [--runs 3] [--device auto]

One case is predicted ``--runs`` times (3) by ``flarelib predict`` in a fresh process each time
(``python -m flarelib.infer.pipeline ... --timings CSV``). Each run gives the per-stage times the
pipeline measures (read + LPS reorientation, resample + z-score, sliding-window predict,
post-process, resample back + reorientation, write) and the process wall time, whose remainder is
process start, imports and model load (the model load alone is reported by the pipeline too).
Medians over the runs.

Input: ``--input`` or the first phantom MR validation case, else a synthetic MR-like volume of
``--shape`` (z y x; default 80x256x256, the size of the paper's Table 7 row amos_7324) at
``--spacing``. Model: ``--model``, else a randomly initialised network of the ``--profile`` params
(quick: the thin U-Net), saved with its params. Writes ``benchmarks/out/bench_stage_times.md``.
``--quick``: tiny net and volume, one run (checks the script).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _infer_common import REPO, TINY_CHANNELS, TINY_POOLS, machine, phantom_cases, synthetic_mr, write_report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--params", type=Path)
    ap.add_argument("--profile", default="quick", choices=["smoke", "quick", "full"])
    ap.add_argument("--input", type=Path)
    ap.add_argument("--shape", type=int, nargs=3, default=(80, 256, 256))
    ap.add_argument("--spacing", type=float, nargs=3, default=(3.0, 1.5, 1.5))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from flarelib.config import compose_params
    from flarelib.infer.pipeline import STAGES, save_model_file
    from flarelib.io import Volume, read_image, write_image
    from flarelib.models.unet import unet_from_params

    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    runs = 1 if args.quick else args.runs
    if args.model:
        model, model_desc = args.model, str(args.model)
        params_arg = ["--params", str(args.params)] if args.params else []
    else:
        import torch

        params = compose_params(
            REPO / "params" / "runs" / "default.yaml", "smoke" if args.quick else args.profile, "phantom"
        )
        if args.quick:
            params = dataclasses.replace(
                params,
                unet=dataclasses.replace(params.unet, channels=TINY_CHANNELS, pool_zyx=TINY_POOLS),
                infer=dataclasses.replace(params.infer, window_zyx=(8, 32, 32)),
            )
        torch.manual_seed(0)
        net = unet_from_params(params.unet)
        model = save_model_file(tmp / "model.pt", params, {"teacher": net.state_dict()})
        model_desc = f"random U-Net of the {params.run.profile} profile, channels {params.unet.channels}"
        params_arg = []
    if args.input:
        case, source = args.input, str(args.input)
    else:
        found = [] if args.quick else phantom_cases("quick")
        if found:
            case, source = found[0][0], f"phantom {found[0][0].name}"
        else:
            shape = (24, 64, 64) if args.quick else tuple(args.shape)
            spacing = (6.0, 4.0, 4.0) if args.quick else tuple(args.spacing)
            case = tmp / "case_0000.nii.gz"
            write_image(
                Volume(
                    synthetic_mr(shape) * 1000, spacing, (0.0, 0.0, 0.0), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
                ),
                case,
            )
            source = f"synthetic MR-like volume {shape} at {spacing} mm"
    vol = read_image(case)

    per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "load_model")}
    walls: list[float] = []
    for r in range(runs):
        timings = tmp / f"timings_{r}.csv"
        cmd = [
            sys.executable,
            "-m",
            "flarelib.infer.pipeline",
            str(case),
            str(tmp / "out"),
            "--model",
            str(model),
            "--no-progress",
            "--device",
            args.device,
            "--timings",
            str(timings),
            *params_arg,
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        walls.append(time.perf_counter() - t)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-3000:])
            return 1
        row = next(csv.DictReader(timings.open()))
        for s in per_stage:
            per_stage[s].append(float(row[s] or 0.0))
        print(
            f"run {r + 1}/{runs}: wall {walls[-1]:.2f} s, stages "
            + ", ".join(f"{s} {float(row[s]):.2f}" for s in STAGES),
            flush=True,
        )

    med = {s: statistics.median(v) for s, v in per_stage.items()}
    wall = statistics.median(walls)
    stages_total = sum(med[s] for s in STAGES)
    startup = max(wall - stages_total - med["load_model"], 0.0)
    lines = [
        "## Per-stage time of one case" + (" (--quick: plumbing check only)" if args.quick else ""),
        "",
        f"Machine: {machine()}; device {args.device}.",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`; {dt.date.today()}.",
        f"Model: {model_desc}. Input: {source}, shape (z, y, x) {vol.shape}, spacing {vol.spacing_zyx} mm. "
        f"Median of {runs} run(s), each a fresh `flarelib predict` process.",
        "",
        "| stage | time (s) | share of wall (%) |",
        "|---|---|---|",
        f"| process start + imports | {startup:.3f} | {100 * startup / wall:.1f} |",
        f"| model load | {med['load_model']:.3f} | {100 * med['load_model'] / wall:.1f} |",
    ]
    for s in STAGES:
        lines.append(f"| {s} | {med[s]:.3f} | {100 * med[s] / wall:.1f} |")
    lines.append(f"| **whole process (wall)** | {wall:.3f} | 100 |")
    text = "\n".join(lines)
    print()
    print(text)
    print(f"\nwritten to {write_report('bench_stage_times' + ('_quick' if args.quick else ''), text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
