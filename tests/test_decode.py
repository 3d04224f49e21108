"""Annealed mean, the neutral fallback and confidence: the decoding shared by training and prediction."""

from __future__ import annotations

import pytest
import torch

from colorize.models.net.annealed import (
    CHROMA_CONFIDENCE_POWER,
    annealed_mean,
    chroma_confidence,
    confidence,
    decode,
    softmax_probs,
)

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


def test_confidence_is_the_chroma_confidence_and_the_ratio():
    conf, ratio = confidence(_probs([0.1, 0.6, 0.3]), CENTERS)
    assert conf.item() == pytest.approx(chroma_confidence(_probs([0.1, 0.6, 0.3]), CENTERS).item())
    assert ratio.item() == pytest.approx(2.0)


# gray, then four bins around it: red-ish, green-ish, yellow-ish, blue-ish
WHEEL = torch.tensor([[0.0, 0.0], [40.0, 0.0], [-40.0, 0.0], [0.0, 40.0], [0.0, -40.0]])


def test_decode_falls_back_to_neutral_where_the_hue_is_unknown():
    # sky blue or sand yellow, 60/40: the annealed mean paints a confident yellow (19 of 40 units),
    # decode keeps under half of it (hue agreement 0.2)
    torn = _probs([0.0, 0.0, 0.0, 0.6, 0.4])
    painted = annealed_mean(torn, WHEEL, 0.38).flatten().norm().item()
    assert painted > 15
    assert decode(torn, WHEEL, 0.38).flatten().norm().item() == pytest.approx(painted * 0.2 ** CHROMA_CONFIDENCE_POWER)
    assert decode(torn, WHEEL, 0.38).flatten().norm().item() < 0.5 * painted
    # spread over the whole wheel: nothing is known, nothing is painted
    assert decode(_probs([0.2] * 5), WHEEL, 0.38).flatten().norm() < 1e-4
    # sure of one hue: painted in full
    sure = _probs([0.0, 0.0, 0.0, 1.0, 0.0])
    assert decode(sure, WHEEL, 0.38).flatten().tolist() == pytest.approx([0.0, 40.0], abs=1e-3)


def test_decode_keeps_the_hue_and_only_fades_the_chroma():
    p = _probs([0.1, 0.5, 0.05, 0.3, 0.05])
    full, faded = annealed_mean(p, WHEEL, 0.38).flatten(), decode(p, WHEEL, 0.38).flatten()
    conf = chroma_confidence(p, WHEEL).item()
    assert 0 < conf < 1
    assert faded.tolist() == pytest.approx((full * conf).tolist())
    # hue agreement R = |mean ab| / mean |ab|, to the documented power
    mean = torch.tensor([0.5 * 40 - 0.05 * 40, 0.3 * 40 - 0.05 * 40])
    r = (mean.norm() / (0.9 * 40)).item()
    assert conf == pytest.approx(r ** CHROMA_CONFIDENCE_POWER)


def test_a_pixel_sure_it_is_gray_has_full_confidence_and_stays_gray():
    gray = _probs([1.0, 0.0, 0.0, 0.0, 0.0])
    assert chroma_confidence(gray, WHEEL).item() == pytest.approx(1.0)
    assert decode(gray, WHEEL, 0.38).abs().max().item() < 1e-4


def test_bad_temperature_or_bin_count_is_refused():
    with pytest.raises(ValueError):
        annealed_mean(_probs([0.5, 0.5, 0.0]), CENTERS, 0.0)
    with pytest.raises(ValueError):
        annealed_mean(_probs([0.5, 0.5]), CENTERS, 0.38)
