"""Hints kept by propagation and the trunk reused across hint sets: `propagation.keep_hints` keeps every hint
exactly and moves the prediction with it up to lightness edges, its coarse-to-fine solve for large squares is
close to the direct solve, the colouring path ends with it, and `unet.TrunkMemo` reuses a photo's trunk only
when the photo, the weights and the mode are the same."""

from __future__ import annotations

import numpy as np
import torch
from editorkit import colorizer, photo

from colorize.dataset.color import rgb_to_lab
from colorize.dataset.hints import HintPoint
from colorize.dataset.images import load_rgb
from colorize.models.infer.arrays import RGBArray, predict_sources
from colorize.models.net.propagation import Propagation, keep_hints, propagate
from colorize.models.net.unet import ColorUNet


def _two_regions(h: int, w: int) -> np.ndarray:
    """Dark left half, light right half, a little texture: one lightness edge down the middle."""
    L = np.where(np.arange(w)[None, :] < w // 2, 30.0, 75.0) * np.ones((h, 1))
    return L + 2 * np.sin(np.arange(h)[:, None] / 3.0) * np.cos(np.arange(w)[None, :] / 5.0)


def test_kept_hints_are_exact_and_the_prediction_moves_with_them_fading_and_stopping_at_edges():
    h, w = 40, 120
    L = _two_regions(h, w)
    pattern = np.stack([np.linspace(-10, 10, w)[None].repeat(h, 0), np.full((h, w), 5.0)], -1)
    hinted, hint_ab = np.zeros((h, w), bool), np.zeros((h, w, 2))
    hinted[18:21, 8:11], hint_ab[18:21, 8:11] = True, (40, -30)
    real = np.ones((h, w), bool)
    cold, warm = keep_hints(L, [pattern, pattern * 0.5], hint_ab, hinted, real)
    for out in (cold, warm):
        assert np.allclose(out[hinted], hint_ab[hinted], atol=1e-3)
    moved = np.hypot(*np.moveaxis(cold - pattern, -1, 0))
    miss = np.hypot(*((40, -30) - pattern[19, 9]))
    assert moved[19, 14] > 0.4 * miss  # beside the hint: much of the miss
    assert moved[19, 14] > moved[19, 40] > moved[19, w // 2 - 2]  # fading with distance
    assert moved[19, w // 2 + 2] < 0.1 * moved[19, w // 2 - 2]  # and stopped by the lightness edge
    assert keep_hints(L, [pattern], hint_ab, hinted, real, reach=100.0)[0][:, : w // 2 - 2].std(axis=(0, 1)).max() \
        < pattern[:, : w // 2 - 2].std(axis=(0, 1)).max() + 3  # no fade: one shift for the whole region
    nothing = keep_hints(L, [pattern], hint_ab, np.zeros_like(hinted), real)[0]
    assert np.array_equal(nothing, pattern.astype(np.float32))


def test_the_coarse_to_fine_solve_is_close_to_the_direct_one_and_keeps_the_hints():
    rng = np.random.default_rng(0)
    h, w = 180, 200
    L = _two_regions(h, w) + rng.normal(0, 1, (h, w))
    hinted, hint_ab = np.zeros((h, w), bool), np.zeros((h, w, 2))
    for _ in range(8):
        y, x = rng.integers(5, h - 10), rng.integers(5, w - 10)
        hinted[y:y + 5, x:x + 5], hint_ab[y:y + 5, x:x + 5] = True, rng.uniform(-50, 50, 2)
    real = np.ones((h, w), bool)
    real[:, :6] = False  # a padded strip takes no part
    direct = propagate(L, hint_ab, hinted, real)
    system = Propagation(L, hinted, real, direct_side=64)
    assert system.coarse is not None and system.factor == 4
    fast = system(hint_ab)
    assert np.allclose(fast[hinted & real], hint_ab[hinted & real], atol=1e-3)
    assert not fast[:, :6].any()
    assert np.abs(fast - direct)[real].mean() < 2.0, np.abs(fast - direct)[real].mean()
    assert np.abs(fast - direct)[real].mean() < 0.2 * np.abs(direct)[real].mean()


def test_the_colouring_path_keeps_each_hint_in_the_picture(tmp_path):
    col = colorizer(hints=True, size=48)
    rgb = load_rgb(photo(tmp_path / "p.png"))
    points = (HintPoint(x=150, y=125, a=45.0, b=30.0, size=15), HintPoint(x=200, y=30, a=-15.0, b=-25.0, size=21))
    pred = predict_sources(col, [RGBArray(rgb, hints=points)], [0.38])[0]
    picture = pred.color(0)
    for p in points:
        r = p.size // 2 - 2  # inside the patch, clear of its upsampled border
        ab = rgb_to_lab(np.ascontiguousarray(picture[int(p.y) - r:int(p.y) + r, int(p.x) - r:int(p.x) + r]))[..., 1:]
        assert np.hypot(ab[..., 0] - p.a, ab[..., 1] - p.b).mean() < 3.0, ab.mean((0, 1))


def test_the_trunk_is_reused_only_for_the_same_photo_weights_and_mode(monkeypatch):
    torch.manual_seed(0)
    net = ColorUNet(6, width=4).eval()
    calls = []
    trunk = net.trunk
    monkeypatch.setattr(net, "trunk", lambda x: calls.append(1) or trunk(x))
    x = torch.rand(1, 1, 24, 24) * 2 - 1
    hints = torch.zeros(1, 3, 24, 24)
    hints[0, :, 4:8, 4:8] = torch.tensor([0.3, -0.2, 1.0])[:, None, None]
    with torch.no_grad():
        fresh = net(x, hints)  # autograd mode (no_grad is not inference_mode): never memoised
        net(x, hints)
    assert len(calls) == 2
    with torch.inference_mode():
        first, again = net(x, hints), net(x, hints * 0.5)
        assert len(calls) == 3 and torch.equal(first, fresh) and not torch.equal(first, again)
        net(x + 0.01)  # another photo: its own trunk
        assert len(calls) == 4
    with torch.no_grad():
        net.down1[0].weight.mul_(1.5)  # changed weights: the old trunk is never served
    with torch.inference_mode():
        changed = net(x, hints)
    assert len(calls) == 5 and not torch.equal(changed, first)


def test_among_many_hints_their_own_propagated_colour_replaces_the_networks():
    """Dense hints on a region: the network's texture there (its guess between the hints) gives way to the
    hints' own edge-aware propagation, which bench_quality measured as better once there are a few hints;
    the other side of the lightness edge, far from every hint, keeps the network's colours."""
    h, w = 40, 120
    L = _two_regions(h, w)
    rng = np.random.default_rng(1)
    noisy = np.stack([rng.normal(-30, 10, (h, w)), rng.normal(30, 10, (h, w))], -1)
    hinted, hint_ab = np.zeros((h, w), bool), np.zeros((h, w, 2))
    for y in range(2, h - 2, 8):
        for x in range(2, w // 2 - 4, 8):
            hinted[y:y + 2, x:x + 2], hint_ab[y:y + 2, x:x + 2] = True, (20, 10)
    out = keep_hints(L, [noisy], hint_ab, hinted, np.ones((h, w), bool))[0]
    left = out[:, : w // 2 - 4][~hinted[:, : w // 2 - 4]]
    assert np.abs(left - (20, 10)).mean() < 3 and left.std(axis=0).max() < 3  # not the network's noise (sd 10)
    right = out[:, w // 2 + 30:]
    assert np.abs(right - noisy[:, w // 2 + 30:]).mean() < 5  # far side of the edge: still the network's
