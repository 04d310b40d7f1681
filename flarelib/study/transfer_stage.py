"""Stage 2's first half as the study runs it: stage 1's T1W pseudo-labels transferred to every
LLD-MMR-like patient's other sequences, with the kidney-DSC filter (:mod:`flarelib.pseudolabel.transfer`).

On the phantom the same call scores every decision against the truth (``diagnostics/``, read only
to measure, never to decide): :func:`flarelib.pseudolabel.diagnostics.transfer_diagnostics` with
the stage-1 pseudo-labels as input.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from flarelib.config import Params
from flarelib.data.layout import discover, lld_patients
from flarelib.errors import FlareInputError
from flarelib.study.sources import pseudo_label_file

__all__ = ["example_patient", "patients_with_pseudo_labels", "run_transfer"]


def patients_with_pseudo_labels(params: Params, stage1_dir: Path) -> tuple[dict, dict[str, Path]]:
    """``(patients, t1w_labels)``: patient -> {sequence -> Case} of the ``mr_lld`` subsets, and
    patient -> stage 1's pseudo-label of its T1W volume (patients without one are left out)."""
    found = discover(params)
    subsets = [n for n, s in params.data.subsets.items() if s.role == "mr_lld"]
    groups: dict[str, dict] = {}
    for sub in subsets:
        groups.update(lld_patients(found.get(sub, [])))
    labels: dict[str, Path] = {}
    for p, seqs in groups.items():
        if "T1W" in seqs:
            f = pseudo_label_file(Path(stage1_dir) / "pseudo_labels", seqs["T1W"].image)
            if f.is_file():
                labels[p] = f
    return {p: s for p, s in groups.items() if p in labels}, labels


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def run_transfer(params: Params, stage1_dir: Path, out: Path, progress: bool = False) -> dict[str, Any]:
    """Transfer and filter every patient into ``out/transfer/`` (labels, ``transfer.json``/``.csv``);
    returns the stage's metrics (counts; on the phantom also the filter's precision and recall for
    "this transfer is good" = true mean organ DSC >= 0.8, and the mean true DSC of accepted and
    rejected sequences)."""
    patients, t1w_labels = patients_with_pseudo_labels(params, stage1_dir)
    if not patients:
        raise FlareInputError(
            stage1_dir,
            "no LLD-MMR patient with a T1W pseudo-label",
            "label transfer needs multi-sequence patients (role mr_lld) and stage 1's pseudo-labels",
        )
    if params.data.track == "phantom":
        from flarelib.pseudolabel.diagnostics import transfer_diagnostics

        diag = transfer_diagnostics(params, out, t1w_labels=t1w_labels, progress=progress)
        s = diag.summary
        keys = ("precision", "recall", "mean_dsc_accepted", "mean_dsc_rejected", "misaligned_n")
        metrics = {
            "patients": len(t1w_labels),
            "registered": s["n"],
            "accepted": s["accepted"],
            "rejected": s["rejected"],
            **{k: _clean(s[k]) for k in keys},
            "misaligned_rejected": s["misaligned_rejected"],
            "true_dsc_accepted": _clean(s["mean_dsc_accepted"]),
            "true_dsc_rejected": _clean(s["mean_dsc_rejected"]),
            "report": diag.report(),
        }
        return metrics
    from flarelib.pseudolabel.transfer import transfer_patients

    images = {p: {s: c.image for s, c in seqs.items()} for p, seqs in patients.items()}
    cases = {p: {s: c.case_id for s, c in seqs.items()} for p, seqs in patients.items()}
    table = transfer_patients(
        images,
        t1w_labels,
        params.transfer,
        params.registration,
        out / "transfer",
        cases=cases,
        fix_zflip=params.preprocess.fix_zflip,
        progress=progress,
    )
    decisions = [r.decision for r in table.records if r.decision not in ("reference", "missing")]
    return {
        "patients": len(patients),
        "registered": len(decisions),
        "accepted": decisions.count("accept"),
        "rejected": decisions.count("reject"),
    }


def example_patient(params: Params, stage1_dir: Path, patient: str | None = None):
    """One patient's transfer with the filter's views kept (for Fig. 4 and the kidney viewer)."""
    from flarelib.io import read_image, read_label
    from flarelib.pseudolabel.transfer import transfer_patient

    patients, labels = patients_with_pseudo_labels(params, stage1_dir)
    if not patients:
        raise FlareInputError(stage1_dir, "no LLD-MMR patient with a T1W pseudo-label", "run stage 1")
    patient = patient or next(iter(patients))
    seqs = patients[patient]
    volumes = {s: read_image(c.image) for s, c in seqs.items()}
    return transfer_patient(
        volumes,
        read_label(labels[patient]),
        params.transfer,
        params.registration,
        patient=patient,
        cases={s: c.case_id for s, c in seqs.items()},
        fix_zflip=params.preprocess.fix_zflip,
        keep_views=True,
    )
