"""The study's flow: which stage notebooks a run has, what each stage's result depends on, and where
a later stage finds an earlier stage's products.

Stage notebooks (``notebooks/NN_name.py``), in order:

* ``00_data``: the data (the phantom generated when absent), checked;
* ``01_stage1``: CycleGAN CT -> target MR, the stage-1 model, T1W pseudo-labels (``study.stage1``);
* ``02_transfer``: T1W -> multi-sequence label transfer with the kidney-DSC filter (runs whose
  ``study.stage2.labelled`` has ``transferred``);
* ``03_stage2``: the run's multi-sequence model (every run: for runs without stage 1 it is the only
  model, e.g. Table 5's baseline);
* ``04_stage3``: anatomy filter + iterative self-training (``study.stage3.iterations`` > 0);
* ``05_evaluate``: the run's final model on the labelled MR validation set (FLARE DSC/NSD);
* ``06_efficiency``: FLARE efficiency figures of the final model (runs with ``study.efficiency``;
  settings in the ``efficiency`` section);
* ``09_report`` runs once after every run (:data:`REPORT_STAGE`), not per run.

Sharing: a stage's *key* hashes exactly the params its result depends on (everything but the run's
name, description and groups, the ``study`` settings of later stages, the sections a later stage
reads first, :data:`FIRST_READ_BY` (``transfer``, ``anatomy``, ``efficiency``), and in runs
without stage 1 the params only stage 1 reads, :data:`STAGE1_ONLY`), plus the keys of the stages
before it. Runs whose stage has the same key share one execution: the first run executes it, the
others get a pointer (``SAME_AS``) to that folder; :func:`stage_output` follows it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from flarelib.config import STAGE1_OVERRIDES, Params, drop_neutral_keys, params_hash, params_to_dict
from flarelib.errors import FlareInputError
from flarelib.paths import atomic_write_text, outputs_root, stage_dir

__all__ = [
    "FIRST_READ_BY",
    "REPORT_STAGE",
    "SAME_AS",
    "STAGE1_ONLY",
    "STAGES",
    "final_model",
    "labelled_sources",
    "link_shared",
    "read_metrics",
    "stage_key",
    "stage_output",
    "stages_of",
]

STAGES: tuple[str, ...] = (
    "00_data",
    "01_stage1",
    "02_transfer",
    "03_stage2",
    "04_stage3",
    "05_evaluate",
    "06_efficiency",
)
REPORT_STAGE = "09_report"
SAME_AS = "SAME_AS"  # a run's stage folder that points at another run's identical stage

#: Params only stage 1 reads (a whole section, or one key of it): left out of the stage keys of
#: runs without stage 1, so a CycleGAN setting does not make Table 5's baseline run again.
STAGE1_ONLY: tuple[str, ...] = ("cyclegan", *(f"train.{key}" for key in STAGE1_OVERRIDES))

#: Params sections no stage reads before the named one: left out of the keys of the stages before
#: it (and of every stage of a run without it), so a run that differs from another in its anatomy
#: filter alone shares stages 1 and 2 with it, and Table 5's baseline ignores the filter's settings.
FIRST_READ_BY: dict[str, str] = {
    "transfer": "02_transfer",
    "anatomy": "04_stage3",
    "efficiency": "06_efficiency",
}

#: The ``study`` settings each stage reads (a stage's key holds those of it and of earlier stages).
_STUDY_FIELDS: dict[str, tuple[str, ...]] = {
    "00_data": (),
    "01_stage1": ("stage1",),
    "02_transfer": ("stage2.labelled",),
    "03_stage2": ("stage2",),
    "04_stage3": ("stage3",),
    "05_evaluate": (),
    "06_efficiency": ("efficiency",),
}


def labelled_sources(params: Params) -> list[str]:
    """``study.stage2.labelled`` as this data track can serve it: on a track with one MR sequence
    (``data.multi_sequence: false``) there is nothing to transfer labels to, so ``transferred``
    becomes stage 1's pseudo-labels of the target sequence (``t1w_pseudo``), which are what the
    transfer would have passed on for that sequence."""
    labelled = list(params.study.stage2.labelled)
    if not params.data.multi_sequence and "transferred" in labelled:
        labelled = [s for s in labelled if s != "transferred"]
        if "t1w_pseudo" not in labelled:
            labelled.append("t1w_pseudo")
    return labelled


def single_sequence_note(params: Params) -> str | None:
    """The message a run on a one-sequence track prints where stage 2's transfer would run."""
    if params.data.multi_sequence or "transferred" not in params.study.stage2.labelled:
        return None
    seq = params.cyclegan.target_sequence
    return (
        f"data track {params.data.track!r} has one MR sequence ({seq}): the multi-sequence label "
        f"transfer (02_transfer) is skipped and stage 2 learns from stage 1's {seq} pseudo-labels"
    )


def stages_of(params: Params) -> list[str]:
    """The stage notebooks of this run, in order (see the module docstring)."""
    s = params.study
    out = ["00_data"]
    if s.stage1:
        out.append("01_stage1")
    if "transferred" in labelled_sources(params):
        out.append("02_transfer")
    out.append("03_stage2")
    if s.stage3.iterations > 0:
        out.append("04_stage3")
    out.append("05_evaluate")
    if s.efficiency:
        out.append("06_efficiency")
    return out


