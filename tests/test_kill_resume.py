"""``kill -9`` mid-run, then the same command: the final weights and metrics equal those of an
uninterrupted run, and no temporary file of ours survives (CPU, fixed seed, tiny params).

Two commands: ``flarelib train`` (the loop resumes ``checkpoint.pt``) and ``flarelib run`` of a
stage notebook that trains (the runner reruns the stage, whose training resumes). Each kill also
leaves a temp file as a process killed in the middle of an atomic write would (a kill can land
there, but not on purpose): the rerun must remove it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from flarelib.checkpoint import load_checkpoint
from flarelib.paths import TMP_TAG

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from flarelib.cli import main; sys.exit(main())"]
ITERATIONS = 40
TIMING_COLUMNS = {"step_seconds", "data_wait"}  # wall-clock measurements, not results


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "FLARE_DATA"}
    out.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return out


def dead_pid() -> int:
    """A pid that no process has now: that of a child which has exited (and been reaped)."""
    probe = [sys.executable, "-c", "import os; print(os.getpid())"]
    return int(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)


def plant_stale_temp(folder: Path, name: str = "checkpoint.pt") -> Path:
    """What a process killed inside an atomic write leaves: ``.NAME.flarelib-tmp-PID-HEX``."""
    path = folder / f".{name}{TMP_TAG}{dead_pid()}-0badc0de"
    path.write_bytes(b"half a checkpoint")
    return path


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_when(cmd: list[str], ready, timeout: float = 300.0, **popen) -> tuple[int, list[int]]:
    """Start ``cmd``, SIGKILL its whole process group as soon as ``ready()``; returns the exit
    status and the pids of its children at that moment."""
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
    )
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"finished (status {proc.returncode}) before it could be killed:\n{out}")
            if time.monotonic() - t0 > timeout:
                pytest.fail("never reached the point to kill it")
            time.sleep(0.02)
        kids = children(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=60), kids
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def checkpoint_iteration(path: Path) -> int:
    try:
        return int(load_checkpoint(path)["iteration"])
    except Exception:  # not there yet
        return -1


def assert_same_weights(a: Path, b: Path, key: str = "modules") -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["iteration"] == cb["iteration"]
    sa, sb = ca[key], cb[key]
    if key == "modules":
        assert sa.keys() == sb.keys()
        pairs = [(sa[m], sb[m]) for m in sa]
    else:
        pairs = [(sa, sb)]
    for da, db in pairs:
        assert da.keys() == db.keys()
        for k in da:
            assert torch.equal(da[k], db[k]), k


def log_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(fh)]


def no_temps(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if TMP_TAG in p.name]


def tiny_params(tmp_path: Path) -> Path:
    from tests.train.test_cli import _params_file

    path = _params_file(tmp_path)
    params = yaml.safe_load(path.read_text())
    params["train"].update(
        iterations=ITERATIONS, checkpoint_every=4, validate_every=10, log_every=1, threads=1
    )
    path.write_text(yaml.safe_dump(params))
    return path


# --------------------------------------------------------------------------------------------------
# flarelib train
# --------------------------------------------------------------------------------------------------


def test_kill_9_of_train_then_the_same_command_equals_an_uninterrupted_run(tmp_path):
    params = tiny_params(tmp_path)

    def train(out: Path) -> list[str]:
        cmd = [*CLI, "train", "--params", str(params), "--stage", "seg", "--out", str(out)]
        return [*cmd, "--no-progress", "--device", "cpu"]

    ref, run = tmp_path / "uninterrupted", tmp_path / "interrupted"
    done = subprocess.run(train(ref), env=env(), capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    status, _ = kill_when(
        train(run), lambda: checkpoint_iteration(run / "checkpoint.pt") >= 4, env=env(), cwd=tmp_path
    )
    assert status == -signal.SIGKILL
    stopped_at = checkpoint_iteration(run / "checkpoint.pt")
    assert 4 <= stopped_at < ITERATIONS, f"not interrupted mid-run (checkpoint at {stopped_at})"
    stale = plant_stale_temp(run)

    again = subprocess.run(train(run), env=env(), capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not stale.exists() and not no_temps(run), no_temps(run)
    assert_same_weights(ref / "checkpoint.pt", run / "checkpoint.pt")
    assert_same_weights(ref / "model_best.pt", run / "model_best.pt", key="state_dict")
    assert log_rows(run / "val_log.csv") == log_rows(ref / "val_log.csv")
    assert log_rows(run / "train_log.csv") == log_rows(ref / "train_log.csv")
    assert len(log_rows(ref / "train_log.csv")) == ITERATIONS


# --------------------------------------------------------------------------------------------------
# flarelib run STAGE (a stage notebook that trains)
# --------------------------------------------------------------------------------------------------

NOTEBOOK = """# %% tags=["parameters"]
params_file = "params/runs/default.yaml"
run_id = "default"
profile = "smoke"

# %%
import json

import numpy as np

from flarelib.config import load_stage_params
from flarelib.paths import atomic_write_text, stage_dir
from flarelib.train.checkpoint import load_checkpoint
from flarelib.train.sampling import TrainVolume
from flarelib.train.stages import train_segmentation

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "88_killtest")
rng = np.random.default_rng(5)
lab = np.zeros((8, 32, 32), np.uint8)
lab[2:6, 4:20, 4:16] = 1
lab[2:6, 20:28, 20:30] = 3
images = [lab * 2.0 + rng.normal(0, 0.5, lab.shape) for _ in range(3)]
vols = [TrainVolume(im, lab, np.ones(14, bool), f"v{i}") for i, im in enumerate(images)]
unlabeled = [TrainVolume(v.image[:, ::-1].copy(), name="u") for v in vols[:1]]

