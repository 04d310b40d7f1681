"""Run the study's notebooks headless: jupytext ``.py`` -> papermill -> ``outputs/`` (+ HTML).

Each stage notebook ``notebooks/NN_name.py`` runs with exactly three literal parameters
(``params_file``, ``run_id``, ``profile``) into ``outputs/<profile>/<run>/<NN_name>/``:

- ``params.yaml``: the resolved params the notebook reads (``params_file`` points at it);
- ``<NN_name>.ipynb`` and ``<NN_name>.html``: the executed notebook and its rendering;
- ``run.json``: versions, git sha, params hash, timings; ``DONE``: written last, holds the hash.

A stage whose ``DONE`` holds the hash of the same resolved params and notebook source is skipped;
any change of a params value (or an edit of the notebook) reruns it. A failed run leaves no ``DONE``
and keeps the partial notebook as ``<NN_name>.failed.ipynb`` for inspection. An interrupted run
(``kill -9``) leaves no ``DONE`` either: the same command runs the stage again, which resumes what
the notebook resumes (a training stage continues from its ``checkpoint.pt``), after removing the
temporary files the killed run left (``*.flarelib-tmp-*``, :func:`flarelib.paths.remove_stale_temps`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flarelib.config import Params, compose_params, dump_params, params_hash
from flarelib.errors import FlareInputError
from flarelib.paths import (
    atomic_write_text,
    display_path,
    project_root,
    remove_stale_temps,
    stage_dir,
    temp_path,
)
from flarelib.repro import save_run_record

KERNEL_NAME = "python3"  # the kernel of the interpreter running the runner (the project's venv)
STARTED = "STARTED"  # a stage folder's params hash when its run began (see clear_if_params_changed)


@dataclass(frozen=True)
class StageResult:
    stage: str
    folder: Path
    status: str  # "done" | "skipped" | "failed"
    seconds: float
    error: str | None = None


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def stage_notebooks() -> list[Path]:
    """The stage notebooks ``NN_name.py``, in order."""
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.py"))


def find_notebook(stage: str) -> Path:
    """``00_data``, ``00`` or a path -> the notebook's ``.py`` file."""
    candidate = Path(stage)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate.resolve()
    for nb in stage_notebooks():
        if nb.stem == stage or nb.stem.split("_", 1)[0] == stage:
            return nb
    names = ", ".join(nb.stem for nb in stage_notebooks()) or "none"
    raise FlareInputError(stage, "no such stage notebook", f"use one of: {names}")


def run_id_for(params: Params) -> str:
    """Run folder name: the run's name, suffixed with the data track unless it is the phantom."""
    track = params.data.track
    return params.run.name if track == "phantom" else f"{params.run.name}_{track}"


def notebook_hash(path: Path) -> str:
    """Short hash of a notebook's source: an edited notebook reruns like a changed params value."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def is_done(folder: Path, phash: str, nbhash: str | None = None, key: str | None = None) -> bool:
    """True when ``folder/DONE`` records the same params hash, or the same stage ``key`` when given
    (:func:`flarelib.study.flow.stage_key`: the params the stage's result depends on, so a late
    key at its neutral value or a setting the stage does not read leaves it done), and the same
    notebook hash when given."""
    done = folder / "DONE"
    if not done.is_file():
        return False
    try:
        record = json.loads(done.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    same = record.get("params_hash") == phash or (key is not None and record.get("stage_key") == key)
    return same and (nbhash is None or record.get("notebook_hash") == nbhash)


def _recorded_hash(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("params_hash")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None


def clear_if_params_changed(folder: Path, phash: str, log=print) -> bool:
    """Remove a stage folder's products made with other params (its ``STARTED`` or ``DONE`` records
    the params hash it began with): a rerun after a changed value starts clean instead of resuming
    a training checkpoint of the old params. Same params (an interrupted run): kept, to resume."""
    previous = _recorded_hash(folder / STARTED) or _recorded_hash(folder / "DONE")
    if previous is None or previous == phash or not folder.is_dir():
        return False
    log(f"[new ] {folder.name}: params changed ({previous} -> {phash}); removing its earlier products")
    shutil.rmtree(folder)
    return True


def load_notebook(path: Path):
    """Read a jupytext percent script as a notebook with python kernel metadata."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells):
        raise FlareInputError(
            path,
            "has no cell tagged 'parameters'",
            'start the parameters cell with: # %% tags=["parameters"]',
        )
    return nb


def render_html(ipynb: Path, html: Path) -> Path:
    """The executed notebook as HTML, code included, machine paths removed (flarelib.publish)."""
    from flarelib.publish import notebook_html

    return notebook_html(ipynb, html, code=True)


