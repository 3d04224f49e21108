"""What the editor tests share: a photo file, a tiny model, and a tiny net that takes colour hints.

Today's ColorUNet has no hint input, so `HintUNet` (a ColorUNet whose logits are pulled, inside hinted
patches, towards the bin nearest the hint's ab) stands in for a hint-trained network: the editor's
hinted path (`engine.colour_with_hints`) runs for real against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from colorize.dataset.hints import HINT_AB_SCALE
from colorize.imaging import write_image
from colorize.models.infer.colorizer import Colorizer
from colorize.models.net.checkpoint import untrained_payload
from colorize.models.net.unet import ColorUNet

# 49 bins on a 20-unit grid: fine enough for several distinct modes per pixel.
GRID_CENTERS = np.array([[a, b] for a in range(-60, 61, 20) for b in range(-60, 61, 20)], np.float32)


class HintUNet(ColorUNet):
    """A ColorUNet with a hint input: in a hinted pixel the bin nearest the hint's ab wins."""

    accepts_hints = True

    def __init__(self, centers: np.ndarray, width: int = 4) -> None:
        super().__init__(len(centers), width)
        self.register_buffer("centers", torch.as_tensor(centers))

    def forward(self, x: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        logits = super().forward(x)
        if hints is None:
            return logits
        ab = hints[:, :2] * HINT_AB_SCALE  # [B,2,S,S]
        d2 = ((ab[:, None] - self.centers[None, :, :, None, None]) ** 2).sum(2)  # [B,n,S,S]
        return logits - hints[:, 2:3] * d2


def photo(path: Path, width: int = 240, height: int = 160) -> Path:
    """A gray-ish photo with some structure (gradients and a square), written as PNG."""
    yy, xx = np.mgrid[0:height, 0:width]
    g = (40 + 150 * xx / width + 40 * np.sin(yy / 9.0)).astype(np.uint8)
    rgb = np.stack([g, g, g], -1)
    rgb[height // 4: height // 2, width // 4: width // 2] = 200
    write_image(path, rgb)
    return path


def colorizer(hints: bool, size: int = 32, seed: int = 1) -> Colorizer:
    """A tiny untrained model over GRID_CENTERS; with `hints`, its net is a HintUNet (same weights)."""
    payload = untrained_payload(GRID_CENTERS, size=size, width=4, seed=seed)
    col = Colorizer.from_payload(payload, torch.device("cpu"))
    if hints:
        net = HintUNet(GRID_CENTERS, 4)
        net.load_state_dict({**payload["model"], "centers": net.centers}, strict=True)
        col.model = net.eval()
    with torch.no_grad():  # decisive heads: strong, varied colours (as conftest's `vivid`)
        col.model.head.weight.mul_(40.0)
    return col
