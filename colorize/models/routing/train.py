"""`colorize train --route category|profile`: a global model, one specialist per route, and a router.

Steps (each resumable; the bundle index is written only when all of them are done):
1. Histogram every train/val/test photo over the shard set's bins (original variant, padding masked).
2. Routes: the categories present in the train split, or k color profiles (seeded k-means on the
   train photos' histograms; val/test photos get their nearest profile). Every photo's route is
   written to `BUNDLE/routes.json`; for profiles also `profiles.json` and the palette picture.
3. Per route, rebalancing weights from that route's own color frequencies (stats.py's formula, on the
   shared bin set so every model decodes to the same colors).
4. Train the global model on all photos and each specialist on its route's photos only, with the
   same options (same epochs: each photo is seen as often by its specialist as by the global model).
5. Train the router on L -> route, validated on the val split.
6. Write the slim weights-only files + the index (routing.write_bundle) and a run record.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorize.dataset import SPLITS
from colorize.dataset.bins import BinStats, rebalance
from colorize.dataset.shards import list_shards, load_shard, load_stats, read_manifest
from colorize.errors import ColorizeError
from colorize.io import (
    atomic_open,
    atomic_write_json,
    read_json,
    remove_stale_temps,
    sha256_file,
    write_run_record,
)
from colorize.models.net import ROUTER_MIN_CONFIDENCE
from colorize.models.net.bundle import GLOBAL, specialist_file, write_bundle
from colorize.models.net.checkpoint import load_checkpoint, read_torch_file, save_checkpoint
from colorize.models.net.router import RouterConfig, router_from_payload, router_payload, shrink_l
from colorize.models.net.runtime import resolve_device
from colorize.models.routing.profiles import (
    ColorProfiles,
    PhotoHistograms,
    collect_histograms,
    fit_profiles,
    palette_image,
)
from colorize.models.routing.router_train import train_router
from colorize.models.train.config import TRAIN_DEFAULTS, RunState, TrainConfig
from colorize.models.train.loop import train
from colorize.names import MANIFEST
from colorize.progress import progress

log = logging.getLogger(__name__)

RUN_RECORD = "train-routed-run.json"
# Checkpoint entries that only resuming needs; the bundle keeps what prediction needs.
TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "scaler", "rng", "loader_state")
# Below this many train photos a specialist is warned about: too few to learn its route's colors apart from the global model.
MIN_ROUTE_PHOTOS = 50


def route_weights(stats: BinStats, bin_counts: np.ndarray) -> np.ndarray:
    """Rebalancing weights [n] for one route's pixel counts per bin, on the shared bin set.

    `bins.rebalance` is the one implementation of w ∝ ((1-λ)p̃ + λ/n)^-1 with 2-D smoothing (the one
    compute_bin_stats uses); one pseudo-pixel per bin keeps a bin the route never uses a weighted class.
    """
    counts = np.rint(np.asarray(bin_counts, np.float64)) + 1
    return rebalance(stats.centers, counts, stats.grid, stats.lam, stats.sigma)[2].astype(np.float32)


@dataclass
class RouteData:
    """Every photo's route, per split, and the routes themselves."""

    routes: list[str]
    photo_route: dict[str, dict[str, int]]  # split -> photo id -> route index
    hists: dict[str, PhotoHistograms]
    profiles: ColorProfiles | None = None

    def ids(self, split: str, route: int) -> list[str]:
        return sorted(pid for pid, r in self.photo_route[split].items() if r == route)


def _histograms(shards: Path, stats: BinStats) -> dict[str, PhotoHistograms]:
    out = {}
    for split in SPLITS:
        entries = list_shards(shards, split)
        it = (load_shard(shards / e["name"], e.get("sha256")) for e in entries)
        out[split] = collect_histograms(progress(it, total=len(entries), desc=f"histograms {split}"),
                                        stats.ab_lut, stats.n_bins, variant="orig")
    return out


def assign_routes(kind: str, hists: dict[str, PhotoHistograms], k: int, seed: int) -> RouteData:
    """Routes and each photo's route: by category, or by k-means color profile fit on the train split."""
    train = hists["train"]
    if not train.ids:
        raise ColorizeError("the train split has no photos", "prep more photos or a larger train fraction")
    if kind == "category":
        routes = sorted(set(train.categories))
        if len(routes) < 2:
            raise ColorizeError(f"--route category needs 2+ categories in the train split, found {routes}",
                                "scrape more categories, or use --route profile")
        pos = {r: i for i, r in enumerate(routes)}
        photo_route = {s: {pid: pos[c] for pid, c in zip(h.ids, h.categories) if c in pos}
                       for s, h in hists.items()}
        return RouteData(routes, photo_route, hists)
    profiles, labels = fit_profiles(train.hist, k, seed=seed)
    photo_route = {"train": dict(zip(train.ids, labels.tolist()))}
    for split, h in hists.items():
        if split != "train":
            photo_route[split] = dict(zip(h.ids, profiles.assign(h.hist).tolist())) if h.ids else {}
    return RouteData(profiles.names, photo_route, hists, profiles)


