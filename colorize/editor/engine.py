"""The editor's colouring engine: one photo, one model, and what the page asks of them.

The server talks to an `Engine` only (a Protocol: a test or another colouring path can stand in):
- `preview(points)`: PNG of the photo coloured with those hints at preview size (long side `PREVIEW_SIDE`);
- `suggest(x, y)`: the main modes of the model's automatic colour distribution at that pixel, as hex
  colours at the pixel's own lightness (in gamut), the way ideepcolor offers them (Zhang et al. 2017);
- `save(specs)`: the hints file and the full-resolution colour image, as `colorize predict` names them.

`ModelEngine` is the real one. The network runs once per change at its own square size (as predict does:
the photo's fitted copy, its hint planes through the same pad fit; the trunk, which sees L only, is
computed at the first colouring and reused by `unet.TrunkMemo`, so a change costs the head, the hint
spread and the propagation that keeps the hints); only the last step, composing the
predicted ab with the photo's own lightness, runs at preview size, and at full size when saving. So the
preview is the saved picture made smaller, not a different colouring.

Every coloured picture goes through `colour_with_hints`, i.e. predict's own path (`arrays.predict_sources`),
and saving writes with predict's writer, so `predict --hints` on the saved file gives the saved image.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from colorize.dataset import MAX_SCAN_PIXELS
from colorize.dataset.color import lab_to_rgb, rgb_to_lab
from colorize.dataset.hints import HintPoint
from colorize.dataset.scans import Scan, open_scan
from colorize.errors import ColorizeError, UsageError
from colorize.imaging import encode_image
from colorize.io import sha256_file, write_run_record
from colorize.models.infer.arrays import (
    Framing,
    ImagePrediction,
    RGBArray,
    model_probs,
    net_input,
    predict_sources,
)
from colorize.models.infer.colorizer import Bundle, Colorizer, open_model
from colorize.models.infer.hintfile import HintSpec, read_hint_specs, write_hints
from colorize.models.infer.predict import write_picture
from colorize.models.infer.strips import Upsampler, compose_full
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.models.net.gamut import fit_gamut

log = logging.getLogger(__name__)

PREVIEW_SIDE = 512  # the preview's long side in pixels: sharp on a laptop screen, composed in milliseconds
SUGGESTIONS = (3, 5)  # at least / at most this many suggested colours per pixel (fewer only where L forbids)
PREVIEW_CACHE = 32  # recent previews kept by their points, so undo and redo are instant
PREVIEW_PNG_LEVEL = 1  # zlib level of preview PNGs: 3x faster to encode than 6, sent over 127.0.0.1 only


class Engine(Protocol):
    """What the editor's server needs from a colouring engine (see the module docstring)."""

    name: str  # the photo's file name, for the page's title
    width: int  # the photo's size as displayed (hint coordinates are in these pixels)
    height: int
    preview_width: int
    preview_height: int
    initial: list[HintSpec]  # the points of an earlier session's hints file, continued
    hints_path: Path  # where `save` writes the hints file

    def photo_png(self) -> bytes: ...

    def preview(self, points: Sequence[HintPoint]) -> bytes: ...

    def suggest(self, x: float, y: float) -> list[str]: ...

    def save(self, specs: Sequence[HintSpec]) -> tuple[Path, Path]: ...


# ------------------------------------------------------------------------------------- the hinted path
def colour_with_hints(colorizer: Colorizer, source: Any, points: Sequence[HintPoint],
                      temperature: float = DEFAULT_TEMPERATURE) -> ImagePrediction:
    """One photo (an `arrays.RGBArray` or a `scans.Scan`) coloured with hint `points` in its pixels, through
    the one colouring path (`arrays.predict_sources`, which makes the hint planes): what `predict --hints`
    gives for the same file. An empty list is the automatic prediction. Nothing is composed yet."""
    source.hints = tuple(points)
    return predict_sources(colorizer, [source], [temperature])[0]


# ----------------------------------------------------------------------------------------- suggestions
def grid_spacing(centers: np.ndarray) -> float:
    """The distance between neighbouring bin centres (bins sit on a square grid: `bins.grid_cells`)."""
    d = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1))
    positive = d[d > 1e-6]
    return float(positive.min()) if positive.size else 1.0


