"""`colorize eval --hints-sweep 0,1,2,5,10,20,50`: what a few colour hints are worth, Zhang et al. 2017's protocol.

For every eval photo and every count n, a simulated user places n points: `hints.simulate_points` (the
sampler training uses, here with a fixed count) draws them at the model's size from the photo's true ab
inside its real (unpadded) area, seeded by (SWEEP_SEED, photo number), so the points of n are the first n
of any larger count and a rerun draws the same ones. Each patch's colour is the true mean ab over the
patch. The points are mapped to the photo's own pixels and colour it through the one colouring path
(`model.predict` with `RGBArray(hints=...)`, exactly `predict --hints`), scored at full size like the
automatic table. The classical baseline gets the very same hint planes: Levin et al. 2004's propagation
(`propagation.py`) at the model's size, composed with the photo's L exactly as the network's ab is
(`strips.compose_full`, gamut fit). Also measured: how closely the output honours a hint, the mean
|ab - hint ab| (CIELAB units) over the hinted patches' pixels of the full-size output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset.color import rgb_to_lab
from colorize.dataset.hints import (
    HINT_AB_SCALE,
    SIM_PATCH_SIDES,
    HintPoint,
    hint_planes,
    hint_rng,
    simulate_points,
)
from colorize.dataset.images import fit
from colorize.errors import UsageError
from colorize.models.infer.arrays import Framing, RGBArray
from colorize.models.infer.hintfile import MAX_HINT_POINTS
from colorize.models.infer.strips import Upsampler, compose_full
from colorize.models.net.metrics import ImageScores, Totals
from colorize.models.net.propagation import propagate

__all__ = ["HintSweep", "SWEEP_SEED", "parse_counts", "sweep_points"]

SWEEP_SEED = 2017  # the simulated user's seed (the year of the protocol); one photo's stream is its number
METHODS = ("model", "propagation")
SHOWN = ("images", "psnr", "auc_rebalanced", "delta_cf", "ssim")  # of each Totals summary, in eval.json


def parse_counts(value: str | Sequence[int]) -> list[int]:
    """'0,1,2,5,10,20,50' -> the distinct counts, ascending, each 0..MAX_HINT_POINTS."""
    items = str(value).split(",") if isinstance(value, str) else list(value)
    try:
        counts = sorted({int(str(v).strip()) for v in items if str(v).strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 0 or counts[-1] > MAX_HINT_POINTS:
        raise UsageError(f"--hints-sweep {value!r} is not a list of point counts 0..{MAX_HINT_POINTS}",
                         "e.g. --hints-sweep 0,1,2,5,10,20,50")
    return counts


def sweep_points(rgb: np.ndarray, size: int, count: int, number: int) -> tuple[HintPoint, ...]:
    """The simulated user's `count` points on photo `number` (truth uint8 RGB [H,W,3]), in the photo's pixels:
    drawn at model size in the real area of the pad fit, mapped back through the same framing."""
    h, w = rgb.shape[:2]
    f = Framing.of(h, w, size)
    ab = rgb_to_lab(fit(rgb, size, "pad")[0])[..., 1:]
    small = simulate_points(ab, f.real(size), hint_rng(SWEEP_SEED, 0, number), count)
    sx, sy = w / f.w, h / f.h
    return tuple(HintPoint(x=min(max((p.x - f.x + 0.5) * sx - 0.5, 0.0), w - 1.0),
                           y=min(max((p.y - f.y + 0.5) * sy - 0.5, 0.0), h - 1.0),
                           a=p.a, b=p.b, size=max(1, round(p.size * sx))) for p in small)


def hint_error(picture: np.ndarray, points: Sequence[HintPoint]) -> tuple[float, int]:
    """(sum of |ab - hint ab| over the hinted patches' pixels of a full-size picture, pixel count)."""
    total, n = 0.0, 0
    h, w = picture.shape[:2]
    for p in points:
        x0 = min(max(round(p.x - (p.size - 1) / 2), 0), w - 1)
        y0 = min(max(round(p.y - (p.size - 1) / 2), 0), h - 1)
        patch = picture[y0:y0 + p.size, x0:x0 + p.size]
        ab = rgb_to_lab(np.ascontiguousarray(patch))[..., 1:].astype(np.float64)
        total += float(np.hypot(ab[..., 0] - p.a, ab[..., 1] - p.b).sum())
        n += int(ab.shape[0] * ab.shape[1])
    return total, n


def propagated(rgb: np.ndarray, size: int, points: Sequence[HintPoint]) -> np.ndarray:
    """The propagation baseline's picture of a photo with `points`: Levin et al. at the model's size over
    the real area, from the network's own hint planes, composed at full size as the network's ab is."""
    h, w = rgb.shape[:2]
    f = Framing.of(h, w, size)
    L = rgb_to_lab(fit(rgb, size, "pad")[0])[..., 0]
    planes = hint_planes(points, h, w, size)
    ab = propagate(L, np.moveaxis(planes[:2], 0, -1) * HINT_AB_SCALE, planes[2] > 0, f.real(size))
    return compose_full(RGBArray(rgb), Upsampler(f, ab))


@dataclass
class HintSweep:
    """The sweep as an eval extension: sees every batch, keeps totals per (method, count)."""

    model: Any  # a Colorizer or a Bundle (hints go to the routed model)
    counts: list[int]
    temperature: float
    key: str = "hints_sweep"
    seen: int = 0
    totals: dict[tuple[str, int], Totals] = field(default_factory=dict)
    errors: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def _keep(self, method: str, count: int, scores: ImageScores, err: tuple[float, int]) -> None:
        self.totals.setdefault((method, count), Totals()).add(scores)
        acc = self.errors.setdefault((method, count), [0.0, 0.0])
        acc[0] += err[0]
        acc[1] += err[1]

    def add(self, batch: Sequence[Any], gray: Sequence[ImageScores], score: Any) -> None:
        size = self.model.size
        numbers = range(self.seen, self.seen + len(batch))
        self.seen += len(batch)
        for count in self.counts:
            points = [sweep_points(s.rgb, size, count, k) for s, k in zip(batch, numbers)]
            sources = [RGBArray(s.rgb, hints=p) for s, p in zip(batch, points)]
            for sample, pts, pred in zip(batch, points, self.model.predict(sources, [self.temperature])):
                picture = pred.colors[0]
                self._keep("model", count, score(picture, sample.rgb), hint_error(picture, pts))
                baseline = propagated(sample.rgb, size, pts)
                self._keep("propagation", count, score(baseline, sample.rgb), hint_error(baseline, pts))

    def tables(self) -> dict[str, Any]:
        rows = []
        for count in self.counts:
            row: dict[str, Any] = {"points": count}
            for method in METHODS:
                summary = self.totals[(method, count)].summary() if (method, count) in self.totals else {}
                err_sum, err_n = self.errors.get((method, count), [0.0, 0.0])
                row[method] = {**{k: _round(summary.get(k)) for k in SHOWN},
                               "hint_ab_error": _round(err_sum / err_n) if err_n else None}
            rows.append(row)
        return {"protocol": {"seed": SWEEP_SEED, "drawn_at": "model size, from the true ab, mapped to photo pixels",
                             "patch_sides_model_px": list(SIM_PATCH_SIDES), "temperature": self.temperature,
                             "baseline": "propagation: Levin, Lischinski, Weiss 2004"}, "rows": rows}

    def write(self, out: Path, result: dict[str, Any]) -> None:
        """Nothing of its own: report.html draws the sweep from eval.json."""


def _round(v: Any) -> Any:
    return round(v, 6) if isinstance(v, float) and v == v else (None if isinstance(v, float) else v)
