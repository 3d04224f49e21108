"""Checkpoints: atomic, weights_only, self-sufficient, and refusing anything pickled or broken."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from colorize.errors import ColorizeError
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.net.checkpoint import (
    load_checkpoint,
    nearest_bin_lut,
    save_checkpoint,
    write_untrained_checkpoint,
)

CENTERS = np.array([[0, 0], [30, 30], [-30, 20], [10, -40]], np.float32)


class Evil:
    def __reduce__(self):  # would run code on an unsafe load
        return (print, ("pwned",))


def test_untrained_checkpoint_round_trips_to_a_colorizer(tmp_path):
    path = write_untrained_checkpoint(tmp_path / "m.pt", CENTERS, size=32, width=4, seed=3)
    col = load_colorizer(path, "cpu")
    assert col.n_bins == 4 and col.size == 32 and not col.model.training
    probs = col.probs(torch.randint(0, 256, (2, 32, 32), dtype=torch.uint8))
    assert probs.shape == (2, 4, 32, 32) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    # Same seed, same weights: the helper is reproducible.
    again = load_colorizer(write_untrained_checkpoint(tmp_path / "n.pt", CENTERS, size=32, width=4, seed=3))
    for a, b in zip(col.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write leaves no temp behind


def test_pickled_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": Evil(), "centers": torch.zeros(2, 2)}, path)
    with pytest.raises(ColorizeError, match="pickled"):
        load_checkpoint(path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(ColorizeError):
        load_checkpoint(raw)


def test_missing_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ColorizeError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = write_untrained_checkpoint(tmp_path / "good.pt", CENTERS, width=4)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ColorizeError, match="corrupt"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    save_checkpoint(other, {"weights": torch.ones(3)})
    with pytest.raises(ColorizeError, match="not a colorize checkpoint"):
        load_colorizer(other, "cpu")


def test_nearest_bin_lut_maps_every_int8_pair():
    lut = nearest_bin_lut(CENTERS)
    assert lut.shape == (256, 256) and lut.dtype == np.int16
    assert lut[0 + 128, 0 + 128] == 0 and lut[29 + 128, 31 + 128] == 1 and lut[-128 + 128, 127 + 128] == 2
