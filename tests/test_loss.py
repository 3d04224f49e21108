"""Rebalanced, masked cross-entropy and soft targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from colorize.models.net.loss import RebalancedLoss, soft_target_table

CENTERS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [0.0, 50.0]])
WEIGHTS = torch.tensor([0.5, 1.0, 2.0, 4.0])


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 3, 3, generator=g)
    bins = torch.randint(0, 4, (2, 3, 3), generator=g)
    return logits, bins


def test_hard_loss_is_weighted_masked_cross_entropy():
    logits, bins = _batch()
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[1, :, 2] = False
    ce = F.cross_entropy(logits, bins, reduction="none")
    expected = (ce * WEIGHTS[bins] * mask).sum() / mask.sum()
    assert RebalancedLoss(WEIGHTS)(logits, bins, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_gray_images_and_padding_give_zero_loss_and_zero_gradient():
    logits, bins = _batch()
    logits.requires_grad_(True)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    loss = RebalancedLoss(WEIGHTS)(logits, bins, mask, colorful=torch.tensor([False, False]))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()
    # One gray image: only the other one counts.
    one = RebalancedLoss(WEIGHTS)(logits.detach(), bins, mask, colorful=torch.tensor([True, False]))
    alone = RebalancedLoss(WEIGHTS)(logits.detach()[:1], bins[:1], mask[:1])
    assert one.item() == pytest.approx(alone.item())


def test_soft_targets_are_a_gaussian_over_the_nearest_bins():
    idx, g = soft_target_table(CENTERS, k=3, sigma=5.0)
    assert idx[1].tolist() == [1, 0, 2] or idx[1].tolist() == [1, 2, 0]
    assert torch.allclose(g.sum(1), torch.ones(4))
    assert g[1, 0] > g[1, 1] == pytest.approx(g[1, 2].item())
    logits, bins = _batch(1)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    hard = RebalancedLoss(WEIGHTS)(logits, bins, mask)
    assert RebalancedLoss(WEIGHTS, CENTERS, soft_k=1)(logits, bins, mask).item() == pytest.approx(hard.item())
    soft = RebalancedLoss(WEIGHTS, CENTERS, soft_k=3)(logits, bins, mask)
    assert soft.item() != pytest.approx(hard.item())
    # A prediction spread over the neighbours beats a one-hot guess on the target under soft targets.
    target = torch.ones(1, 3, 3, dtype=torch.long)
    m1 = torch.ones(1, 3, 3, dtype=torch.bool)
    spread = torch.log(g[1][torch.argsort(idx[1])].clamp_min(1e-9).expand(1, 3, 3, 3).permute(0, 3, 1, 2))
    spread = torch.cat([spread, torch.full((1, 1, 3, 3), -30.0)], dim=1)
    peaked = torch.full((1, 4, 3, 3), -30.0)
    peaked[:, 1] = 0
    loss = RebalancedLoss(WEIGHTS, CENTERS, soft_k=3)
    assert loss(spread, target, m1) < loss(peaked, target, m1)
