"""Shared test fixtures. Tests make what they need in temporary folders; nothing is downloaded."""

from __future__ import annotations

import os

# Keep torch/numpy to the 2 cores CI has, and tests deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("COLORIZE_TEST", "1")


import numpy as np  # noqa: E402
import pytest  # noqa: E402

# 9 bins on a coarse, saturated grid: enough for vivid (and partly out-of-gamut) colors.
VIVID_CENTERS = np.array([[a, b] for a in (-60, 0, 60) for b in (-60, 0, 60)], np.float32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny untrained checkpoint over VIVID_CENTERS (a second to make; enough for predict and video tests)."""
    from colorize.models.net.checkpoint import write_untrained_checkpoint

    return write_untrained_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", VIVID_CENTERS, size=32, width=4, seed=1)


@pytest.fixture(scope="module")
def vivid(model_path):
    """The untrained net with its 1x1 head made decisive, so colors are strong and differ per pixel."""
    import torch

    from colorize.models.infer.colorizer import load_colorizer

    col = load_colorizer(model_path, "cpu")
    with torch.no_grad():
        col.model.head.weight.mul_(40.0)
        col.model.head.bias.copy_(torch.linspace(-1.0, 1.0, len(VIVID_CENTERS)))
    return col
