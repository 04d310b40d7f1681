"""Benchmark: what a fresh clone's `make reproduce` does before its first training, and how long.

    python benchmarks/bench_fresh_clone.py [--profile quick]

A checkout that has run the study before already holds the phantom (``data/phantom/<profile>``) and
the preprocessed volumes (``outputs/_preprocessed``); a fresh clone makes both first. This times the
two apart, in temporary folders (the checkout's own data and cache are neither read nor touched):
(a) ``flarelib generate`` of the profile's phantom, in a subprocess as ``00_data`` runs it;
(b) every case of every subset through ``load_train_volume`` into an empty cache, in the two
intensity modes the study trains with (``zscore`` for segmentation; ``ct255`` / ``mr255`` for the
CycleGAN). Add both to a ``make reproduce`` timed on a checkout that had them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    try:
        data = scratch / "data" / args.profile
        profile_file = REPO / "params" / "profiles" / f"{args.profile}.yaml"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flarelib", "generate", "--params", str(profile_file), "--out", str(data)],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        generate_s = time.perf_counter() - t0

        os.environ["FLARE_PREPROCESSED"] = str(scratch / "preprocessed")
        from flarelib.config import compose_params
        from flarelib.data.layout import discover
        from flarelib.train.stages import load_train_volume

        run_file = REPO / "params" / "runs" / "proposed.yaml"
        root = {"data": {"root": str(data)}}  # the generated copy, not the checkout's phantom
        params = compose_params(run_file, args.profile, "phantom", overrides=root)
        cases = [c for subset in discover(params).values() for c in subset]
        spacing = params.preprocess.target_spacing_zyx
        t0 = time.perf_counter()
        pairs = 0
        for case in cases:
            for mode in ("zscore", "ct255" if case.modality == "CT" else "mr255"):
                load_train_volume(case, spacing, mode, params.preprocess)
                pairs += 1
        prepare_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"| profile | generate the phantom | prepare {pairs} volumes cold ({len(cases)} cases) | total |")
    print("|---|---|---|---|")
    print(f"| {args.profile} | {generate_s:.1f} s | {prepare_s:.1f} s | {generate_s + prepare_s:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
