"""Colour hints on the model side: the net's hint channels, the checkpoint field and the old format, the
loader's simulated hints (deterministic, Zhang's distribution) and a loss that makes the net honour them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_loader_shards import make_shards

from colorize.dataset.hints import (
    HINT_AB_SCALE,
    HINT_CHANNELS,
    SIM_STOP_P,
    hint_rng,
    simulate_points,
    simulated_planes,
)
from colorize.dataset.loader import ShardDataset, make_loader
from colorize.errors import ColorizeError, UsageError
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.net.checkpoint import save_checkpoint, untrained_payload, validate_payload
from colorize.models.net.loss import RebalancedLoss, hint_loss
from colorize.models.net.unet import (
    HINT_FEATURES,
    ColorUNet,
    hint_features,
    l_to_input,
    require_hints_support,
)

CENTERS = np.array([[0, 0], [40, 0], [-40, 0], [0, 40], [0, -40], [30, 30]], np.float32)


def test_net_takes_hints_and_they_change_the_output():
    torch.manual_seed(0)
    net = ColorUNet(6, width=4).eval()
    assert net.accepts_hints and net.down1[0].in_channels == 1 and net.head.in_channels == 4 + HINT_FEATURES
    x = torch.rand(2, 1, 20, 28) * 2 - 1
    hints = torch.zeros(2, HINT_CHANNELS, 20, 28)
    with torch.no_grad():
        auto = net(x)
        assert auto.shape == (2, 6, 20, 28)
        assert torch.equal(auto, net(x, hints))  # None is the all-zero planes: the automatic case
        hints[:, 0, 5:9, 5:9], hints[:, 2, 5:9, 5:9] = 0.5, 1.0
        guided = net(x, hints)
    assert guided.shape == auto.shape and not torch.allclose(guided, auto)
    with pytest.raises(ValueError, match="hints must be"):
        net(x, hints[:, :2])


@pytest.mark.parametrize("spread", ["levin", "gaussian"])
def test_the_hint_head_starts_by_painting_the_hint_and_spreads_it(spread):
    torch.manual_seed(0)
    net = ColorUNet(len(CENTERS), width=4, hint_spread=spread).eval()
    net.init_hint_head(torch.as_tensor(CENTERS))
    hints = torch.zeros(1, HINT_CHANNELS, 48, 48)
    hints[0, 0, 10:13, 10:13], hints[0, 1, 10:13, 10:13], hints[0, 2, 10:13, 10:13] = 30 / 110, 30 / 110, 1.0
    x = torch.zeros(1, 1, 48, 48)
    x[..., 24:] = 0.6  # a lightness edge across the photo, below the hint
    with torch.no_grad():
        probs = torch.softmax(net(x, hints), dim=1)[0]
    assert probs[5, 11, 11] > 0.99  # bin (30, 30) on the hinted patch, from the first step of training
    feats = hint_features(hints, x, spread)
    assert torch.allclose(feats[0, 3:5, 11, 14] / feats[0, 5, 11, 14], torch.tensor([30 / 110, 30 / 110]), atol=1e-4)
    if spread == "gaussian":  # a local guess: its confidence fades with distance
        assert probs[5, 11, 11] > probs[5, 11, 20] > probs[5, 40, 40]
        assert feats[0, 5, 11, 11] > 0.5 and feats[0, 5, 40, 40] < 0.01
    else:  # propagated over the whole photo (its one hint: one colour everywhere), confidence 1 wherever
        assert torch.allclose(feats[0, 5], torch.ones(48, 48))
        assert torch.allclose(feats[0, 3:5, 40, 40], torch.tensor([30 / 110, 30 / 110]), atol=1e-3)
        assert probs[5, 40, 40] > probs[5, 40, 40].new_tensor(1.0 / len(CENTERS))
        assert not hint_features(torch.zeros_like(hints), x, spread).any()  # no hint: no spread


def test_a_net_without_hint_channels_refuses_hints():
    old = ColorUNet(6, width=4, hint_channels=0).eval()
    assert not old.accepts_hints and old.down1[0].in_channels == 1
    assert old(torch.zeros(1, 1, 8, 8)).shape == (1, 6, 8, 8)
    with pytest.raises(ValueError, match="no hint channels"):
        old(torch.zeros(1, 1, 8, 8), torch.zeros(1, HINT_CHANNELS, 8, 8))
    with pytest.raises(UsageError, match="old.pt was trained without colour hints") as exc:
        require_hints_support(old, "old.pt")
    assert exc.value.exit_code == 2 and "drop --hints" in str(exc.value)
    require_hints_support(ColorUNet(6, width=4), "new.pt")  # no error


def test_checkpoint_round_trip_and_the_old_format(tmp_path):
    new, old = tmp_path / "new.pt", tmp_path / "old.pt"
    save_checkpoint(new, untrained_payload(CENTERS, size=32, width=4))
    payload = untrained_payload(CENTERS, size=32, width=4, hint_channels=0)
    assert "hint_channels" not in payload["config"]  # exactly what checkpoints before hints hold
    save_checkpoint(old, payload)
    c_new, c_old = load_colorizer(new, device="cpu"), load_colorizer(old, device="cpu")
    assert c_new.model.accepts_hints and not c_old.model.accepts_hints
    require_hints_support(c_new, new)
    with pytest.raises(UsageError, match="trained without colour hints"):
        require_hints_support(c_old, old)
    L = torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert c_old.model(l_to_input(L)).shape == (1, len(CENTERS), 32, 32)  # the old one still colours


def test_checkpoint_hint_field_is_validated():
    bad = untrained_payload(CENTERS, size=32, width=4)
    bad["config"]["hint_channels"] = 7
    with pytest.raises(ColorizeError, match="hint_channels must be 0 or 3"):
        validate_payload(bad)
    lying = untrained_payload(CENTERS, size=32, width=4, hint_channels=0)
    lying["config"]["hint_channels"] = HINT_CHANNELS  # claims hints, holds the L-only weights
    with pytest.raises(ColorizeError, match="3 hint channels"):
        validate_payload(lying)
    odd = untrained_payload(CENTERS, size=32, width=4)
    odd["config"]["hint_spread"] = "magic"
    with pytest.raises(ColorizeError, match="hint_spread must be one of levin, gaussian"):
        validate_payload(odd)


def test_a_checkpoint_of_the_last_round_keeps_its_gaussian_spread(tmp_path):
    """Checkpoints trained before `hint_spread` existed (their config lacks it) load with the spread they
    were trained with; new ones record theirs."""
    before = untrained_payload(CENTERS, size=32, width=4, hint_spread="gaussian")
    del before["config"]["hint_spread"]
    save_checkpoint(tmp_path / "before.pt", before)
    save_checkpoint(tmp_path / "now.pt", untrained_payload(CENTERS, size=32, width=4))
    assert load_colorizer(tmp_path / "before.pt", device="cpu").model.hint_spread == "gaussian"
    assert load_colorizer(tmp_path / "now.pt", device="cpu").model.hint_spread == "levin"


def _sample(size=32, pad_rows=8, seed=0):
    rng = np.random.default_rng(seed)
    ab = rng.integers(-60, 60, (size, size, 2)).astype(np.int8)
    mask = np.zeros((size, size), bool)
    mask[pad_rows:size - pad_rows] = True
    return ab, mask


def test_simulated_points_follow_zhang_and_stay_in_the_real_area():
    ab, mask = _sample()
    counts, sides = [], []
    for i in range(4000):
        points = simulate_points(ab, mask, hint_rng(3, 0, i))
        counts.append(len(points))
        for p in points:
            sides.append(p.size)
            x0, y0 = round(p.x - (p.size - 1) / 2), round(p.y - (p.size - 1) / 2)
            patch = (slice(y0, y0 + p.size), slice(x0, x0 + p.size))
            assert mask[patch].all() and mask[patch].shape == (p.size, p.size)
            assert np.allclose((p.a, p.b), ab[patch].reshape(-1, 2).astype(float).mean(axis=0))
    counts = np.array(counts)
    # Seeded, so these cannot fail by chance; the bounds are ~4 standard errors of the geometric law.
    assert abs((counts == 0).mean() - SIM_STOP_P) < 0.02
    assert abs(counts.mean() - (1 - SIM_STOP_P) / SIM_STOP_P) < 0.5
    assert set(sides) == set(range(1, 10))
    ys = [p.y for i in range(200) for p in simulate_points(ab, mask, hint_rng(3, 0, i))]
    assert abs(np.mean(ys) - 15.5) < 1.0  # around the centre of the real rows 8..23


def test_simulated_planes_paint_the_patch_colours():
    ab, mask = _sample()
    planes = simulated_planes(ab, mask, hint_rng(0, 0, 1), count=5)
    assert planes.shape == (HINT_CHANNELS, 32, 32) and planes.dtype == np.float32
    assert planes[2].sum() > 0 and not planes[2][~mask].any()
    assert np.abs(planes[:2]).max() <= 60 / HINT_AB_SCALE + 1e-6
    assert not simulated_planes(ab, np.zeros_like(mask), hint_rng(0, 0, 1), count=5).any()  # padding sample


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("hints") / "shards", n_train=12, n_val=0, size=32)


def _hints_by_index(shards, epoch, workers, seed=0):
    ds = ShardDataset(shards, "train", seed=seed, batch_size=4, workers=workers, hints=True)
    ds.set_epoch(epoch)
    out = {}
    for batch in make_loader(ds):
        assert "ab" not in batch and batch["hints"].dtype == torch.float32
        for i, key in enumerate(batch["index"].tolist()):
            if batch["valid"][i]:
                out[key] = batch["hints"][i].numpy()
    return out


def test_loader_hints_are_a_function_of_seed_epoch_and_sample(shards):
    a = _hints_by_index(shards, epoch=1, workers=0)
    assert len(a) == 12 and sum(h[2].any() for h in a.values()) >= 6
    b = _hints_by_index(shards, epoch=1, workers=2)  # another worker count, another batch order
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    c = _hints_by_index(shards, epoch=2, workers=0)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    d = _hints_by_index(shards, epoch=1, workers=0, seed=1)
    assert any(not np.array_equal(a[k], d[k]) for k in a)


def test_training_with_the_hint_loss_makes_the_net_honour_hints(shards):
    """A real learning check: after a few steps on hinted batches the painted colour at hinted pixels is
    much closer to the hint than before, on a fixed batch of the same set."""
    ds = ShardDataset(shards, "train", seed=0, batch_size=12, workers=0, hints=True)
    centers = torch.as_tensor(ds.stats.centers, dtype=torch.float32)
    torch.manual_seed(0)
    net = ColorUNet(ds.stats.n_bins, width=8)
    criterion = RebalancedLoss(torch.as_tensor(ds.stats.weights, dtype=torch.float32))
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)

    def error(batch):
        net.eval()
        with torch.no_grad():
            e = float(hint_loss(net(l_to_input(batch["L"]), batch["hints"]), batch["hints"], centers, 0.38))
        net.train()
        return e * HINT_AB_SCALE

    ds.set_epoch(99)
    probe = next(iter(make_loader(ds)))
    before = error(probe)
    for epoch in range(40):
        ds.set_epoch(epoch)
        for batch in make_loader(ds):
            logits = net(l_to_input(batch["L"]), batch["hints"])
            loss = criterion(logits, batch["bins"], batch["mask"], batch["colorful"]) \
                + 10.0 * hint_loss(logits, batch["hints"], centers, 0.38)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = error(probe)
    assert after < 0.7 * before, (before, after)
