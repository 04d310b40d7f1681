"""How good are stage 2's and stage 3's decision makers? Measured on the phantom against its hidden
truth (``<data root>/diagnostics/``), which the method never reads; the paper could not measure this.

Label transfer (:func:`transfer_diagnostics`). The phantom's TRUE T1W labels play the T1W
pseudo-labels (optionally with controlled errors, ``t1w_errors``); every patient goes through
:func:`flarelib.pseudolabel.transfer.transfer_patients`; for every registered sequence the
transferred label (accepted or not) is scored against that sequence's true label: the mean over the
13 organs of the per-organ Dice (organs absent from both left out). A transfer is "good" when that
mean is >= ``good_dsc`` (0.8). The filter's accept/reject is then scored as a detector of good
transfers (precision, recall), and the phantom's badly misaligned sequences (``truth.json``) are
listed with their decisions.

Anatomy filter (:func:`anatomy_diagnostics`). The true labels of the phantom's MR volumes (LLD-MMR,
AMOS-like, validation) are checked as they are (false rejections: any rejection of a clean true label
is one) and with one injected violation of each kind (:func:`flarelib.pseudolabel.anatomy.
inject_violation`, seeded): recall = the share of confirmed violations the filter rejects.

``flarelib pseudolabel-diagnostics --profile quick`` prints both and writes them under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flarelib.config import Params
from flarelib.errors import FlareInputError
from flarelib.evaluate.dice import dice
from flarelib.io import read_label, write_image
from flarelib.labels import ORGAN_IDS, SEQUENCES
from flarelib.pseudolabel import anatomy as A
from flarelib.pseudolabel import transfer as T

__all__ = [
    "AnatomyDiagnostics",
    "TransferDiagnostics",
    "add_cli",
    "anatomy_diagnostics",
    "kidney_filter_ceiling",
    "mean_organ_dice",
    "run_diagnostics",
    "threshold_sweep",
    "transfer_diagnostics",
]

DIAGNOSTICS = "diagnostics"


def mean_organ_dice(pred: np.ndarray, true: np.ndarray, organs: Sequence[int] = ORGAN_IDS) -> float:
    """Mean over ``organs`` of the per-organ Dice, organs absent from both left out (NaN if all are)."""
    vals = [dice(pred == o, true == o, empty=None) for o in organs]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else math.nan


def _true_label_path(root: Path, subset: str, case: str) -> Path:
    return root / DIAGNOSTICS / "labels" / subset / f"{case}.nii.gz"


def _subsets_of_role(params: Params, roles: Sequence[str]) -> list[str]:
    return [name for name, s in params.data.subsets.items() if s.role in roles]


def _data_root(params: Params, data_root: str | os.PathLike | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    from flarelib.datasets import ensure_data

    return ensure_data(params)


def _load_truth(root: Path) -> dict[str, Any]:
    from flarelib.data.phantom.generate import load_truth

    return load_truth(root)


# --------------------------------------------------------------------------------------------------
# Label transfer
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TransferDiagnostics:
    """Per registered sequence: decision, kidney DSCs, true transferred-label DSC; and the summary."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    seconds: dict[str, float]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def report(self) -> str:
        """Human-readable summary (what the CLI prints)."""
        s = self.summary
        lines = [
            f"Label transfer + kidney-DSC filter ({s['n_patients']} patients, {s['n']} registered "
            f"sequences; good = true mean organ DSC >= {s['good_dsc']})",
            f"  accepted {s['accepted']}, rejected {s['rejected']}; good {s['good']} "
            f"(TP {s['tp']}, FP {s['fp']}, FN {s['fn']}, TN {s['tn']})",
            f"  precision {_f(s['precision'])}   recall {_f(s['recall'])}   (accepting every transfer: "
            f"precision {_f(s['good'] / s['n'] if s['n'] else math.nan)}, recall 1)",
            f"  mean true DSC: accepted {_f(s['mean_dsc_accepted'])}, rejected {_f(s['mean_dsc_rejected'])}",
            f"  misaligned per truth.json: {s['misaligned_n']}, rejected {s['misaligned_rejected']}; "
            f"accepted: {', '.join(s['misaligned_accepted_detail']) or '-'}",
            f"  per-patient seconds: mean {_f(s['seconds_mean'], 1)}, max {_f(s['seconds_max'], 1)} "
            f"(workers {s['workers']})",
            f"  kidney-DSC (max side) as a score for good transfers: ROC AUC {_f(s['kidney_auc'])}",
            "  per sequence (n, accepted, good, good & accepted, mean true DSC, mean kidney DSC R/L;",
            "  ceiling = the filter under perfect alignment: kidney DSC R/L, accepted):",
        ]
        ceiling = s.get("ceiling", {})
        for seq, d in s["per_sequence"].items():
            c = ceiling.get(seq if seq != "OP" else "IP")
            ceil = (
                f"  ceiling {_f(c['kidney_right'])}/{_f(c['kidney_left'])} acc={c['would_accept']}/{c['n']}"
                if c
                else ""
            )
            lines.append(
                f"    {seq:4s} n={d['n']} acc={d['accepted']} good={d['good']} tp={d['tp']} "
                f"true={_f(d['mean_dsc'])} kidney={_f(d['kidney_right'])}/{_f(d['kidney_left'])}{ceil}"
            )
        sweep = s.get("threshold_sweep")
        if sweep:
            lo, hi, n = sweep["grid"]
            lines += [
                f"  the rule's three thresholds swept ({lo:g}..{hi:g}, {n} values each; fitted on these "
                "rows, an optimistic bound):",
                f"    best recall with precision >= {sweep['min_precision']:g}: "
                + _setting(sweep["best_recall_at_min_precision"]),
                f"    best precision with recall >= {sweep['min_recall']:g}: "
                + _setting(sweep["best_precision_at_min_recall"]),
                f"    any setting reaching both: {'yes' if sweep['both_met'] else 'no'}",
            ]
        return "\n".join(lines)


