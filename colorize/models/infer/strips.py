"""Full-resolution composition in strips: a 100-megapixel scan colorized in bounded memory.

Only the last step of prediction touches full resolution: upsampling the model-size ab map and joining it
with the input's own lightness. Doing that for the whole image at once costs ~75 bytes per pixel (float
Lab, float ab, gamut temporaries); here it runs strip by strip (about `STRIP_PIXELS` each) into one
preallocated output, so memory above the input and output stays ~100 MB per core at any size.

Why column strips, and why 64-pixel aligned: the result must be the same pixels as the whole-image path
(8-bit results are kept byte for byte). OpenCV's bicubic resize is separable, horizontal pass first; its
vertical pass treats every column alike, so a strip of columns, vertically resized on its own, gives the
very same floats as the whole-image resize, provided its columns sit at the same SIMD lane positions
(strip edges on multiples of `ALIGN` pixels). A strip of rows would not: its vertical source coordinates
depend on the whole image's height. Lab and gamut maths are per pixel, so they follow any strip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import cv2
import numpy as np

from colorize.dataset.color import lightness16, linear_to_srgb16, rgb_to_lab
from colorize.models.net.gamut import compose, fit_gamut, gray_of, linear_rgb
from colorize.progress import progress

STRIP_PIXELS = 1 << 19  # per strip: ~50 MB of float temporaries
ALIGN = 64  # strip edges (pixels) on which OpenCV's vectorized resize lanes line up
WORKERS = max(1, min(4, os.cpu_count() or 1))  # strips composed at once (each ~50 MB of temporaries)
BAR_MIN_PIXELS = 16_000_000  # a progress bar for photos this large (a 1 MP photo takes a second)
_L_OF_GRAY8 = rgb_to_lab(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))[:, 0].copy()


class Lightness(Protocol):
    """Where full-resolution lightness comes from (an array in memory or a decoded file)."""

    height: int
    width: int
    depth: int  # 8 or 16: the output's bits per channel

    def columns(self, x0: int, x1: int) -> np.ndarray:
        """Pixels of columns x0..x1, all rows: uint8/uint16 gray [H, w] or RGB [H, w, 3]."""


def lightness_of(pixels: np.ndarray) -> np.ndarray:
    """Gray or RGB pixels (uint8 or uint16) -> L float32. 8-bit: exactly OpenCV's float path, as always."""
    if pixels.dtype == np.uint16:
        return lightness16(pixels)
    if pixels.ndim == 2:  # gray g is RGB (g, g, g): the same L, from a table instead of a 3x larger copy
        return _L_OF_GRAY8[pixels]
    return rgb_to_lab(np.ascontiguousarray(pixels))[..., 0]


def strip_edges(width: int, height: int, strip_pixels: int = STRIP_PIXELS) -> list[tuple[int, int]]:
    """Column ranges covering `width`, each about `strip_pixels` (at least `ALIGN` columns), edges aligned."""
    step = max(ALIGN, (strip_pixels // max(1, height)) // ALIGN * ALIGN)
    return [(x0, min(width, x0 + step)) for x0 in range(0, width, step)]


class Upsampler:
    """`Framing.upsample` of one model-size map, delivered by column strips with identical pixels."""

    def __init__(self, framing: object, plane: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> None:
        f = framing
        crop = np.ascontiguousarray(plane[f.y:f.y + f.h, f.x:f.x + f.w], dtype=np.float32)  # type: ignore[attr-defined]
        self.height, self.width = f.height, f.width  # type: ignore[attr-defined]
        self.interpolation = interpolation
        self.same = (f.w, f.h) == (f.width, f.height)  # type: ignore[attr-defined]
        # The horizontal pass for all columns at once: [crop rows, W, C], small (the crop is <= model size).
        self.rows = crop if self.same else cv2.resize(crop, (self.width, crop.shape[0]), interpolation=interpolation)
        if self.rows.ndim == 2:
            self.rows = self.rows[..., None]

    def columns(self, x0: int, x1: int) -> np.ndarray:
        block = np.ascontiguousarray(self.rows[:, x0:x1])
        if not self.same:
            block = cv2.resize(block, (x1 - x0, self.height), interpolation=self.interpolation)
        return block.reshape(self.height, x1 - x0, -1)


def _bar_strips(done: Iterator[tuple[int, int]], total: int, pixels: int,
                desc: str | None) -> Iterator[tuple[int, int]]:
    """Strips as they finish, with a progress bar (`desc`) when the photo is large enough to wait for."""
    if desc is None or pixels < BAR_MIN_PIXELS:
        yield from done
        return
    bar = progress(total=total, desc=desc, unit="strip")
    try:
        for edge in done:
            yield edge
            bar.update(1)
    finally:
        bar.close()


def compose_block(L: np.ndarray, ab: np.ndarray | None, depth: int) -> np.ndarray:
    """One strip: L [h, w] + ab [h, w, 2] (None = gray) -> uint8 (8-bit) or uint16 (16-bit) RGB [h, w, 3]."""
    if depth == 8:
        return gray_of(L) if ab is None else compose(L, ab)
    if ab is None:
        ab = np.zeros(L.shape + (2,), np.float32)
    ab = fit_gamut(L, ab, tol=2e-6, steps=24)  # 16-bit: fit the gamut 500x tighter than 8-bit needs
    return linear_to_srgb16(linear_rgb(L, ab[..., 0], ab[..., 1]))


def compose_full(source: Lightness, upsampler: Upsampler | None, out: np.ndarray | None = None,
                 desc: str | None = None, strip_pixels: int | None = None) -> np.ndarray:
    """The colorized photo (or, with no upsampler, its gray rendering) at full size, strip by strip.

    `out` (uint8/uint16 [H, W, 3], any strides, e.g. a reversed view of a BGR buffer) is filled and
    returned; the caller may reuse one buffer for several temperatures.
    """
    h, w = source.height, source.width
    dtype = np.uint16 if source.depth == 16 else np.uint8
    if out is None:
        out = np.empty((h, w, 3), dtype)
    if out.shape != (h, w, 3) or out.dtype != dtype:
        raise ValueError(f"output buffer {out.dtype} {out.shape} does not fit {dtype.__name__} {(h, w, 3)}")

    def one(edge: tuple[int, int]) -> tuple[int, int]:
        x0, x1 = edge
        L = lightness_of(source.columns(x0, x1))
        ab = None if upsampler is None else upsampler.columns(x0, x1)
        out[:, x0:x1] = compose_block(L, ab, source.depth)
        return edge

    edges = strip_edges(w, h, strip_pixels or STRIP_PIXELS)
    if len(edges) == 1 or WORKERS == 1:
        for _ in _bar_strips(map(one, edges), len(edges), h * w, desc):
            pass
        return out
    # numpy and OpenCV release the GIL in their loops: strips on every core (disjoint columns of `out`)
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in _bar_strips(pool.map(one, edges), len(edges), h * w, desc):
            pass
    return out


def shrink(rgb: np.ndarray, max_height: int) -> np.ndarray:
    """A picture at most `max_height` tall (INTER_AREA), as the strip and report panels show it; 8-bit."""
    if not rgb.flags.c_contiguous and rgb[..., ::-1].flags.c_contiguous:  # a view of a BGR buffer: no copy
        return np.ascontiguousarray(shrink(rgb[..., ::-1], max_height)[..., ::-1])
    h, w = rgb.shape[:2]
    scale = min(1.0, max_height / h)
    small = rgb if scale == 1.0 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if small.dtype == np.uint16:
        small = ((small.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return small
