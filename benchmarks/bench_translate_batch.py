"""Whole-volume CycleGAN translation: tiles one at a time vs ``batch_size`` tiles per forward.

The quick profile's 2-D generator (ngf 8, 3 blocks, 64 x 64 tiles, half overlap) translates a
(z, y, x) = (60, 128, 128) volume of uniform noise, as stage 1 and ``flarelib translation-check``
translate every labelled CT; times are the best of 3, side by side in one run, with the largest
difference between the outputs (0..255).

    python benchmarks/bench_translate_batch.py   # ~15 s on 2 cores
"""

import time

import numpy as np
import torch

from flarelib.config import compose_params
from flarelib.models.configuration import configuration_of
from flarelib.models.cyclegan import generator_from_params
from flarelib.train.cyclegan import translate_volume


def main() -> None:
    p = compose_params("params/runs/default.yaml", "quick", "phantom")
    g = generator_from_params(p.cyclegan, torch.Generator().manual_seed(0), configuration_of(p)).eval()
    image = np.random.default_rng(0).uniform(0, 255, (60, 128, 128)).astype(np.float32)
    ref, base = None, None
    for batch in (1, 8, 32, 128):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            c = p.cyclegan
            out = translate_volume(g, image, c.patch_zyx, c.translate_overlap, batch_size=batch)
            times.append(time.perf_counter() - t)
        ref = out if ref is None else ref
        base = min(times) if base is None else base
        print(
            f"batch_size {batch:>3}: {min(times):.2f} s ({min(times) / base:.2f}x of one tile at a time), "
            f"max |difference| {float(np.abs(out - ref).max()):.1e}"
        )


if __name__ == "__main__":
    main()
