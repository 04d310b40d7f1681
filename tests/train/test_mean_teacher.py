"""Mean Teacher: EMA math, consistency gradient reaches the student, teacher gets none, eq. 3 total."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from flarelib.config import TrainParams
from flarelib.train.loop import DistInfo, StepContext
from flarelib.train.losses import consistency_lambda
from flarelib.train.mean_teacher import MeanTeacher, ema_decay_at, ema_update
from flarelib.train.sampling import SegmentationBatches

PARAMS = dataclasses.replace(TrainParams(), patch_zyx=(8, 32, 32), amp=False)


def test_ema_decay_schedule():
    assert ema_decay_at(0, 0.99) == 0.0  # first update copies the student
    assert ema_decay_at(1, 0.99) == pytest.approx(0.5)
    assert ema_decay_at(9, 0.99) == pytest.approx(0.9)
    assert ema_decay_at(99, 0.99) == pytest.approx(0.99)
    assert ema_decay_at(5000, 0.99) == pytest.approx(0.99)


def test_ema_update_matches_hand_computation_for_params_and_buffers():
    def net():
        return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))

    student, teacher = net(), net()
    with torch.no_grad():
        student[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        teacher[0].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0]]))
        student[1].running_mean.copy_(torch.tensor([2.0, 4.0]))
        teacher[1].running_mean.copy_(torch.tensor([0.0, 1.0]))
        student[1].num_batches_tracked.fill_(7)
    ema_update(teacher, student, 0.75)
    expected_w = torch.tensor([[0.25, 0.5], [1.5, 0.25]])  # 0.75 * t + 0.25 * s
    assert torch.allclose(teacher[0].weight, expected_w)
    assert torch.allclose(teacher[1].running_mean, torch.tensor([0.5, 1.75]))
    assert int(teacher[1].num_batches_tracked) == 7  # integer buffers are copied
    ema_update(teacher, student, 0.0)
    assert torch.equal(teacher[0].weight, student[0].weight)


@pytest.fixture
def batch(make_volume):
    src = SegmentationBatches(
        [make_volume(0), make_volume(1)], [make_volume(2, labeled=False)], (8, 32, 32), seed=3
    )
    b = src(0)
    b["label_l"] = b["label_l"].long()
    return b


def test_consistency_gradient_reaches_student_and_teacher_gets_none(make_unet, batch):
    mt = MeanTeacher(make_unet(0), params=PARAMS, seed=1)
    with torch.no_grad():  # make the teacher differ from the student, as after some training
        for p in mt.teacher.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    losses = mt.compute_losses(batch, progress=1.0)
    assert losses["loss_con"].item() > 0
    losses["loss_con"].backward()
    # L_con uses the full-resolution output: every parameter on its path gets a gradient
    named = {n: p for n, p in mt.student.named_parameters() if not n.startswith(("heads.1", "heads.2"))}
    assert all(p.grad is not None for p in named.values())
    n_nonzero = sum(int(torch.count_nonzero(p.grad) > 0) for p in named.values())
    assert n_nonzero >= 0.9 * len(named), "the consistency term must train the student"
    assert torch.count_nonzero(named["encoder.0.0.0.weight"].grad) > 0
    assert all(not p.requires_grad and p.grad is None for p in mt.teacher.parameters())


def test_total_is_lambda_times_consistency_plus_supervised(make_unet, batch):
    mt = MeanTeacher(make_unet(0), params=PARAMS, seed=1)
    with torch.no_grad():
        for p in mt.teacher.parameters():
            p.mul_(0.9)
    losses = mt.compute_losses(batch, progress=0.7)
    lam = consistency_lambda(0.7, PARAMS.consistency_weight, PARAMS.consistency_rampup)
    assert losses["lambda"].item() == pytest.approx(lam)
    assert losses["loss"].item() == pytest.approx(
        losses["loss_sup"].item() + lam * losses["loss_con"].item(), rel=1e-6
    )
    assert losses["loss"].item() != pytest.approx(losses["loss_sup"].item(), rel=1e-9)  # not overwritten


def test_supervised_mode_drops_consistency_and_unlabelled_half(make_unet, batch):
    mt = MeanTeacher(make_unet(0), params=dataclasses.replace(PARAMS, mode="supervised"))
    calls = []
    mt.teacher.register_forward_hook(lambda *a: calls.append(1))
    seen = []
    mt.student.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    losses = mt.compute_losses(batch, progress=0.5)
    assert losses["loss_con"].item() == 0 and losses["lambda"].item() == 0
    assert losses["loss"].item() == losses["loss_sup"].item()
    assert calls == [] and seen == [2]


def test_teacher_noise_is_clipped_and_reproducible():
    mt = MeanTeacher(
        nn.Conv3d(1, 2, 1), params=dataclasses.replace(PARAMS, teacher_noise_std=0.1, teacher_noise_clip=0.2)
    )
    x = torch.zeros(2, 1, 8, 16, 16)
    n1, n2, n3 = mt.teacher_noise(x, 5), mt.teacher_noise(x, 5), mt.teacher_noise(x, 6)
    assert n1.abs().max().item() <= 0.2 + 1e-7
    assert 0.08 < n1.std().item() < 0.11
    assert torch.equal(n1, n2) and not torch.equal(n1, n3)


def test_training_step_moves_student_and_teacher_follows(make_unet, batch):
    mt = MeanTeacher(make_unet(0), params=PARAMS, seed=0)
    mt.make_optimizers()
    ctx = StepContext(torch.device("cpu"), False, torch.amp.GradScaler("cpu", enabled=False), DistInfo(), 10)
    before = [p.detach().clone() for p in mt.student.parameters()]
    out = mt.training_step(batch, ctx)  # step 0: decay 0, the teacher becomes the student
    assert {"loss", "loss_sup", "loss_con", "lambda", "grad_norm"} <= set(out)
    assert any(not torch.equal(b, p) for b, p in zip(before, mt.student.parameters(), strict=True))
    s0 = [p.detach().clone() for p in mt.student.parameters()]
    assert all(torch.equal(t, s) for t, s in zip(mt.teacher.parameters(), s0, strict=True))
    ctx.iteration = 1
    mt.training_step(batch, ctx)  # step 1: decay 0.5
    for t, a, b in zip(mt.teacher.parameters(), s0, mt.student.parameters(), strict=True):
        assert torch.allclose(t, 0.5 * a + 0.5 * b, atol=1e-7)
        assert not t.requires_grad
    assert mt.teacher.training is False


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [("sgd", torch.optim.SGD, {"momentum": 0.99, "nesterov": True}), ("adam", torch.optim.Adam, {})],
)
def test_optimizer_follows_params(make_unet, name, kind, extra):
    mt = MeanTeacher(make_unet(0), params=dataclasses.replace(PARAMS, optimizer=name, lr=0.003))
    opts = mt.make_optimizers()
    assert list(opts) == [name] and isinstance(opts[name], kind)
    group = opts[name].param_groups[0]
    assert group["lr"] == 0.003 and group["weight_decay"] == PARAMS.weight_decay
    assert {k: group[k] for k in extra} == extra
    student = {id(p) for p in mt.student.parameters()}
    assert {id(p) for p in group["params"]} == student
