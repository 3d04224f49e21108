"""Colorization metrics in plain numpy, with the conventions written down next to each one.

Why these and why numpy: eval must run anywhere (no network weights for LPIPS/FID here) and every
number must be reproducible from the code alone. Each metric takes 8-bit RGB images as written to disk
(so what is scored is what a user sees) and an optional mask that removes padded pixels.

Conventions (also written into eval.json):
- PSNR: ``20·log10(255 / sqrt(MSE))`` over all unmasked pixels and the 3 channels of 8-bit RGB;
  identical images score ``PSNR_CAP_DB`` so averages and JSON stay finite.
- SSIM: Gaussian window 11x11, σ = 1.5, C1 = (0.01·255)², C2 = (0.03·255)², computed per channel on
  the "valid" region (window fully inside the image), averaged over window centres inside the mask and
  then over the channels.
- Colorfulness (Hasler & Süsstrunk 2003), signed opponents: rg = R − G, yb = (R + G)/2 − B,
  ``CF = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²)`` (population σ); ΔCF = |CF(pred) − CF(truth)|.
- AuC (Zhang et al. 2016): the share of pixels whose ab error (Euclidean, CIE Lab units) is ≤ t, for
  integer t = 0..150, integrated with the trapezoidal rule and normalized so a perfect result is 100 %.
  The rebalanced variant weights each pixel by 1 / prior(true bin), the training prior of the model.
- Mean ab offset (the color cast): the mean over unmasked pixels of a(pred) − a(truth) and
  b(pred) − b(truth) in CIE Lab, per image, averaged over images; a sepia cast shows as b > 0 (and a
  little a > 0), a blue one as b < 0. In eval, a cast more than CAST_WARNING_AB beyond under-coloring
  (`cast_warning_against_gray`) earns a warning, overall and per category; training, which has no gray
  row, warns of an offset longer than that (`cast_warning`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from colorize.dataset.color import rgb_to_lab

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
AUC_MAX_T = 150
# A mean ab offset longer than this (Lab units) is a visible cast over the whole picture: eval and train warn.
CAST_WARNING_AB = 5.0
CONVENTIONS = {
    "images": "metrics are computed on the 8-bit sRGB images as written (pred, truth, gray = truth's L + ab 0)",
    "psnr": f"20*log10(255/sqrt(MSE)) over unmasked pixels x 3 channels of 8-bit RGB; identical = {PSNR_CAP_DB} dB",
    "ssim": "Gaussian 11x11, sigma 1.5, C1=(0.01*255)^2, C2=(0.03*255)^2, valid region, mean over unmasked "
            "window centres, then over R,G,B",
    "colorfulness": "Hasler-Susstrunk with signed rg=R-G, yb=(R+G)/2-B: sqrt(sd_rg^2+sd_yb^2)+0.3*sqrt(mu_rg^2+mu_yb^2)",
    "delta_cf": "|CF(pred) - CF(truth)| per image, averaged",
    "auc": "share of pixels with Euclidean ab error <= t for t=0..150, trapezoid area normalized to 100%, pooled "
           "over all pixels",
    "auc_rebalanced": "as auc, each pixel weighted by 1/prior(bin of its true ab) with the model's training prior",
    "ab_offset": "mean over unmasked pixels of (a, b)(pred) - (a, b)(truth) in CIE Lab, per image; ab_offset_a/_b "
                 "are their means over images and ab_offset their length",
    "aggregation": "psnr, ssim, colorfulness, delta_cf, ab_offset: mean over images; auc: pooled over pixels",
}


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"expected two [H,W,3] images of one shape, got {pred.shape} and {truth.shape}")


def _mask_or_all(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match image {shape}")
    return mask


def psnr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB images."""
    _check_pair(pred, truth)
    m = _mask_or_all(mask, pred.shape[:2])
    if not m.any():
        return float("nan")
    diff = pred.astype(np.float64)[m] - truth.astype(np.float64)[m]
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 20.0 * math.log10(255.0 / math.sqrt(mse)))


