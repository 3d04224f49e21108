"""Model bundles: a router in front of per-route specialist colorizers, with a global fallback.

A bundle is a folder with a small index (`bundle.json`) and weights-only `.pt` files:

    BUNDLE/bundle.json        schema colorize.bundle/1: route kind, route names, files + sha256
    BUNDLE/router.pt          the RouterCNN (state dict, config, route names)
    BUNDLE/global.pt          the colorizer trained on every photo (the fallback)
    BUNDLE/specialist-NN.pt   one colorizer per route, trained on that route's photos only
    BUNDLE/profiles.json      --route profile only: the k-means profiles (centers, palettes)

Every file is checked against the sha256 recorded in the index before it is loaded, and every `.pt`
is read with `torch.load(weights_only=True)`, so a bundle from elsewhere cannot run code. A bundle that
lacks a specialist is refused as a whole: routing a photo to a model that is not there would silently
turn "routed" results into "global" ones.

Entry points used by predict/eval: `is_bundle`, `load_bundle`, `Bundle.colorize`, `run_eval_bundle`;
by the CLI: `run_train_routed`.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorize import __version__
from colorize.dataset.color import rgb_to_stored
from colorize.errors import ColorizeError
from colorize.io import atomic_write_json, read_json, sha256_file
from colorize.models.net.router import RouterCNN, predict_probs, router_from_payload
from colorize.models.routing.profiles import ColorProfiles

log = logging.getLogger(__name__)

INDEX = "bundle.json"
SCHEMA = "colorize.bundle/1"
ROUTE_KINDS = ("category", "profile")
GLOBAL = "global"
# File names inside a bundle: plain names only, never a path that could leave the folder.
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def is_bundle(path: str | Path) -> bool:
    """True for a folder holding a bundle index (what predict/eval check before loading a .pt)."""
    p = Path(path)
    return p.is_dir() and (p / INDEX).is_file()


def specialist_file(index: int) -> str:
    """Specialists are named by position, never by route name (a category name is untrusted text)."""
    return f"specialist-{index:02d}.pt"


@dataclass
class RouteChoice:
    """Where one photo went: the router's pick, its confidence, and whether the global model took over."""

    route: str  # the route whose model colored the photo ("global" on fallback)
    predicted: str  # the router's top route
    confidence: float  # the router's top probability
    fallback: bool
    top3: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"route": self.route, "router_route": self.predicted, "confidence": round(self.confidence, 6),
                "fallback": self.fallback, "top3": self.top3}


def choose_routes(probs: np.ndarray, routes: list[str], min_confidence: float) -> list[RouteChoice]:
    """The routing rule: the router's top route, or the global model when its probability is below the threshold."""
    out = []
    for p in np.atleast_2d(probs):
        order = np.argsort(-p, kind="stable")
        top = int(order[0])
        conf = float(p[top])
        fallback = conf < min_confidence
        out.append(RouteChoice(GLOBAL if fallback else routes[top], routes[top], conf, fallback,
                               [routes[int(i)] for i in order[:3]]))
    return out


