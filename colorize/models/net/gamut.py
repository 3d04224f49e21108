"""Bringing predicted color into sRGB at constant lightness, and Lab -> RGB for the output.

Out-of-gamut colors are brought into sRGB by reducing chroma at constant L and hue (a per-channel clip
would change lightness), so the output's L matches the input's L up to the output's rounding. Shared by
the array core (`net/colors.py`, `infer/arrays.py`), the strip composition (`infer/strips.py`).
"""

from __future__ import annotations

import numpy as np

from colorize.dataset.color import lab_to_rgb

# Linear-sRGB matrix and D65 white used to test whether a Lab color fits the sRGB gamut (OpenCV's own
# float conversion clips silently, so it cannot tell us).
_XYZ_TO_RGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]], dtype=np.float32)
_WHITE = (0.950456, 1.0, 1.088754)
_GAMUT_TOL = 1e-3
_GAMUT_STEPS = 12  # bisection steps on the chroma scale: 1/4096 of the chroma is below 8-bit rounding


def linear_rgb(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> unclipped linear sRGB [..., 3]."""
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    d = 6.0 / 29.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > d, t * t * t, 3 * d * d * (t - 4.0 / 29.0))

    xyz = np.stack([_WHITE[0] * finv(fx), finv(fy), _WHITE[2] * finv(fz)], axis=-1).astype(np.float32)
    return xyz @ _XYZ_TO_RGB.T


def _in_gamut(L: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float = _GAMUT_TOL) -> np.ndarray:
    rgb = linear_rgb(L, a, b)
    return np.all((rgb >= -tol) & (rgb <= 1.0 + tol), axis=-1)


def fit_gamut(L: np.ndarray, ab: np.ndarray, tol: float = _GAMUT_TOL, steps: int = _GAMUT_STEPS) -> np.ndarray:
    """Scale each out-of-gamut pixel's ab toward gray (same L and hue) until it fits sRGB (within `tol` in
    linear RGB, chroma found to 2^-`steps`); the defaults are below 8-bit rounding, 16-bit output asks more."""
    ab = np.asarray(ab, dtype=np.float32)
    ok = _in_gamut(L, ab[..., 0], ab[..., 1], tol)
    if ok.all():
        return ab
    bad = ~ok
    Lb, abb = L[bad], ab[bad]
    lo = np.zeros(len(Lb), np.float32)  # ab * 0 (gray at this L) is always inside
    hi = np.ones(len(Lb), np.float32)
    for _ in range(steps):
        mid = (lo + hi) * 0.5
        good = _in_gamut(Lb, abb[:, 0] * mid, abb[:, 1] * mid, tol)
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
