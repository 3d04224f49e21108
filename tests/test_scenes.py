"""The embedded gallery: deterministic, in categories, and with colors that follow from structure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from colorize.dataset.color import rgb_to_lab
from colorize.demo.scenes import CATEGORIES, build_scene_folder, region_id, render_scene
from colorize.errors import ColorizeError
from colorize.io import read_json


def _region_stats(category: str, region: str, n: int = 6):
    """Mean Lab and texture measures of one region over a few scenes of one category."""
    labs, lap, dy, dx = [], [], [], []
    for i in range(n):
        rgb, regions = render_scene(category, seed=3, index=i, size=(192, 144))
        mask = regions == region_id(region)
        mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # region interiors
        if mask.sum() < 50:
            continue
        lab = rgb_to_lab(rgb)
        gray = lab[..., 0]
        labs.append(lab[mask].mean(0))
        lap.append(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[mask].mean())
        dy.append(np.abs(np.diff(gray, axis=0))[mask[1:]].mean())
        dx.append(np.abs(np.diff(gray, axis=1))[mask[:, 1:]].mean())
    assert labs, f"no {region} in {category}"
    return np.mean(labs, 0), float(np.mean(lap)), float(np.mean(dy)), float(np.mean(dx))


def test_at_least_four_categories_and_sizes_in_range():
    assert len(CATEGORIES) >= 4
    for c in CATEGORIES:
        rgb, regions = render_scene(c, seed=0, index=1)
        h, w, _ = rgb.shape
        assert rgb.dtype == np.uint8 and 256 <= w <= 640 and 200 <= h <= 640
        assert regions.shape == (h, w) and (regions > 0).all()  # every pixel belongs to something


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, _ = render_scene("beach", seed=7, index=2, size=(96, 64))
    b, _ = render_scene("beach", seed=7, index=2, size=(96, 64))
    c, _ = render_scene("beach", seed=8, index=2, size=(96, 64))
    d, _ = render_scene("beach", seed=7, index=3, size=(96, 64))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_colors_follow_structure():
    """Sky: smooth, blue; foliage: textured, green; sand: grainy, yellow; water: horizontal ripples."""
    sky, sky_lap, _, _ = _region_stats("beach", "sky")
    sand, sand_lap, _, _ = _region_stats("beach", "sand")
    leaves, leaf_lap, _, _ = _region_stats("forest", "foliage")
    water, _, water_dy, water_dx = _region_stats("sea", "water")
    sunset_sky, _, _, _ = _region_stats("sunset", "sky")
    snow, _, _, _ = _region_stats("snow", "snow")

    assert sky[2] < -15                         # blue (b < 0)
    assert sand[1] > 0 and sand[2] > 15        # warm yellow
    assert leaves[1] < -10 and leaves[2] > 10   # green
    assert water[2] < -10                       # blue
    assert sunset_sky[1] > 10                   # reds and oranges
    assert snow[0] > 80 and abs(snow[1]) < 8    # bright, nearly neutral
    # Texture tells regions apart in gray: foliage and sand are rough, sky is smooth.
    assert leaf_lap > 3 * sky_lap and sand_lap > 2 * sky_lap
    # Ripples run horizontally: lightness changes far more going down than going across.
    assert water_dy > 1.5 * water_dx


def test_categories_differ_in_color():
    """A gray image loses most where the gallery is colorful: per-category mean ab differs widely."""
    means = {}
    for c in CATEGORIES:
        ab = np.concatenate([rgb_to_lab(render_scene(c, 1, i, (96, 72))[0])[..., 1:].reshape(-1, 2)
                             for i in range(3)])
        means[c] = ab.mean(0)
        assert np.hypot(*ab.T).mean() > 8, f"{c} is nearly gray"
    assert np.linalg.norm(means["forest"] - means["sunset"]) > 30
    assert np.linalg.norm(means["beach"] - means["sea"]) > 10


def test_build_gallery_writes_resumes_and_rebuilds(tmp_path):
    folder = tmp_path / "gallery"
    report = build_scene_folder(folder, per_category=2, categories=["beach", "snow"], seed=5, size=(80, 60))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    assert files == ["beach/beach-0000.jpg", "beach/beach-0001.jpg", "snow/snow-0000.jpg", "snow/snow-0001.jpg"]
    assert report.written == 4 and "4 photos in 2 categories" in report.summary_line()
    with Image.open(folder / "snow/snow-0001.jpg") as im:
        assert im.format == "JPEG" and im.size == (80, 60)
    assert read_json(folder / "gallery.json")["params"]["seed"] == 5
    before = {p: p.read_bytes() for p in folder.rglob("*.jpg")}

    # An interrupted build lost a file: the rerun writes only that one, byte-identical.
    (folder / "beach/beach-0001.jpg").unlink()
    again = build_scene_folder(folder, per_category=2, categories=["beach", "snow"], seed=5, size=(80, 60))
    assert (again.written, again.kept) == (1, 3)
    assert {p: p.read_bytes() for p in folder.rglob("*.jpg")} == before

    # Other parameters: rebuilt from scratch, never a mix of two galleries.
    build_scene_folder(folder, per_category=1, categories=["forest"], seed=5, size=(80, 60))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == ["forest/forest-0000.jpg"]


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(ColorizeError, match="unknown gallery category"):
        render_scene("moon")
    with pytest.raises(ColorizeError, match="out of range"):
        render_scene("beach", size=(8, 8))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(ColorizeError, match="not a colorize gallery"):
        build_scene_folder(tmp_path / "mine", per_category=1)
    assert (tmp_path / "mine" / "keep.txt").exists()
    # A gallery.json that is not a readable record is the same: one clear error, nothing removed.
    for text in ("{not json", "[1, 2]"):
        (tmp_path / "mine" / "gallery.json").write_text(text)
        with pytest.raises(ColorizeError, match="not a colorize gallery"):
            build_scene_folder(tmp_path / "mine", per_category=1)
        assert (tmp_path / "mine" / "keep.txt").exists()
