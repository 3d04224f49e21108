"""Pictures made from one prediction for people to look at: confidence maps and temperature strips.

They turn a prediction into images, so the run loops (predict, video, eval) stay about computing;
the eval report and the predict command both show them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from colorize.models.infer.arrays import Framing

# The confidence ratio first/second is shown on a log scale from 1 (two colors tie) to this (sure).
RATIO_SCALE_MAX = 10.0
STRIP_MAX_HEIGHT = 512
CONFIDENCE_MAX_SIDE = 8192  # the old 40 MP cap's "8K": every photo earlier versions took keeps its map


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


def confidence_image(top: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Two labelled viridis panels side by side: top probability (0..1) and first/second ratio (log 1..10)."""
    ratio_01 = np.log(np.clip(ratio, 1.0, RATIO_SCALE_MAX)) / math.log(RATIO_SCALE_MAX)
    left = _label(colormap_image(np.clip(top, 0.0, 1.0)), "top probability")
    right = _label(colormap_image(ratio_01), f"1st/2nd ratio (log 1..{RATIO_SCALE_MAX:g})")
    gap = np.full((left.shape[0], max(2, left.shape[1] // 100), 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def strip_image(panels: Sequence[tuple[str, np.ndarray]], max_height: int = STRIP_MAX_HEIGHT) -> np.ndarray:
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
        f = Framing.of(max(1, round(f.height * scale)), max(1, round(f.width * scale)), pred.top.shape[0])
    return confidence_image(f.upsample(pred.top, cv2.INTER_LINEAR), f.upsample(pred.ratio, cv2.INTER_LINEAR))
