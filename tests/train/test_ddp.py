"""DDP: ``torchrun --nproc_per_node 2`` on CPU (gloo) trains a tiny net and writes exactly one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from flarelib.train.checkpoint import load_checkpoint

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    from pathlib import Path

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from flarelib.config import TrainParams
    from flarelib.models.unet import UNet3D
    from flarelib.train import LoopConfig, MeanTeacher, SegmentationBatches, TrainVolume, train
    from flarelib.train.loop import setup_distributed

    out = Path(sys.argv[1])
    info = setup_distributed("cpu")
    rng = np.random.default_rng(0)
    lab = np.zeros((8, 32, 32), np.uint8)
    lab[2:6, 4:20, 4:20] = 1
    lab[2:6, 20:28, 22:30] = 13
    img = (lab + rng.normal(0, 0.3, lab.shape)).astype(np.float32)
    labeled = [TrainVolume(img, lab, name="l")]
    unlabeled = [TrainVolume(img[::-1].copy(), name="u")]
    p = dataclasses.replace(TrainParams(), patch_zyx=(8, 32, 32), batch_labeled=1, batch_unlabeled=1,
                            amp=False)
    # a different initialisation on each rank: the loop must broadcast rank 0's weights
    student = UNet3D(1, 14, (4, 8, 16, 16), ((1, 2, 2), (2, 2, 2), (2, 2, 2)), num_ds_heads=2,
                     generator=torch.Generator().manual_seed(100 + info.rank))
    system = MeanTeacher(student, params=p, seed=3)
    batches = SegmentationBatches(labeled, unlabeled, (8, 32, 32), batch_labeled=1, batch_unlabeled=1,
                                  seed=3, rank=info.rank)
    cfg = LoopConfig(stage="ddp_test", out_dir=out / "stage", iterations=3, seed=3, checkpoint_every=2,
                     log_every=1, tensorboard=False, progress=False)
    result = train(system, batches, cfg, dist_info=info)
    ranks = out / "ranks"
    ranks.mkdir(exist_ok=True)
    torch.save({"student": system.student.state_dict(), "teacher": system.teacher.state_dict()},
               ranks / f"rank{info.rank}.pt")
    (ranks / f"rank{info.rank}.json").write_text(json.dumps([r["loss"] for r in result.history]))
    """
)


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow  # 23-33 s on the shared 2-core machine (13 s on 16 cores): mostly two torch imports
def test_torchrun_two_process_cpu_run_writes_one_checkpoint(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [*_torchrun(), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    stage = tmp_path / "stage"
    written = sorted(p.name for p in stage.rglob("*") if p.is_file())
    assert [n for n in written if n.endswith(".pt")] == ["checkpoint.pt"]
    assert not [n for n in written if n.endswith(".tmp")]
    ckpt = load_checkpoint(stage / "checkpoint.pt")
    assert ckpt["iteration"] == 3 and ckpt["world_size"] == 2 and ckpt["stage"] == "ddp_test"
    assert written.count("train_log.csv") == 1

    r0, r1 = (torch.load(tmp_path / "ranks" / f"rank{r}.pt") for r in (0, 1))
    for name in ("student", "teacher"):  # DDP keeps the replicas identical (rank 0's init, averaged grads)
        assert all(torch.equal(r0[name][k], r1[name][k]) for k in r0[name])
        assert all(torch.equal(r0[name][k], ckpt["modules"][name][k]) for k in r0[name])
    l0, l1 = (json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(l0) == len(l1) == 3
    assert l0 != l1  # each rank trains on its own patches (sampling seeds sharded by rank)