def check_recipe(params: Params, source: str = "params") -> None:
    """Stop before any compute when a run's study settings contradict each other."""
    s = params.study
    needs_stage1 = {"t1w_pseudo", "transferred"} & set(labelled_sources(params))
    if needs_stage1 and not s.stage1:
        raise FlareInputError(
            source,
            f"study.stage2.labelled has {sorted(needs_stage1)} (made by stage 1), but study.stage1 is false",
            "set study.stage1: true or drop those sources",
        )
    if not s.stage2.labelled:
        raise FlareInputError(source, "study.stage2.labelled is empty", "name at least one source, e.g. [ct]")
    if "oracle_mr" in s.stage2.labelled and params.data.track != "phantom":
        raise FlareInputError(
            source,
            "study.stage2.labelled: oracle_mr needs the phantom's truth",
            "use it on DATA=phantom only",
        )
    if s.stage3.final_iteration > s.stage3.iterations:
        raise FlareInputError(
            source,
            f"study.stage3.final_iteration {s.stage3.final_iteration} > iterations {s.stage3.iterations}",
            "use 0 (the last) or an iteration that runs",
        )


def _drop(d: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.get(p, {})
    d.pop(leaf, None)


def _study_view(study: dict, keep: set[str]) -> dict:
    """``study`` reduced to the dotted fields in ``keep`` (``stage2`` keeps the whole section;
    ``stage2.labelled`` only that field)."""
    out: dict = {}
    for dotted in sorted(keep):
        parts = dotted.split(".")
        src, dst = study, out
        for p in parts[:-1]:
            src = src[p]
            dst = dst.setdefault(p, {})
        dst[parts[-1]] = copy.deepcopy(src[parts[-1]])
    return out


def stage_key(params: Params, stage: str) -> str:
    """Short hash of what ``stage``'s result depends on (see the module docstring)."""
    if stage not in _STUDY_FIELDS:
        raise ValueError(f"unknown stage {stage!r}; use one of {STAGES}")
    d = drop_neutral_keys(params_to_dict(params))
    run = d.pop("run")
    study = d.pop("study")
    index = STAGES.index(stage)
    stages = stages_of(params)
    for section, first in FIRST_READ_BY.items():
        if index < STAGES.index(first) or first not in stages:
            d.pop(section)
    if stage == "00_data":  # the data depend on the data sections and the seed alone
        return params_hash({"stage": stage, "seed": run["seed"], "data": d["data"], "phantom": d["phantom"]})
    if not study["stage1"]:
        for dotted in STAGE1_ONLY:
            _drop(d, dotted)
    fields: set[str] = set()
    for earlier in STAGES[: index + 1]:
        fields.update(_STUDY_FIELDS[earlier])
    if "stage2" in fields:
        fields.discard("stage2.labelled")
    view = _study_view(study, fields)
    seeds = {"seed": run["seed"], **({"train_seed": run["train_seed"]} if "train_seed" in run else {})}
    return params_hash({"stage": stage, **seeds, "profile": run["profile"], **d, "study": view})


def _same_as_target(folder: Path) -> Path | None:
    pointer = folder / SAME_AS
    if not pointer.is_file():
        return None
    target = json.loads(pointer.read_text())["folder"]
    return (folder / target).resolve()


def stage_output(profile: str, run_id: str, stage: str) -> Path:
    """The folder that holds ``stage``'s products for this run (following a ``SAME_AS`` pointer).

    Raises FlareInputError when the stage has not run for this run."""
    folder = stage_dir(profile, run_id, stage)
    target = _same_as_target(folder)
    if target is not None:
        folder = target
    if not (folder / "DONE").is_file() and not (folder / "metrics.json").is_file():
        raise FlareInputError(
            folder,
            f"stage {stage} has not finished for run {run_id}",
            f"run it first: flarelib run {stage} --params params/runs/<run>.yaml --profile {profile}",
        )
    return folder


def link_shared(folder: Path, target: Path) -> Path:
    """Make ``folder`` a pointer to ``target`` (an identical stage of another run), relatively."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target.resolve(), folder.resolve())
    return atomic_write_text(folder / SAME_AS, json.dumps({"folder": rel}) + "\n")


def read_metrics(profile: str, run_id: str, stage: str) -> dict:
    """``metrics.json`` of a run's stage (following pointers)."""
    path = stage_output(profile, run_id, stage) / "metrics.json"
    if not path.is_file():
        raise FlareInputError(path, "missing", f"rerun stage {stage} of run {run_id}")
    return json.loads(path.read_text())


def final_model(profile: str, run_id: str, params: Params) -> Path:
    """The checkpoint a run reports: stage 3's ``final_iteration`` model when the run has stage 3,
    else stage 2's model (the path is recorded in that stage's ``metrics.json`` as ``model``,
    relative to its folder)."""
    stage = "04_stage3" if params.study.stage3.iterations > 0 else "03_stage2"
    folder = stage_output(profile, run_id, stage)
    metrics = read_metrics(profile, run_id, stage)
    return (folder / metrics["model"]).resolve()


def shared_root(profile: str) -> Path:
    """``outputs/<profile>/_shared``: products keyed by hash that several runs reuse (stage 3's
    iterations)."""
    return outputs_root() / profile / "_shared"
