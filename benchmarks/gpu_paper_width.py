"""GPU efficiency of the paper-width model beside the paper's Table 7 row (item 6).

    python benchmarks/gpu_paper_width.py [--quick] [--runs 3] [--model CKPT [--params FILE]]

The full profile's network (paper width: channels 32-64-128-256-320-320, 33.89 M parameters; random
He weights unless ``--model``) and inference settings (window 48x160x224, step rule, mirroring
(0, 2), fp16 autocast, post-processing) segment a synthetic MR-like volume of image size
256 x 256 x 80 (x, y, z) at 1.2 x 1.2 x 3 mm, so the resampling keeps its size. Measured the FLARE
way (:mod:`flarelib.evaluate.efficiency`): each run is a fresh ``flarelib predict`` process (start,
imports, model load, I/O included); GPU memory = device total - free via NVML sampled every 0.1 s;
max and AUC = sum x 0.1 (MB s). Median of ``--runs`` (3) runs, beside the paper's amos_7324 row
(9.45 s, 3540 MB, 20379 MB s on an RTX 4090). Different GPUs: compare the memory figures more than
the times.

Needs CUDA (exits 0 with a message without it) and nvidia-ml-py for the memory columns (without it
they are empty). Writes ``benchmarks/out/gpu_paper_width.md``. ``--quick``: one run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _infer_common import REPO, machine, synthetic_mr, write_report

PAPER_ROW = {
    "case": "amos_7324",
    "size_xyz": (256, 256, 80),
    "time_s": 9.45,
    "max_gpu_mb": 3540,
    "gpu_auc_mbs": 20379,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--params", type=Path)
    ap.add_argument("--keep", type=Path, help="copy the report here too")
    ap.add_argument(
        "--cpu-check", action="store_true", help=argparse.SUPPRESS
    )  # smoke net on CPU: code path only
    args = ap.parse_args()

    import torch

    device = "cpu" if args.cpu_check else "cuda"
    if not torch.cuda.is_available() and not args.cpu_check:
        print(
            "No CUDA device here: this benchmark measures GPU time and memory of the paper-width model. "
            "Run it on a GPU machine. Nothing measured."
        )
        return 0

    from flarelib.config import compose_params
    from flarelib.evaluate.efficiency import format_table, measure_command, nvml_available, predict_command
    from flarelib.infer.pipeline import STAGES, save_model_file
    from flarelib.io import Volume, write_image
    from flarelib.models.unet import count_parameters, unet_from_params

    tmp = Path(tempfile.mkdtemp(prefix="gpu-paper-width-"))
    if args.model:
        model, extra = args.model, (["--params", str(args.params)] if args.params else [])
        desc = str(args.model)
    else:
        params = compose_params(
            REPO / "params" / "runs" / "default.yaml", "smoke" if args.cpu_check else "full", "phantom"
        )
        torch.manual_seed(0)
        net = unet_from_params(params.unet)
        desc = (
            f"random paper-width U-Net ({count_parameters(net) / 1e6:.2f} M parameters), window "
            f"{params.infer.window_zyx}, mirror {params.infer.mirror_axes}, fp16 {params.infer.half_precision}"  # noqa: E501
        )
        model, extra = save_model_file(tmp / "model.pt", params, {"teacher": net.state_dict()}), []
    case = tmp / "amos_like_0000.nii.gz"
    shape, spacing = ((16, 64, 64), (6.0, 4.0, 4.0)) if args.cpu_check else ((80, 256, 256), (3.0, 1.2, 1.2))
    image = synthetic_mr(shape) * 1000
    write_image(Volume(image, spacing, (0.0, 0.0, 0.0), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), case)
    has_nvml = nvml_available(0) and not args.cpu_check

    results, stage_rows = [], []
    runs = 1 if args.quick else args.runs
    for r in range(runs):
        timings = tmp / f"timings_{r}.csv"
        cmd = predict_command(
            case, tmp / "out", model, None, [*extra, "--device", device, "--timings", str(timings)]
        )
        res = measure_command(
            cmd, case=f"run {r + 1}", size_xyz=(256, 256, 80), gpu_index=0 if has_nvml else None
        )
        if res.returncode != 0:
            print(res.output_tail)
            return 1
        results.append(res)
        stage_rows.append(next(csv.DictReader(timings.open())))
        print(
            f"run {r + 1}/{runs}: {res.time_s:.2f} s, max GPU {res.max_gpu_mb:.0f} MB, AUC {res.gpu_auc_mbs:.0f} MB s",  # noqa: E501
            flush=True,
        )

    def med(key: str) -> float:
        return statistics.median(getattr(x, key) for x in results)

    stage_med = {s: statistics.median(float(row[s]) for row in stage_rows) for s in (*STAGES, "load_model")}
    lines = [
        "## Paper-width model on a 256 x 256 x 80 MR volume (GPU)"
        + (" (--quick: one run)" if args.quick else ""),
        "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`; {dt.date.today()}.",
        f"Model: {desc}. GPU memory via NVML: {'yes' if has_nvml else 'no (pip install nvidia-ml-py)'}.",
        "",
        "| | GPU | running time (s) | max GPU (MB) | total GPU (MB s) |",
        "|---|---|---|---|---|",
        f"| ours, median of {runs} | {torch.cuda.get_device_name(0) if device == 'cuda' else 'CPU'} | {med('time_s'):.2f} | {med('max_gpu_mb'):.0f} "  # noqa: E501
        f"| {med('gpu_auc_mbs'):.0f} |",
        f"| paper Table 7, {PAPER_ROW['case']} | RTX 4090 | {PAPER_ROW['time_s']:.2f} | {PAPER_ROW['max_gpu_mb']} "  # noqa: E501
        f"| {PAPER_ROW['gpu_auc_mbs']} |",
        "",
        "Stages (median, s): " + ", ".join(f"{s} {v:.2f}" for s, v in stage_med.items()) + ".",
        "",
        format_table(results, paper=False),
    ]
    text = "\n".join(lines)
    print()
    print(text)
    print(f"\nwritten to {write_report('gpu_paper_width' + ('_quick' if args.quick else ''), text)}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        (args.keep / "gpu_paper_width.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
