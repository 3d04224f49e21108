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

This module is the format and the routing rule (`choose_routes`; its default threshold is
`models.net.ROUTER_MIN_CONFIDENCE`); loading a
bundle onto a device is `models.infer.colorizer.load_bundle`, training one is `models.routing.train`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize import __version__
from colorize.errors import ColorizeError
from colorize.io import atomic_write_json, read_json, sha256_file

INDEX = "bundle.json"
SCHEMA = "colorize.bundle/1"
ROUTE_KINDS = ("category", "profile")
GLOBAL = "global"
# File names inside a bundle: plain names only, never a path that could leave the folder.
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


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


def choose_routes(probs: Any, routes: list[str], min_confidence: float) -> list[RouteChoice]:
    """The routing rule: the router's top route, or the global model when its probability is below the threshold.

    `probs` is a numpy array [routes] or [N, routes]. Plain Python on purpose: the CLI imports this module
    for DEFAULT_MIN_CONFIDENCE, and `colorize --help` should not wait for numpy.
    """
    out = []
    for p in (probs[None] if probs.ndim == 1 else probs):
        order = sorted(range(len(p)), key=lambda i: -float(p[i]))  # stable: ties keep route order
        top = order[0]
        conf = float(p[top])
        fallback = conf < min_confidence
        out.append(RouteChoice(GLOBAL if fallback else routes[top], routes[top], conf, fallback,
                               [routes[i] for i in order[:3]]))
    return out


def checked_file(root: Path, entry: Any, what: str) -> Path:
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


def _file_entry(root: Path, name: str, **info: Any) -> dict[str, Any]:
    return {"file": name, "sha256": sha256_file(root / name), **info}


def write_bundle(out: str | Path, kind: str, routes: list[str], router: dict[str, Any], global_model: dict[str, Any],
                 specialists: dict[str, dict[str, Any]], *, profiles: dict[str, Any] | None = None,
                 input_info: dict[str, Any] | None = None, info: dict[str, dict] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write a bundle: every payload as a weights-only .pt, then the index last.

    The index is written only once every file it names is in place (each write atomic), so an
    interrupted run leaves a folder that is not (yet) a bundle, never a bundle with holes.
    `router` is `router.router_payload(...)`; the others are colorizer checkpoint payloads; `profiles` is
    `ColorProfiles.to_json()` of a profile bundle.
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
        atomic_write_json(root / "profiles.json", profiles)
        index["profiles"] = _file_entry(root, "profiles.json")
    index.update(extra or {})
    atomic_write_json(root / INDEX, index)
    return root