def _checked_file(root: Path, entry: Any, what: str) -> Path:
    """A file named by the index: a plain name inside the bundle, present, with the recorded sha256."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise ColorizeError(f"bundle index entry for {what} is malformed", "retrain the bundle with `colorize train --route`")
    name = entry["file"]
    if not _FILE_RE.match(name):
        raise ColorizeError(f"bundle index names an unsafe file {name!r} for {what}",
                            "use a bundle written by `colorize train --route`")
    path = root / name
    if not path.is_file():
        raise ColorizeError(f"bundle {root} is missing {name} ({what})",
                            "copy the whole bundle folder, or retrain with `colorize train --route ... --resume`")
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise ColorizeError(f"{path} ({what}) does not match the sha256 in {INDEX} (corrupted or replaced)",
                            "copy the bundle again or retrain it")
    return path


def read_index(path: str | Path) -> dict[str, Any]:
    """The bundle index, schema and structure checked (not the files)."""
    root = Path(path)
    if not is_bundle(root):
        raise ColorizeError(f"{root} is not a model bundle (no {INDEX})",
                            "pass a folder written by `colorize train --route category|profile`")
    try:
        index = read_json(root / INDEX)
    except (OSError, ValueError) as exc:
        raise ColorizeError(f"{root / INDEX} is not valid JSON ({exc})", "retrain the bundle") from exc
    if not isinstance(index, dict) or index.get("schema") != SCHEMA:
        raise ColorizeError(f"{root / INDEX} is not a {SCHEMA} index", "retrain the bundle with this version")
    routes = index.get("routes")
    if (index.get("route") not in ROUTE_KINDS or not isinstance(routes, list) or not routes
            or not all(isinstance(r, str) for r in routes) or len(set(routes)) != len(routes)):
        raise ColorizeError(f"{root / INDEX} has no valid route kind / route list", "retrain the bundle")
    specialists = index.get("specialists")
    if not isinstance(specialists, dict):
        raise ColorizeError(f"{root / INDEX} lists no specialists", "retrain the bundle")
    missing = [r for r in routes if r not in specialists]
    if missing:
        raise ColorizeError(f"bundle {root} has no specialist for route(s) {missing}",
                            "finish training with `colorize train --route ... --resume` or retrain the bundle")
    return index


@dataclass
class Bundle:
    """A loaded bundle: router + one colorizer per route + the global fallback, all on one device."""

    path: Path
    kind: str  # "category" or "profile"
    routes: list[str]
    router: RouterCNN
    specialists: dict[str, Any]  # route -> checkpoint.Colorizer
    global_model: Any  # checkpoint.Colorizer
    size: int  # the square side the router and colorizers were trained at
    fit: str  # how prep fit photos into that square ("pad" or "crop")
    index: dict[str, Any]
    profiles: ColorProfiles | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def model_for(self, route: str):
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

    def colorize(self, rgb_u8: np.ndarray, temperature: float, min_confidence: float) -> tuple[np.ndarray, dict]:
        """Color one photo (uint8 RGB, color or gray, any size) -> (uint8 RGB, route info for the record)."""
        from colorize.models.infer.predict import colorize_rgb

        if not 0.0 <= min_confidence <= 1.0:
            raise ColorizeError(f"min-confidence must be within 0..1, got {min_confidence}", "pass e.g. 0.5")
        choice = choose_routes(self.route_rgb(rgb_u8), self.routes, min_confidence)[0]
        out = colorize_rgb(self.model_for(choice.route), rgb_u8, temperature)
        return out, choice.info()


def load_bundle(path: str | Path, device: torch.device | str = "cpu") -> Bundle:
    """Load and verify a bundle (every file present, sha256 matching, weights-only) onto `device`."""
    from colorize.models.net.checkpoint import load_colorizer
    from colorize.models.net.runtime import resolve_device

    root = Path(path)
    device = resolve_device(device)
    index = read_index(root)
    routes: list[str] = index["routes"]
    router_path = _checked_file(root, index.get("router"), "the router")
    try:
        payload = torch.load(router_path, map_location="cpu", weights_only=True)
        router, router_routes = router_from_payload(payload, device)
    except pickle.UnpicklingError as exc:
        raise ColorizeError(f"refusing to load {router_path}: it holds pickled Python objects",
                            "only use bundles written by `colorize train --route`") from exc
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise ColorizeError(f"{router_path} is not a router checkpoint ({type(exc).__name__})",
                            "retrain the bundle") from exc
    if router_routes != routes or router.cfg.n_classes != len(routes):
        raise ColorizeError(f"the router in {root} predicts {router_routes}, the index lists {routes}",
                            "retrain the bundle")
    global_model = load_colorizer(_checked_file(root, index.get(GLOBAL), "the global model"), device)
    specialists = {}
    for route in routes:
        specialists[route] = load_colorizer(
            _checked_file(root, index["specialists"][route], f"the {route!r} specialist"), device)
    for name, model in [(GLOBAL, global_model), *specialists.items()]:
        if model.n_bins != global_model.n_bins or model.size != global_model.size:
            raise ColorizeError(f"the {name!r} model of {root} uses a different bin set or size",
                                "retrain the bundle from one shard folder")
    profiles = None
    if index["route"] == "profile":
        try:
            profiles = ColorProfiles.from_json(read_json(_checked_file(root, index.get("profiles"), "the profiles")))
        except (OSError, ValueError) as exc:
            raise ColorizeError(f"the profiles of {root} are unreadable ({exc})", "retrain the bundle") from exc
    inp = index.get("input") if isinstance(index.get("input"), dict) else {}
    size, fit_mode = inp.get("size", global_model.size), inp.get("fit", "pad")
    if not isinstance(size, int) or not 8 <= size <= 4096 or fit_mode not in ("pad", "crop"):
        raise ColorizeError(f"{root / INDEX} has an invalid input size/fit ({size!r}, {fit_mode!r})",
                            "retrain the bundle")
    log.info("bundle %s: %d %s routes, router %s px", root, len(routes), index["route"], router.cfg.size)
    return Bundle(root, index["route"], routes, router, specialists, global_model, size, fit_mode, index,
                  profiles, device)


def _file_entry(root: Path, name: str, **info: Any) -> dict[str, Any]:
    return {"file": name, "sha256": sha256_file(root / name), **info}


def write_bundle(out: str | Path, kind: str, routes: list[str], router: dict[str, Any], global_model: dict[str, Any],
                 specialists: dict[str, dict[str, Any]], *, profiles: ColorProfiles | None = None,
                 input_info: dict[str, Any] | None = None, info: dict[str, dict] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write a bundle: every payload as a weights-only .pt, then the index last.

    The index is written only once every file it names is in place (each write atomic), so an
    interrupted run leaves a folder that is not (yet) a bundle, never a bundle with holes.
    `router` is `router.router_payload(...)`; the others are colorizer checkpoint payloads.
    `info` adds fields (e.g. photo counts) to the index entry of a role ("global" or a route).
    """
    from colorize.models.net.checkpoint import save_checkpoint

    if kind not in ROUTE_KINDS:
        raise ValueError(f"route kind must be one of {ROUTE_KINDS}")
    missing = [r for r in routes if r not in specialists]
    if missing:
        raise ColorizeError(f"no specialist was trained for route(s) {missing}", "rerun the routed training")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    info = info or {}
    save_checkpoint(root / "router.pt", router)
    save_checkpoint(root / "global.pt", global_model)
    entries = {}
    for i, route in enumerate(routes):
        save_checkpoint(root / specialist_file(i), specialists[route])
        entries[route] = _file_entry(root, specialist_file(i), **info.get(route, {}))
    index: dict[str, Any] = {
        "schema": SCHEMA, "tool_version": __version__, "route": kind, "routes": list(routes),
        "router": _file_entry(root, "router.pt", **info.get("router", {})),
        GLOBAL: _file_entry(root, "global.pt", **info.get(GLOBAL, {})),
        "specialists": entries, "input": input_info or {},
    }
    if profiles is not None:
        atomic_write_json(root / "profiles.json", profiles.to_json())
        index["profiles"] = _file_entry(root, "profiles.json")
    index.update(extra or {})
    atomic_write_json(root / INDEX, index)
    return root


def run_train_routed(route: str, profiles: int, **train_opts: Any):
    """`colorize train --route category|profile`: see `routing_train.train_routed`."""
    from colorize.models.routing.train import train_routed

    return train_routed(route=route, n_profiles=profiles, **train_opts)


def run_eval_bundle(model, shards, split, images, temperature, out, device, gallery):
    """`colorize eval --model BUNDLE`: see `routing_eval.evaluate_bundle`."""
    from colorize.models.routing.evaluate import evaluate_bundle

    return evaluate_bundle(model=model, shards=shards, split=split, images=images, temperature=temperature,
                           out=out, device=device, gallery=gallery)