def _router_data(shards: Path, split: str, photo_route: dict[str, int], size: int,
                 variants: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk L and route labels of a split (all variants for training: augmentation helps the router too)."""
    Ls, ys = [], []
    entries = list_shards(shards, split)
    for e in progress(entries, desc=f"router data {split}"):
        arr = load_shard(shards / e["name"], e.get("sha256"))
        keep = np.array([pid in photo_route for pid in arr["photo_id"].tolist()], bool)
        if variants is not None:
            keep &= arr["variant"] == variants
        if keep.any():
            Ls.append(shrink_l(arr["L"][keep], size))
            ys.append(np.array([photo_route[str(p)] for p in arr["photo_id"][keep]], np.int64))
    if not Ls:
        return np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64)
    return np.concatenate(Ls), np.concatenate(ys)


def _slim(payload: dict[str, Any], run: str) -> dict[str, Any]:
    """What a bundle keeps of a checkpoint: no optimizer state, and no run-control fields in its config
    (where the run was written, whether it was resumed), so the same data and seed give the same bytes."""
    out = {k: v for k, v in payload.items() if k not in TRAINING_ONLY_KEYS}
    config = {k: v for k, v in payload["config"].items() if k not in ("out", "resume", "max_minutes")}
    out["config"] = config | {"run": run}
    return out


@dataclass
class RoutedTrainReport:
    out: Path
    kind: str
    routes: list[str]
    photos: dict[str, int]
    router_val_acc: float | None
    seconds: float
    incomplete: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        acc = "n/a" if self.router_val_acc is None else f"{100 * self.router_val_acc:.0f}%"
        if self.incomplete:
            return (f"routed training stopped before {', '.join(self.incomplete)} finished; no bundle yet — "
                    f"rerun with --resume to continue ({self.out})")
        parts = ", ".join(f"{r} {self.photos.get(r, 0)}" for r in self.routes)
        return (f"bundle {self.out}: global + {len(self.routes)} {self.kind} specialists ({parts} train photos), "
                f"router val accuracy {acc}, {self.seconds:.0f} s")


def _check(route: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ColorizeError("routed training runs in one process (it trains several models in turn)",
                            "run `colorize train --route ...` without torchrun; it uses the GPU when present")
    if route not in ("category", "profile"):
        raise ColorizeError(f"unknown route kind {route!r}", "use --route category or --route profile")


def _plan_routes(route: str, n_profiles: int, shards: Path, out: Path, stats: BinStats,
                 seed: int) -> tuple[RouteData, dict[str, list[str]]]:
    """Each photo's route (written to routes.json, with the profiles when routing by profile) and each
    route's train photos (a route without any is refused; a small one is a warning)."""
    data = assign_routes(route, _histograms(shards, stats), n_profiles, seed)
    routes = data.routes
    atomic_write_json(out / "routes.json", {"route": route, "routes": routes, "photo_route": {
        s: {pid: routes[r] for pid, r in sorted(m.items())} for s, m in data.photo_route.items()}})
    if data.profiles is not None:
        atomic_write_json(out / "profiles.json", data.profiles.to_json())
        with atomic_open(out / "profiles.png", "wb") as fh:
            palette_image(data.profiles, stats.centers).save(fh, format="PNG")
    train_ids = {r: data.ids("train", i) for i, r in enumerate(routes)}
    empty = [r for r, ids in train_ids.items() if not ids]
    if empty:
        raise ColorizeError(f"route(s) {empty} have no train photos", "use fewer --profiles")
    small = [f"{r} ({len(ids)})" for r, ids in train_ids.items() if len(ids) < MIN_ROUTE_PHOTOS]
    if small:
        log.warning("few train photos for route(s) %s: their specialists will overfit; consider "
                    "more photos or fewer routes", ", ".join(small))
    return data, train_ids


def _train_models(jobs: list[tuple[str, dict[str, Any]]], shards: Path, out: Path, routes: list[str],
                  deadline: float | None, seed: int, resume: bool, device: str, train_opts: dict[str, Any],
                  timings: dict[str, float]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The global model and every specialist in turn, each with its share of the time left; returns the
    slim payloads of the finished ones and the names of the unfinished ones."""
    payloads: dict[str, dict[str, Any]] = {}
    incomplete: list[str] = []
    run_dirs = {GLOBAL: out / "runs" / "global", **{r: out / "runs" / f"route-{i:02d}" for i, r in enumerate(routes)}}
    for n_done, (name, subset) in enumerate(jobs):
        budget = None
        if deadline is not None:  # split what is left evenly over the jobs still to run (+ the router)
            budget = max(0.05, (deadline - time.perf_counter()) / 60.0 / (len(jobs) - n_done + 0.5))
        log.info("training the %s model", name)
        t_job = time.perf_counter()
        best, finished = train_colorizer(shards, run_dirs[name], seed=seed, resume=resume, max_minutes=budget,
                                         device=device, subset=subset, **train_opts)
        timings[name] = time.perf_counter() - t_job
        if not finished:
            incomplete.append(name)
        else:
            payloads[name] = _slim(load_checkpoint(best, map_location="cpu"), run_dirs[name].relative_to(out).as_posix())
    return payloads, incomplete


def _write(out: Path, shards: Path, route: str, routes: list[str], data: RouteData, payload: dict[str, Any],
           payloads: dict[str, dict[str, Any]], photos: dict[str, int], val_acc: float | None, manifest: dict,
           seed: int, n_profiles: int, router_size: int, router_width: int) -> None:
    """The bundle index and files (`bundle.write_bundle`): only once every model is complete."""
    info: dict[str, Any] = {r: {"train_photos": photos[r], "val_photos": len(data.ids("val", i))}
                            for i, r in enumerate(routes)}
    info[GLOBAL] = {"train_photos": len(data.hists["train"].ids)}
    info["router"] = {"val_accuracy": val_acc, "size": router_size, "width": router_width,
                      "parameters": sum(int(t.numel()) for k, t in payload["model"].items()
                                        if not k.endswith("num_batches_tracked"))}
    write_bundle(out, route, routes, payload, payloads[GLOBAL], {r: payloads[r] for r in routes},
                 profiles=data.profiles.to_json() if data.profiles is not None else None,
                 input_info={"size": int(manifest["params"]["size"]), "fit": str(manifest["params"].get("fit", "pad"))},
                 info=info,
                 extra={"min_confidence": ROUTER_MIN_CONFIDENCE,
                        "shards": {"path": str(shards), "manifest_sha256": sha256_file(shards / MANIFEST)},
                        "seed": seed, "profiles_k": n_profiles if route == "profile" else None})


def train_routed(route: str, n_profiles: int, shards, out, seed: int = TRAIN_DEFAULTS["seed"], resume: bool = False,
                 max_minutes: float | None = None, device: str = TRAIN_DEFAULTS["device"], router_size: int = 64,
                 router_width: int = 16, router_epochs: int | None = None, **train_opts: Any) -> RoutedTrainReport:
    """Train a routed bundle into `out` (see the module docstring); `train_opts` are run_train's options."""
    t0 = time.perf_counter()
    shards, out = Path(shards), Path(out)
    _check(route)
    manifest, stats, dev = read_manifest(shards), load_stats(shards), resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
    data, train_ids = _plan_routes(route, n_profiles, shards, out, stats, seed)
    routes = data.routes
    timings: dict[str, float] = {}
    payloads, incomplete = _train_models(_jobs(route, data, stats, train_ids), shards, out, routes, deadline, seed,
                                         resume, device, train_opts, timings)
    t_router = time.perf_counter()
    left = None if deadline is None else max(5.0, deadline - time.perf_counter())
    payload = _train_or_reuse_router(shards, out / "runs" / "router.pt", data, resume, left, dev, seed,
                                     RouterConfig(n_classes=len(routes), size=router_size, width=router_width),
                                     router_epochs or int(train_opts.get("epochs", TRAIN_DEFAULTS["epochs"])),
                                     int(train_opts.get("batch_size", TRAIN_DEFAULTS["batch_size"])))
    timings["router"] = time.perf_counter() - t_router
    val_acc = payload.get("val_acc")
    val_acc = None if val_acc is None or np.isnan(float(val_acc)) else float(val_acc)
    photos = {r: len(train_ids[r]) for r in routes}
    params = {"route": route, "profiles": n_profiles, "shards": shards, "seed": seed, "resume": resume,
              "max_minutes": max_minutes, "device": device, "router_size": router_size, **train_opts}
    if incomplete:  # no index yet: the folder is not a bundle until every model is complete
        seconds = time.perf_counter() - t0
        write_run_record(out / RUN_RECORD, "train --route", params, counts={"routes": len(routes)},
                         timings={"total": seconds, **timings}, incomplete=incomplete)
        return RoutedTrainReport(out, route, routes, photos, val_acc, seconds, incomplete)
    _write(out, shards, route, routes, data, payload, payloads, photos, val_acc, manifest, seed, n_profiles,
           router_size, router_width)
    seconds = time.perf_counter() - t0
    write_run_record(out / RUN_RECORD, "train --route", params,
                     counts={"routes": len(routes), **{f"train_photos[{r}]": n for r, n in photos.items()}},
                     timings={"total": seconds, **timings},
                     router_history=payload.get("history"), specialist_files={r: specialist_file(i) for i, r in
                                                                             enumerate(routes)})
    return RoutedTrainReport(out, route, routes, photos, val_acc, seconds)


def _jobs(route: str, data: RouteData, stats: BinStats,
          train_ids: dict[str, list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """(model name, TrainConfig data selection) for the global model and each route's specialist."""
    jobs: list[tuple[str, dict[str, Any]]] = [(GLOBAL, {})]
    row_of = {pid: i for i, pid in enumerate(data.hists["train"].ids)}
    for i, r in enumerate(data.routes):
        counts = data.hists["train"].bin_counts(np.array([row_of[p] for p in train_ids[r]]))
        # The route's own prior (one pseudo-pixel per bin, as in route_weights) and weights.
        subset: dict[str, Any] = {"weights": route_weights(stats, counts).tolist(),
                                  "prior": ((counts + 1) / (counts + 1).sum()).tolist()}
        if route == "category":
            subset["categories"] = [r]
        else:  # train + val photos of the profile (val picks best.pt)
            subset["photo_ids"] = train_ids[r] + data.ids("val", i)
        jobs.append((r, subset))
    return jobs


def _train_or_reuse_router(shards: Path, path: Path, data: RouteData, resume: bool, max_seconds: float | None,
                           device: torch.device, seed: int, cfg: RouterConfig, epochs: int,
                           batch_size: int) -> dict[str, Any]:
    """The router payload: reused with --resume when a finished one for the same routes and config exists."""
    if resume and path.is_file():
        try:
            old = read_torch_file(path, what="router")
            _, old_routes = router_from_payload(old, torch.device("cpu"))
            if (old_routes == data.routes and old.get("config") == asdict(cfg)
                    and int(old.get("epochs_done", -1)) >= epochs):
                log.info("router already trained; kept as is")
                return old
        except (ColorizeError, RuntimeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("%s is unreadable; training the router again", path)
    X, y = _router_data(shards, "train", data.photo_route["train"], cfg.size, None)
    Xv, yv = _router_data(shards, "val", data.photo_route["val"], cfg.size, "orig")
    res = train_router(X, y, cfg, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                       val=(Xv, yv) if len(yv) else None, max_seconds=max_seconds)
    payload = router_payload(res.model, data.routes, res.history)
    payload["val_acc"] = res.best_val_acc if res.best_val_acc is not None else float("nan")
    payload["epochs_done"] = len(res.history)
    save_checkpoint(path, payload)
    return payload


def train_colorizer(shards: Path, out: Path, *, subset: dict[str, Any], resume: bool,
                    **opts: Any) -> tuple[Path, bool]:
    """One colorizer via train.train (all photos, or a route's photos with its own weights and prior).

    Returns (checkpoint to keep, whether training finished). With --resume, a model whose run folder has
    no last.pt yet simply starts; a finished one returns at once.
    """
    cfg = TrainConfig(shards=shards, out=out, resume=resume and (out / "last.pt").is_file(), **opts, **subset)
    best = out / "best.pt"
    if cfg.resume and _finished(out, cfg):
        log.info("%s is already trained; kept as is", out)
        finished = True
    else:
        finished = train(cfg).stopped == RunState.DONE
    return (best if best.is_file() else out / "last.pt"), finished


def _finished(out: Path, cfg: Any) -> bool:
    """A run whose record says it completed `cfg.epochs` on the same data selection and weights.

    Checked here (not by calling train again) so a resumed bundle reuses finished models unchanged.
    """
    try:
        rec = read_json(out / "train-run.json")
    except (OSError, ValueError):
        return False
    done = rec.get("stopped") == "done" and int(rec.get("counts", {}).get("epochs_done", -1)) >= cfg.epochs
    wanted = cfg.record()
    same = all(rec.get("params", {}).get(k) == wanted[k]
               for k in ("categories", "photo_ids", "weights", "prior", "width", "seed", "shards"))
    return done and same
