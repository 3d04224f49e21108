"""Inference on arrays: one uint8 RGB photo in, the colorized photo (and its bin probabilities) out.

Shared by predict, eval, routing, the turing study and the demo; the file/folder/video command lives in
`predict.py`. How an image is colorized (and why):
- The network sees the photo's lightness fitted into its square exactly as training did (Lanczos, pad +
  mask), so a result does not depend on how large the input was.
- The output keeps the input's own full-resolution L; only ab comes from the model, cropped to the real
  (unpadded) area and upsampled bicubic. Fine detail therefore stays as sharp as the original.
- Out-of-gamut colors are brought into sRGB by reducing chroma at constant L and hue (`gamut.py`), so the
  output's L matches the input's L up to the output's rounding.
- Full resolution is composed in strips (`strips.py`): memory stays bounded for 100-megapixel scans, and
  16-bit inputs keep 16 bits.
Color inputs are used through their L only, i.e. they are turned gray first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from colorize.dataset.color import decode_l, rgb_to_stored
from colorize.dataset.hints import HINT_AB_SCALE, HintPoint, hint_planes
from colorize.dataset.images import fit, fit_geometry
from colorize.errors import UsageError
from colorize.models.infer.strips import Upsampler, compose_full
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.models.net.colors import DecodedMaps
from colorize.models.net.propagation import keep_hints

__all__ = ["Framing", "ImagePrediction", "RGBArray", "as_sources", "colorize_rgb", "hint_input", "honour_hints",
           "model_decoded", "model_probs", "net_input", "parse_temperatures", "predict_images", "predict_sources",
           "predictions"]

log = logging.getLogger(__name__)


def parse_temperatures(value: str | float | Sequence[float]) -> list[float]:
    """'0.38' or '0.2,0.38,1.0' (or numbers) -> a list of distinct temperatures > 0, in the given order."""
    items = [value] if isinstance(value, (int, float)) else (
        [v for v in str(value).split(",") if v.strip()] if isinstance(value, str) else list(value))
    try:
        temps = [float(v) for v in items]
    except ValueError:
        temps = []
    if not temps or any(not (math.isfinite(t) and t > 0) for t in temps):
        raise UsageError(f"--temperature {value!r} is not a positive number or a comma-separated list of them",
                         "e.g. --temperature 0.38 or --temperature 0.2,0.38,1.0")
    return list(dict.fromkeys(temps))


@dataclass(frozen=True)
class Framing:
    """Where a photo of `height` x `width` sits inside the model's square (the pad fit of training)."""

    height: int
    width: int
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, height: int, width: int, size: int) -> Framing:
        _, (w, h), (x, y) = fit_geometry(width, height, size, "pad")
        return cls(height, width, x, y, w, h)

    def real(self, size: int) -> np.ndarray:
        """The photo's real (unpadded) area of the model's square, bool [size, size]."""
        mask = np.zeros((size, size), bool)
        mask[self.y:self.y + self.h, self.x:self.x + self.w] = True
        return mask

    def upsample(self, plane: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
        """A model-size map [S,S(,C)] -> the photo's full size, using only the unpadded area."""
        crop = np.ascontiguousarray(plane[self.y:self.y + self.h, self.x:self.x + self.w], dtype=np.float32)
        if (self.w, self.h) == (self.width, self.height):
            return crop
        out = cv2.resize(crop, (self.width, self.height), interpolation=interpolation)
        return out.reshape((self.height, self.width) + plane.shape[2:])


def model_probs(colorizer: Any, L_small: np.ndarray, hints: np.ndarray | None = None) -> torch.Tensor:
    """uint8 [B,S,S] (+ hint planes float32 [B,3,S,S] or None) -> bin probabilities [B,n,S,S] on the
    colorizer's device (pinned copy + AMP on CUDA)."""
    return _on_device(colorizer, L_small, hints, lambda t, h: colorizer.probs(t, h))


def model_decoded(colorizer: Any, L_small: np.ndarray, hints: np.ndarray | None,
                  temperatures: Sequence[float]) -> DecodedMaps:
    """`model_probs`, decoded at each temperature (`Colorizer.decoded`): what coloring a photo needs."""
    return _on_device(colorizer, L_small, hints, lambda t, h: colorizer.decoded(t, h, temperatures))


def _on_device(colorizer: Any, L_small: np.ndarray, hints: np.ndarray | None, call: Any) -> Any:
    from colorize.models.net.runtime import amp_dtype, autocast

    t = torch.from_numpy(np.ascontiguousarray(L_small))
    h = None if hints is None else torch.from_numpy(np.ascontiguousarray(hints, dtype=np.float32))
    device = colorizer.device
    if device.type == "cuda":
        t = t.pin_memory()
    with autocast(device, amp_dtype(device, True)):  # bf16/fp16 on CUDA only; probs come back float32
        return call(t, h)


@dataclass
class RGBArray:
    """A uint8 RGB photo in memory as a strip source (what eval, turing and the API pass)."""

    rgb: np.ndarray
    depth: int = 8
    hints: tuple[HintPoint, ...] = ()  # colour hints in this photo's pixels (none: the automatic colouring)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def columns(self, x0: int, x1: int) -> np.ndarray:
        return self.rgb[:, x0:x1]

    def fitted(self, size: int, mode: str = "pad") -> np.ndarray:
        return fit(self.rgb, size, mode)[0]


@dataclass
class ImagePrediction:
    """A photo's prediction: model-size ab per temperature and confidence maps; the full-resolution
    pictures are composed from them strip by strip on request (`color`, `gray`), never all at once."""

    source: Any  # strips.Lightness with .fitted(): an RGBArray or a dataset.scans.Scan
    ab_maps: list[np.ndarray]  # float32 [S, S, 2], one per temperature
    chroma_conf: np.ndarray  # float32 [S, S]: the chroma confidence decoding used (annealed.chroma_confidence)
    framing: Framing
    route: dict[str, Any] | None = None  # a bundle's choice for this photo (bundle.RouteChoice.info())
    _colors: list[np.ndarray] | None = field(default=None, repr=False)

    def color(self, i: int = 0, out: np.ndarray | None = None, desc: str | None = None) -> np.ndarray:
        """The photo colorized at temperature number `i`, full size (uint8, or uint16 for 16-bit input)."""
        return compose_full(self.source, Upsampler(self.framing, self.ab_maps[i]), out, desc)

    def gray(self, out: np.ndarray | None = None) -> np.ndarray:
        """What the black-and-white input looks like (ab = 0), full size."""
        return compose_full(self.source, None, out)

    @property
    def colors(self) -> list[np.ndarray]:
        """Every temperature's full picture, kept (for photos in memory: eval, turing, the API)."""
        if self._colors is None:
            self._colors = [self.color(i) for i in range(len(self.ab_maps))]
        return self._colors

    def confidence_map(self) -> np.ndarray:
        """The chroma confidence at the photo's full size (float32 [H, W], bilinear from the model's size)."""
        return self.framing.upsample(self.chroma_conf, cv2.INTER_LINEAR)

    def mean_confidence(self) -> float:
        f = self.framing
        return float(self.chroma_conf[f.y:f.y + f.h, f.x:f.x + f.w].mean())


def net_input(sources: Sequence[Any], size: int) -> np.ndarray:
    """What the network sees of each photo: its lightness fitted into the square as training did
    (uint8 [B,S,S]), through prep's own encoding (`rgb_to_stored`). The hint planes beside it come from
    `hint_input`, through the same pad fit."""
    return np.stack([rgb_to_stored(s.fitted(size))[0] for s in sources])


def hint_input(sources: Sequence[Any], size: int) -> np.ndarray | None:
    """Each photo's `hints` (points in its own pixels) as the net's hint planes float32 [B,3,S,S], rasterised
    into the model's square by `hints.hint_planes` with the pad fit `net_input` uses. None when no photo of
    the batch has a point: the automatic input, so an empty hints list colours exactly as no hints file."""
    if not any(getattr(s, "hints", ()) for s in sources):
        return None
    return np.stack([hint_planes(getattr(s, "hints", ()), s.height, s.width, size) for s in sources])


def predictions(colorizer: Any, sources: Sequence[Any], maps: DecodedMaps) -> list[ImagePrediction]:
    """The decoded maps of `sources` (`model_decoded`, or `colors.decode_maps` of probabilities already held)
    -> one ImagePrediction each."""
    return [ImagePrediction(s, [ab[i] for ab in maps.ab], maps.chroma[i],
                            Framing.of(s.height, s.width, colorizer.size)) for i, s in enumerate(sources)]


def honour_hints(preds: Sequence[ImagePrediction], L_small: np.ndarray, planes: np.ndarray) -> None:
    """The last step with hints: each hinted photo's ab maps (every temperature) plus the edge-aware
    propagation of what the network missed at its hinted pixels (`propagation.keep_hints`, over the photo's
    real area of the square). The hints are then kept exactly, and the colours between them move with
    them (README "Colour hints in training" gives what it is worth on bench_quality). Photos without a point
    are left as they are."""
    for pred, L_u8, plane in zip(preds, L_small, planes):
        hinted = plane[2] > 0
        if not hinted.any():
            continue
        hint_ab = np.moveaxis(plane[:2], 0, -1) * np.float32(HINT_AB_SCALE)
        pred.ab_maps = keep_hints(decode_l(L_u8), pred.ab_maps, hint_ab, hinted, pred.framing.real(len(hinted)))


def predict_sources(colorizer: Any, sources: Sequence[Any], temperatures: Sequence[float]) -> list[ImagePrediction]:
    """THE coloring path: a batch of photos (any sizes, in memory or file-backed) and their hints through one
    forward pass of one colorizer (with the mirror), decoded, the hints then kept (`honour_hints`); composed
    at full resolution (gamut fit, strips) on request by `ImagePrediction.color`. Bundles route each photo
    first (`Bundle.predict`), then come here."""
    L_small, planes = net_input(sources, colorizer.size), hint_input(sources, colorizer.size)
    preds = predictions(colorizer, sources, model_decoded(colorizer, L_small, planes, temperatures))
    if planes is not None:
        honour_hints(preds, L_small, planes)
    return preds


def as_sources(rgbs: Sequence[np.ndarray]) -> list[RGBArray]:
    """uint8 RGB photos in memory as strip sources (checked: a wrong array is a TypeError, not odd colors)."""
    for rgb in rgbs:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise TypeError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    return [RGBArray(rgb) for rgb in rgbs]


def predict_images(model: Any, rgbs: Sequence[np.ndarray], temperatures: Sequence[float]) -> list[ImagePrediction]:
    """Colorize a batch of uint8 RGB photos (any sizes) with a Colorizer or a Bundle."""
    return model.predict(as_sources(rgbs), temperatures)


def colorize_rgb(model: Any, rgb_u8: np.ndarray, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """uint8 RGB [H,W,3] -> colorized uint8 RGB of the same size (a Colorizer or a Bundle)."""
    return predict_images(model, [rgb_u8], [temperature])[0].color(0)
