"""Losses: deep-supervision weights, partial labels (exact zero gradient), Dice/CE known answers."""

from __future__ import annotations

import math

import pytest
import torch

from flarelib.train.losses import (
    consistency_lambda,
    deep_supervision_loss,
    deep_supervision_weights,
    downsample_target,
    partial_dice_ce,
    softmax_mse,
)


def test_deep_supervision_weights_halve_and_sum_to_one():
    w = deep_supervision_weights(4)
    assert w == pytest.approx([1 / 1.875, 0.5 / 1.875, 0.25 / 1.875, 0.125 / 1.875])
    assert sum(w) == pytest.approx(1.0)
    assert deep_supervision_weights(1) == [1.0]


def _batch(seed=0, n=2, c=14, shape=(4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, *shape, generator=g)
    target = torch.randint(0, 6, (n, *shape), generator=g)
    return logits, target


def test_partial_label_batch_gives_zero_gradient_for_unannotated_classes():
    logits, target = _batch()
    unannotated = [4, 12]  # sample 0 does not annotate pancreas and duodenum
    target[0][torch.isin(target[0], torch.tensor(unannotated))] = 0
    annotated = torch.ones(2, 14, dtype=torch.bool)
    annotated[0, unannotated] = False
    logits.requires_grad_(True)
    partial_dice_ce(logits, target, annotated)["loss"].backward()
    g = logits.grad
    for u in unannotated:
        assert torch.count_nonzero(g[0, u]) == 0, f"sample 0, class {u} got gradient"
        assert torch.count_nonzero(g[1, u]) > 0, "sample 1 annotates it and must train it"
    for c in (0, 1, 2, 3, 13):
        assert torch.count_nonzero(g[0, c]) > 0


def test_partial_labels_zero_gradient_through_deep_supervision():
    g = torch.Generator().manual_seed(3)
    heads = [
        torch.randn(2, 14, 8, 16, 16, generator=g, requires_grad=True),
        torch.randn(2, 14, 8, 8, 8, generator=g, requires_grad=True),
    ]
    target = torch.randint(0, 4, (2, 8, 16, 16), generator=g)
    annotated = torch.ones(2, 14, dtype=torch.bool)
    annotated[1, 12] = False
    deep_supervision_loss(heads, target, annotated, levels=4)["loss"].backward()
    for h in heads:
        assert torch.count_nonzero(h.grad[1, 12]) == 0
        assert torch.count_nonzero(h.grad[0, 12]) > 0


def test_partial_ce_equals_ce_over_annotated_classes_only():
    logits, target = _batch(seed=1, n=1)
    keep = [c for c in range(14) if c not in (4, 9)]
    target[torch.isin(target, torch.tensor([4, 9]))] = 0
    annotated = torch.zeros(1, 14, dtype=torch.bool)
    annotated[0, keep] = True
    ce = partial_dice_ce(logits, target, annotated)["ce"]
    remap = torch.full((14,), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    ref = torch.nn.functional.cross_entropy(logits[:, keep], remap[target])
    assert ce.item() == pytest.approx(ref.item(), rel=1e-6)


def test_perfect_prediction_has_near_zero_loss_and_wrong_has_high():
    _, target = _batch(seed=2)
    onehot = torch.nn.functional.one_hot(target, 14).permute(0, 4, 1, 2, 3).float()
    good = partial_dice_ce(onehot * 50.0, target)
    assert good["ce"].item() < 1e-6 and good["dice"].item() < 1e-4
    bad = partial_dice_ce((1 - onehot) * 50.0, target)
    assert bad["dice"].item() > 0.99 and bad["ce"].item() > 10


def test_batch_dice_known_value():
    # two classes, one voxel each way: probabilities exactly 0/1 via huge logits
    target = torch.tensor([[[[0, 1, 1, 0]]]])  # (1, 1, 1, 4)
    pred = torch.tensor([[[[0, 1, 0, 0]]]])
    logits = torch.nn.functional.one_hot(pred, 2).permute(0, 4, 1, 2, 3).float() * 100
    d = partial_dice_ce(logits, target, torch.ones(1, 2, dtype=torch.bool))["dice"]
    assert d.item() == pytest.approx(1 - 2 / 3, abs=1e-5)  # tp 1, fp 0, fn 1


def test_downsample_target_nearest():
    t = torch.arange(2 * 4 * 8 * 8).reshape(2, 4, 8, 8) % 14
    d = downsample_target(t, (2, 4, 4))
    assert d.shape == (2, 2, 4, 4) and d.dtype == t.dtype
    assert torch.equal(d, t[:, ::2, ::2, ::2])


def test_deep_supervision_loss_is_weighted_sum_of_heads():
    g = torch.Generator().manual_seed(5)
    heads = [torch.randn(1, 14, 4, 8, 8, generator=g), torch.randn(1, 14, 2, 4, 4, generator=g)]
    target = torch.randint(0, 14, (1, 4, 8, 8), generator=g)
    total = deep_supervision_loss(heads, target)["loss"]
    l0 = partial_dice_ce(heads[0], target)["loss"]
    l1 = partial_dice_ce(heads[1], target[:, ::2, ::2, ::2])["loss"]
    assert total.item() == pytest.approx((l0 * 2 / 3 + l1 / 3).item(), rel=1e-6)
    only_full = deep_supervision_loss(heads, target, levels=1)["loss"]
    assert only_full.item() == pytest.approx(l0.item(), rel=1e-6)


def test_consistency_lambda_ramp():
    assert consistency_lambda(1.0) == pytest.approx(0.1)
    assert consistency_lambda(0.0) == pytest.approx(0.1 * math.exp(-5))
    assert consistency_lambda(0.5, 0.2, 4.0) == pytest.approx(0.2 * math.exp(-1))


def test_softmax_mse_gradient_only_to_student():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, 2, 2, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 2, 2, 2, generator=g, requires_grad=True)
    loss = softmax_mse(s, t)
    ref = ((torch.softmax(s, 1) - torch.softmax(t, 1)) ** 2).mean()
    assert loss.item() == pytest.approx(ref.item())
    loss.backward()
    assert s.grad is not None and torch.count_nonzero(s.grad) > 0
    assert t.grad is None
