"""Pillow's 8-bit LANCZOS resize, to the bit, as two sparse integer matrix products.

Why not just `Image.resize`: it was prep's largest step (benchmarks/bench_prep.py: 4.6 ms of 14 for a
1080x720 photo at 256 px) because Pillow's loop is scalar C, one multiply-add at a time. The same
arithmetic as a sparse matrix (a few taps per output pixel) times the pixels runs in scipy's compiled
kernel, several rows of pixels at once, in about half the time (1.5-2.8 ms against 3.1-4.6).

What "the same arithmetic" means (Pillow's src/libImaging/Resample.c, `precompute_coeffs` and the 8bpc
passes): per output pixel, Lanczos-3 weights over the source window, normalised to sum to one, rounded
to signed 22-bit fixed point; each pass sums pixel x weight in int32 with a half for rounding, shifts
and clamps to 0..255. The horizontal pass runs first over the rows the vertical pass needs, and its
8-bit result feeds the vertical pass; a pass whose axis keeps its size (and box) is skipped. Integer
products and sums are exact in any order, so the result is the same bytes on every machine. Pillow 13
may run the vertical pass first when the height shrinks much more than the width; we keep one order
(horizontal first) so shards do not change with the Pillow version.

Memory is bounded for full-resolution scans: the horizontal pass reads CHUNK_BYTES of source rows at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

#: Pillow's PRECISION_BITS for 8-bit images (32 - 8 - 2): weights are signed fixed point with 22 fraction bits.
PRECISION_BITS = 22
#: Source bytes the horizontal pass handles at once (its int32 products are 4x this).
CHUNK_BYTES = 4 * 1024 * 1024
#: Lanczos-3: the kernel reaches three source pixels either side (times the downscale factor).
SUPPORT = 3.0

Box = tuple[float, float, float, float]


def lanczos(rows: Callable[[int, int], np.ndarray], width: int, height: int, channels: int,
            size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Resize a uint8 image of `width` x `height` x `channels` (0: gray [H, W], else [H, W, C]) to
    `size` = (w, h).

    `rows(y0, y1)` returns source rows y0..y1 (a view of an array, or decoded on demand from a Pillow
    image), so a large scan is never copied whole. `box` is the source region (x0, y0, x1, y1), default
    the whole image; like Pillow it is taken as float32.
    """
    out_w, out_h = size
    if out_w < 1 or out_h < 1:
        raise ValueError(f"resize to {size}: both sides must be at least 1")
    c = max(1, channels)
    x0, y0, x1, y1 = (float(np.float32(v)) for v in (box or (0, 0, width, height)))
    need_h = out_w != width or x0 != 0 or x1 != out_w  # Pillow's own test (x1 against the output width)
    need_v = out_h != height or y0 != 0 or y1 != out_h
    vert = _weights(height, y0, y1, out_h, 1)
    first, last = vert.first, vert.last
    if need_h:
        mid = _horizontal(rows, first, last, _weights(width, x0, x1, out_w, c), width * c)
    else:
        mid = np.ascontiguousarray(rows(first, last)).reshape(last - first, width * c)
    if need_v:
        mid = _round(vert.matrix @ mid)
    shape = (mid.shape[0], mid.shape[1] // c) + ((channels,) if channels else ())
    return mid.reshape(shape)


def lanczos_array(pixels: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """`lanczos` of a uint8 array [H, W] or [H, W, C]."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise TypeError(f"lanczos expects uint8 [H, W] or [H, W, C], got {pixels.dtype} {pixels.shape}")
    channels = pixels.shape[2] if pixels.ndim == 3 else 0
    return lanczos(lambda a, b: pixels[a:b], pixels.shape[1], pixels.shape[0], channels, size, box)


def _horizontal(rows: Callable[[int, int], np.ndarray], first: int, last: int, horiz: _Weights,
                row_bytes: int) -> np.ndarray:
    """The horizontal pass over source rows first..last: uint8 [last - first, out_w * C].

    Rows are flattened to (x, channel) and transposed so that the matrix (one row per output (x, channel))
    contracts the first axis: scipy's kernel then streams whole source rows."""
    step = max(1, CHUNK_BYTES // max(1, row_bytes))
    parts = []
    for y in range(first, last, step):
        block = np.ascontiguousarray(rows(y, min(last, y + step))).reshape(min(last, y + step) - y, -1)
        columns = cv2.transpose(block[:, horiz.first:horiz.last])  # [(x, channel), rows]
        parts.append(cv2.transpose(_round(horiz.matrix @ columns)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _round(acc: np.ndarray) -> np.ndarray:
    """Pillow's `clip8`: add the half, shift out the fraction bits, clamp to 0..255."""
    acc += 1 << (PRECISION_BITS - 1)
    np.right_shift(acc, PRECISION_BITS, out=acc)
    np.clip(acc, 0, 255, out=acc)
    return acc.astype(np.uint8)


class _Weights:
    """One axis's fixed-point weights as a sparse [out, in] int32 matrix; `first`..`last` are the source
    positions it reads (the matrix's columns are shifted to start at `first`)."""

    def __init__(self, matrix: Any, first: int, last: int) -> None:
        self.matrix, self.first, self.last = matrix, first, last


@functools.lru_cache(maxsize=256)  # prep meets the same photo sizes again and again
def _weights(in_size: int, in0: float, in1: float, out_size: int, channels: int) -> _Weights:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`, vectorised over the outputs, same order of
    double operations (so the same weights; a last-bit difference of sin would have to land exactly on a
    rounding boundary to show)."""
    import scipy.sparse as sp  # scipy costs ~0.27 s to import: only commands that resize pay it

    scale = float(np.float32(in1) - np.float32(in0)) / out_size  # C: (double)(in1 - in0), a float difference
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = in0 + (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    x = ((taps[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    k = np.where((x >= -SUPPORT) & (x < SUPPORT), _sinc(x) * _sinc(x / 3), 0.0)
    used = taps[None, :] < xmax[:, None]
    k[~used] = 0.0
    total = np.zeros(out_size)
    for j in range(ksize):  # C sums the taps one by one; numpy's pairwise sum could round differently
        total = total + k[:, j]
    k = np.where(total[:, None] != 0.0, k / np.where(total == 0.0, 1.0, total)[:, None], k)
    fixed = np.trunc(np.where(k < 0, k * (1 << PRECISION_BITS) - 0.5, k * (1 << PRECISION_BITS) + 0.5))
    first = int(xmin[0])
    last = int((xmin + xmax).max())
    # interleaved channels: output (o, ch) reads source (x, ch) with o's weights, i.e. kron(weights, I_ch)
    cols = ((xmin[:, None] + taps[None, :] - first)[:, None, :] * channels + np.arange(channels)[None, :, None])
    keep = np.broadcast_to(used[:, None, :], cols.shape)
    data = np.broadcast_to(fixed[:, None, :], cols.shape)[keep].astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(keep.reshape(out_size * channels, ksize).sum(1))])
    matrix = sp.csr_matrix((data, cols[keep], indptr), shape=(out_size * channels, (last - first) * channels))
    return _Weights(matrix, first * channels, last * channels)


def _sinc(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        px = x * np.pi
        return np.where(x == 0.0, 1.0, np.sin(px) / px)
