"""What prediction runs: a loaded checkpoint (`Colorizer`) or a loaded bundle (`Bundle`), and `open_model`.

The file formats live in `models.net` (checkpoint.py, bundle.py); this module turns them into objects
on a device. Both offer one interface, so predict, eval and the Python API never ask which they hold:
`size`, `fit`, `ab_lut`, `prior`, `pick(rgb)` (the colorizer for one photo, and the route taken) and
`predict(sources, temperatures)` (`arrays.ImagePrediction`s through the one coloring path). A bundle
picks one colorizer per photo with the one routing rule, `bundle.choose_routes`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorize.dataset.color import rgb_to_stored
from colorize.errors import ColorizeError
from colorize.models.infer.arrays import ImagePrediction, predict_sources
from colorize.models.net import ROUTER_MIN_CONFIDENCE
from colorize.models.net.bundle import (
    GLOBAL,
    INDEX,
    checked_file,
    choose_routes,
    is_bundle,
    read_index,
)
from colorize.models.net.checkpoint import (
    CONFIG_FALLBACKS,
    SIZE_RANGE,
    hint_channels_of,
    hint_spread_of,
    load_checkpoint,
    nearest_bin_lut,
    read_torch_file,
    validate_payload,
)
from colorize.models.net.colors import DecodedMaps, mirrored_decode, mirrored_probs
from colorize.models.net.router import RouterCNN, predict_probs, router_from_payload
from colorize.models.net.runtime import resolve_device
from colorize.models.net.unet import ColorUNet, l_to_input, require_hints_support

log = logging.getLogger(__name__)


@dataclass
class Colorizer:
    """A trained model ready to predict: `probs(L_u8)` -> bin probabilities on `device`."""

    model: nn.Module
    size: int
    centers: torch.Tensor
    weights: torch.Tensor
    prior: torch.Tensor
    ab_lut: torch.Tensor
    config: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    origin: str = "in memory"  # the checkpoint's path, for messages (an old model asked for hints)

    fit = "pad"  # how the net sees a photo: fitted into its square with padding, as prep stored it

    @property
    def n_bins(self) -> int:
        return int(self.centers.shape[0])

    def pick(self, rgb_u8: np.ndarray) -> tuple[Colorizer, dict[str, Any] | None]:
        """One model colors every photo itself (no route)."""
        return self, None

    def predict(self, sources: Sequence[Any], temperatures: Sequence[float]) -> list[ImagePrediction]:
        """A batch of photos in one forward pass (`arrays.predict_sources`)."""
        return predict_sources(self, sources, temperatures)

    @torch.inference_mode()
    def probs(self, L_u8: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 lightness [B,S,S] (+ hint planes float [B,3,S,S] or None) -> float32 probabilities
        [B,n,S,S] on this Colorizer's device, the photo's and its mirror image's averaged
        (`net.colors.mirrored_probs` says why). Hints for a net trained without them: one-line UsageError."""
        return mirrored_probs(self.model, *self._net_input(L_u8, hints))

    @torch.inference_mode()
    def decoded(self, L_u8: torch.Tensor, hints: torch.Tensor | None, temperatures: Sequence[float]) -> DecodedMaps:
        """What `probs` gives, decoded at each temperature (`net.colors.mirrored_decode`: the probabilities
        are never all held at once), for coloring photos."""
        return mirrored_decode(self.model, *self._net_input(L_u8, hints), self.centers, temperatures)

    def _net_input(self, L_u8: torch.Tensor, hints: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """L and hint planes on this device, as the net takes them; hints for a net without: UsageError."""
        x = l_to_input(L_u8.to(self.device, non_blocking=True))
        if hints is not None:
            require_hints_support(self.model, self.origin)
            hints = hints.to(self.device, non_blocking=True)
        return x, hints

    @classmethod
    def from_payload(cls, payload: dict[str, Any], device: torch.device) -> Colorizer:
        validate_payload(payload)  # types, shapes and sizes first: nothing is built from a lying payload
        cfg = dict(payload["config"])
        centers = payload["centers"].float()
        n_bins = int(centers.shape[0])
        model = ColorUNet(n_bins, int(cfg.get("width", CONFIG_FALLBACKS["width"])), hint_channels_of(cfg),
                          hint_spread_of(cfg))
        try:
            model.load_state_dict(payload["model"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ColorizeError("checkpoint weights do not match its own model config",
                                "the file is damaged or from another tool version; retrain") from exc
        model.to(device).eval()
        uniform = torch.full((n_bins,), 1.0 / n_bins)
        lut = payload.get("ab_lut")
        return cls(
            model=model,
            size=int(cfg.get("size", CONFIG_FALLBACKS["size"])),
            centers=centers.to(device),
            weights=torch.as_tensor(payload.get("weights", torch.ones(n_bins))).float(),
            prior=torch.as_tensor(payload.get("prior", uniform)).float(),
            ab_lut=torch.as_tensor(lut if lut is not None else nearest_bin_lut(centers)),
            config=cfg,
            device=device,
        )


def load_colorizer(path: str | os.PathLike, device: str | torch.device = "auto") -> Colorizer:
    """Load a `.pt` written by training (or `write_untrained_checkpoint`) for prediction."""
    dev = resolve_device(device)
    col = Colorizer.from_payload(load_checkpoint(path, map_location="cpu"), dev)
    col.origin = str(path)
    return col


@dataclass
class Bundle:
    """A loaded bundle: router + one colorizer per route + the global fallback, all on one device."""

    path: Path
    kind: str  # "category" or "profile"
    routes: list[str]
    router: RouterCNN
    specialists: dict[str, Colorizer]
    global_model: Colorizer
    size: int  # the square side the router and colorizers were trained at
    fit: str  # how prep fit photos into that square ("pad" or "crop")
    index: dict[str, Any]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    min_confidence: float = ROUTER_MIN_CONFIDENCE  # below this router confidence the global model colors

    @property
    def ab_lut(self) -> torch.Tensor:
        return self.global_model.ab_lut

    @property
    def prior(self) -> torch.Tensor:
        return self.global_model.prior

    @property
    def members(self) -> dict[str, Colorizer]:
        """Every colorizer of the bundle by route name, the global model first."""
        return {GLOBAL: self.global_model, **self.specialists}

    def model_for(self, route: str) -> Colorizer:
        return self.global_model if route == GLOBAL else self.specialists[route]

    def route_probs(self, L_u8: np.ndarray) -> np.ndarray:
        """Router probabilities [N, routes] for uint8 L [N,S,S] at the bundle's size (as in the shards)."""
        return predict_probs(self.router, L_u8, self.device)

    def route_rgb(self, rgb_u8: np.ndarray) -> np.ndarray:
        """Router probabilities [routes] of one photo of any size, fitted the way prep fitted training photos."""
        from colorize.dataset.images import fit

        fitted, _ = fit(np.ascontiguousarray(rgb_u8), self.size, self.fit)
        L_u8, _ = rgb_to_stored(fitted)
        return self.route_probs(L_u8[None])[0]

    def pick(self, rgb_u8: np.ndarray) -> tuple[Colorizer, dict[str, Any]]:
        """The colorizer for one photo (the router's top route, or global below `min_confidence`) + route info."""
        choice = choose_routes(self.route_rgb(rgb_u8), self.routes, self.min_confidence)[0]
        return self.model_for(choice.route), choice.info()

    def predict(self, sources: Sequence[Any], temperatures: Sequence[float]) -> list[ImagePrediction]:
        """Each photo routed (from its small fitted copy), then colored by its route's colorizer; photos
        sharing a route go through one forward pass. Results come back in the order of `sources`."""
        picks = [self.pick(s.fitted(self.size, self.fit)) for s in sources]
        out: list[ImagePrediction | None] = [None] * len(sources)
        for col in {id(c): c for c, _ in picks}.values():
            idx = [i for i, (c, _) in enumerate(picks) if c is col]
            for i, pred in zip(idx, predict_sources(col, [sources[i] for i in idx], temperatures)):
                pred.route = picks[i][1]
                out[i] = pred
        return [p for p in out if p is not None]


def _load_router(path: Path, device: torch.device) -> tuple[RouterCNN, list[str]]:
    payload = read_torch_file(path, what="router", fix="retrain the bundle with `colorize train --route`")
    try:
        return router_from_payload(payload, device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ColorizeError(f"{path} is not a router checkpoint ({type(exc).__name__})", "retrain the bundle") from exc


def load_bundle(path: str | Path, device: torch.device | str = "cpu") -> Bundle:
    """Load and verify a bundle (every file present, sha256 matching, weights-only) onto `device`."""
    root = Path(path)
    device = resolve_device(device)
    index = read_index(root)
    routes: list[str] = index["routes"]
    router, router_routes = _load_router(checked_file(root, index.get("router"), "the router"), device)
    if router_routes != routes or router.cfg.n_classes != len(routes):
        raise ColorizeError(f"the router in {root} predicts {router_routes}, the index lists {routes}",
                            "retrain the bundle")
    global_model = load_colorizer(checked_file(root, index.get(GLOBAL), "the global model"), device)
    specialists = {}
    for route in routes:
        specialists[route] = load_colorizer(
            checked_file(root, index["specialists"][route], f"the {route!r} specialist"), device)
    for name, model in [(GLOBAL, global_model), *specialists.items()]:
        if model.n_bins != global_model.n_bins or model.size != global_model.size:
            raise ColorizeError(f"the {name!r} model of {root} uses a different bin set or size",
                                "retrain the bundle from one shard folder")
    if index["route"] == "profile":  # read by the routed eval; a profile bundle without them is broken
        checked_file(root, index.get("profiles"), "the profiles")
    inp = index.get("input") if isinstance(index.get("input"), dict) else {}
    size, fit_mode = inp.get("size", global_model.size), inp.get("fit", "pad")
    if not isinstance(size, int) or not SIZE_RANGE[0] <= size <= SIZE_RANGE[1] or fit_mode not in ("pad", "crop"):
        raise ColorizeError(f"{root / INDEX} has an invalid input size/fit ({size!r}, {fit_mode!r})",
                            "retrain the bundle")
    log.info("bundle %s: %d %s routes, router %s px", root, len(routes), index["route"], router.cfg.size)
    return Bundle(root, index["route"], routes, router, specialists, global_model, size, fit_mode, index, device,
                  float(index.get("min_confidence", ROUTER_MIN_CONFIDENCE)))


def open_model(model: Path, device: str | torch.device = "auto",
               min_confidence: float | None = None) -> Colorizer | Bundle:
    """A checkpoint -> Colorizer; a bundle folder -> Bundle (routing at `min_confidence`, or its own)."""
    model = Path(model)
    if model.is_dir():
        if not is_bundle(model):
            raise ColorizeError(f"{model} is a folder but not a model bundle (no bundle index)",
                                "pass a .pt checkpoint or a folder written by `colorize train --route ...`")
        bundle = load_bundle(model, device)
        if min_confidence is not None:
            bundle.min_confidence = float(min_confidence)
        return bundle
    return load_colorizer(model, device)
