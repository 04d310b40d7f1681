"""flarelib.pseudolabel.diagnostics: scoring pieces on constructed inputs (the phantom run itself is
`flarelib pseudolabel-diagnostics --profile quick`)."""

from __future__ import annotations

import math

import numpy as np

from flarelib.pseudolabel import diagnostics as D


def test_mean_organ_dice_leaves_out_organs_absent_from_both():
    a = np.zeros((4, 4, 4), np.uint8)
    b = a.copy()
    a[:2] = 1
    b[:2] = 1
    a[3, 0, 0] = 5  # present in one only: 0
    assert D.mean_organ_dice(a, b) == 0.5
    assert math.isnan(D.mean_organ_dice(np.zeros_like(a), np.zeros_like(a)))


def test_auc():
    assert D._auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert D._auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert D._auc([0.5, 0.5], [True, False]) == 0.5
    assert math.isnan(D._auc([0.5], [True]))


def test_transfer_summary_counts():
    def row(seq, acc, dsc, mis=False):
        return {
            "sequence": seq,
            "case": f"P_{seq}",
            "accepted": acc,
            "true_dsc": dsc,
            "good": dsc >= 0.8,
            "kidney_right": 0.9,
            "kidney_left": 0.9,
            "kidney_max": 0.9 if acc else 0.5,
            "misaligned": mis,
        }

    rows = [row("PVP", True, 0.9), row("DP", True, 0.7), row("IP", False, 0.85), row("T2W", False, 0.3, True)]
    s = D._transfer_summary(rows, 0.8, {"P": 10.0}, 1)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (1, 1, 1, 1)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["mean_dsc_accepted"] == 0.8 and s["misaligned_rejected"] == 1
    assert s["per_sequence"]["PVP"]["tp"] == 1


def test_perturbed_t1w_labels():
    lab = np.zeros((9, 9, 9), np.uint8)
    lab[2:7, 2:7, 2:7] = 1
    rng = np.random.default_rng(0)
    assert (D._perturb_t1w(lab, "erode1", rng) == 1).sum() == 27
    assert (D._perturb_t1w(lab, "dilate1", rng) == 1).sum() == 125 + 6 * 25
    assert (D._perturb_t1w(lab, "shift1", rng) == 1).sum() == 125


def test_threshold_sweep_retunes_the_rule_and_says_when_no_tuning_meets_both_targets():
    from flarelib.config import TransferParams

    def row(seq, kidneys, good, patient="P1"):
        return {
            "patient": patient,
            "sequence": seq,
            "kidney_right": kidneys,
            "kidney_left": kidneys,
            "good": good,
        }

    rows = [
        row("T1W", math.nan, True),  # the reference: not a decision
        row("PVP", 0.9, True),  # accepted by the paper's thresholds
        row("EAP", 0.8, True),  # rejected (DCE: one kidney > 0.85), accepted below 0.8
        row("DP", 0.6, False),
        row("T2W", 0.82, True),  # rejected (no kidney > 0.85)
        row("IP", 0.9, False),  # accepted: a false accept, and OP with it
        row("OP", math.nan, False),
    ]
    s = D.threshold_sweep(rows, TransferParams())
    assert s["paper"]["precision"] == 1 / 3 and s["paper"]["recall"] == 1 / 3
    best = s["best_recall_at_min_precision"]  # keep PVP and EAP, reject IP (and T2W with it)
    assert (best["precision"], best["recall"]) == (1.0, 2 / 3)
    assert 0.6 <= best["dce_accept_one"] < 0.8 and best["other_accept_one"] >= 0.9
    # recall 1 needs T2W, and whatever accepts T2W (0.82) accepts IP (0.9) and OP: precision 3/5
    assert s["best_precision_at_min_recall"]["precision"] == 3 / 5
    assert s["both_met"] is False
    assert D.threshold_sweep(rows, TransferParams(), min_recall=0.6)["both_met"] is True
