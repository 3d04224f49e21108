"""Each metric against values worked out by hand on tiny arrays, including the gray-baseline identities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colorize.dataset.color import gray_rgb
from colorize.models.net import metrics as M


def _const(value, h=12, w=12) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_psnr_by_hand():
    # MSE = 10^2 = 100 -> 20*log10(255/10)
    assert M.psnr(_const(0), _const(10)) == pytest.approx(20 * math.log10(25.5), abs=1e-12)
    # 2x2 image, one channel of one pixel off by 12: MSE = 144 / 12 values
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 1] = 12
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255 / math.sqrt(12.0)))
    # the mask removes the only differing pixel: identical -> the cap
    mask = np.ones((2, 2), bool)
    mask[0, 0] = False
    assert M.psnr(a, b, mask) == M.PSNR_CAP_DB
    assert M.psnr(a, a) == M.PSNR_CAP_DB


def test_ssim_by_hand():
    x = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # constant images: sigma = 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert M.ssim(_const(100), _const(110)) == pytest.approx(expected, rel=1e-12)
    # the mask picks which window centres count: left half equal, right half 100 vs 110
    a, b = _const(100, 12, 40), _const(100, 12, 40)
    b[:, 20:] = 110
    left = np.zeros((12, 40), bool)
    left[:, :14] = True  # centres 5..13: windows reach column 18 at most, all equal there
    assert M.ssim(a, b, left) == pytest.approx(1.0, abs=1e-12)
    right = np.zeros((12, 40), bool)
    right[:, 26:] = True  # windows start at column 21: constant 100 vs 110
    assert M.ssim(a, b, right) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        M.ssim(_const(0, 8, 8), _const(0, 8, 8))


def test_colorfulness_signed_opponents_by_hand():
    # half pure red, half black: rg = {255, 0}, yb = {127.5, 0}
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, :, 0] = 255
    expected = math.hypot(127.5, 63.75) * 1.3  # sd == |mean| for both opponents
    assert M.colorfulness(img) == pytest.approx(expected)
    # half red, half green: signed rg = {+255, -255} has mean 0, sd 255; yb = 127.5 everywhere.
    # (taking |rg| first, as some code does, would give 0.3 * hypot(255, 127.5) = 85.5 instead)
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, :, 0] = 255
    img[1, :, 1] = 255
    assert M.colorfulness(img) == pytest.approx(255 + 0.3 * 127.5)
    # the mask keeps only the red row: constant -> 0.3 * |mean|
    mask = np.array([[True, True], [False, False]])
    assert M.colorfulness(img, mask) == pytest.approx(0.3 * math.hypot(255, 127.5))
    # any gray image has no color at all
    assert M.colorfulness(_const(77)) == 0.0


def test_auc_by_hand():
    zero = np.zeros((4, 4))
    assert M.auc(zero) == pytest.approx(100.0)
    # every error exactly 10: curve 0 up to t=9, 1 from t=10 -> trapezoid area 0.5 + 140 out of 150
    assert M.auc(np.full((4, 4), 10.0)) == pytest.approx(100 * 140.5 / 150)
    assert M.auc(np.full((4, 4), 151.0)) == 0.0
    # half the pixels perfect with weight 3, half hopeless with weight 1 -> 75 %
    err = np.array([[0.0, 0.0], [200.0, 200.0]])
    w = np.array([[3.0, 3.0], [1.0, 1.0]])
    assert M.auc(err, w) == pytest.approx(75.0)
    assert M.auc(err) == pytest.approx(50.0)
    mask = np.array([[True, True], [False, False]])
    assert M.auc(err, w, mask) == pytest.approx(100.0)
    # pooling: the sum of two histograms is the AuC of both images together
    h = M.auc_histogram(zero) + M.auc_histogram(np.full((4, 4), 151.0))
    assert M.auc_from_histogram(h) == pytest.approx(50.0)


def test_ab_error_and_inverse_prior_weights():
    red = np.zeros((1, 2, 3), np.uint8)
    red[..., 0] = 200
    gray = gray_rgb(red)
    err = M.ab_error(gray, red)
    from colorize.dataset.color import rgb_to_lab

    lab = rgb_to_lab(red)
    assert err == pytest.approx(np.hypot(lab[..., 1], lab[..., 2]), abs=1.0)
    assert np.all(M.ab_error(red, red) == 0)
    # a two-bin lut: a >= 0 -> bin 1, else bin 0; prior [0.75, 0.25]; bin 2 unseen (prior 0)
    lut = np.zeros((256, 256), np.int16)
    lut[128:, :] = 1
    img = np.stack([red[0, 0], (0, 200, 0)])[None].astype(np.uint8)  # red: a > 0, green: a < 0
    weights = M.inverse_prior_weights(img, lut, np.array([0.75, 0.25, 0.0]))
    assert weights.tolist() == [[pytest.approx(4.0), pytest.approx(1 / 0.75)]]
    lut[:] = 2  # a bin the training set never saw gets the rarest seen bin's weight
    assert M.inverse_prior_weights(img, lut, np.array([0.75, 0.25, 0.0])).tolist() == [[4.0, 4.0]]


def test_gray_baseline_identities():
    rng = np.random.default_rng(1)
    color = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gray = gray_rgb(color)
    lut = np.zeros((256, 256), np.int16)
    prior = np.array([1.0])
    # gray truth, gray prediction: every metric at its perfect value
    s = M.score_image(gray, gray, None, lut, prior)
    assert (s.psnr, s.ssim, s.colorfulness, s.delta_cf) == (M.PSNR_CAP_DB, pytest.approx(1.0), 0.0, 0.0)
    assert M.auc_from_histogram(s.auc_hist) == pytest.approx(100.0)
    assert M.auc_from_histogram(s.auc_hist_rebalanced) == pytest.approx(100.0)
    # gray baseline on a color truth: no colorfulness, so delta CF is exactly CF(truth)
    s = M.score_image(gray, color, None, lut, prior)
    assert s.colorfulness == 0.0
    assert s.delta_cf == pytest.approx(M.colorfulness(color))
    assert s.colorfulness_truth == pytest.approx(M.colorfulness(color))
    assert M.auc_from_histogram(s.auc_hist) < 100.0


def test_totals_average_images_and_pool_auc():
    t = M.Totals()
    a = M.ImageScores(20.0, 0.5, 10.0, 12.0, 2.0, M.auc_histogram(np.zeros((2, 2))), np.zeros(152))
    b = M.ImageScores(30.0, float("nan"), 20.0, 12.0, 8.0, M.auc_histogram(np.full((2, 6), 200.0)),
                      np.zeros(152))
    t.add(a)
    t.add(b)
    out = t.summary()
    assert out["images"] == 2
    assert out["psnr"] == 25.0 and out["colorfulness"] == 15.0 and out["delta_cf"] == 5.0
    assert out["colorfulness_truth"] == 12.0
    assert out["ssim"] == 0.5  # the NaN (image too small for the window) is left out, not averaged in
    assert out["auc"] == pytest.approx(100 * 4 / 16)  # pooled: 4 perfect pixels of 16
    assert out["auc_rebalanced"] is None


def test_ab_offset_is_the_mean_cast_over_unmasked_pixels():
    from colorize.dataset.color import lab_to_rgb, rgb_to_lab

    truth = np.zeros((8, 8, 3), np.float32)
    truth[..., 0] = 60
    truth[:, :4, 1] = 20  # half the picture is reddish
    pred = truth.copy()
    pred[..., 2] += 12  # a warm cast: b + 12 everywhere
    t_rgb, p_rgb = lab_to_rgb(truth), lab_to_rgb(pred)
    expected = (rgb_to_lab(p_rgb)[..., 1:].astype(np.float64) - rgb_to_lab(t_rgb)[..., 1:]).reshape(-1, 2).mean(0)
    a, b = M.ab_offset(p_rgb, t_rgb)
    assert (a, b) == pytest.approx(tuple(expected))
    assert abs(a) < 1.5 and b == pytest.approx(12, abs=1.5)
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    assert M.ab_offset(p_rgb, p_rgb, mask) == (0.0, 0.0)
    assert all(math.isnan(v) for v in M.ab_offset(p_rgb, t_rgb, np.zeros((8, 8), bool)))
    # it travels through score_image and Totals (mean over images, and its length)
    totals = M.Totals()
    totals.add(M.score_image(p_rgb, t_rgb))
    totals.add(M.score_image(t_rgb, t_rgb))
    s = totals.summary()
    assert s["ab_offset_b"] == pytest.approx(b / 2) and s["ab_offset_a"] == pytest.approx(a / 2)
    assert s["ab_offset"] == pytest.approx(math.hypot(a / 2, b / 2))


def test_cast_warning_only_above_the_threshold_and_names_the_cast():
    assert M.cast_warning(1.0, 2.0, "the model") is None
    assert M.cast_warning(None, 2.0, "the model") is None
    line = M.cast_warning(2.0, M.CAST_WARNING_AB + 1, "the model")
    assert line is not None and "warm/sepia" in line and "the model" in line and "(+2.0, +6.0)" in line
    assert "blue" in M.cast_warning(0.0, -9.0, "x")


def test_a_category_cast_is_warned_when_it_is_more_than_under_coloring():
    """A paler true color is not a cast; sepia over neutral, or forests painted yellow, are."""
    def row(a: float | None, b: float | None) -> dict:
        return {"ab_offset_a": a, "ab_offset_b": b}

    # oranges (true mean (4, 30): gray is off by minus that) painted a paler orange (4, 18) * ~0.6
    assert M.cast_warning_against_gray("the model on 'fruit'", row(-1.6, -12.0), row(-4.0, -30.0)) is None
    # neutral streets (true mean (3, -0.7)) painted tan
    line = M.cast_warning_against_gray("the model on 'scene'", row(-0.4, 11.9), row(-3.0, 0.7))
    assert line is not None and "'scene' has a warm/sepia color cast: mean ab offset (-0.4, +11.9)" in line
    # forests (true mean (-38.6, 30.5)) painted yellow (0, 40): nearer than gray, but a hue error, named warm
    line = M.cast_warning_against_gray("the model on 'forest'", row(38.7, 9.1), row(38.6, -30.5))
    assert line is not None and "warm/sepia" in line and "31.1 Lab units" in line
    # a slightly too vivid true color, or unknown offsets: no warning
    assert M.cast_warning_against_gray("the model on 'fruit'", row(1.0, 4.0), row(-4.0, -30.0)) is None
    assert M.cast_warning_against_gray("the model on 'scene'", row(0.0, 9.0), row(None, None)) is None


def test_the_overall_cast_is_judged_the_same_way():
    """bench_quality seed 1: the model is a paler version of the (slightly warm) average photo, no cast;
    sepia painted over photos that are a little warm on average is one."""
    paler = M.cast_warning_against_gray("the model", {"ab_offset_a": -1.1, "ab_offset_b": -6.3},
                                        {"ab_offset_a": -2.9, "ab_offset_b": -10.9})
    assert paler is None and M.cast_warning(-1.1, -6.3, "the model") is not None  # the raw offset would warn
    sepia = M.cast_warning_against_gray("the model", {"ab_offset_a": 2.0, "ab_offset_b": 14.0},
                                        {"ab_offset_a": -2.9, "ab_offset_b": -10.9})
    assert sepia is not None and sepia.startswith("the model has a warm/sepia color cast")