def _gaussian_kernel(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filter over the first two axes (a weighted sum of shifted views)."""
    k = len(g)
    h, w = img.shape[:2]
    rows = sum(g[i] * img[i:h - k + 1 + i] for i in range(k))
    return sum(g[j] * rows[:, j:w - k + 1 + j] for j in range(k))


def ssim(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity of two uint8 RGB images (conventions in the module docstring)."""
    _check_pair(pred, truth)
    h, w = pred.shape[:2]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {w}x{h}")
    m = _mask_or_all(mask, (h, w))
    r = SSIM_WINDOW // 2
    centres = m[r:h - r, r:w - r]
    if not centres.any():
        return float("nan")
    g = _gaussian_kernel()
    x = pred.astype(np.float64)
    y = truth.astype(np.float64)
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x * mu_x
    var_y = _filter_valid(y * y, g) - mu_y * mu_y
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    smap = num / den  # [h', w', 3]
    return float(np.mean(smap[centres], axis=0).mean())


def colorfulness(rgb: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Hasler-Süsstrunk colorfulness with signed opponent channels (0 for any gray image)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H,W,3] image, got {rgb.shape}")
    m = _mask_or_all(mask, rgb.shape[:2])
    if not m.any():
        return float("nan")
    px = rgb.astype(np.float64)[m]
    rg = px[:, 0] - px[:, 1]
    yb = 0.5 * (px[:, 0] + px[:, 1]) - px[:, 2]
    spread = math.sqrt(rg.var() + yb.var())
    offset = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return spread + 0.3 * offset


def _ab_diff(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(a, b)(pred) − (a, b)(truth) per pixel, float64 [H, W, 2]."""
    _check_pair(pred, truth)
    return rgb_to_lab(pred)[..., 1:].astype(np.float64) - rgb_to_lab(truth)[..., 1:].astype(np.float64)


def ab_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean ab distance (Lab units) between two uint8 RGB images, float64 [H, W]."""
    d = _ab_diff(pred, truth)
    return np.sqrt(np.sum(d * d, axis=-1))


def _mean_offset(d: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    if not m.any():
        return float("nan"), float("nan")
    return float(d[..., 0][m].mean()), float(d[..., 1][m].mean())


def ab_offset(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Mean (a, b) of pred − truth (Lab units) over unmasked pixels of two uint8 RGB images: the cast."""
    return _mean_offset(_ab_diff(pred, truth), _mask_or_all(mask, pred.shape[:2]))


def _cast_hue(a: float, b: float) -> str:
    """The everyday name of an ab direction (the larger component decides)."""
    if abs(b) >= abs(a):
        return "warm/sepia" if b > 0 else "blue"
    return "red/magenta" if a > 0 else "green"


def cast_warning(offset_a: float | None, offset_b: float | None, what: str) -> str | None:
    """The warning line for a mean ab offset longer than CAST_WARNING_AB, else None."""
    if offset_a is None or offset_b is None or not (math.isfinite(offset_a) and math.isfinite(offset_b)):
        return None
    length = math.hypot(offset_a, offset_b)
    if length <= CAST_WARNING_AB:
        return None
    return (f"{what} has a {_cast_hue(offset_a, offset_b)} color cast: mean ab offset ({offset_a:+.1f}, "
            f"{offset_b:+.1f}), {length:.1f} > {CAST_WARNING_AB:g} Lab units")


def cast_warning_against_gray(what: str, model: dict, gray: dict) -> str | None:
    """The warning line for the cast of `what` (the whole set, or one category), or None. `model` and `gray`
    are eval.json rows of the same photos.

    Photos share colors (oranges are orange, and the average photo is a little warm), so the mean offset
    alone would call a model that merely under-colors them (a paler orange: an offset toward blue) a blue
    cast. Gray's offset is minus the true mean color t, so the model's mean color is m = t + offset; what
    is not under-coloring is m's distance to the segment from gray to t (t at any strength from 0 to 1).
    That distance over CAST_WARNING_AB is a cast, named by its direction: sepia over neutral streets, or
    forests painted yellow, are; a paler orange is not.
    """
    values = [row.get(k) for row in (model, gray) for k in ("ab_offset_a", "ab_offset_b")]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    off_a, off_b, gray_a, gray_b = values
    true_a, true_b = -gray_a, -gray_b
    mean_a, mean_b = true_a + off_a, true_b + off_b
    norm2 = true_a * true_a + true_b * true_b
    s = min(1.0, max(0.0, (mean_a * true_a + mean_b * true_b) / norm2)) if norm2 > 0 else 0.0
    res_a, res_b = mean_a - s * true_a, mean_b - s * true_b
    beyond = math.hypot(res_a, res_b)
    if beyond <= CAST_WARNING_AB:
        return None
    return (f"{what} has a {_cast_hue(res_a, res_b)} color cast: mean ab offset "
            f"({off_a:+.1f}, {off_b:+.1f}), its mean color {beyond:.1f} Lab units from the true one or any "
            f"paler version of it (> {CAST_WARNING_AB:g})")


def inverse_prior_weights(truth: np.ndarray, ab_lut: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """1 / prior(bin of each pixel's true ab): the rebalanced-AuC pixel weights, float64 [H, W].

    Bins the training set never saw (prior 0) get the weight of the rarest seen bin, so one odd pixel
    cannot dominate the score.
    """
    ab = rgb_to_lab(truth)[..., 1:]
    idx = np.clip(np.rint(ab), -128, 127).astype(np.int16) + 128
    bins = np.asarray(ab_lut)[idx[..., 0], idx[..., 1]]
    p = np.asarray(prior, dtype=np.float64)
    floor = p[p > 0].min() if (p > 0).any() else 1.0
    return 1.0 / np.maximum(p, floor)[bins]


def auc_histogram(err: np.ndarray, weights: np.ndarray | None = None,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """Weighted counts of pixels by ceil(error), index 0..150 and 151 for 'over 150'.

    err ≤ t exactly when ceil(err) ≤ t for integer t, so a cumulative sum gives the curve; histograms of
    many images add up, which is how AuC is pooled over a whole test set.
    """
    m = _mask_or_all(mask, err.shape)
    idx = np.minimum(np.ceil(err[m]), AUC_MAX_T + 1).astype(np.int64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[m]
    return np.bincount(idx, weights=w, minlength=AUC_MAX_T + 2).astype(np.float64)


def auc_from_histogram(hist: np.ndarray) -> float:
    """Area under the cumulative error curve over t = 0..150 (trapezoid), in percent."""
    total = float(hist.sum())
    if total <= 0:
        return float("nan")
    curve = np.cumsum(hist)[: AUC_MAX_T + 1] / total
    area = float(np.sum((curve[1:] + curve[:-1]) * 0.5))  # unit steps
    return 100.0 * area / AUC_MAX_T


def auc(err: np.ndarray, weights: np.ndarray | None = None, mask: np.ndarray | None = None) -> float:
    """AuC of one error map (optionally weighted per pixel), in percent."""
    return auc_from_histogram(auc_histogram(err, weights, mask))


# ------------------------------------------------------------------------------- scoring and totals
# averaged over images (AuC is pooled over pixels instead); the truth's colorfulness is kept for scale
MEANS = ("psnr", "ssim", "colorfulness", "colorfulness_truth", "delta_cf", "ab_offset_a", "ab_offset_b")


@dataclass
class ImageScores:
    """Every metric of one predicted image against its truth, plus the AuC histograms to pool."""

    psnr: float
    ssim: float
    colorfulness: float
    colorfulness_truth: float
    delta_cf: float
    auc_hist: np.ndarray
    auc_hist_rebalanced: np.ndarray
    ab_offset_a: float = float("nan")
    ab_offset_b: float = float("nan")

    def row(self) -> dict[str, float]:
        """The per-image numbers (AuC of this image alone) for tables and JSON."""
        return {"psnr": self.psnr, "ssim": self.ssim, "colorfulness": self.colorfulness,
                "colorfulness_truth": self.colorfulness_truth, "delta_cf": self.delta_cf,
                "ab_offset_a": self.ab_offset_a, "ab_offset_b": self.ab_offset_b, "auc": auc_from_histogram(self.auc_hist),
                "auc_rebalanced": auc_from_histogram(self.auc_hist_rebalanced)}


def score_image(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                ab_lut: np.ndarray | None = None, prior: np.ndarray | None = None) -> ImageScores:
    """All metrics of `pred` against `truth` (uint8 RGB); rebalanced AuC needs the model's lut + prior."""
    d = _ab_diff(pred, truth)
    err = np.sqrt(np.sum(d * d, axis=-1))
    weights = inverse_prior_weights(truth, ab_lut, prior) if ab_lut is not None and prior is not None else None
    cf_pred = colorfulness(pred, mask)
    cf_truth = colorfulness(truth, mask)
    small = min(pred.shape[:2]) < SSIM_WINDOW
    off_a, off_b = _mean_offset(d, _mask_or_all(mask, pred.shape[:2]))
    return ImageScores(
        psnr=psnr(pred, truth, mask),
        ssim=float("nan") if small else ssim(pred, truth, mask),
        colorfulness=cf_pred,
        colorfulness_truth=cf_truth,
        delta_cf=abs(cf_pred - cf_truth),
        ab_offset_a=off_a,
        ab_offset_b=off_b,
        auc_hist=auc_histogram(err, None, mask),
        auc_hist_rebalanced=auc_histogram(err, weights, mask) if weights is not None
        else np.zeros(AUC_MAX_T + 2),
    )


@dataclass
class Totals:
    """Running totals of one method (model or gray) over a group of images."""

    n: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MEANS, 0.0))
    counted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEANS, 0))
    hist: np.ndarray = field(default_factory=lambda: np.zeros(AUC_MAX_T + 2))
    hist_rebalanced: np.ndarray = field(default_factory=lambda: np.zeros(AUC_MAX_T + 2))

    def add(self, s: ImageScores) -> None:
        self.n += 1
        for key in self.sums:
            value = getattr(s, key)
            if not math.isnan(value):  # e.g. SSIM of an image smaller than the window
                self.sums[key] += value
                self.counted[key] += 1
        self.hist += s.auc_hist
        self.hist_rebalanced += s.auc_hist_rebalanced

    def summary(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"images": self.n}
        for key, total in self.sums.items():
            out[key] = total / self.counted[key] if self.counted[key] else None
        a, b = out["ab_offset_a"], out["ab_offset_b"]
        out["ab_offset"] = None if a is None or b is None else math.hypot(a, b)
        for key, hist in (("auc", self.hist), ("auc_rebalanced", self.hist_rebalanced)):
            value = auc_from_histogram(hist)
            out[key] = None if math.isnan(value) else value
        return out
