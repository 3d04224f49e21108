"""Annealed mean and confidence: the decoding shared by training and prediction."""

from __future__ import annotations

import pytest
import torch

from colorize.models.net.annealed import annealed_mean, confidence, softmax_probs

CENTERS = torch.tensor([[0.0, 0.0], [40.0, 0.0], [0.0, -40.0]])


def _probs(values):
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def test_temperature_one_is_the_mean_and_small_temperature_the_mode():
    p = _probs([0.2, 0.5, 0.3])
    mean = annealed_mean(p, CENTERS, 1.0).flatten()
    assert mean.tolist() == pytest.approx([0.5 * 40, -0.3 * 40])
    mode = annealed_mean(p, CENTERS, 0.01).flatten()
    assert mode.tolist() == pytest.approx([40.0, 0.0], abs=1e-3)
    mid = annealed_mean(p, CENTERS, 0.38).flatten()
    assert 20 < mid[0] < 40  # sharper than the mean, softer than the mode


def test_softmax_probs_is_float32_and_sums_to_one():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16)
    p = softmax_probs(logits)
    assert p.dtype == torch.float32
    assert torch.allclose(p.sum(1), torch.ones(2, 4, 4))


def test_confidence_top_and_ratio():
    top, ratio = confidence(_probs([0.1, 0.6, 0.3]))
    assert top.item() == pytest.approx(0.6)
    assert ratio.item() == pytest.approx(2.0)


def test_bad_temperature_or_bin_count_is_refused():
    with pytest.raises(ValueError):
        annealed_mean(_probs([0.5, 0.5, 0.0]), CENTERS, 0.0)
    with pytest.raises(ValueError):
        annealed_mean(_probs([0.5, 0.5]), CENTERS, 0.38)
