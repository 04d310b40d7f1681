"""The paper's numbers (STUDY.md "The paper's results"), as data: mean DSC / NSD in 0..100 on the
FLARE24 Task 3 validation set unless said otherwise."""

from __future__ import annotations

#: Table 4 (proposed, validation): organ name (flarelib.labels.ORGANS) -> (DSC, NSD).
TABLE4: dict[str, tuple[float, float]] = {
    "liver": (96.56, 97.80),
    "right kidney": (93.82, 92.93),
    "spleen": (95.01, 97.58),
    "pancreas": (83.02, 95.85),
    "aorta": (88.79, 94.27),
    "inferior vena cava": (83.73, 87.68),
    "right adrenal gland": (60.23, 78.72),
    "left adrenal gland": (67.53, 83.69),
    "gallbladder": (79.56, 79.00),
    "esophagus": (64.07, 83.93),
    "stomach": (87.16, 91.72),
    "duodenum": (67.75, 91.25),
    "left kidney": (93.61, 93.39),
}
#: Table 4's mean row: DSC mean, DSC std, NSD mean, NSD std.
TABLE4_MEAN: tuple[float, float, float, float] = (81.60, 4.66, 89.83, 4.77)
#: Table 5: run name -> (DSC, NSD).
TABLE5: dict[str, tuple[float, float]] = {
    "baseline": (72.75, 78.82),
    "semi_all_mr": (73.14, 79.41),
    "proposed": (81.60, 89.83),
}
#: Table 6: run name -> (DSC, NSD), stage 2 rows then stage 3 rows (the paper's order).
TABLE6: dict[str, tuple[float, float]] = {
    "semi_wo_ct": (77.52, 84.53),
    "semi": (79.57, 87.19),
    "semi_wo_amos": (79.55, 87.20),
    "t_semi_wo_amos": (80.55, 88.29),
    "supervised": (80.64, 88.52),
    "a_semi_iter1": (81.18, 89.05),
    "proposed": (81.60, 89.83),
}
TABLE6_ORDER: list[str] = list(TABLE6)
#: Fig. 6: the self-training iteration with the best validation score (gains flatten or drop after).
FIG6_PEAK_ITERATION = 3
#: Test set (DSC, NSD) and efficiency: seconds per case, GPU memory-time AUC (MB s), max GPU MB (RTX 4090).
TEST = (73.3, 77.3)
EFFICIENCY = {"seconds_per_case": 11.8, "gpu_auc_mb_s": 26888.0, "gpu_max_mb": 3537.0}

#: The real track's published anchors (DESIGN.md "Data tracks"): mean Dice (0..100) over liver,
#: both kidneys and spleen on the BTCV CT -> CHAOS T2-SPIR MR benchmark, as reported by SIFA (Chen
#: et al., IEEE TMI 2020; 2-D) and DAR-UNet (3-D). Label -> (mean Dice, what the row is).
REAL_TRACK_ANCHORS: dict[str, tuple[float, str]] = {
    "no adaptation (SIFA's table)": (57.7, "2-D, trained on CT only"),
    "CycleGAN (SIFA's table)": (83.1, "2-D, image translation CT -> MR"),
    "SIFA": (85.4, "2-D, image + feature alignment"),
    "supervised on MR (SIFA's table)": (87.3, "2-D, the MR labels: the ceiling"),
    "DAR-UNet": (91.1, "3-D"),
}
#: Our real-track runs in table order, with the published row each one is read against.
REAL_TRACK_RUNS: dict[str, str] = {
    "baseline": "no adaptation (SIFA's table)",
    "baseline_randaug": "no adaptation (SIFA's table)",
    "baseline_synth": "no adaptation (SIFA's table)",
    "semi_all_mr": "no adaptation (SIFA's table)",
    "cyclegan_semi": "CycleGAN (SIFA's table)",
    "proposed": "SIFA",
}
#: What differs between our protocol and the published one (shown under the table).
REAL_TRACK_PROTOCOL = (
    "Ours: 30 BTCV CT (12 organs, duodenum unannotated) and 10 unlabelled CHAOS T2-SPIR volumes for "
    "training, scored on the 4 labelled CHAOS dev volumes (the 6 further labelled ones are held "
    "back); the quick CPU profile (2-D U-Net on whole axial slices at 4 x 3 x 3 mm, 500 iterations "
    "per model); FLARE-exact DSC on the input grid after post-processing. SIFA's protocol: 2-D "
    "256 x 256 slices, the 20 CHAOS T2 volumes split for training and testing, tens of thousands of "
    "GPU iterations; DAR-UNet: 3-D. The numbers are beside each other, not directly comparable."
)
