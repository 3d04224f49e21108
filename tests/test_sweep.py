"""The hints sweep of `colorize eval`: Levin et al.'s propagation keeps hints and stops at lightness edges,
the simulated user is seeded and nested (the points of n are the first n of more) and takes the true colour,
and eval.json / report.html carry the sweep with the network and the baseline at every count."""

from __future__ import annotations

import json

import numpy as np
import pytest
from editorkit import checkpoint
from PIL import Image

from colorize.dataset.color import lab_to_rgb, rgb_to_lab
from colorize.errors import UsageError
from colorize.models.evaluate.run import run_eval
from colorize.models.evaluate.sweep import parse_counts, sweep_points
from colorize.models.net.propagation import propagate


def _two_tone(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Left a dark blue, right a light orange, with a little noise: big regions of one true colour each."""
    lab = np.zeros((h, w, 3), np.float32)
    lab[:, : w // 2] = (35, 10, -40)
    lab[:, w // 2:] = (75, 25, 45)
    lab[..., 0] += np.random.default_rng(seed).normal(0, 1, (h, w))
    return lab_to_rgb(lab)


def test_propagation_keeps_hints_follows_lightness_and_is_gray_without_hints():
    L = np.full((30, 40), 30.0)
    L[:, 20:] = 80.0
    hint_ab, hinted = np.zeros((30, 40, 2)), np.zeros((30, 40), bool)
    hinted[10:13, 3:6], hint_ab[10:13, 3:6] = True, (40, 10)
    hinted[20:23, 33:36], hint_ab[20:23, 33:36] = True, (-30, -20)
    ab = propagate(L, hint_ab, hinted)
    assert np.allclose(ab[hinted], hint_ab[hinted], atol=1e-4)
    assert np.abs(ab[:, :19] - (40, 10)).max() < 3 and np.abs(ab[:, 21:] - (-30, -20)).max() < 3
    assert not propagate(L, hint_ab, np.zeros_like(hinted)).any()
    real = np.ones_like(hinted)
    real[:, :2] = False  # padding takes no part and stays 0
    assert not propagate(L, hint_ab, hinted, real)[:, :2].any()


def test_the_simulated_user_is_seeded_nested_inside_the_photo_and_takes_the_true_colour():
    rgb = _two_tone()
    ten = sweep_points(rgb, 32, 10, number=3)
    assert ten == sweep_points(rgb, 32, 10, number=3) and sweep_points(rgb, 32, 4, number=3) == ten[:4]
    assert sweep_points(rgb, 32, 10, number=4) != ten and sweep_points(rgb, 32, 0, number=3) == ()
    lab = rgb_to_lab(rgb)
    for p in ten:
        assert 0 <= p.x <= 63 and 0 <= p.y <= 47 and p.size >= 1
        true = lab[int(round(p.y)), int(round(p.x)), 1:]
        if abs(p.x - 31.5) > p.size:  # a patch inside one half: its mean is that half's colour
            assert np.hypot(p.a - true[0], p.b - true[1]) < 4, (p, true)
    with pytest.raises(UsageError, match="hints-sweep"):
        parse_counts("0,x")
    assert parse_counts("5,0,5,1") == [0, 1, 5]


def test_eval_hints_sweep_in_eval_json_and_report(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(_two_tone(seed=i)).save(photos / f"{i}.png")
    model = checkpoint(tmp_path / "m.pt", hints=True)
    report = run_eval(model, images=photos, out=tmp_path / "ev", device="cpu", gallery=1, hints_sweep="0,2,20")
    result = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert result == report.result
    rows = {r["points"]: r for r in result["hints_sweep"]["rows"]}
    assert sorted(rows) == [0, 2, 20]
    assert rows[0]["model"]["psnr"] == pytest.approx(result["overall"]["model"]["psnr"], abs=1e-6)
    assert rows[0]["propagation"]["psnr"] == pytest.approx(result["overall"]["gray"]["psnr"], abs=1e-6)
    assert rows[0]["model"]["hint_ab_error"] is None
    for method in ("model", "propagation"):  # more true colours, closer to the truth
        assert rows[20][method]["psnr"] > rows[0][method]["psnr"] + 3, rows
        assert rows[20][method]["hint_ab_error"] < 15, rows
    page = (tmp_path / "ev" / "report.html").read_text()
    assert "Colour hints sweep" in page and page.count("<svg") == 2 and "http://" not in page.replace(
        "xmlns='http://www.w3.org/2000/svg'", "")
    run_eval(model, images=photos, out=tmp_path / "ev2", device="cpu", gallery=1, hints_sweep="0,2,20")
    assert (tmp_path / "ev2" / "eval.json").read_bytes() == (tmp_path / "ev" / "eval.json").read_bytes()
    with pytest.raises(UsageError, match="trained without colour hints"):
        run_eval(checkpoint(tmp_path / "old.pt", hints=False), images=photos, out=tmp_path / "ev3", device="cpu",
                 hints_sweep="0,5")
