"""Color profiles: per-image bin histograms, seeded k-means, and the palette picture."""

from __future__ import annotations

import numpy as np
import pytest

from colorize.errors import ColorizeError
from colorize.models.routing.profiles import (
    ColorProfiles,
    bin_histograms,
    collect_histograms,
    fit_profiles,
    kmeans,
    palette_image,
)

# A tiny bin set: 6 ab colors; the lookup table maps every int8 (a, b) to its nearest one.
CENTERS = np.array([[60, 40], [40, 60], [-40, 40], [-30, -20], [20, -60], [0, 0]], np.float32)


def _lut(centers: np.ndarray) -> np.ndarray:
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    d = (a[..., None] - centers[:, 0]) ** 2 + (b[..., None] - centers[:, 1]) ** 2
    return d.argmin(-1).astype(np.int16)


LUT = _lut(CENTERS)
# Three well-separated palettes (weights over the 6 bins): warm, green, blue.
PALETTES = np.array([[0.5, 0.4, 0, 0, 0, 0.1], [0, 0.05, 0.6, 0.25, 0, 0.1], [0, 0, 0, 0.3, 0.6, 0.1]])


def _images(n_per: int, seed: int, size: int = 16):
    """Images whose pixels are drawn from one palette each, with jitter, some padding masked out."""
    rng = np.random.default_rng(seed)
    ab, mask, truth = [], [], []
    for p, weights in enumerate(PALETTES):
        for _ in range(n_per):
            w = rng.dirichlet(weights * 40 + 0.05)  # each photo its own mix of its palette
            idx = rng.choice(len(CENTERS), size=(size, size), p=w)
            px = CENTERS[idx] + rng.normal(0, 4, (size, size, 2))
            ab.append(np.clip(np.rint(px), -128, 127).astype(np.int8))
            m = np.ones((size, size), bool)
            m[:, : rng.integers(0, 4)] = False
            mask.append(m)
            truth.append(p)
    return np.stack(ab), np.stack(mask), np.array(truth)


def test_bin_histograms_count_only_unmasked_pixels():
    ab = np.zeros((2, 4, 4, 2), np.int8)
    ab[0, :2] = (60, 40)  # bin 0 in the top half
    ab[1] = (-30, -20)  # bin 3 everywhere
    mask = np.ones((2, 4, 4), bool)
    mask[0, 2:] = False  # the gray bottom half of image 0 is padding
    mask[1] = False  # image 1 is all padding
    h = bin_histograms(ab, mask, LUT, len(CENTERS))
    assert h.shape == (2, 6)
    np.testing.assert_allclose(h[0], [1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(h[1], 0)
    h2 = bin_histograms(ab, None, LUT, len(CENTERS))
    np.testing.assert_allclose(h2[0], [0.5, 0, 0, 0, 0, 0.5])


def test_kmeans_recovers_synthetic_palettes_and_is_deterministic():
    ab, mask, truth = _images(20, seed=1)
    hist = bin_histograms(ab, mask, LUT, len(CENTERS))
    prof, labels = fit_profiles(hist, k=3, seed=7)
    # Perfect recovery up to renumbering: each true palette maps to exactly one profile.
    pairs = set(zip(truth.tolist(), labels.tolist()))
    assert len(pairs) == 3 and len({p for _, p in pairs}) == 3
    assert sorted(prof.sizes) == [20, 20, 20]
    # The mean palette of each profile puts its mass on its palette's bins.
    for t, p in pairs:
        assert np.argmax(prof.mean_hist[p]) == np.argmax(PALETTES[t])
    # Same seed -> identical result; assignment of the training photos agrees with k-means.
    prof2, labels2 = fit_profiles(hist, k=3, seed=7)
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_array_equal(prof.centers, prof2.centers)
    np.testing.assert_array_equal(prof.assign(hist), labels)
    # A different seed still finds the same partition (well separated), numbered the same way.
    _, labels3 = fit_profiles(hist, k=3, seed=123)
    assert len(set(zip(labels.tolist(), labels3.tolist()))) == 3
    # New photos from the same palettes are assigned to their palette's profile.
    ab_new, mask_new, truth_new = _images(5, seed=99)
    new = prof.assign(bin_histograms(ab_new, mask_new, LUT, len(CENTERS)))
    mapping = dict(pairs)
    assert [mapping[t] for t in truth_new.tolist()] == new.tolist()


def test_kmeans_numbering_is_largest_first_and_seed_matters_only_for_ties():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.01, (5, 2)), rng.normal(5, 0.01, (12, 2)), rng.normal(-5, 0.01, (8, 2))])
    res = kmeans(x, 3, seed=0)
    assert np.bincount(res.labels).tolist() == [12, 8, 5]
    res_b = kmeans(x, 3, seed=1)
    np.testing.assert_array_equal(res.labels, res_b.labels)


def test_kmeans_refuses_more_profiles_than_photos():
    with pytest.raises(ColorizeError, match="--profiles"):
        kmeans(np.zeros((3, 4)), 5, seed=0)


def test_profiles_json_round_trip_and_palette_picture(tmp_path):
    ab, mask, _ = _images(6, seed=2)
    hist = bin_histograms(ab, mask, LUT, len(CENTERS))
    prof, _ = fit_profiles(hist, k=3, seed=0)
    back = ColorProfiles.from_json(prof.to_json())
    np.testing.assert_array_equal(back.assign(hist), prof.assign(hist))
    with pytest.raises(ColorizeError, match="malformed"):
        ColorProfiles.from_json({"centers": [[1, 2]]})
    img = palette_image(prof, CENTERS, width=300, row=40)
    assert img.size == (150 + 300, 40 * 3 + 8)
    arr = np.asarray(img)
    # Each row carries colored (non-gray) swatches.
    for p in range(3):
        strip = arr[4 + p * 40 + 10, 160:440].astype(int)
        assert (strip.max(1) - strip.min(1) > 30).any()


def test_collect_histograms_averages_variants_per_photo():
    ab, mask, truth = _images(2, seed=3)
    shard = {"ab": ab, "mask": mask, "photo_id": np.array(["a", "a", "b", "b", "c", "c"]),
             "category": np.array(["x", "x", "y", "y", "z", "z"]), "variant": np.array(["orig", "flip"] * 3)}
    ph = collect_histograms([shard], LUT, len(CENTERS))
    assert ph.ids == ["a", "b", "c"] and ph.categories == ["x", "y", "z"]
    full = bin_histograms(ab, mask, LUT, len(CENTERS))
    np.testing.assert_allclose(ph.hist[0], (full[0] + full[1]) / 2)
    np.testing.assert_allclose(ph.pixels[0], (mask[0].sum() + mask[1].sum()) / 2)
    orig = collect_histograms([shard], LUT, len(CENTERS), variant="orig")
    np.testing.assert_allclose(orig.hist[1], full[2])
    # Per-bin pixel counts of a group of photos (what a route's rebalancing weights start from).
    expected = sum(full[k] * mask[k].sum() for k in (0, 2))
    np.testing.assert_allclose(orig.bin_counts(np.array([0, 1])), expected)
