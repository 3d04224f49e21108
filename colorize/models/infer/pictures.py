"""Pictures made from one prediction for people to look at: confidence maps and temperature sheets.

They turn a prediction into images, so the run loops (predict, video, eval) stay about computing;
the eval report and the predict command both show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from colorize.models.infer.arrays import Framing

SHEET_MAX_HEIGHT = 512
CONFIDENCE_MAX_SIDE = 8192  # the old 40 MP cap's "8K": every photo earlier versions took keeps its map
# A confidence map is stretched between these percentiles of its values (its real range, robust to a
# few stray pixels); an all-equal map is shown around its value with this half-width.
STRETCH_PERCENTILES = (1.0, 99.0)
_MIN_SPAN = 0.02
LEGEND_HEIGHT = 28


def colormap_image(values01: np.ndarray) -> np.ndarray:
    """[0,1] float -> viridis uint8 RGB (perceptually ordered, readable by color-blind viewers)."""
    u8 = np.clip(np.rint(values01 * 255.0), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """A white caption bar above `panel`, sized to the panel so it reads at any resolution."""
    h, w = panel.shape[:2]
    bar = max(18, min(64, h // 12))
    scale = bar / 40.0
    thickness = max(1, round(scale * 1.5))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if tw > w - 4:  # narrow panel: shrink the text to fit rather than cut it off
        scale *= (w - 4) / tw
        thickness = 1
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    head = np.full((bar, w, 3), 255, np.uint8)
    org = (max(2, (w - tw) // 2), (bar + th) // 2)
    cv2.putText(head, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thickness, cv2.LINE_AA)
    return np.concatenate([head, panel], axis=0)


def stretch_range(*maps: np.ndarray) -> tuple[float, float]:
    """(lo, hi) that spans the real values of one or more confidence maps (percentiles, pooled)."""
    values = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, STRETCH_PERCENTILES))
    if hi - lo < _MIN_SPAN:
        mid = (lo + hi) / 2
        lo, hi = max(0.0, mid - _MIN_SPAN / 2), min(1.0, mid + _MIN_SPAN / 2)
    return lo, hi


def stretched_image(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A confidence map as viridis, `lo` darkest and `hi` brightest (so its real range uses every color)."""
    return colormap_image(np.clip((np.asarray(values, np.float32) - lo) / max(hi - lo, 1e-9), 0.0, 1.0))


def legend_image(lo: float, hi: float, width: int = 320, height: int = LEGEND_HEIGHT) -> np.ndarray:
    """The key to a stretched map: the viridis ramp from `lo` to `hi`, with both values written on it."""
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, width))
    out = colormap_image(ramp)
    scale = height / 40.0
    for text, x, color in ((f"{lo:.2f} gray", 3, (255, 255, 255)), (f"{hi:.2f} color", None, (20, 20, 20))):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = (x if x is not None else width - tw - 3, (height + th) // 2)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return out


def confidence_image(conf: np.ndarray) -> np.ndarray:
    """The chroma confidence (the share of the predicted color that was painted), stretched to its range,
    with a legend below it that gives the range."""
    lo, hi = stretch_range(conf)
    panel = _label(stretched_image(conf, lo, hi), "confidence (dark = kept near gray)")
    legend = legend_image(lo, hi, width=panel.shape[1], height=max(LEGEND_HEIGHT, panel.shape[0] // 16))
    return np.concatenate([panel, legend], axis=0)


def temperature_sheet(panels: Sequence[tuple[str, np.ndarray]], max_height: int = SHEET_MAX_HEIGHT) -> np.ndarray:
    """Labelled panels (e.g. gray input and each temperature) side by side, each at most `max_height` tall.
    Panels already shrunk (`strips.shrink`, as predict does one full-size picture at a time) stay as given."""
    h, w = panels[0][1].shape[:2]
    scale = min(1.0, max_height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = []
    for i, (label, rgb) in enumerate(panels):
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.append(_label(small, label))
        if i < len(panels) - 1:
            out.append(np.full((out[-1].shape[0], max(2, size[0] // 100), 3), 255, np.uint8))
    return np.concatenate(out, axis=1)


def confidence_picture(pred: Any) -> np.ndarray:
    """The confidence map of one `arrays.ImagePrediction` at the photo's size, but at most
    `CONFIDENCE_MAX_SIDE` on the long side: it is drawn from a model-size map, and at a scan's 100 MP it
    would cost more memory than the colorized scan itself."""
    f = pred.framing
    scale = min(1.0, CONFIDENCE_MAX_SIDE / max(f.height, f.width))
    if scale < 1.0:
        f = Framing.of(max(1, round(f.height * scale)), max(1, round(f.width * scale)), pred.chroma_conf.shape[0])
    return confidence_image(f.upsample(pred.chroma_conf, cv2.INTER_LINEAR))
