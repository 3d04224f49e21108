"""CIE Lab (D65) conversions and the storage encoding of L and ab, shared by prep, training and prediction.

Storage: L (0..100) as uint8 ``round(L * 255 / 100)`` and ab as int8 ``clip(round(ab), -128, 127)``.
Keeping raw ab (not bin indices) means a different bin set never needs a re-decode.
`rgb_to_lab` is OpenCV's float32 path (sRGB companding, D65): within ~0.5 Lab units of a float64
reference at a fraction of the cost of a numpy implementation. `rgb_to_stored`, the shard encoding and
the network's input (prep stores it, predict feeds it), is the formulas themselves in float32 through
OpenCV's vector primitives: the rounded float64 values but for ~1 pixel in 10^5, at about a third the cost
of OpenCV's conversion and the rounding after it (one of prep's larger steps, benchmarks/bench_prep.py).
"""

from __future__ import annotations

import cv2
import numpy as np

L_SCALE = 255.0 / 100.0


def _as_image(arr: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """cv2 wants (H, W, 3); accept any [..., 3] array and remember how to put it back."""
    shape = arr.shape
    if arr.ndim == 3:
        return arr, shape
    return arr.reshape(-1, 1, 3), shape


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB [..., 3] -> float32 Lab [..., 3] (L 0..100, a/b roughly -128..127)."""
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb_to_lab expects uint8 RGB, got {rgb.dtype}")
    img, shape = _as_image(rgb)
    lab = cv2.cvtColor(img.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)
    return lab.reshape(shape)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float Lab [..., 3] -> uint8 sRGB [..., 3]; colors outside the sRGB gamut are clipped."""
    img, shape = _as_image(np.ascontiguousarray(lab, dtype=np.float32))
    rgb = cv2.cvtColor(img, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8).reshape(shape)


def encode_l(L: np.ndarray) -> np.ndarray:
    """Lightness 0..100 -> uint8 0..255."""
    return np.clip(np.rint(np.asarray(L, dtype=np.float32) * np.float32(L_SCALE)), 0, 255).astype(np.uint8)


def decode_l(L_u8: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> lightness 0..100 (float32)."""
    return L_u8.astype(np.float32) * np.float32(1.0 / L_SCALE)


def encode_ab(ab: np.ndarray) -> np.ndarray:
    """ab float -> int8, rounded and clipped to -128..127."""
    return np.clip(np.rint(np.asarray(ab, dtype=np.float32)), -128, 127).astype(np.int8)


def rgb_to_stored(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB [H, W, 3] (or any [..., 3]) -> (L uint8 [H, W], ab int8 [H, W, 2]): the shard encoding.

    sRGB -> linear (a 256-entry table) -> XYZ / white -> f (cube root, linear below (6/29)^3) -> L*2.55 and
    a, b offset by 128, rounded and saturated to uint8 in one step; a and b come back by flipping the top bit.
    sRGB's gamut keeps L in 0..100 and a, b in -87..99, so the clip of `encode_ab` is never needed."""
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb_to_stored expects uint8 RGB, got {rgb.dtype}")
    img, shape = _as_image(np.ascontiguousarray(rgb))
    xyz = cv2.transform(cv2.LUT(img, _SRGB_TO_LINEAR), _LINEAR_TO_XYZN)
    f = cv2.pow(xyz, 1.0 / 3.0)
    cv2.copyTo(cv2.transform(xyz, _F_BELOW_EPS), (xyz <= np.float32(_EPS)).view(np.uint8), f)
    L, a, b = cv2.split(cv2.convertScaleAbs(cv2.transform(f, _F_TO_STORED)))
    ab = cv2.merge([a, b])
    np.bitwise_xor(ab, np.uint8(0x80), out=ab)
    return L.reshape(shape[:-1]), ab.view(np.int8).reshape(shape[:-1] + (2,))


def stored_to_rgb(L_u8: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """(L uint8 [..., H, W], ab [..., H, W, 2] int8 or float) -> uint8 RGB [..., H, W, 3]."""
    lab = np.concatenate([decode_l(L_u8)[..., None], np.asarray(ab, dtype=np.float32)], axis=-1)
    return lab_to_rgb(lab)


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """The photo with its color removed (ab = 0), as uint8 RGB: what a black-and-white input looks like."""
    L_u8, _ = rgb_to_stored(rgb)
    return stored_to_rgb(L_u8, np.zeros(L_u8.shape + (2,), np.float32))


# The exact formulas of `rgb_to_stored` (those of the float64 reference in tests/test_color.py), as float32
# tables and matrices for OpenCV: sRGB companding, the linear sRGB -> XYZ matrix over the D65 white, CIE f.
_EPS = (6.0 / 29.0) ** 3
_SRGB_TO_LINEAR = np.where(np.arange(256) <= 0.04045 * 255, np.arange(256) / 255.0 / 12.92,
                           ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32).reshape(1, 256, 1)
_LINEAR_TO_XYZN = (np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]])
                   / np.array([0.95047, 1.0, 1.08883])[:, None]).astype(np.float32)
_F_BELOW_EPS = np.hstack([np.eye(3) / (3.0 * (6.0 / 29.0) ** 2), np.full((3, 1), 4.0 / 29.0)]).astype(np.float32)
_F_TO_STORED = np.array([[0.0, 116.0 * L_SCALE, 0.0, -16.0 * L_SCALE], [500.0, -500.0, 0.0, 128.0],
                         [0.0, 200.0, -200.0, 128.0]], np.float32)  # L * 2.55, a + 128, b + 128


# ---------------------------------------------------------------------------------------- 16-bit tones
# 16-bit scans need lightness at 16-bit precision: one code is ~0.0015 L, and OpenCV's float Lab path
# (tables and splines, ~0.5 Lab units off a float64 reference) would throw most of that away. These
# exact formulas (sRGB companding, D65, the same matrix `models.infer.arrays` tests the gamut with)
# are used for 16-bit inputs and outputs; 8-bit `rgb_to_lab` keeps OpenCV's path and so its exact old results.
_Y_OF_LINEAR = (0.2126729, 0.7151522, 0.0721750)  # the Y row of linear sRGB -> XYZ (D65)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _lightness_of_y(y: np.ndarray) -> np.ndarray:
    f = np.where(y > _EPS, np.cbrt(y), y / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


_LINEAR16 = _srgb_to_linear(np.arange(65536, dtype=np.float64) / 65535.0)
_L_OF_GRAY16 = _lightness_of_y(_LINEAR16).astype(np.float32)


def lightness16(u16: np.ndarray) -> np.ndarray:
    """uint16 sRGB gray [H, W] or RGB [H, W, 3] -> L (0..100) float32 at 16-bit precision."""
    if u16.dtype != np.uint16:
        raise TypeError(f"lightness16 expects uint16, got {u16.dtype}")
    if u16.ndim == 2:
        return _L_OF_GRAY16[u16]
    y = sum(w * _LINEAR16[u16[..., c]] for c, w in enumerate(_Y_OF_LINEAR))
    return _lightness_of_y(y).astype(np.float32)


def linear_to_srgb16(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (any float, clipped to 0..1) -> uint16 sRGB, rounded to the nearest code."""
    v = np.clip(linear, 0.0, 1.0).astype(np.float64)
    srgb = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1.0 / 2.4) - 0.055)
    return np.rint(srgb * 65535.0).astype(np.uint16)