def mode_colours(probs: np.ndarray, centers: np.ndarray, L: float, most: int = SUGGESTIONS[1],
                 least: int = SUGGESTIONS[0]) -> list[str]:
    """The main modes of one pixel's distribution over bins, as distinct hex colours at lightness `L`.

    Peaks are taken greedily by probability; each claims its grid neighbours (the 8 around it) not claimed
    yet, so a mode spread over two bins is one mode, and a bin between two modes does not blend them. A
    mode's colour is the probability-weighted mean ab of what it claimed, brought into sRGB at constant L
    and hue; modes are offered by their mass, largest first. Where fewer than `least` modes exist (a
    distribution with one peak), the next bins by probability fill in.
    """
    near = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1)) <= 1.5 * grid_spacing(centers)
    claimed = np.zeros(len(probs), bool)
    modes: list[tuple[float, np.ndarray]] = []
    for i in np.argsort(-probs, kind="stable"):
        if len(modes) >= most:
            break
        if claimed[i]:
            continue
        mine = near[i] & ~claimed
        w = probs * mine
        modes.append((float(w.sum()), (w[:, None] * centers).sum(0) / max(float(w.sum()), 1e-12)))
        claimed |= mine
    modes.sort(key=lambda m: -m[0])
    abs_ = [ab for _, ab in modes]
    for i in np.argsort(-probs, kind="stable"):
        if len(abs_) >= least:
            break
        abs_.append(centers[i])
    ab = np.asarray(abs_, np.float32)[:, None, :]  # [k, 1, 2]
    L_map = np.full(ab.shape[:2], L, np.float32)
    fitted = fit_gamut(L_map, ab)
    rgb = lab_to_rgb(np.concatenate([L_map[..., None], fitted], axis=-1))[:, 0]
    hexes = ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in rgb]
    return list(dict.fromkeys(hexes))


