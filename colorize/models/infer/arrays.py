"""Inference on arrays: one uint8 RGB photo in, the colorized photo (and its bin probabilities) out.

Shared by predict, eval, routing, the turing study and the demo; the file/folder/video command lives in
`predict.py`. How an image is colorized (and why):
- The network sees the photo's lightness fitted into its square exactly as training did (Lanczos, pad +
  mask), so a result does not depend on how large the input was.
- The output keeps the input's own full-resolution L; only ab comes from the model, cropped to the real
  (unpadded) area and upsampled bicubic. Fine detail therefore stays as sharp as the original.
- Out-of-gamut colors are brought into sRGB by reducing chroma at constant L and hue (a per-channel clip
  would change lightness), so the output's L matches the input's L up to 8-bit rounding.
Color inputs are used through their L only, i.e. they are turned gray first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from colorize.dataset.color import encode_l, lab_to_rgb, rgb_to_lab
from colorize.dataset.images import fit, fit_geometry
from colorize.errors import UsageError
from colorize.models.net.annealed import annealed_mean, confidence

log = logging.getLogger(__name__)

# Linear-sRGB matrix and D65 white used to test whether a Lab color fits the sRGB gamut (OpenCV's own
# float conversion clips silently, so it cannot tell us).
_XYZ_TO_RGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]], dtype=np.float32)
_WHITE = (0.950456, 1.0, 1.088754)
_GAMUT_TOL = 1e-3
_GAMUT_STEPS = 12  # bisection steps on the chroma scale: 1/4096 of the chroma is below 8-bit rounding


def parse_temperatures(value: str | float | Sequence[float]) -> list[float]:
    """'0.38' or '0.2,0.38,1.0' (or numbers) -> a list of distinct temperatures > 0, in the given order."""
    items = [value] if isinstance(value, (int, float)) else (
        [v for v in str(value).split(",") if v.strip()] if isinstance(value, str) else list(value))
    try:
        temps = [float(v) for v in items]
    except ValueError:
        temps = []
    if not temps or any(not (math.isfinite(t) and t > 0) for t in temps):
        raise UsageError(f"--temperature {value!r} is not a positive number or a comma-separated list of them",
                         "e.g. --temperature 0.38 or --temperature 0.2,0.38,1.0")
    return list(dict.fromkeys(temps))


@dataclass(frozen=True)
class Framing:
    """Where a photo of `height` x `width` sits inside the model's square (the pad fit of training)."""

    height: int
    width: int
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, height: int, width: int, size: int) -> Framing:
        _, (w, h), (x, y) = fit_geometry(width, height, size, "pad")
        return cls(height, width, x, y, w, h)

    def upsample(self, plane: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
        """A model-size map [S,S(,C)] -> the photo's full size, using only the unpadded area."""
        crop = np.ascontiguousarray(plane[self.y:self.y + self.h, self.x:self.x + self.w], dtype=np.float32)
        if (self.w, self.h) == (self.width, self.height):
            return crop
        out = cv2.resize(crop, (self.width, self.height), interpolation=interpolation)
        return out.reshape((self.height, self.width) + plane.shape[2:])


@dataclass
class Prepared:
    """One photo ready for the model: full-resolution L (0..100) and the fitted uint8 L the net sees."""

    L_full: np.ndarray  # float32 [H, W]
    L_small: np.ndarray  # uint8 [S, S]
    framing: Framing


def prepare(rgb: np.ndarray, size: int) -> Prepared:
    """Split a uint8 RGB photo into what the model needs (color inputs are used through L only)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    L_full = rgb_to_lab(rgb)[..., 0]
    small, _ = fit(rgb, size, "pad")
    L_small = encode_l(rgb_to_lab(small)[..., 0])
    return Prepared(L_full, L_small, Framing.of(rgb.shape[0], rgb.shape[1], size))


def model_probs(colorizer: Any, L_small: np.ndarray) -> torch.Tensor:
    """uint8 [B,S,S] -> bin probabilities [B,n,S,S] on the colorizer's device (pinned copy + AMP on CUDA)."""
    from colorize.models.net.runtime import amp_dtype, autocast

    t = torch.from_numpy(np.ascontiguousarray(L_small))
    device = colorizer.device
    if device.type == "cuda":
        t = t.pin_memory()
    with autocast(device, amp_dtype(device, True)):  # bf16/fp16 on CUDA only; probs come back float32
        return colorizer.probs(t)


def decode_ab(probs: torch.Tensor, centers: torch.Tensor, temperature: float) -> np.ndarray:
    """Probabilities [B,n,S,S] -> annealed-mean ab as numpy float32 [B,S,S,2]."""
    ab = annealed_mean(probs, centers, temperature)
    return ab.permute(0, 2, 3, 1).float().cpu().numpy()


def _linear_rgb(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> unclipped linear sRGB [..., 3]."""
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    d = 6.0 / 29.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > d, t * t * t, 3 * d * d * (t - 4.0 / 29.0))

    xyz = np.stack([_WHITE[0] * finv(fx), finv(fy), _WHITE[2] * finv(fz)], axis=-1).astype(np.float32)
    return xyz @ _XYZ_TO_RGB.T


def _in_gamut(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rgb = _linear_rgb(L, a, b)
    return np.all((rgb >= -_GAMUT_TOL) & (rgb <= 1.0 + _GAMUT_TOL), axis=-1)


def fit_gamut(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Scale each out-of-gamut pixel's ab toward gray (same L and hue) until it fits sRGB."""
    ab = np.asarray(ab, dtype=np.float32)
    ok = _in_gamut(L, ab[..., 0], ab[..., 1])
    if ok.all():
        return ab
    bad = ~ok
    Lb, abb = L[bad], ab[bad]
    lo = np.zeros(len(Lb), np.float32)  # ab * 0 (gray at this L) is always inside
    hi = np.ones(len(Lb), np.float32)
    for _ in range(_GAMUT_STEPS):
        mid = (lo + hi) * 0.5
        good = _in_gamut(Lb, abb[:, 0] * mid, abb[:, 1] * mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    out = ab.copy()
    out[bad] = abb * lo[:, None]
    return out


def compose(L_full: np.ndarray, ab_full: np.ndarray) -> np.ndarray:
    """Full-resolution L + ab -> uint8 sRGB, chroma-reduced into the gamut."""
    ab = fit_gamut(L_full, ab_full)
    return lab_to_rgb(np.concatenate([L_full[..., None], ab], axis=-1))


def gray_of(L_full: np.ndarray) -> np.ndarray:
    """What the black-and-white input looks like (ab = 0)."""
    return lab_to_rgb(np.stack([L_full, np.zeros_like(L_full), np.zeros_like(L_full)], axis=-1))


@dataclass
class ImagePrediction:
    """A colorized photo at each requested temperature, plus the model-size confidence maps."""

    colors: list[np.ndarray]  # uint8 [H, W, 3], one per temperature
    top: np.ndarray  # float32 [S, S]: top bin probability
    ratio: np.ndarray  # float32 [S, S]: first / second probability
    prepared: Prepared

    def mean_confidence(self) -> float:
        f = self.prepared.framing
        return float(self.top[f.y:f.y + f.h, f.x:f.x + f.w].mean())


def predict_images(colorizer: Any, rgbs: Sequence[np.ndarray], temperatures: Sequence[float]) -> list[ImagePrediction]:
    """Colorize a batch of photos (any sizes) in one forward pass."""
    prepared = [prepare(rgb, colorizer.size) for rgb in rgbs]
    probs = model_probs(colorizer, np.stack([p.L_small for p in prepared]))
    top, ratio = (t.float().cpu().numpy() for t in confidence(probs))
    abs_per_t = [decode_ab(probs, colorizer.centers, t) for t in temperatures]
    out = []
    for i, p in enumerate(prepared):
        colors = [compose(p.L_full, p.framing.upsample(ab[i])) for ab in abs_per_t]
        out.append(ImagePrediction(colors, top[i], ratio[i], p))
    return out


def colorize_rgb(colorizer: Any, rgb_u8: np.ndarray, temperature: float = 0.38) -> np.ndarray:
    """The prediction API (docs/contracts.md): uint8 RGB [H,W,3] -> colorized uint8 RGB of the same size."""
    return predict_images(colorizer, [rgb_u8], [temperature])[0].colors[0]
