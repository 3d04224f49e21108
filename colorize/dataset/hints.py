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

__all__ = ["HINT_AB_SCALE", "HINT_CHANNELS", "HintPoint", "hint_planes", "hint_rng", "simulate_points",
           "simulated_batch", "simulated_planes"]

HINT_CHANNELS = 3
# ab of sRGB colours lie within about +-110 (CIELAB, D65); dividing by it keeps the planes near -1..1.
HINT_AB_SCALE = 110.0

# Simulated hints (Zhang et al. 2017, section 3.2): the point count is geometric, P(n) = p (1 - p)^n,
# so 1 sample in 8 trains the automatic case; patches are squares of 1..9 px at shard resolution.
SIM_STOP_P = 1.0 / 8.0
SIM_PATCH_SIDES = (1, 9)
# A bound on one sample's points (the geometric tail past it has probability (7/8)^200 ~ 3e-12).
SIM_MAX_POINTS = 200
# Tag mixed into the hint RNG's seed so its stream never coincides with the loader's shuffle stream.
_HINT_STREAM = 0x68696E74


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


def hint_rng(seed: int, epoch: int, sample: int) -> np.random.Generator:
    """The generator of one sample's simulated hints: a pure function of (seed, epoch, sample key), so a
    resumed run, another worker count or another batch order draws exactly the same hints."""
    return np.random.default_rng([_HINT_STREAM, int(seed), int(epoch), int(sample)])


def simulate_points(ab: np.ndarray, mask: np.ndarray, rng: np.random.Generator, count: int | None = None,
                    sides: tuple[int, int] = SIM_PATCH_SIDES) -> list[HintPoint]:
    """Zhang 2017's simulated user: hint points on one square sample, in its own pixel coordinates.

    `ab` int8/float [S,S,2] is the true chroma, `mask` bool [S,S] the real (unpadded) pixels. `count` None
    draws it geometric (SIM_STOP_P); eval's sweep passes a fixed count. Each patch's side is uniform in
    `sides`, its corner Gaussian around the centre of the real area (sd a quarter of that area's side) and
    clipped into it; its colour is the mean true ab over the real pixels it covers. A sample without real
    pixels (loader padding) gets no points.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    if count is None:
        count = min(int(rng.geometric(SIM_STOP_P)) - 1, SIM_MAX_POINTS)
    y_lo, y_hi, x_lo, x_hi = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    points: list[HintPoint] = []
    for _ in range(count):
        side = int(rng.integers(sides[0], sides[1] + 1))
        side = min(side, y_hi - y_lo, x_hi - x_lo)
        corner = []
        for lo, hi in ((y_lo, y_hi), (x_lo, x_hi)):
            span = hi - lo - side + 1  # corners that keep the whole patch inside
            c = rng.normal(lo + (span - 1) / 2, (hi - lo) / 4)
            corner.append(int(np.clip(round(c), lo, lo + span - 1)))
        y0, x0 = corner
        real = mask[y0:y0 + side, x0:x0 + side]
        if not real.any():  # the patch fell on padding inside the bounding box (not in pad fits)
            continue
        patch = ab[y0:y0 + side, x0:x0 + side][real].astype(np.float64)
        a, b = patch.mean(axis=0)
        points.append(HintPoint(x=x0 + (side - 1) / 2, y=y0 + (side - 1) / 2, a=float(a), b=float(b), size=side))
    return points


def simulated_planes(ab: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                     count: int | None = None) -> np.ndarray:
    """The hint planes [HINT_CHANNELS, S, S] of `simulate_points` on one square sample (its own pixels are
    the model's, so `hint_planes` maps them one to one)."""
    s = int(mask.shape[0])
    return hint_planes(simulate_points(ab, mask, rng, count), s, s, s)


def simulated_batch(ab: np.ndarray, mask: np.ndarray, keys: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Training hints for a loader batch: float32 [B, HINT_CHANNELS, S, S], sample i drawn from
    `hint_rng(seed, epoch, keys[i])` (keys are the loader's global sample keys)."""
    out = np.zeros((len(keys), HINT_CHANNELS, *mask.shape[1:3]), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = simulated_planes(ab[i], mask[i], hint_rng(seed, epoch, int(key)))
    return out
