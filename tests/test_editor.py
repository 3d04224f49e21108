"""The hint editor's engine: suggestions are the modes of the model's distribution, hints reach the net and
are honoured, Save writes what predict writes, an earlier hints file is continued, and a model without a
hint input says so in one line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VIVID_CENTERS
from editorkit import GRID_CENTERS, colorizer, photo
from PIL import Image

from colorize.dataset.color import rgb_to_lab
from colorize.editor.engine import colour_with_hints, mode_colours, open_engine
from colorize.errors import UsageError
from colorize.models.infer.hintfile import HintSpec, read_hint_specs, write_hints


def _hex_ab(hexes: list[str]) -> np.ndarray:
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], np.uint8)
    return rgb_to_lab(rgb)[:, 1:]


def test_suggestions_are_the_merged_modes_of_the_distribution_at_the_pixels_lightness():
    probs = np.full(len(GRID_CENTERS), 1e-4, np.float32)
    at = {tuple(c): i for i, c in enumerate(GRID_CENTERS.tolist())}
    probs[at[(40.0, 20.0)]], probs[at[(40.0, 40.0)]] = 0.25, 0.2  # one mode over two neighbouring bins
    probs[at[(-40.0, -40.0)]] = 0.3  # the strongest single bin, but less mass than the pair
    probs[at[(0.0, 60.0)]] = 0.1
    colours = mode_colours(probs / probs.sum(), GRID_CENTERS, L=60.0)
    assert 3 <= len(colours) <= 5 and len(set(colours)) == len(colours)
    ab = _hex_ab(colours)
    # First the merged pair (its probability-weighted mean, between the two bins), then the single peak,
    # then the small one; each at its own hue, chroma reduced only where sRGB has no such colour at L 60.
    want = np.array([[40, 28.9], [-40, -40], [0, 60]])
    assert np.abs(ab[0] - want[0]).max() < 2
    hue = np.degrees(np.arctan2(ab[:3, 1], ab[:3, 0]) - np.arctan2(want[:, 1], want[:, 0]))
    assert np.abs((hue + 180) % 360 - 180).max() < 4, hue
    assert (np.hypot(*ab[:3].T) <= np.hypot(*want.T) + 2).all()
    lab = rgb_to_lab(np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8))
    assert np.abs(lab[:, 0] - 60).max() < 1.0  # at the pixel's own lightness


def test_a_hinted_patch_gets_the_hints_colour_and_save_continues(tmp_path):
    img = photo(tmp_path / "p.png")
    engine = open_engine(img, colorizer(hints=True), tmp_path / "out")
    spec = HintSpec(120, 80, "#b04a3a", 12)  # a brick red: a, b about (40, 30)
    auto = engine.preview([])
    hinted = engine.preview([spec.point()])
    assert hinted != auto and engine.preview([]) == auto
    hints, image = engine.save([spec])
    assert read_hint_specs(hints, 240, 160) == [spec]
    out = np.asarray(Image.open(image).convert("RGB"))
    patch = rgb_to_lab(out[76:85, 116:125])[..., 1:].reshape(-1, 2).mean(0)
    want = np.array([spec.point().a, spec.point().b])
    assert np.abs(patch - want).max() < 4, (patch, want)  # the hint itself, kept (not the nearest bin)
    assert engine.suggest(120, 80)  # suggestions stay the automatic prediction's
    again = open_engine(img, colorizer(hints=True), tmp_path / "out")
    assert again.initial == [spec]  # reopening the photo continues its hints file
    record = (tmp_path / "out" / "p.hints-run.json").read_text()
    assert '"hints_sha256"' in record and '"points": 1' in record


def test_saving_without_points_writes_exactly_what_predict_writes(tmp_path, model_path):
    from colorize.models.infer.predict import run_predict

    img = photo(tmp_path / "p.png")
    engine = open_engine(img, model_path, tmp_path / "edit", device="cpu")
    _, image = engine.save([])
    run_predict(model_path, [img], tmp_path / "pred", device="cpu")
    assert image.read_bytes() == (tmp_path / "pred" / "p.color.png").read_bytes()
    assert len(engine.suggest(0, 0)) >= 1 and VIVID_CENTERS.shape == (9, 2)


def test_a_model_without_hint_input_refuses_points_in_one_line(tmp_path):
    engine = open_engine(photo(tmp_path / "p.png"), colorizer(hints=False), tmp_path)
    assert engine.preview([])[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="trained without colour hints"):
        engine.preview([HintSpec(1, 1, "#ff0000", 3).point()])
    with pytest.raises(UsageError, match="trained without colour hints"):
        colour_with_hints(engine.colorizer, engine.scan, [HintSpec(1, 1, "#ff0000", 3).point()])


def test_a_bad_hints_file_beside_the_photo_is_one_line(tmp_path):
    img = photo(tmp_path / "p.png")
    write_hints(tmp_path / "p.json", [HintSpec(1, 1, "#ff0000", 3)])
    (tmp_path / "p.json").write_text('{"points": [{"x": 999, "y": 1, "color": "#ff0000"}]}')
    with pytest.raises(UsageError, match="outside the image"):
        open_engine(img, colorizer(hints=True))
    with pytest.raises(UsageError, match="no such photo"):
        open_engine(tmp_path / "missing.png", colorizer(hints=True))
