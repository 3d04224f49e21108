"""Colour hints as the network sees them: the one format shared by training, predict, the editor and eval.

A hint is a square patch of known chroma (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with
Learned Deep Priors", is the method this follows). The network's input is the lightness
plus HINT_CHANNELS planes at its own resolution:
- planes 0 and 1: the patch's a and b divided by HINT_AB_SCALE (so about -1..1), zero outside patches;
- plane 2: 1 inside a hinted patch, 0 elsewhere (so "no hint" and "hint a = b = 0, gray" differ).
A photo is fitted into the model's square with the pad fit of training (`images.fit_geometry(..., "pad")`),
so a point given in pixels of the photo is mapped through the same geometry here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from colorize.dataset.images import fit_geometry

__all__ = ["HINT_AB_SCALE", "HINT_CHANNELS", "HintPoint", "hint_planes"]

HINT_CHANNELS = 3
# ab of sRGB colours lie within about +-110 (CIELAB, D65); dividing by it keeps the planes near -1..1.
HINT_AB_SCALE = 110.0


@dataclass(frozen=True)
class HintPoint:
    """One hint: a square of `size` x `size` photo pixels centred on (x, y), of chroma (a, b).

    x, y are in pixels of the photo as displayed (after EXIF orientation, origin top left, pixel centres at
    integers); a, b are CIELAB chroma; the photo keeps its own lightness.
    """

    x: float
    y: float
    a: float
    b: float
    size: int


def hint_planes(points: Sequence[HintPoint], height: int, width: int, size: int) -> np.ndarray:
    """The hint planes float32 [HINT_CHANNELS, size, size] of a `height` x `width` photo in the model's square.

    Each patch keeps at least one model pixel, so a hint is never lost by the downscale; later points paint
    over earlier ones where they overlap (the editor's order is the user's order).
    """
    planes = np.zeros((HINT_CHANNELS, size, size), dtype=np.float32)
    _, (w, h), (ox, oy) = fit_geometry(width, height, size, "pad")
    sx, sy = w / width, h / height
    for p in points:
        cx = ox + (p.x + 0.5) * sx - 0.5
        cy = oy + (p.y + 0.5) * sy - 0.5
        side = max(1, round(p.size * sx))
        x0 = min(max(round(cx - (side - 1) / 2), ox), ox + w - 1)
        y0 = min(max(round(cy - (side - 1) / 2), oy), oy + h - 1)
        x1, y1 = min(x0 + side, ox + w), min(y0 + side, oy + h)
        planes[0, y0:y1, x0:x1] = p.a / HINT_AB_SCALE
        planes[1, y0:y1, x0:x1] = p.b / HINT_AB_SCALE
        planes[2, y0:y1, x0:x1] = 1.0
    return planes
