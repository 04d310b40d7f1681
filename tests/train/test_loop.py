"""The generic loop: identical losses for one seed, exact resume, stage guard, logs, model selection."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from flarelib.config import TrainParams
from flarelib.errors import FlareInputError
from flarelib.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from flarelib.train.loop import LoopConfig, dice_validator, linear_decay_lr, poly_lr, tiled_logits, train
from flarelib.train.mean_teacher import MeanTeacher
from flarelib.train.sampling import SegmentationBatches

PARAMS = dataclasses.replace(
    TrainParams(), patch_zyx=(8, 32, 32), batch_labeled=1, batch_unlabeled=1, amp=False, lr=0.01
)


def _setup(make_unet, make_volume, out_dir, iterations=6, stage="mt", **cfg):
    torch.manual_seed(0)
    system = MeanTeacher(make_unet(0), params=PARAMS, seed=11)
    batches = SegmentationBatches(
        [make_volume(0), make_volume(1)],
        [make_volume(2, labeled=False)],
        (8, 32, 32),
        batch_labeled=1,
        batch_unlabeled=1,
        seed=11,
    )
    return system, batches, _config(out_dir, iterations, stage, **cfg)


def _config(out_dir, iterations, stage="mt", **cfg):
    return LoopConfig(
        stage=stage,
        out_dir=out_dir,
        iterations=iterations,
        seed=11,
        params_hash="h",
        checkpoint_every=3,
        log_every=2,
        tensorboard=False,
        progress=False,
        device="cpu",
        **cfg,
    )


def _losses(result):
    return [(int(r["iteration"]), r["loss"], r["loss_con"]) for r in result.history]


def test_schedules():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0
    assert linear_decay_lr(2e-4, 10, 10, 2, 4) == pytest.approx(2e-4)  # epoch 1
    assert linear_decay_lr(2e-4, 30, 10, 2, 4) == pytest.approx(1e-4)  # epoch 3: half way down
    assert linear_decay_lr(2e-4, 40, 10, 2, 4) == 0.0


def test_two_runs_with_one_seed_give_identical_losses(make_unet, make_volume, tmp_path):
    r1 = train(*_setup(make_unet, make_volume, tmp_path / "a", iterations=4))
    r2 = train(*_setup(make_unet, make_volume, tmp_path / "b", iterations=4))
    assert len(r1.history) == 4
    assert _losses(r1) == _losses(r2)
    assert all(r["loss_con"] > 0 for r in r1.history)
    s1 = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)["modules"]["teacher"]
    s2 = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["modules"]["teacher"]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_resume_continues_exactly(make_unet, make_volume, tmp_path):
    full = train(*_setup(make_unet, make_volume, tmp_path / "full"))
    interrupted = train(*_setup(make_unet, make_volume, tmp_path / "resumed"), stop_after=3)
    assert [int(r["iteration"]) for r in interrupted.history] == [1, 2, 3]
    ckpt = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    assert ckpt["iteration"] == 3 and ckpt["stage"] == "mt" and ckpt["params_hash"] == "h"
    assert {"student", "teacher"} <= set(ckpt["modules"]) and "sgd" in ckpt["optimizers"]
    assert {"python", "numpy_legacy", "torch_cpu", "torch_cuda"} <= set(ckpt["rng"])
    # a fresh process would rebuild everything: a differently initialised net proves the weights come
    # from the checkpoint
    system, batches, cfg = _setup(make_unet, make_volume, tmp_path / "resumed")
    system = MeanTeacher(make_unet(123), params=PARAMS, seed=11)
    resumed = train(system, batches, cfg)
    assert [int(r["iteration"]) for r in resumed.history] == [4, 5, 6]
    assert _losses(resumed) == _losses(full)[3:]
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)
    b = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    for name in ("student", "teacher"):
        assert all(torch.equal(a["modules"][name][k], b["modules"][name][k]) for k in a["modules"][name])
    with (tmp_path / "resumed" / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["iteration"])) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_a_stage_never_resumes_another_stages_checkpoint(make_unet, make_volume, tmp_path):
    train(*_setup(make_unet, make_volume, tmp_path, iterations=1, stage="mt_stage1"))
    with pytest.raises(FlareInputError, match=r"checkpoint\.pt.*stage 'mt_stage1', not 'mt_stage2'.*Fix"):
        train(*_setup(make_unet, make_volume, tmp_path, iterations=2, stage="mt_stage2"))
    system, batches, cfg = _setup(make_unet, make_volume, tmp_path, iterations=2, stage="mt_stage1")
    cfg.params_hash = "other"
    with pytest.raises(FlareInputError, match="params hash"):
        train(system, batches, cfg)


def test_logs_and_model_selection_keep_a_copy(make_unet, make_volume, tmp_path):
    scores = iter([0.5, 0.9, 0.1])

    def validate(model):
        assert not model.training
        return {"dice_mean": next(scores)}

    system, batches, cfg = _setup(make_unet, make_volume, tmp_path, iterations=3, validate_every=1)
    cfg.tensorboard = True
    result = train(system, batches, cfg, validate)
    assert [r["iteration"] for r in result.val_history] == [1.0, 2.0, 3.0]
    assert result.best_value == 0.9 and result.best_iteration == 2
    best = load_checkpoint(tmp_path / BEST_NAME)
    assert best["iteration"] == 2 and best["which"] == "teacher"
    live = system.teacher.state_dict()
    assert any(not torch.equal(best["state_dict"][k], live[k]) for k in live)  # not the live weights
    assert all(torch.equal(best["state_dict"][k], result.best_state[k]) for k in live)
    assert all(result.best_state[k].data_ptr() != live[k].data_ptr() for k in live)
    assert (tmp_path / "train_log.csv").is_file() and (tmp_path / "val_log.csv").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert 0.0 <= result.data_wait_fraction < 1.0


def test_background_workers_give_the_same_losses(make_unet, make_volume, tmp_path):
    r0 = train(*_setup(make_unet, make_volume, tmp_path / "w0", iterations=2))
    r1 = train(*_setup(make_unet, make_volume, tmp_path / "w1", iterations=2, num_workers=1))
    assert _losses(r0) == _losses(r1)


def test_dice_validator_known_answer(make_volume):
    vol = make_volume(0)

    class AllLiver(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 14, *x.shape[2:])
            out[:, 1] = 1.0
            return out

    logits = tiled_logits(AllLiver(), vol.image, (8, 32, 32), (4, 8, 8))
    assert logits.shape == (14, *vol.image.shape)
    scores = dice_validator([vol], (8, 32, 32))(AllLiver())
    liver = 2 * (vol.label == 1).sum() / ((vol.label == 1).sum() + vol.label.size)
    assert scores["dice_1"] == pytest.approx(liver)
    assert scores["dice_2"] == 0.0
    n_present = len(set(vol.label.ravel().tolist()) - {0})
    assert scores["dice_mean"] == pytest.approx(liver / n_present)


def test_cpu_precision_resolves_and_rejects_unknown_values():
    from flarelib.precision import cpu_bf16
    from flarelib.train.loop import autocast_setting

    assert cpu_bf16("fp32") is False and cpu_bf16("bf16") is True
    assert isinstance(cpu_bf16("auto"), bool)
    assert autocast_setting(torch.device("cpu"), True, "fp32") == (False, torch.bfloat16)
    assert autocast_setting(torch.device("cpu"), False, "bf16") == (True, torch.bfloat16)
    assert autocast_setting(torch.device("cuda"), True, "bf16") == (True, torch.float16)
    with pytest.raises(ValueError, match="cpu_precision"):
        cpu_bf16("fp16")


def _setup_2d(make_volume, out_dir, iterations=6, **cfg):
    """The quick profile's shape of problem in small: a 2d net (1x3x3 kernels) on one-slice patches."""
    from flarelib.labels import NUM_CLASSES
    from flarelib.models.unet import UNet3D

    net = UNet3D(
        1,
        NUM_CLASSES,
        (4, 8, 16, 16),
        ((1, 2, 2),) * 3,
        deep_supervision=True,
        num_ds_heads=2,
        configuration="2d",
        generator=torch.Generator().manual_seed(0),
    )
    system = MeanTeacher(net, params=dataclasses.replace(PARAMS, patch_zyx=(1, 32, 32)), seed=11)
    vols = [make_volume(0), make_volume(1)], [make_volume(2, labeled=False)]
    batches = SegmentationBatches(*vols, (1, 32, 32), batch_labeled=4, batch_unlabeled=4, seed=11)
    return system, batches, _config(out_dir, iterations, **cfg)


def test_bf16_on_cpu_runs_the_convolutions_in_bf16_and_resumes_exactly(make_volume, tmp_path):
    # A 2d net: oneDNN's bf16 Conv3d weight gradients on tiny 3-D feature maps (2x4x4) came out
    # nondeterministic here (torch 2.13 CPU, AVX512-BF16), so bf16 is the 2d configuration's option.
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Conv3d) else None
    )
    try:
        full = train(*_setup_2d(make_volume, tmp_path / "full", cpu_precision="bf16"))
    finally:
        hook.remove()
    assert full.precision == "bf16" and torch.bfloat16 in seen
    ckpt = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)
    assert all(v.dtype == torch.float32 for v in ckpt["modules"]["student"].values() if v.is_floating_point())
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in full.history)
    train(*_setup_2d(make_volume, tmp_path / "resumed", cpu_precision="bf16"), stop_after=3)
    resumed = train(*_setup_2d(make_volume, tmp_path / "resumed", cpu_precision="bf16"))
    assert _losses(resumed) == _losses(full)[3:]
    fp32 = train(*_setup_2d(make_volume, tmp_path / "fp32"))
    assert fp32.precision == "fp32" and _losses(fp32) != _losses(full)