# %%
result = train_segmentation(
    params, "nb_seg", out / "train", vols[:2], unlabeled, vols[2:], device="cpu", progress=False
)
ckpt = load_checkpoint(out / "train" / "checkpoint.pt")
metrics = {
    "iteration": int(ckpt["iteration"]),
    "best_value": result.best_value,
    "best_iteration": result.best_iteration,
    "teacher_sum": float(sum(float(t.double().sum()) for t in ckpt["modules"]["teacher"].values())),
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\\n")
"""

RUN_OVERLAY = {
    "run": {"name": "killnb", "seed": 3},
    "unet": {"channels": [4, 8, 16], "pool_zyx": [[1, 2, 2], [2, 2, 2]]},
    "train": {
        "patch_zyx": [8, 32, 32],
        "batch_labeled": 1,
        "batch_unlabeled": 1,
        "iterations": ITERATIONS,
        "checkpoint_every": 4,
        "validate_every": 10,
        "log_every": 1,
        "num_workers": 0,
        "threads": 1,
    },
    "infer": {"window_zyx": [8, 32, 32], "mirror_axes": []},
}


def test_kill_9_of_flarelib_run_then_the_same_command_equals_an_uninterrupted_run(tmp_path):
    nb = tmp_path / "88_killtest.py"
    nb.write_text(NOTEBOOK)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(RUN_OVERLAY))
    cmd = [*CLI, "run", str(nb), "--params", str(run_file), "--profile", "smoke", "--no-html"]
    ref_root, run_root = tmp_path / "ref_outputs", tmp_path / "outputs"
    ref_stage, stage = (r / "smoke" / "killnb" / "88_killtest" for r in (ref_root, run_root))

    done = subprocess.run(cmd, env=env(FLARE_OUTPUTS=str(ref_root)), capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and (ref_stage / "DONE").is_file(), done.stdout + done.stderr

    status, kids = kill_when(
        cmd,
        lambda: checkpoint_iteration(stage / "train" / "checkpoint.pt") >= 4,
        env=env(FLARE_OUTPUTS=str(run_root)),
        cwd=REPO,
    )
    assert status == -signal.SIGKILL
    assert kids, "the runner had no kernel process to kill"
    # the kernel runs in its own session; it notices that the runner is gone and exits by itself
    deadline = time.monotonic() + 30
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(k) for k in kids), "the notebook kernel outlived the killed runner"
    stopped_at = checkpoint_iteration(stage / "train" / "checkpoint.pt")
    assert 4 <= stopped_at < ITERATIONS, f"not interrupted mid-run (checkpoint at {stopped_at})"
    assert not (stage / "DONE").exists()
    stale = plant_stale_temp(stage / "train")

    again = subprocess.run(
        cmd, env=env(FLARE_OUTPUTS=str(run_root)), capture_output=True, text=True, cwd=REPO
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert (stage / "DONE").is_file() and (stage / "88_killtest.ipynb").is_file()
    assert not stale.exists() and not no_temps(stage), no_temps(stage)
    ref_metrics = json.loads((ref_stage / "metrics.json").read_text())
    assert json.loads((stage / "metrics.json").read_text()) == ref_metrics
    assert ref_metrics["iteration"] == ITERATIONS
    assert_same_weights(ref_stage / "train" / "checkpoint.pt", stage / "train" / "checkpoint.pt")
    assert log_rows(stage / "train" / "val_log.csv") == log_rows(ref_stage / "train" / "val_log.csv")
    assert log_rows(stage / "train" / "train_log.csv") == log_rows(ref_stage / "train" / "train_log.csv")


# --------------------------------------------------------------------------------------------------
# flarelib reproduce (make reproduce)
# --------------------------------------------------------------------------------------------------


def test_kill_9_of_reproduce_mid_stage_then_rerun_finishes_with_the_same_metrics(tmp_path):
    """The Table 5 baseline (00_data, 03_stage2, 05_evaluate) on the smoke profile: killed while
    03_stage2 trains, the same command skips 00_data, reruns 03_stage2 and ends with the metrics of
    an uninterrupted run."""
    cmd = [*CLI, "reproduce", "--profile", "smoke", "--data", "phantom", "--runs", "baseline"]
    ref_root, run_root = tmp_path / "ref_outputs", tmp_path / "outputs"
    done = subprocess.run(cmd, env=env(FLARE_OUTPUTS=str(ref_root)), capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    stage2 = run_root / "smoke" / "baseline" / "03_stage2"
    status, _ = kill_when(
        cmd,
        lambda: (stage2 / "model" / "train_log.csv").is_file(),
        env=env(FLARE_OUTPUTS=str(run_root)),
        cwd=REPO,
    )
    assert status == -signal.SIGKILL
    assert not (stage2 / "DONE").exists()
    again = subprocess.run(
        cmd, env=env(FLARE_OUTPUTS=str(run_root)), capture_output=True, text=True, cwd=REPO
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[skip] smoke/baseline/00_data" in again.stdout
    for stage in ("00_data", "03_stage2", "05_evaluate"):
        assert (run_root / "smoke" / "baseline" / stage / "DONE").is_file(), stage
    ref = json.loads((ref_root / "smoke" / "baseline" / "05_evaluate" / "metrics.json").read_text())
    got = json.loads((run_root / "smoke" / "baseline" / "05_evaluate" / "metrics.json").read_text())
    assert got == ref
    assert not no_temps(run_root), no_temps(run_root)