def run_stage(
    notebook: str | Path,
    params_file: str | Path,
    profile: str,
    data: str = "phantom",
    *,
    run_id: str | None = None,
    force: bool = False,
    html: bool = True,
    overrides: dict | None = None,
    log=print,
) -> StageResult:
    """Execute one stage notebook for one run, or skip it when already done with the same params."""
    import papermill

    nb_path = find_notebook(str(notebook))
    stage = nb_path.stem
    params = compose_params(params_file, profile, data, overrides=overrides)
    run_id = run_id or run_id_for(params)
    folder = stage_dir(profile, run_id, stage)
    phash = params_hash(params)
    nbhash = notebook_hash(nb_path)
    if not force and is_done(folder, phash, nbhash):
        log(f"[skip] {profile}/{run_id}/{stage}: done with the same params (hash {phash}) and notebook")
        return StageResult(stage, folder, "skipped", 0.0)

    clear_if_params_changed(folder, phash, log)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DONE").unlink(missing_ok=True)
    (folder / "SAME_AS").unlink(missing_ok=True)  # it pointed at another run's identical stage
    removed = remove_stale_temps(folder, recursive=True)  # a killed run's half-written files
    if removed:
        log(f"[tidy] removed {len(removed)} temporary file(s) an interrupted run left in {folder}")
    atomic_write_text(folder / STARTED, json.dumps({"params_hash": phash}) + "\n")
    resolved = dump_params(params, folder / "params.yaml")
    out_nb = folder / f"{stage}.ipynb"
    partial = folder / f"{stage}.failed.ipynb"
    tmp_nb = temp_path(out_nb, ".ipynb")
    log(f"[run ] {profile}/{run_id}/{stage} (hash {phash})")
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            load_notebook(nb_path),
            str(tmp_nb),
            parameters={"params_file": str(resolved), "run_id": run_id, "profile": profile},
            kernel_name=KERNEL_NAME,
            cwd=str(project_root()),
            progress_bar=False,
            request_save_on_cell_execute=False,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        seconds = time.perf_counter() - t0
        if tmp_nb.exists():
            tmp_nb.replace(partial)
        first = str(exc).strip().splitlines()
        reason = next((line for line in reversed(first) if line.strip()), type(exc).__name__)
        log(
            f"[fail] {profile}/{run_id}/{stage} after {seconds:.1f} s: {reason}\n"
            f"       executed notebook kept at {partial}"
        )
        return StageResult(stage, folder, "failed", seconds, reason)
    tmp_nb.replace(out_nb)
    partial.unlink(missing_ok=True)
    if html:
        render_html(out_nb, folder / f"{stage}.html")
    seconds = time.perf_counter() - t0
    save_run_record(
        folder,
        extra={
            "stage": stage,
            "run_id": run_id,
            "profile": profile,
            "data_track": params.data.track,
            "params_hash": phash,
            "notebook_hash": nbhash,
            "notebook": display_path(nb_path),
            "seconds": round(seconds, 2),
        },
    )
    atomic_write_text(
        folder / "DONE",
        json.dumps({"params_hash": phash, "notebook_hash": nbhash, "seconds": round(seconds, 2)}) + "\n",
    )
    log(f"[done] {profile}/{run_id}/{stage} in {seconds:.1f} s -> {folder}")
    return StageResult(stage, folder, "done", seconds)


def run_files(pattern: str = "*.yaml") -> list[Path]:
    return sorted((project_root() / "params" / "runs").glob(pattern))


def _summarise(results: list[StageResult]) -> int:
    failed = [r for r in results if r.status == "failed"]
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{done} run, {skipped} skipped, {len(failed)} failed")
    for r in failed:
        print(f"FAILED {r.folder}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from flarelib.config import parse_overrides

    overrides = parse_overrides(args.set)
    results = [
        run_stage(
            stage,
            args.params,
            args.profile,
            args.data,
            run_id=args.run_id,
            force=args.force,
            html=not args.no_html,
            overrides=overrides or None,
        )
        for stage in args.stages
    ]
    return _summarise(results)


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("run", help="execute stage notebooks with papermill into outputs/")
    p.add_argument("stages", nargs="+", help="stage notebooks, e.g. 00_data (or 00)")
    p.add_argument("--params", default="params/runs/default.yaml", help="run file (an overlay)")
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    p.add_argument("--data", default="phantom", choices=("phantom", "real", "flare24"))
    p.add_argument("--run-id", default=None, help="output folder name (default: run name [+ _track])")
    p.add_argument("--force", action="store_true", help="rerun even if DONE with the same params")
    p.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set efficiency.cases=1 (repeatable; part of the params hash)",
    )
    p.set_defaults(func=_cmd_run)
