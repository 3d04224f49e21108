"""What the editor tests share: a photo file and a tiny model, with or without colour hint channels.

`colorizer(hints=True)` is a real ColorUNet with hint channels whose head starts where training starts
(`init_hint_head`: a hinted pixel paints the hint's colour), so the editor's hinted path runs for real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from colorize.imaging import write_image
from colorize.models.infer.colorizer import Colorizer
from colorize.models.net.checkpoint import save_checkpoint, untrained_payload

# 49 bins on a 20-unit grid: fine enough for several distinct modes per pixel.
GRID_CENTERS = np.array([[a, b] for a in range(-60, 61, 20) for b in range(-60, 61, 20)], np.float32)


def photo(path: Path, width: int = 240, height: int = 160) -> Path:
    """A gray-ish photo with some structure (gradients and a square), written as PNG."""
    yy, xx = np.mgrid[0:height, 0:width]
    g = (40 + 150 * xx / width + 40 * np.sin(yy / 9.0)).astype(np.uint8)
    rgb = np.stack([g, g, g], -1)
    rgb[height // 4: height // 2, width // 4: width // 2] = 200
    write_image(path, rgb)
    return path


def _payload(hints: bool, size: int, seed: int) -> tuple[dict, Colorizer]:
    payload = untrained_payload(GRID_CENTERS, size=size, width=4, seed=seed, hint_channels=3 if hints else 0)
    col = Colorizer.from_payload(payload, torch.device("cpu"))
    with torch.no_grad():  # decisive heads: strong, varied colours (as conftest's `vivid`)
        col.model.head.weight.mul_(40.0)
        col.model.init_hint_head(torch.as_tensor(GRID_CENTERS))
    payload["model"] = {k: v.clone() for k, v in col.model.state_dict().items()}
    return payload, col


def colorizer(hints: bool, size: int = 32, seed: int = 1) -> Colorizer:
    """A tiny untrained model over GRID_CENTERS; with `hints`, a net with hint channels whose head starts
    as `init_hint_head` sets it (a hinted pixel paints the hint's colour), without them the old L-only net."""
    return _payload(hints, size, seed)[1]


def checkpoint(path: Path, hints: bool, size: int = 32, seed: int = 1) -> Path:
    """`colorizer(hints)` written as a checkpoint file (what predict, the CLI and the API load)."""
    save_checkpoint(path, _payload(hints, size, seed)[0])
    return path