# ----------------------------------------------------------------------------------------- the engine
def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def preview_pixels(scan: Scan, side: int = PREVIEW_SIDE) -> np.ndarray:
    """The photo at preview size as uint8 RGB (16-bit scaled to 8 like `images.decode`: (v + 128) // 257)."""
    full = scan.columns(0, scan.width)
    if full.dtype == np.uint16:
        full = ((full.astype(np.uint32) + 128) // 257).astype(np.uint8)
    pw, ph = preview_size(scan.width, scan.height, side)
    small = cv2.resize(full, (pw, ph), interpolation=cv2.INTER_AREA) if (pw, ph) != (scan.width, scan.height) else full
    small = small.reshape(ph, pw, -1)
    return np.ascontiguousarray(np.repeat(small, 3, axis=2) if small.shape[2] == 1 else small[..., :3])


def output_paths(image: Path, out_dir: Path, scan: Scan) -> tuple[Path, Path]:
    """(hints file, colour image) for `image`: `<stem>.json` (what `predict --hints FOLDER` matches) and
    `<stem>.color<ext>` (predict's name for the same photo)."""
    return out_dir / f"{image.stem}.json", out_dir / f"{image.stem}.color{scan.output_suffix}"


@dataclass
class ModelEngine:
    """The real engine: a loaded colorizer and one photo (see the module docstring)."""

    colorizer: Colorizer
    image: Path
    scan: Scan
    out_dir: Path
    model_path: Path | None = None
    temperature: float = DEFAULT_TEMPERATURE
    route: dict[str, Any] | None = None
    initial: list[HintSpec] = field(default_factory=list)
    _rgb: np.ndarray = field(init=False, repr=False)
    _auto: np.ndarray | None = field(default=None, init=False, repr=False)
    _cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.image.name
        self.width, self.height = self.scan.width, self.scan.height
        self.scan.fitted(self.colorizer.size)  # the network's copy, kept by the scan
        self._rgb = preview_pixels(self.scan)
        self.scan.release()  # only the preview and the network's copy stay in memory while editing
        self.preview_height, self.preview_width = self._rgb.shape[:2]
        self.hints_path, self.image_out = output_paths(self.image, self.out_dir, self.scan)
        if self.image_out.resolve() == self.image.resolve():
            raise ColorizeError(f"output {self.image_out} would overwrite the photo", "choose another --out folder")
        if self.hints_path.exists() and not self.initial:
            self.initial = read_hint_specs(self.hints_path, self.width, self.height)

    def photo_png(self) -> bytes:
        """What the network sees of the photo: its lightness alone (colour photos are used through L only)."""
        return encode_image(compose_full(RGBArray(self._rgb), None), ".png", compress_level=PREVIEW_PNG_LEVEL)

    def _preview_rgb(self, points: Sequence[HintPoint]) -> np.ndarray:
        pred = colour_with_hints(self.colorizer, self.scan, points, self.temperature)
        f = pred.framing  # the full photo's place in the square, drawn at preview size
        small = Framing(self.preview_height, self.preview_width, f.x, f.y, f.w, f.h)
        return compose_full(RGBArray(self._rgb), Upsampler(small, pred.ab_maps[0]))

    def preview(self, points: Sequence[HintPoint]) -> bytes:
        key = tuple(points)
        if key not in self._cache:
            self._cache[key] = encode_image(self._preview_rgb(points), ".png", compress_level=PREVIEW_PNG_LEVEL)
            while len(self._cache) > PREVIEW_CACHE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def suggest(self, x: float, y: float) -> list[str]:
        col = self.colorizer
        if self._auto is None:
            self._auto = model_probs(col, net_input([self.scan], col.size))[0].float().cpu().numpy()
        f = Framing.of(self.height, self.width, col.size)
        mx = min(max(round(f.x + (x + 0.5) * f.w / self.width - 0.5), f.x), f.x + f.w - 1)
        my = min(max(round(f.y + (y + 0.5) * f.h / self.height - 0.5), f.y), f.y + f.h - 1)
        px = min(max(round((x + 0.5) * self.preview_width / self.width - 0.5), 0), self.preview_width - 1)
        py = min(max(round((y + 0.5) * self.preview_height / self.height - 0.5), 0), self.preview_height - 1)
        L = float(rgb_to_lab(self._rgb[py:py + 1, px:px + 1])[0, 0, 0])
        return mode_colours(self._auto[:, my, mx], col.centers.float().cpu().numpy(), L)

    def save(self, specs: Sequence[HintSpec]) -> tuple[Path, Path]:
        """The full-resolution colour image, then the hints file (the record of what it was made from)."""
        t0 = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pred = colour_with_hints(self.colorizer, self.scan, [s.point() for s in specs], self.temperature)
        try:
            write_picture(self.image_out, self.scan, pred.color(0, desc=f"{self.name} (saving)"))
        finally:
            self.scan.release()
        write_hints(self.hints_path, specs)
        self.initial = list(specs)  # a reload of the page continues from what was saved
        self._record(len(specs), time.perf_counter() - t0)
        return self.hints_path, self.image_out

    def _record(self, n_points: int, seconds: float) -> None:
        params = {"image": str(self.image), "model": str(self.model_path) if self.model_path else None,
                  "out": str(self.out_dir), "temperature": self.temperature}
        write_run_record(self.out_dir / f"{self.image.stem}.hints-run.json", "hints", params,
                         counts={"points": n_points}, timings={"save": seconds},
                         model_sha256=sha256_file(self.model_path) if self.model_path and self.model_path.is_file()
                         else None, input_sha256=sha256_file(self.image), hints=str(self.hints_path),
                         hints_sha256=sha256_file(self.hints_path), outputs=[str(self.image_out)],
                         **({"route": self.route} if self.route else {}))


def open_engine(image: str | Path, model: str | Path | Colorizer, out_dir: str | Path | None = None,
                device: str = "auto", max_pixels: int = MAX_SCAN_PIXELS) -> ModelEngine:
    """A `ModelEngine` for one photo file and a checkpoint, a bundle folder (routed once, by the photo, as
    predict does) or an already loaded `Colorizer`. `out_dir` defaults to the photo's own folder."""
    image = Path(image)
    if not image.is_file():
        raise UsageError(f"{image}: no such photo", "pass the path of an image file")
    scan = open_scan(image, max_pixels)
    model_path, route = None, None
    if isinstance(model, Colorizer):
        colorizer = model
    else:
        model_path = Path(model)
        if not model_path.exists():
            raise ColorizeError(f"model {model_path} not found",
                                "pass a checkpoint written by `colorize train` (e.g. data/runs/default/best.pt)")
        loaded = open_model(model_path, device)
        if isinstance(loaded, Bundle):
            colorizer, route = loaded.pick(scan.fitted(loaded.size, loaded.fit))
        else:
            colorizer = loaded
    return ModelEngine(colorizer, image, scan, Path(out_dir) if out_dir is not None else image.parent,
                       model_path=model_path, route=route)
