"""``flarelib reproduce`` (``make reproduce``): every stage notebook of every study run through
papermill, from one Python process, then the report.

* Runs: the files of ``params/runs`` in a group of the data track (:data:`TRACK_GROUPS`: the
  paper's tables on the phantom and FLARE24, group ``real`` on the real track), or ``--runs``:
  group names (``table5``, ``table6``, ``fig6``, ``phantom``, ``real``, ``all``), run names or
  run files, comma- or space-separated. Every run's params are composed and checked first: a
  misspelled key stops before any compute, with the file and the key.
* Stages: :func:`flarelib.study.flow.stages_of` each run. A stage whose key (the params it depends
  on, :func:`flarelib.study.flow.stage_key`) equals one already executed by another run is not run
  again: its folder points at that run's (``SAME_AS``).
* Resume: a finished stage (``DONE`` with the same params and notebook) is skipped; an interrupted
  one runs again and resumes what it resumes (training checkpoints, finished stage-3 iterations).
* Progress: one line per stage with its time; a table of stage times at the end
  (``outputs/<profile>/reproduce_times.csv``); then ``09_report`` (always rerun: it reads every run)
  and every executed notebook rendered to HTML with an index (:mod:`flarelib.study.render`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from flarelib.config import Params, compose_params, params_hash
from flarelib.errors import FlareInputError
from flarelib.notebook_runner import (
    StageResult,
    find_notebook,
    is_done,
    notebook_hash,
    run_files,
    run_id_for,
    run_stage,
)
from flarelib.paths import atomic_write_text, outputs_root, project_root, stage_dir
from flarelib.study.flow import REPORT_STAGE, check_recipe, link_shared, stage_key, stages_of
from flarelib.study.report import report_run_id

__all__ = ["GROUPS", "reproduce", "select_runs"]

#: Execution order of the study's runs (others follow, by name): cheap runs first, so that a
#: first look at Table 5 comes early; runs that share stages follow each other.
ORDER = (
    "baseline",
    "semi_all_mr",
    "cyclegan_semi",
    "proposed",
    "self_training",
    "baseline_randaug",
    "baseline_synth",
    "oracle_mr",
    "semi_wo_ct",
    "semi",
    "semi_wo_amos",
    "t_semi_wo_amos",
    "supervised",
    "a_semi_iter1",
)
GROUPS = ("table5", "table6", "fig6", "phantom", "real", "all")
#: The groups a data track's study runs (``all`` and the default): the real track (one MR
#: sequence, 4 annotated organs) has its own five runs; Table 6 needs multi-sequence MR.
TRACK_GROUPS = {
    "phantom": ("table5", "table6", "fig6", "phantom"),
    "flare24": ("table5", "table6", "fig6"),
    "real": ("real",),
}


@dataclass(frozen=True)
class PlannedRun:
    file: Path
    params: Params
    run_id: str


def _compose(file: Path, profile: str, data: str) -> Params:
    return compose_params(file, profile, data)


def select_runs(spec: list[str] | None, profile: str, data: str) -> list[PlannedRun]:
    """The runs named by ``spec`` (see the module docstring), in :data:`ORDER`. Every run file is
    composed (a misspelled key stops here); the chosen runs' recipes are checked too."""
    files = run_files()
    composed = {f: _compose(f, profile, data) for f in files}  # every file checked before any compute
    tokens = [t for s in (spec or []) for t in s.replace(",", " ").split()]
    track_groups = set(TRACK_GROUPS[data])
    study = [f for f, p in composed.items() if track_groups & set(p.study.groups)]
    chosen: list[Path] = []
    if not tokens:
        chosen = list(study)
    for t in tokens:
        path = Path(t)
        if t == "all":
            chosen += study
        elif t in GROUPS:
            if t not in track_groups:
                raise FlareInputError(
                    None,
                    f"run group {t!r} is not part of the {data} track's study",
                    f"use {', '.join(sorted(track_groups))} or all (or name the runs)",
                )
            chosen += [f for f, p in composed.items() if t in p.study.groups]
        elif path.suffix in (".yaml", ".yml") and path.is_file():
            chosen.append(path.resolve())
            composed.setdefault(path.resolve(), _compose(path, profile, data))
        elif (project_root() / "params" / "runs" / f"{t}.yaml").is_file():
            chosen.append(project_root() / "params" / "runs" / f"{t}.yaml")
        else:
            names = ", ".join(f.stem for f in files)
            raise FlareInputError(
                None, f"unknown run or group {t!r}", f"use {', '.join(GROUPS)} or one of: {names}"
            )
    unique = list(dict.fromkeys(chosen))
    for f in unique:  # the runs that will run: their stages fit together and fit the data track
        check_recipe(composed[f], str(f))
    rank = {name: i for i, name in enumerate(ORDER)}
    planned = [PlannedRun(f, composed[f], run_id_for(composed[f])) for f in unique]
    return sorted(planned, key=lambda r: (rank.get(r.params.run.name, len(ORDER)), r.params.run.name))


