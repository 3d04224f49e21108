"""colorize/resample.py is Pillow's 8-bit LANCZOS to the bit, whatever the size, box, bands or chunking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from colorize import resample
from colorize.dataset.images import fit, fit_image

LANCZOS = Image.Resampling.LANCZOS


def pillow_two_pass(pixels: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """Pillow's horizontal-then-vertical result, from two one-axis resizes (each is unambiguous in every
    Pillow version; Pillow 13 may order a two-axis resize the other way)."""
    h, w = pixels.shape[:2]
    across = Image.fromarray(pixels).resize((size[0], h), LANCZOS, box=(box[0], 0, box[2], h))
    return np.asarray(across.resize(size, LANCZOS, box=(0, box[1], size[0], box[3])))


def random_case(rng: np.random.Generator, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[float, ...]]:
    w, h = (int(v) for v in rng.integers(1, 400, 2))
    pixels = rng.integers(0, 256, (h, w, 3) if i % 3 else (h, w), dtype=np.uint8)
    size = tuple(int(v) for v in rng.integers(1, 300, 2))
    if i % 2:
        return pixels, size, (0.0, 0.0, float(w), float(h))
    x0, y0 = rng.uniform(0, w / 3), rng.uniform(0, h / 3)
    return pixels, size, (x0, y0, rng.uniform(x0 + 0.5, w), rng.uniform(y0 + 0.5, h))


def test_equals_pillow_for_random_sizes_boxes_and_bands():
    """Down and up, fractional boxes (taken as float32, as Pillow does), gray and RGB, 1-pixel sides."""
    rng = np.random.default_rng(0)
    for i in range(120):
        pixels, size, box = random_case(rng, i)
        got = resample.lanczos_array(pixels, size, box)
        assert np.array_equal(got, pillow_two_pass(pixels, size, box)), (pixels.shape, size, box)


def test_equals_pillow_resize_for_the_fits_prep_makes():
    """Both axes shrink alike (pad and crop): Pillow's own one-call resize, byte for byte."""
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (360, 540, 3), dtype=np.uint8)
    assert np.array_equal(resample.lanczos_array(photo, (256, 171)),
                          np.asarray(Image.fromarray(photo).resize((256, 171), LANCZOS)))
    crop = (90.0, 0.0, 450.0, 360.0)
    assert np.array_equal(resample.lanczos_array(photo, (256, 256), crop),
                          np.asarray(Image.fromarray(photo).resize((256, 256), LANCZOS, box=crop)))


def test_a_large_image_is_read_in_bands_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (301, 257, 3), dtype=np.uint8)
    whole = resample.lanczos_array(photo, (64, 75))
    asked = []

    def rows(a: int, b: int) -> np.ndarray:
        asked.append((a, b))
        return photo[a:b]

    monkeypatch.setattr(resample, "CHUNK_BYTES", 257 * 3 * 40)  # 40 rows at a time
    banded = resample.lanczos(rows, 257, 301, 3, (64, 75))
    assert np.array_equal(banded, whole)
    assert len(asked) == 8 and max(b - a for a, b in asked) == 40


def test_a_pillow_image_fits_like_its_array():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (200, 300), dtype=np.uint8)
    for mode in ("pad", "crop"):
        assert np.array_equal(fit_image(Image.fromarray(rgb), 64, mode)[0], fit(rgb, 64, mode)[0])
        assert np.array_equal(fit_image(Image.fromarray(gray, "L"), 64, mode)[0],
                              fit(np.repeat(gray[..., None], 3, 2), 64, mode)[0])


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        resample.lanczos_array(np.zeros((4, 4), np.uint8), (0, 3))
    with pytest.raises(TypeError, match="uint8"):
        resample.lanczos_array(np.zeros((4, 4), np.float32), (2, 2))