def _setting(d: Mapping[str, float] | None) -> str:
    if d is None:
        return "none"
    return (
        f"precision {_f(d['precision'])} recall {_f(d['recall'])} (DCE: one > {d['dce_accept_one']:g}; "
        f"others: both > {d['other_accept_both']:g}, one > {d['other_accept_one']:g})"
    )


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _perturb_t1w(label: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Controlled T1W pseudo-label errors: ``erode1`` / ``dilate1`` every organ by one voxel (6-conn),
    ``shift1`` the whole label by one voxel along a random axis."""
    from scipy import ndimage as ndi

    out = label.copy()
    if kind == "shift1":
        axis, step = int(rng.integers(3)), int(rng.choice([-1, 1]))
        return np.roll(out, step, axis=axis)
    for o in ORGAN_IDS:
        m = label == o
        if not m.any():
            continue
        if kind == "erode1":
            out[m & ~ndi.binary_erosion(m)] = 0
        elif kind == "dilate1":
            out[ndi.binary_dilation(m) & (label == 0)] = o
        else:
            raise ValueError(f"unknown t1w error {kind!r}; use erode1, dilate1 or shift1")
    return out


def transfer_diagnostics(
    params: Params,
    out_dir: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    workers: int | None = None,
    good_dsc: float = 0.8,
    t1w_errors: str | None = None,
    seed: int = 0,
    patients: Sequence[str] | None = None,
    progress: bool = True,
    t1w_labels: Mapping[str, str | os.PathLike] | None = None,
) -> TransferDiagnostics:
    """Run the transfer on the phantom's LLD-MMR patients with their true T1W labels (or the given
    ``t1w_labels``: patient -> T1W pseudo-label file, e.g. stage 1's) and score it against the truth.

    ``out_dir`` receives ``transfer/`` (labels, rejected labels, transfer.csv/json) and
    ``transfer_diagnostics.csv``. ``t1w_errors``: None, ``erode1``, ``dilate1`` or ``shift1`` (seeded
    by ``seed``). ``patients``: a subset of patient ids (default all).
    """
    root = _data_root(params, data_root)
    truth = _load_truth(root)
    out = Path(out_dir)
    from flarelib.data.layout import discover, lld_patients

    subsets = _subsets_of_role(params, ("mr_lld",))
    if not subsets:
        raise FlareInputError("data.subsets", "no subset with role mr_lld", "use the phantom data track")
    found = discover(params)
    groups: dict[str, dict[str, Any]] = {}
    subset_of: dict[str, str] = {}
    for sub in subsets:
        for p, seqs in lld_patients(found[sub]).items():
            if patients is not None and p not in patients:
                continue
            groups[p] = seqs
            subset_of[p] = sub
    if not groups:
        raise FlareInputError(root, "no LLD-MMR patients found", "generate the phantom (flarelib generate)")
    given = t1w_labels
    t1w_labels = {}
    for i, (p, seqs) in enumerate(groups.items()):
        if "T1W" not in seqs or (given is not None and p not in given):
            continue
        if given is not None:
            path = Path(given[p])
        else:
            path = _true_label_path(root, subset_of[p], seqs["T1W"].case_id)
        if t1w_errors:
            lab = read_label(path)
            rng = np.random.default_rng([int(seed), i])
            path = out / "t1w_input" / f"{seqs['T1W'].case_id}.nii.gz"
            write_image(lab.with_array(_perturb_t1w(lab.array, t1w_errors, rng)), path)
        t1w_labels[p] = path
    groups = {p: s for p, s in groups.items() if p in t1w_labels}
    images = {p: {s: c.image for s, c in seqs.items()} for p, seqs in groups.items()}
    cases = {p: {s: c.case_id for s, c in seqs.items()} for p, seqs in groups.items()}
    n_workers = workers if workers is not None else params.transfer.workers
    n_workers = min(2, len(groups)) if n_workers <= 0 else n_workers
    table = T.transfer_patients(
        images,
        t1w_labels,
        params.transfer,
        params.registration,
        out / "transfer",
        cases=cases,
        workers=n_workers,
        fix_zflip=params.preprocess.fix_zflip,
        write_rejected=True,
        progress=progress,
    )
    misaligned = set(truth.get("lld_mmr", {}).get("misaligned", []))
    rows = []
    for rec in table.records:
        if rec.decision in ("reference", "missing"):
            continue
        pred_path = Path(rec.label) if rec.label else out / "transfer" / T.REJECTED_DIR / f"{rec.case}.nii.gz"
        pred = read_label(pred_path).array
        true = read_label(_true_label_path(root, subset_of[rec.patient], rec.case)).array
        kid = [v for v in (rec.dsc_right, rec.dsc_left) if v is not None and not math.isnan(v)]
        rows.append(
            {
                "patient": rec.patient,
                "sequence": rec.sequence,
                "case": rec.case,
                "decision": rec.decision,
                "accepted": rec.decision == "accept",
                "true_dsc": mean_organ_dice(pred, true),
                "true_kidney_right": dice(pred == 2, true == 2, empty=math.nan),
                "true_kidney_left": dice(pred == 13, true == 13, empty=math.nan),
                "kidney_right": rec.dsc_right,
                "kidney_left": rec.dsc_left,
                "kidney_max": max(kid) if kid else math.nan,
                "misaligned": rec.case in misaligned,
                "zflip": rec.zflip,
                "registration": rec.registration,
                "registration_quality": rec.registration_quality,
                "reason": rec.reason,
            }
        )
    for r in rows:
        r["good"] = bool(r["true_dsc"] >= good_dsc)
    summary = _transfer_summary(rows, good_dsc, table.seconds, n_workers)
    summary["ceiling"] = kidney_filter_ceiling(params, groups, subset_of, root)
    summary["threshold_sweep"] = threshold_sweep(rows, params.transfer)
    summary["n_patients"] = len(groups)
    summary["t1w_errors"] = t1w_errors
    diag = TransferDiagnostics(rows, summary, table.seconds)
    out.mkdir(parents=True, exist_ok=True)
    diag.frame().to_csv(out / "transfer_diagnostics.csv", index=False)
    return diag


def kidney_filter_ceiling(
    params: Params,
    groups: dict[str, dict[str, Any]],
    subset_of: dict[str, str],
    root: Path,
) -> dict[str, Any]:
    """The filter under perfect alignment: per sequence, the coarse kidneys extracted with the
    sequence's OWN true label in place of the transferred T1W label, their DSCs, and how many
    sequences the rules would accept. What the kidney contrast of each sequence allows at best."""
    from flarelib.io import read_image

    tp = params.transfer
    per: dict[str, list[tuple[float, float, bool]]] = {}
    for p, seqs in groups.items():
        for seq, case in seqs.items():
            if seq in ("T1W", "OP"):
                continue
            img = read_image(case.image).array
            true = read_label(_true_label_path(root, subset_of[p], case.case_id)).array
            _, d = T.kidney_dscs(img, true, tp, dark=seq in tp.dark_kidney_sequences)
            ok = T.decide(seq, d["right"], d["left"], tp).accepted
            per.setdefault(seq, []).append((d["right"], d["left"], ok))
    out = {}
    for seq, vals in per.items():
        a = np.array([(r, lft) for r, lft, _ in vals], float)
        out[seq] = {
            "n": len(vals),
            "kidney_right": float(np.nanmean(a[:, 0])),
            "kidney_left": float(np.nanmean(a[:, 1])),
            "best_kidney_max": float(np.nanmax(a)),
            "would_accept": int(sum(ok for *_, ok in vals)),
        }
    return out


def _transfer_summary(
    rows: list[dict[str, Any]], good_dsc: float, seconds: dict[str, float], workers: int
) -> dict[str, Any]:
    acc = [r for r in rows if r["accepted"]]
    rej = [r for r in rows if not r["accepted"]]
    tp = sum(r["good"] for r in acc)
    fp = len(acc) - tp
    fn = sum(r["good"] for r in rej)
    tn = len(rej) - fn
    mis = [r for r in rows if r["misaligned"]]

    def mean(vals):
        vals = [v for v in vals if v is not None and not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    per_seq: dict[str, Any] = {}
    for seq in SEQUENCES:
        rs = [r for r in rows if r["sequence"] == seq]
        if not rs:
            continue
        per_seq[seq] = {
            "n": len(rs),
            "accepted": sum(r["accepted"] for r in rs),
            "good": sum(r["good"] for r in rs),
            "tp": sum(r["good"] and r["accepted"] for r in rs),
            "mean_dsc": mean([r["true_dsc"] for r in rs]),
            "kidney_right": mean([r["kidney_right"] for r in rs]),
            "kidney_left": mean([r["kidney_left"] for r in rs]),
        }
    secs = list(seconds.values())
    return {
        "good_dsc": good_dsc,
        "n": len(rows),
        "accepted": len(acc),
        "rejected": len(rej),
        "good": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / len(acc) if acc else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "mean_dsc_accepted": mean([r["true_dsc"] for r in acc]),
        "mean_dsc_rejected": mean([r["true_dsc"] for r in rej]),
        "kidney_auc": _auc([r["kidney_max"] for r in rows], [r["good"] for r in rows]),
        "misaligned_n": len(mis),
        "misaligned_rejected": sum(not r["accepted"] for r in mis),
        "misaligned_accepted_detail": [
            f"{r['case']} (true DSC {r['true_dsc']:.3f})" for r in mis if r["accepted"]
        ],
        "misaligned_true_dsc": {r["case"]: round(r["true_dsc"], 4) for r in mis},
        "per_sequence": per_seq,
        "seconds_mean": float(np.mean(secs)) if secs else math.nan,
        "seconds_max": float(np.max(secs)) if secs else math.nan,
        "workers": workers,
    }


#: Thresholds :func:`threshold_sweep` tries for each of the filter's three (0.50, 0.51, ... 0.99).
SWEEP_GRID: tuple[float, ...] = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))


def threshold_sweep(
    rows: Sequence[Mapping[str, Any]],
    params: T.TransferParams,
    *,
    grid: Sequence[float] = SWEEP_GRID,
    min_precision: float = 0.9,
    min_recall: float = 0.7,
) -> dict[str, Any]:
    """The kidney-DSC filter's rule with every choice of its three thresholds, on measured rows.

    ``rows``: :func:`transfer_diagnostics` rows (``patient, sequence, kidney_right, kidney_left,
    good``). Each row is decided again by :func:`flarelib.pseudolabel.transfer.decide` with
    ``dce_accept_one``, ``other_accept_both`` and ``other_accept_one`` (>= ``other_accept_both``)
    taken from ``grid`` (OP follows its patient's IP), and scored as a detector of good transfers.
    Returns the paper's thresholds' ``(precision, recall)``, the best recall among settings with
    precision >= ``min_precision`` and the best precision among settings with recall >=
    ``min_recall`` (each with its thresholds; None when no setting qualifies), and ``both_met``:
    whether any setting reaches both. The thresholds are the rule's only free parameters, so
    ``both_met`` False says that no tuning of the paper's rule meets the targets on these rows.
    """
    rows = [r for r in rows if r["sequence"] != "T1W"]
    good = np.array([bool(r["good"]) for r in rows])
    dce = np.array([r["sequence"] in T.DCE_SEQUENCES for r in rows])
    ip_of = {r["patient"]: i for i, r in enumerate(rows) if r["sequence"] == "IP"}
    # OP follows its patient's IP: an OP row counts as a copy of that IP row (or is never accepted)
    source = [ip_of.get(r["patient"], -1) if r["sequence"] == "OP" else i for i, r in enumerate(rows)]

    def accepted(**thresholds: float) -> np.ndarray:
        t = dataclasses.replace(params, **thresholds)
        own = np.array(
            [
                r["sequence"] != "OP"
                and T.decide(r["sequence"], r["kidney_right"], r["kidney_left"], t).accepted
                for r in rows
            ]
        )
        return np.array([j >= 0 and own[j] for j in source])

    # The DCE rows depend on dce_accept_one alone, the others on the other two: count each part once.
    dce_part = {v: accepted(dce_accept_one=v) & dce for v in grid}
    other_part = {
        (b, o): accepted(other_accept_both=b, other_accept_one=o) & ~dce for b in grid for o in grid if o >= b
    }
    n_good = int(good.sum())

    def pr(acc: np.ndarray) -> tuple[float, float]:
        n_tp = int((acc & good).sum())
        precision = n_tp / int(acc.sum()) if acc.any() else math.nan
        return precision, (n_tp / n_good if n_good else math.nan)

    def named(t: tuple[float, float, float], scores: tuple[float, float]) -> dict[str, float]:
        return {
            "dce_accept_one": t[0],
            "other_accept_both": t[1],
            "other_accept_one": t[2],
            "precision": scores[0],
            "recall": scores[1],
        }

    paper_t = (params.dce_accept_one, params.other_accept_both, params.other_accept_one)
    paper = pr(accepted())
    best_recall = best_precision = None
    both_met = False
    for v, a in dce_part.items():
        for (b, o), c in other_part.items():
            p_, r_ = pr(a | c)
            if math.isnan(p_):
                continue
            if p_ >= min_precision and (best_recall is None or r_ > best_recall["recall"]):
                best_recall = named((v, b, o), (p_, r_))
            if r_ >= min_recall and (best_precision is None or p_ > best_precision["precision"]):
                best_precision = named((v, b, o), (p_, r_))
            both_met = both_met or (p_ >= min_precision and r_ >= min_recall)
    return {
        "paper": named(paper_t, paper),
        "min_precision": min_precision,
        "min_recall": min_recall,
        "best_recall_at_min_precision": best_recall,
        "best_precision_at_min_recall": best_precision,
        "both_met": both_met,
        "grid": [float(min(grid)), float(max(grid)), len(grid)],
    }


def _auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC AUC of ``scores`` for ``labels`` (Mann-Whitney; NaN scores count as lowest)."""
    s = np.nan_to_num(np.asarray(scores, float), nan=-1.0)
    y = np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return math.nan
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------
# Anatomy filter
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class AnatomyDiagnostics:
    """Clean true labels checked as they are and with injected violations."""

    clean: list[dict[str, Any]]
    injected: list[dict[str, Any]]
    summary: dict[str, Any]

    def report(self) -> str:
        s = self.summary
        lines = [
            f"Anatomy filter (connectivity {s['connectivity']}, sizes scaled from "
            f"{s['reference_spacing_zyx']} mm; {s['n_clean']} true MR labels)",
            f"  clean labels rejected: {s['clean_rejected']} of {s['n_clean']} "
            f"(false-rejection rate {_f(s['false_rejection_rate'])})"
            + (f": {', '.join(s['clean_rejected_cases'])}" if s["clean_rejected_cases"] else ""),
            f"  injected violations: {s['n_injected']} confirmed ({s['n_unconfirmed']} attempts that "
            f"broke nothing left out), caught {s['caught']} (recall {_f(s['recall'])}); "
            f"into labels that pass clean: {s['n_injected_into_passing']}, recall "
            f"{_f(s['recall_on_passing'])}",
        ]
        for kind, d in s["per_kind"].items():
            lines.append(f"    {kind:6s} n={d['n']} caught={d['caught']} recall={_f(d['recall'])}")
        if s["missed"]:
            lines.append(f"  missed: {'; '.join(s['missed'][:10])}")
        return "\n".join(lines)


def anatomy_diagnostics(
    params: Params,
    out_dir: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    roles: Sequence[str] = ("mr_lld", "mr_amos", "mr_val"),
    kinds: Sequence[str] = A.INJECTION_KINDS,
    seed: int = 0,
    progress: bool = True,
) -> AnatomyDiagnostics:
    """Check the phantom's true MR labels, clean and with one injected violation per kind.

    Labels are checked on their own grids (their spacing scales the thresholds). Each injection is
    seeded by ``(seed, case index, kind index)``. With ``out_dir``, ``anatomy_diagnostics.json``.
    """
    root = _data_root(params, data_root)
    files: list[Path] = []
    for sub in _subsets_of_role(params, roles):
        files += sorted((root / DIAGNOSTICS / "labels" / sub).glob("*.nii.gz"))
    if not files:
        raise FlareInputError(root, "no true MR labels under diagnostics/labels", "generate the phantom")
    ap = params.anatomy
    clean, injected = [], []
    it = files
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(files, desc="anatomy diagnostics", unit="label")
    for i, f in enumerate(it):
        vol = read_label(f)
        case = f.name.removesuffix(".nii.gz")
        res = A.check_anatomy(vol, ap, case=case)
        clean.append({"case": case, "passed": res.passed, "violations": [v.message for v in res.violations]})
        for k, kind in enumerate(kinds):
            rng = A.injection_rng(seed, i, k)
            bad, info = A.inject_violation(vol.array, kind, rng, ap, spacing_zyx=vol.spacing_zyx)
            r = A.check_anatomy(vol.with_array(bad), ap, case=case)
            injected.append(
                {
                    "case": case,
                    **info,
                    "caught": not r.passed,
                    "constraints": sorted({v.constraint for v in r.violations}),
                }
            )
    conf = [r for r in injected if r["confirmed"]]
    passed_clean = {r["case"] for r in clean if r["passed"]}
    conf_on_clean = [r for r in conf if r["case"] in passed_clean]
    per_kind = {}
    for kind in kinds:
        rs = [r for r in conf if r["kind"] == kind]
        caught = sum(r["caught"] for r in rs)
        per_kind[kind] = {"n": len(rs), "caught": caught, "recall": caught / len(rs) if rs else math.nan}
    rejected_clean = [r["case"] for r in clean if not r["passed"]]
    caught = sum(r["caught"] for r in conf)
    summary = {
        "connectivity": ap.connectivity,
        "reference_spacing_zyx": ap.reference_spacing_zyx,
        "n_clean": len(clean),
        "clean_rejected": len(rejected_clean),
        "clean_rejected_cases": rejected_clean,
        "false_rejection_rate": len(rejected_clean) / len(clean),
        "n_injected": len(conf),
        "n_unconfirmed": len(injected) - len(conf),
        "caught": caught,
        "recall": caught / len(conf) if conf else math.nan,
        # the telling number: violations injected into labels the filter passes when clean
        "n_injected_into_passing": len(conf_on_clean),
        "recall_on_passing": (
            sum(r["caught"] for r in conf_on_clean) / len(conf_on_clean) if conf_on_clean else math.nan
        ),
        "per_kind": per_kind,
        "missed": [
            f"{r['case']} {r['kind']} organ {r['organ']} ({r['broke']})" for r in conf if not r["caught"]
        ],
    }
    diag = AnatomyDiagnostics(clean, injected, summary)
    if out_dir is not None:
        from flarelib.paths import atomic_write_text

        blob = {"summary": summary, "clean": clean, "injected": injected}
        atomic_write_text(Path(out_dir) / "anatomy_diagnostics.json", json.dumps(blob, indent=1) + "\n")
    return diag


# --------------------------------------------------------------------------------------------------
# Both, and the CLI
# --------------------------------------------------------------------------------------------------
def run_diagnostics(
    params: Params,
    out_dir: str | os.PathLike,
    *,
    transfer: bool = True,
    anatomy: bool = True,
    workers: int | None = None,
    t1w_errors: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Both diagnostics; writes ``pseudolabel_diagnostics.json`` (the summaries) under ``out_dir``
    and returns ``{"transfer": TransferDiagnostics, "anatomy": AnatomyDiagnostics}`` (those run)."""
    from flarelib.paths import atomic_write_text

    if params.data.track != "phantom":
        raise FlareInputError(
            "data.track",
            f"diagnostics need the phantom's hidden truth, not track {params.data.track!r}",
            "use --data phantom",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    blob: dict[str, Any] = {}
    if transfer:
        t0 = time.perf_counter()
        results["transfer"] = transfer_diagnostics(
            params, out, workers=workers, t1w_errors=t1w_errors, seed=seed, progress=progress
        )
        blob["transfer"] = results["transfer"].summary
        blob["transfer"]["wall_seconds"] = time.perf_counter() - t0
    if anatomy:
        results["anatomy"] = anatomy_diagnostics(params, out, seed=seed, progress=progress)
        blob["anatomy"] = results["anatomy"].summary
    atomic_write_text(out / "pseudolabel_diagnostics.json", json.dumps(blob, indent=1, default=str) + "\n")
    return results


COMMAND = "pseudolabel-diagnostics"
_HELP = "accuracy of the label-transfer (kidney-DSC) and anatomy filters on the phantom's hidden truth"


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``pseudolabel-diagnostics``; its handler is ``args.func``."""
    from flarelib.params_cli import add_params_arguments

    parser = subparsers.add_parser(COMMAND, help=_HELP, description=_HELP)
    add_params_arguments(parser)
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default outputs/<profile>/<run>/pseudolabel_diagnostics)",
    )
    parser.add_argument("--workers", type=int, default=None, help="patients in parallel (default: params)")
    parser.add_argument(
        "--t1w-errors", choices=("erode1", "dilate1", "shift1"), help="controlled errors on the T1W input"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the injected violations / T1W errors")
    parser.add_argument("--skip-transfer", action="store_true", help="only the anatomy filter")
    parser.add_argument("--skip-anatomy", action="store_true", help="only the label transfer")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from flarelib.params_cli import params_from_args
    from flarelib.paths import stage_dir

    params = params_from_args(args)
    out = (
        Path(args.out)
        if args.out
        else stage_dir(params.run.profile, params.run.name, "pseudolabel_diagnostics")
    )
    t0 = time.perf_counter()
    res = run_diagnostics(
        params,
        out,
        transfer=not args.skip_transfer,
        anatomy=not args.skip_anatomy,
        workers=args.workers,
        t1w_errors=args.t1w_errors,
        seed=args.seed,
        progress=not args.no_progress,
    )
    for key in ("transfer", "anatomy"):
        if key in res:
            print(res[key].report())
    print(f"written to {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover
    parser = argparse.ArgumentParser(prog="flarelib")
    add_cli(parser.add_subparsers())
    args = parser.parse_args([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)
