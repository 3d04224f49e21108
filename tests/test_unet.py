"""ColorUNet shape, size budget and input conversion."""

from __future__ import annotations

import pytest
import torch

from colorize.models.net.unet import ColorUNet, count_parameters, l_to_input


def test_logits_at_input_resolution_for_any_size():
    torch.manual_seed(0)
    model = ColorUNet(n_bins=7, width=4).eval()
    for h, w in [(64, 64), (37, 50)]:
        x = l_to_input(torch.randint(0, 256, (2, h, w), dtype=torch.uint8))
        assert model(x).shape == (2, 7, h, w)


def test_default_model_fits_the_parameter_budget():
    n = count_parameters(ColorUNet(n_bins=32, width=32))
    assert 500_000 < n <= 2_000_000


def test_l_to_input_maps_uint8_to_minus_one_one_and_refuses_floats():
    x = l_to_input(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2)
    assert x.flatten().tolist() == pytest.approx([-1.0, 1.0])
    with pytest.raises(TypeError):
        l_to_input(torch.zeros(1, 4, 4))
