"""The two pictures a training run leaves behind, drawn with Pillow (no plotting library needed).

- sample grid: one row per fixed validation sample, gray | predicted at T | truth, so progress across
  epochs is visible by flipping through `samples/epoch-NNN.png`;
- loss curve: train and val loss per epoch.
Both are written atomically and are deterministic for the same numbers.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from colorize.dataset.color import stored_to_rgb
from colorize.io import atomic_write_bytes


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sample_grid(path: str | os.PathLike, L_u8: np.ndarray, ab_pred: np.ndarray, ab_true: np.ndarray,
                gap: int = 2) -> None:
    """L [N,S,S] uint8, ab [N,S,S,2] (float or int8) -> PNG with N rows of gray | predicted | truth."""
    n, s = L_u8.shape[0], L_u8.shape[1]
    zero = np.zeros(L_u8.shape + (2,), np.float32)
    cols = [stored_to_rgb(L_u8, zero), stored_to_rgb(L_u8, ab_pred), stored_to_rgb(L_u8, ab_true)]
    canvas = np.full((n * (s + gap) + gap, 3 * (s + gap) + gap, 3), 255, np.uint8)
    for r in range(n):
        for c, col in enumerate(cols):
            y, x = gap + r * (s + gap), gap + c * (s + gap)
            canvas[y:y + s, x:x + s] = col[r]
    atomic_write_bytes(path, _png_bytes(Image.fromarray(canvas)))


def loss_curve(path: str | os.PathLike, train: list[float], val: list[float | None],
               size: tuple[int, int] = (480, 300)) -> None:
    """Train (blue) and val (orange) loss per epoch on linear axes, with min/max labels."""
    w, h = size
    left, right, top, bottom = 48, 12, 22, 28
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    values = [v for v in list(train) + list(val) if v is not None and math.isfinite(v)]
    draw.rectangle([left, top, w - right, h - bottom], outline=(160, 160, 160))
    draw.text((left, 4), "loss per epoch  (blue: train, orange: val)", fill=(0, 0, 0))
    if values:
        lo, hi = min(values), max(values)
        hi = hi if hi > lo else lo + 1.0
        n = max(len(train), len(val), 2)

        def xy(i: int, v: float) -> tuple[float, float]:
            x = left + (w - left - right) * (i / (n - 1))
            y = top + (h - top - bottom) * (1 - (v - lo) / (hi - lo))
            return x, y

        for series, color in ((train, (31, 119, 180)), (val, (255, 127, 14))):
            pts = [xy(i, v) for i, v in enumerate(series) if v is not None and math.isfinite(v)]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        draw.text((2, top - 4), f"{hi:.3g}", fill=(0, 0, 0))
        draw.text((2, h - bottom - 8), f"{lo:.3g}", fill=(0, 0, 0))
        draw.text((left, h - bottom + 6), "1", fill=(0, 0, 0))
        draw.text((w - right - 16, h - bottom + 6), str(n), fill=(0, 0, 0))
    atomic_write_bytes(path, _png_bytes(img))
