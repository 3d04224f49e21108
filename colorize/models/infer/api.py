"""The Python API: `colorize.load(path)` -> a `Model` that colors one photo at a time, in a notebook.

    import colorize
    model = colorize.load("run/best.pt")          # a checkpoint or a bundle folder; device=None: auto
    picture = model.colorize("grandma.png")       # a path, a PIL image or a uint8 numpy array -> PIL image
    conf = model.confidence("grandma.png")        # float32 [H, W] in 0..1: how much of the color was painted
    guided = model.colorize("grandma.png", hints="grandma.json")  # or [HintPoint/HintSpec, ...] or the dict

It is `colorize predict` without the folders: the same model object (a bundle routes each photo), the same
coloring path (`arrays.predict_sources`: mirror, decoding, gamut fit, full resolution in strips), and a
path is read as predict reads it (`dataset/scans.py`: ICC, orientation, the --max-pixels header check),
so a PNG comes back with the very pixels predict writes for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorize.dataset.hints import HintPoint
from colorize.dataset.scans import open_scan
from colorize.models.infer.arrays import ImagePrediction, as_sources
from colorize.models.infer.colorizer import Bundle, Colorizer, open_model
from colorize.models.infer.hintfile import HintSpec, parse_hints, read_hints
from colorize.models.infer.params import PREDICT_DEFAULTS
from colorize.models.net import DEFAULT_TEMPERATURE

ImageLike = Image.Image | np.ndarray | str | os.PathLike
HintsLike = str | os.PathLike | dict[str, Any] | Sequence[HintPoint | HintSpec] | None


def hint_points(hints: HintsLike, width: int, height: int) -> tuple[HintPoint, ...]:
    """What the API takes as hints -> the points, checked against the photo as a hints file is."""
    if hints is None:
        return ()
    if isinstance(hints, (str, os.PathLike)):
        return tuple(read_hints(hints, width, height))
    if isinstance(hints, dict):
        return tuple(parse_hints(hints, width, height))
    points = []
    for h in hints:
        if not isinstance(h, (HintPoint, HintSpec)):
            raise TypeError(f"hints must be HintPoint or HintSpec items, got {type(h).__name__}")
        points.append(h.point() if isinstance(h, HintSpec) else h)
    return tuple(points)


@dataclass
class Model:
    """A loaded checkpoint or bundle, coloring photos given as paths, PIL images or uint8 arrays."""

    engine: Colorizer | Bundle
    max_pixels: int = PREDICT_DEFAULTS.max_pixels  # paths larger than this are refused, as by predict

    def colorize(self, image: ImageLike, temperature: float = DEFAULT_TEMPERATURE,
                 hints: HintsLike = None) -> Image.Image:
        """The photo colorized at its own size, as an RGB PIL image (a 16-bit file comes back 8-bit;
        `colorize predict` writes 16-bit files). `hints`: a hints file's path, its parsed dict, or a list
        of `HintPoint`/`HintSpec` in the photo's pixels, as `predict --hints` takes them."""
        rgb = self.predict(image, temperature, hints).color(0)
        if rgb.dtype == np.uint16:
            rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return Image.fromarray(rgb, "RGB")

    __call__ = colorize

    def confidence(self, image: ImageLike) -> np.ndarray:
        """Per pixel, the share of the predicted color that was painted (float32 [H, W], 0..1): low where
        the model was unsure and kept the photo near gray; what `predict --confidence` draws."""
        return self.predict(image, DEFAULT_TEMPERATURE).confidence_map()

    def predict(self, image: ImageLike, temperature: float, hints: HintsLike = None) -> ImagePrediction:
        """The one call into the coloring path for this API (a bundle picks the photo's route inside)."""
        source = self._source(image)
        source.hints = hint_points(hints, source.width, source.height)
        return self.engine.predict([source], [float(temperature)])[0]

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
