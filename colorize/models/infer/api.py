"""The Python API: `colorize.load(path)` -> a `Model` that colors one photo at a time, in a notebook.

    import colorize
    model = colorize.load("run/best.pt")          # a checkpoint or a bundle folder; device=None: auto
    picture = model.colorize("grandma.png")       # a path, a PIL image or a uint8 numpy array -> PIL image
    conf = model.confidence("grandma.png")        # float32 [H, W] in 0..1: how much of the color was painted

It is `colorize predict` without the folders: the same model object (a bundle routes each photo), the same
coloring path (`arrays.predict_sources`: mirror, decoding, gamut fit, full resolution in strips), and a
path is read as predict reads it (`dataset/scans.py`: ICC, orientation, the --max-pixels header check),
so a PNG comes back with the very pixels predict writes for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorize.dataset.scans import open_scan
from colorize.models.infer.arrays import ImagePrediction, as_sources
from colorize.models.infer.colorizer import Bundle, Colorizer, open_model
from colorize.models.infer.params import PREDICT_DEFAULTS
from colorize.models.net import DEFAULT_TEMPERATURE

ImageLike = Image.Image | np.ndarray | str | os.PathLike


@dataclass
class Model:
    """A loaded checkpoint or bundle, coloring photos given as paths, PIL images or uint8 arrays."""

    engine: Colorizer | Bundle
    max_pixels: int = PREDICT_DEFAULTS.max_pixels  # paths larger than this are refused, as by predict

    def colorize(self, image: ImageLike, temperature: float = DEFAULT_TEMPERATURE) -> Image.Image:
        """The photo colorized at its own size, as an RGB PIL image (a 16-bit file comes back 8-bit;
        `colorize predict` writes 16-bit files)."""
        rgb = self.predict(image, temperature).color(0)
        if rgb.dtype == np.uint16:
            rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return Image.fromarray(rgb, "RGB")

    __call__ = colorize

    def confidence(self, image: ImageLike) -> np.ndarray:
        """Per pixel, the share of the predicted color that was painted (float32 [H, W], 0..1): low where
        the model was unsure and kept the photo near gray; what `predict --confidence` draws."""
        return self.predict(image, DEFAULT_TEMPERATURE).confidence_map()

    def predict(self, image: ImageLike, temperature: float) -> ImagePrediction:
        """The one call into the coloring path for this API (a bundle picks the photo's route inside)."""
        return self.engine.predict([self._source(image)], [float(temperature)])[0]

    def _source(self, image: ImageLike) -> Any:
        if isinstance(image, (str, os.PathLike)):
            return open_scan(Path(image), self.max_pixels)
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        rgb = np.asarray(image)
        if rgb.ndim == 2:  # gray g is (g, g, g): the same lightness
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        return as_sources([np.ascontiguousarray(rgb)])[0]


def load(path: str | os.PathLike, device: str | None = None) -> Model:
    """A checkpoint (.pt) or a bundle folder, on `device` ("cpu", "cuda"; None picks the best there is)."""
    return Model(open_model(Path(path), device or "auto"))
