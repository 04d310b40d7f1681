"""How close is the CycleGAN's fake T1W to real T1W? Organ intensities of CT, fake T1W and real T1W.

    python benchmarks/diag_fake_mr.py [--profile quick] [--cyclegan CKPT] [--out FILE]

With the run's CycleGAN (default ``outputs/<profile>/default/cyclegan/checkpoint.pt``), every
labelled phantom CT (windowed to 0..255 at the training spacing) is translated to fake T1W; per
organ, the table gives the mean intensity (0..255) of CT and fake T1W under the CT label, and of the
real T1W volumes under their true labels (the phantom's diagnostics, which the method never reads).
A useful translation brings the fake column close to the real one. Prints markdown (and writes it
to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ORGANS = (1, 2, 3, 4, 5, 6, 9, 11, 13)


def _organ_means(image: np.ndarray, label: np.ndarray) -> dict[int, float]:
    return {o: float(image[label == o].mean()) for o in ORGANS if np.any(label == o)}


def intensity_table(params, generator, ct_volumes, t1w_cases) -> tuple[list[str], float, float]:
    """Markdown rows (organ | CT | fake T1W | real T1W) and the mean |organ mean - real T1W| of CT
    and of fake T1W. ``ct_volumes``: 0..255 labelled TrainVolumes; ``t1w_cases``: layout cases of
    real T1W (read, resampled to the training spacing and scaled like the CycleGAN's domain B)."""
    from flarelib.data.phantom import read_truth_label
    from flarelib.labels import SHORT_NAMES
    from flarelib.paths import data_root
    from flarelib.preprocess import resample
    from flarelib.train.cyclegan import translate_volume
    from flarelib.train.stages import load_train_volume

    spacing = params.preprocess.target_spacing_zyx
    root = data_root(params)
    ct_means, fake_means, t1_means = [], [], []
    for vol in ct_volumes:
        c = params.cyclegan
        fake = translate_volume(generator, vol.image, c.patch_zyx, c.translate_overlap)
        ct_means.append(_organ_means(vol.image, vol.label))
        fake_means.append(_organ_means(fake, vol.label))
    for case in t1w_cases:
        vol = load_train_volume(case, spacing, "mr255", params.preprocess)
        true = read_truth_label(root, case.subset, case.case_id)
        t1_means.append(_organ_means(vol.image, resample(true, spacing, is_label=True).array))

    def avg(rows, o):
        vals = [r[o] for r in rows if o in r]
        return float(np.mean(vals)) if vals else float("nan")

    rows, gap_ct, gap_fake = [], [], []
    for o in ORGANS:
        c, f, t = avg(ct_means, o), avg(fake_means, o), avg(t1_means, o)
        gap_ct.append(abs(c - t))
        gap_fake.append(abs(f - t))
        rows.append(f"| {SHORT_NAMES[o]} | {c:.1f} | {f:.1f} | {t:.1f} |")
    return rows, float(np.mean(gap_ct)), float(np.mean(gap_fake))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--cyclegan", type=Path)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from flarelib.config import compose_params
    from flarelib.data.layout import discover
    from flarelib.paths import project_root, stage_dir
    from flarelib.train.fake_mr import load_translator
    from flarelib.train.loop import resolve_device
    from flarelib.train.stages import LABELLED_ROLES, load_train_volume

    params = compose_params(project_root() / "params" / "runs" / "default.yaml", args.profile, "phantom")
    ckpt = args.cyclegan or stage_dir(args.profile, params.run.name, "cyclegan") / "checkpoint.pt"
    generator, record = load_translator(ckpt, params, resolve_device(args.device))
    cases = [c for cs in discover(params).values() for c in cs]
    spacing = params.preprocess.target_spacing_zyx
    ct = [
        load_train_volume(c, spacing, "ct255", params.preprocess)
        for c in cases
        if c.role in LABELLED_ROLES and c.label is not None
    ]
    t1w = [c for c in cases if c.role == "mr_lld" and c.sequence == params.cyclegan.target_sequence]
    rows, gap_ct, gap_fake = intensity_table(params, generator, ct, t1w)
    text = "\n".join(
        [
            f"CycleGAN {ckpt} (iteration {record['iteration']}); {args.profile} phantom, "
            f"{len(ct)} CT, {len(t1w)} real T1W. Mean intensity (0..255) per organ:",
            "",
            "| organ | CT (windowed) | CT -> fake T1W | real T1W |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Mean |organ mean - real T1W|: CT {gap_ct:.1f}, fake T1W {gap_fake:.1f}.",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