def _index_file(profile: str, stage: str, key: str) -> Path:
    return outputs_root() / profile / "_shared" / "index" / f"{stage}-{key}.json"


def _shared_target(profile: str, stage: str, key: str, nbhash: str) -> Path | None:
    """The folder of an earlier execution of this stage with this key, if it finished."""
    index = _index_file(profile, stage, key)
    if not index.is_file():
        return None
    folder = (index.parent / json.loads(index.read_text())["folder"]).resolve()
    done = folder / "DONE"
    if not done.is_file():
        return None
    record = json.loads(done.read_text())
    if record.get("stage_key") != key or record.get("notebook_hash") != nbhash:
        return None
    return folder


def _run_one(planned: PlannedRun, stage: str, profile: str, data: str, force: bool, log) -> StageResult:
    import os

    nb = find_notebook(stage)
    nbhash = notebook_hash(nb)
    key = stage_key(planned.params, stage)
    folder = stage_dir(profile, planned.run_id, stage)
    phash = params_hash(planned.params)
    if not force and is_done(folder, phash, nbhash, key):  # the key: what its result depends on
        log(f"[skip] {profile}/{planned.run_id}/{stage}: done")
        return StageResult(stage, folder, "skipped", 0.0)
    target = None if force else _shared_target(profile, stage, key, nbhash)
    if target is not None and target != folder.resolve():
        link_shared(folder, target)
        record = {"params_hash": phash, "notebook_hash": nbhash, "stage_key": key, "shared": True}
        atomic_write_text(folder / "DONE", json.dumps(record) + "\n")
        log(f"[same] {profile}/{planned.run_id}/{stage}: the same computation as {target.parent.name}'s")
        return StageResult(stage, folder, "shared", 0.0)
    result = run_stage(nb, planned.file, profile, data, run_id=planned.run_id, force=True, log=log)
    if result.status == "done":
        done = folder / "DONE"
        record = json.loads(done.read_text())
        atomic_write_text(done, json.dumps({**record, "stage_key": key}) + "\n")
        index = _index_file(profile, stage, key)
        index.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index, json.dumps({"folder": os.path.relpath(folder, index.parent)}) + "\n")
    return result


def reproduce(
    profile: str, data: str = "phantom", runs: list[str] | None = None, force: bool = False, log=print
) -> list[tuple[str, StageResult]]:
    """Run the study (see the module docstring); returns ``(run_id, StageResult)`` per stage."""
    planned = select_runs(runs, profile, data)
    if not planned:
        log("no runs selected (params/runs files with study.groups)")
        return []
    total = sum(len(stages_of(p.params)) for p in planned)
    log(f"{len(planned)} run(s), {total} stage(s): {', '.join(p.run_id for p in planned)}")
    results: list[tuple[str, StageResult]] = []
    t0 = time.perf_counter()
    n = 0
    for p in planned:
        for stage in stages_of(p.params):
            n += 1
            log(f"== [{n}/{total}] {p.run_id}/{stage} ({time.perf_counter() - t0:.0f} s elapsed)")
            result = _run_one(p, stage, profile, data, force, log)
            results.append((p.run_id, result))
            if result.status == "failed":
                break
    _write_times(profile, results)
    report = notebooks_report()
    if report is not None:
        rid = report_run_id(planned[-1].params.data.track)
        result = run_stage(report, planned[-1].file, profile, data, run_id=rid, force=True, log=log)
        results.append(("report", result))
    from flarelib.study.render import render_profile

    render_profile(profile, log=log)
    log(f"reproduce finished in {time.perf_counter() - t0:.0f} s")
    return results


def notebooks_report() -> Path | None:
    try:
        return find_notebook(REPORT_STAGE)
    except FlareInputError:
        return None


def _write_times(profile: str, results: list[tuple[str, StageResult]]) -> None:
    lines = ["run,stage,status,seconds"]
    lines += [f"{run},{r.stage},{r.status},{r.seconds:.1f}" for run, r in results]
    path = outputs_root() / profile / "reproduce_times.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")


def _cmd(args: argparse.Namespace) -> int:
    results = reproduce(args.profile, args.data, args.runs, force=args.force)
    failed = [(run, r) for run, r in results if r.status == "failed"]
    counts = {s: sum(r.status == s for _, r in results) for s in ("done", "shared", "skipped", "failed")}
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    for run, r in failed:
        print(f"FAILED {run}/{r.stage}: {r.error}")
    return 1 if failed else 0


def add_cli(subparsers) -> None:
    r = subparsers.add_parser("reproduce", help="every stage notebook of every study run, then the report")
    r.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    r.add_argument("--data", default="phantom", choices=("phantom", "real", "flare24"))
    r.add_argument("--runs", nargs="*", help="groups (table5 table6 fig6 phantom all), run names or files")
    r.add_argument("--force", action="store_true", help="rerun every stage, sharing nothing")
    r.set_defaults(func=_cmd)
