"""Benchmark: loading training volumes through the preprocessed-volume cache vs preparing them.

    python benchmarks/bench_preprocess_cache.py [--data real|phantom] [--profile quick] [--cases N]

Every training stage reads its volumes through ``flarelib.train.stages.load_train_volume``
(read NIfTI, reorient to LPS, resample to the training spacing, intensity). This times, side by
side in one run and on the same cases, (a) a cold load with the cache off (what every training
stage paid before the cache), (b) the first load with the cache on (prepare + write), (c) a warm
load (read the cached .npy), and checks (c) is bit-identical to (a). The cache lives in a temporary
folder, removed at the end. Prints a markdown table with the ratio warm / cold.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flarelib.config import compose_params  # noqa: E402
from flarelib.data import discover  # noqa: E402
from flarelib.preprocess import cache  # noqa: E402
from flarelib.train.stages import load_train_volume  # noqa: E402


def load_train_volumes(cases, params):
    spacing = params.preprocess.target_spacing_zyx
    t0 = time.perf_counter()
    vols = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in cases]
    return time.perf_counter() - t0, vols


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="real")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--cases", type=int, default=6)
    args = ap.parse_args()
    params = compose_params(REPO / "params" / "runs" / "default.yaml", args.profile, args.data)
    cases = [c for subset in discover(params).values() for c in subset if c.image.is_file()]
    cases = cases[: args.cases]
    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        os.environ[cache.ENV] = "off"
        cold, ref = load_train_volumes(cases, params)
        os.environ[cache.ENV] = str(tmp)
        first, _ = load_train_volumes(cases, params)
        warm, got = load_train_volumes(cases, params)
        same = all(
            np.array_equal(a.image, b.image) and (a.label is None or np.array_equal(a.label, b.label))
            for a, b in zip(ref, got, strict=True)
        )
        size_mb = sum(f.stat().st_size for f in tmp.rglob("*.npy")) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    voxels = sum(v.image.size for v in ref)
    print(f"## Preprocessed-volume cache: {args.data} data, {args.profile} profile ({len(cases)} cases)\n")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"spacing {params.preprocess.target_spacing_zyx} mm; {voxels / 1e6:.1f} M voxels prepared; "
        f"cache {size_mb:.0f} MiB\n"
    )
    print("| load | seconds | per case | vs cold |")
    print("|---|---|---|---|")
    for name, t in (("cold (cache off)", cold), ("first (prepare + write)", first), ("warm (cached)", warm)):
        print(f"| {name} | {t:.2f} | {t / len(cases):.3f} | {t / cold:.3f}x |")
    print(f"\nwarm arrays bit-identical to cold: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
