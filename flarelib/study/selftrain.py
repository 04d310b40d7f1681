"""Stage 3: anatomy-aware refinement and iterative self-training (STUDY.md stage 3, Fig. 6).

Iteration ``k`` (1-based): the model of iteration ``k-1`` (stage 2's model for ``k = 1``) predicts
every MR volume of ``study.stage3.predict`` (the whole per-case pipeline, as ``flarelib predict``);
the anatomy filter (:mod:`flarelib.pseudolabel.anatomy`, ``anatomy`` params) keeps what passes
(``study.stage3.anatomy_filter: false`` keeps every prediction); a new model trains with
``study.stage3.mode`` on the kept pseudo-labels + labelled CT (stage 2's ``ct`` rule), the MR
left out being unlabelled data for a Mean Teacher; it is scored on the labelled MR validation set.

Iterations are stored under ``outputs/<profile>/_shared/stage3-<key>/iter_<k>/`` with the key of
everything they depend on except how many iterations a run asks for: a run with one iteration and a
run with five share the first (Table 6's A+Semi (iter=1) is the proposed run's iteration 1). Each
iteration folder gets ``DONE`` last; an interrupted iteration resumes its training checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flarelib.config import Params, params_hash
from flarelib.data.layout import discover
from flarelib.paths import atomic_write_text, remove_stale_temps
from flarelib.study.flow import shared_root, stage_key
from flarelib.study.sources import labelled_ct, learnable_mask, mr_cases, pseudo_label_file

__all__ = ["iteration_key", "phantom_sequences", "run_iterations", "score_model", "train_model"]

MODEL_FILE = "model/checkpoint.pt"


def iteration_key(params: Params) -> str:
    """Key of a run's stage-3 iterations: stage 2's key + the stage-3 recipe without the number of
    iterations and the reported one."""
    s3 = dataclasses.asdict(params.study.stage3)
    s3.pop("iterations")
    s3.pop("final_iteration")
    return params_hash({"stage2": stage_key(params, "03_stage2"), "anatomy": params.anatomy, "stage3": s3})


def with_training(params: Params, mode: str, init_from: str | None = None, iterations: int = 0) -> Params:
    """``params`` with ``train.mode`` replaced, and ``train.init_from`` / ``train.iterations`` when
    given (``iterations`` 0: unchanged)."""
    changes: dict[str, Any] = {"mode": mode}
    if init_from is not None:
        changes["init_from"] = init_from
    if iterations > 0:
        changes["iterations"] = iterations
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))


def train_model(params: Params, stage: str, out: Path, labelled, unlabelled, progress: bool = False):
    """Train one segmentation model into ``out`` (resuming its checkpoint); returns the LoopResult."""
    from flarelib.train.stages import train_segmentation

    return train_segmentation(params, stage, out, labelled, unlabelled, (), progress=progress)


def score_model(params: Params, model: Path, out: Path) -> dict[str, Any]:
    """The model on the labelled MR validation set: mean DSC/NSD over cases, and the per-case table."""
    from flarelib.data.roles import select_cases
    from flarelib.evaluate.cases import per_case_table, predict_and_score
    from flarelib.infer.pipeline import CasePredictor

    cases = discover(params)
    val = select_cases(cases, "validation")
    sequences = phantom_sequences(params, val)
    predictor = CasePredictor.from_checkpoint(model, params=params)
    scores = predict_and_score(predictor, val, out / "val_predictions", sequences=sequences)
    scores.to_csv(out / "val_scores.csv", index=False)
    table = per_case_table(scores)
    return {"val_mean_dsc": float(table.iloc[-1]["dsc"]), "val_mean_nsd": float(table.iloc[-1]["nsd"])}


def phantom_sequences(params: Params, val) -> dict[str, str]:
    """Case id -> its MR sequence for the phantom's validation cases ``val`` (from the truth, which
    only scoring reads); empty on other data tracks."""
    if params.data.track != "phantom":
        return {}
    from flarelib.data.phantom import load_truth, truth_case
    from flarelib.paths import data_root

    truth = load_truth(data_root(params))
    return {c.case_id: truth_case(truth, c.subset, c.case_id)["sequence"] for c in val}


def _pseudo_label(params: Params, model: Path, images: list[Path], out: Path) -> None:
    from flarelib.infer.pipeline import CasePredictor, predict_paths

    todo = [p for p in images if not pseudo_label_file(out, p).is_file()]
    if todo:
        predictor = CasePredictor.from_checkpoint(model, params=params)
        results = predict_paths(predictor, todo, out, progress=False)
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"stage 3: {len(failed)} pseudo-label prediction(s) failed: {failed[0].error}")


def _iteration(params: Params, k: int, previous: Path, folder: Path, log: Callable[[str], None]) -> dict:
    import numpy as np

    from flarelib.pseudolabel.pairs import TrainingCase, anatomy_cases, load_training_volumes

    s3 = params.study.stage3
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder, recursive=True)
    cases = discover(params)
    mr = mr_cases(params, s3.predict, cases)
    images = {c.case_id: c.image for c in mr}
    pl_dir = folder / "pseudo_labels"
    _pseudo_label(params, previous, list(images.values()), pl_dir)
    labels = {c.case_id: pseudo_label_file(pl_dir, c.image) for c in mr}
    sequences = {c.case_id: c.sequence for c in mr if c.sequence}
    learnable = learnable_mask(params, cases)  # e.g. BTCV: no duodenum to learn, none to trust
    if s3.anatomy_filter:
        organs = [int(o) for o in np.flatnonzero(learnable[1:]) + 1]
        base = {c: learnable for c in labels}
        kept, results = anatomy_cases(
            labels, images, params.anatomy, sequences=sequences, base_annotated=base, organs=organs
        )
        checks = {c: r.to_dict() for c, r in results.items()}
    else:
        kept = [
            TrainingCase(c, images[c], labels[c], learnable.copy(), sequences.get(c), "prediction")
            for c in labels
        ]
        checks = {}
    kept_ids = {tc.case for tc in kept}
    dropped = [c for c in labels if c not in kept_ids]
    log(f"iteration {k}: {len(kept)} of {len(labels)} pseudo-labels kept, {len(dropped)} dropped")
    spacing = params.preprocess.target_spacing_zyx
    ct, ct_record = labelled_ct(params, cases)
    labelled = ct + load_training_volumes(kept, spacing, params.preprocess)
    unlabelled = []
    if s3.mode == "mean_teacher":
        from flarelib.train.stages import load_train_volume

        rest = [c for c in mr if c.case_id not in kept_ids]
        unlabelled = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in rest]
    init = str(previous) if s3.warm_start else None
    p_k = with_training(params, s3.mode, init, s3.train_iterations)
    result = train_model(p_k, f"stage3_iter{k}", folder / "model", labelled, unlabelled)
    model = folder / MODEL_FILE
    scores = score_model(params, model, folder)
    record = {
        "iteration": k,
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_cases": dropped,
        "ct": ct_record["ct"],
        "unlabelled": len(unlabelled),
        "train_iterations": result.iteration,
        "precision": result.precision,
        "seconds": round(time.perf_counter() - t0, 1),
        "model": MODEL_FILE,
        **scores,
        "anatomy": checks,
    }
    atomic_write_text(folder / "iteration.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(folder / "DONE", json.dumps({"iteration": k}) + "\n")
    return record


def run_iterations(
    params: Params, profile: str, stage2_model: Path, log: Callable[[str], None] = print
) -> tuple[Path, list[dict]]:
    """Run (or reuse) iterations 1..``study.stage3.iterations``; returns the shared folder and one
    record per iteration (``iteration, kept, dropped, val_mean_dsc, val_mean_nsd, seconds, model``
    with ``model`` relative to ``iter_<k>/``)."""
    root = shared_root(profile) / f"stage3-{iteration_key(params)}"
    previous = Path(stage2_model)
    records = []
    for k in range(1, params.study.stage3.iterations + 1):
        folder = root / f"iter_{k}"
        if (folder / "DONE").is_file():
            record = json.loads((folder / "iteration.json").read_text())
            log(f"iteration {k}: reused ({record['kept']} kept, val DSC {record['val_mean_dsc']:.3f})")
        else:
            record = _iteration(params, k, previous, folder, log)
        records.append(record)
        previous = folder / MODEL_FILE
    return root, records
