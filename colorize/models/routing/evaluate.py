"""`colorize eval --model BUNDLE`: does routing beat one model, and what does a wrong route cost?

Every photo of the split is colored by the global model *and* by every specialist once; all the
questions a practitioner asks are then answered from those same predictions, so the numbers are
directly comparable:
- routed vs global (and the gray baseline) per route, at the bundle's confidence threshold and over a
  sweep of thresholds (threshold 1.0 = always global, 0 = always trust the router);
- "oracle" routing (each photo to its true route's specialist): the ceiling a perfect router reaches;
- the router's top-1 accuracy, top-3 error (the true route not among its three likeliest) and confusion matrix per route;
- the wrong-route matrix: specialist s on the photos of route r, and the drop from r's own specialist.
Rebalanced AuC uses the *global* model's prior for every model, so all rows weigh pixels alike.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset import MAX_SCAN_PIXELS
from colorize.dataset.color import decode_l, rgb_to_stored, stored_to_rgb
from colorize.dataset.images import fit
from colorize.errors import ColorizeError
from colorize.io import atomic_write_json, write_run_record
from colorize.models.evaluate.photos import EvalPhotos, eval_photos
from colorize.models.infer.arrays import decode_ab, model_probs
from colorize.models.infer.colorizer import Bundle, load_bundle
from colorize.models.infer.gamut import compose
from colorize.models.net import ROUTER_MIN_CONFIDENCE
from colorize.models.net.bundle import GLOBAL, choose_routes
from colorize.models.net.metrics import CONVENTIONS, Totals, score_image
from colorize.models.routing.profiles import bin_histograms, load_bundle_profiles
from colorize.progress import progress

log = logging.getLogger(__name__)

SCHEMA = "colorize.eval-bundle/1"
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass
class Samples:
    L: np.ndarray  # uint8 [N,S,S]
    ab: np.ndarray  # int8 [N,S,S,2]
    mask: np.ndarray  # bool [N,S,S]
    photo_id: list[str]
    category: list[str]


def _samples(photos: EvalPhotos, size: int, fit_mode: str, max_pixels: int = MAX_SCAN_PIXELS) -> Samples:
    """The photos as stored arrays at the bundle's size: shard rows as they are, files fitted like prep fits."""
    L, ab, mask, ids, cats = [], [], [], [], []
    for photo in progress(photos.photos, desc="load", unit="img"):
        if photos.kind == "shards":
            l_u8, ab_i8, m = photos.stored(photo)
        else:
            try:
                rgb = photos.rgb(photo, reduce_to=size, fit=fit_mode, max_pixels=max_pixels)
            except ColorizeError as exc:
                log.warning("skipping %s: %s", photo.name, exc.line())
                continue
            fitted, m = fit(rgb, size, fit_mode)
            l_u8, ab_i8 = rgb_to_stored(fitted)
        L.append(l_u8)
        ab.append(ab_i8)
        mask.append(m)
        ids.append(photo.photo_id)
        cats.append(photo.category)
    if not L:
        raise ColorizeError(f"none of the images in {photos.root} could be read", "check the files")
    return Samples(np.stack(L), np.stack(ab), np.stack(mask), ids, cats)


def _predict_rgb(colorizer, L: np.ndarray, temperature: float) -> np.ndarray:
    """A batch colored by one model at the shard size: its bin probabilities, annealed mean, + the input's L."""
    ab = decode_ab(model_probs(colorizer, L), colorizer.centers, temperature)
    return np.stack([compose(decode_l(L[k]), ab[k]) for k in range(len(L))])


def _true_routes(bundle: Bundle, s: Samples) -> np.ndarray:
    """Index of each photo's true route (-1 when its category is not one of the bundle's routes)."""
    if bundle.kind == "profile":
        lut = bundle.global_model.ab_lut.cpu().numpy()
        return load_bundle_profiles(bundle.path, bundle.index).assign(bin_histograms(s.ab, s.mask, lut, bundle.global_model.n_bins))
    pos = {r: i for i, r in enumerate(bundle.routes)}
    return np.array([pos.get(c, -1) for c in s.category], dtype=np.int64)


def _summarize(scores: list, idx: np.ndarray) -> dict:
    """Totals of `scores[i]` (ImageScores) over the sample indices `idx`."""
    t = Totals()
    for i in idx:
        t.add(scores[int(i)])
    return t.summary()


def _route_tables(bundle: Bundle, truth: np.ndarray, probs: np.ndarray, scores: dict[str, list],
                  min_conf: float) -> dict[str, Any]:
    routes = bundle.routes
    n = len(truth)
    choice = choose_routes(probs, routes, min_conf)
    routed_scores = [scores[c.route][i] for i, c in enumerate(choice)]
    oracle = [scores[routes[t]][i] if t >= 0 else scores[GLOBAL][i] for i, t in enumerate(truth)]
    methods = {"gray": scores["gray"], "global": scores[GLOBAL], "routed": routed_scores, "oracle": oracle}
    all_idx = np.arange(n)
    per_route = {}
    for r, name in enumerate(routes):
        idx = np.flatnonzero(truth == r)
        per_route[name] = {m: _summarize(s, idx) for m, s in methods.items()} | {"photos": int(len(idx))}
    overall = {m: _summarize(s, all_idx) for m, s in methods.items()} | {"photos": n}
    sweep = []
    for t in THRESHOLDS:
        ch = choose_routes(probs, routes, t)
        summ = _summarize([scores[c.route][i] for i, c in enumerate(ch)], all_idx)
        sweep.append({"min_confidence": t, "fallback_rate": float(np.mean([c.fallback for c in ch])),
                      **{k: summ[k] for k in ("psnr", "delta_cf", "auc", "auc_rebalanced")}})
    # Wrong-route matrix: specialist s on photos whose true route is r.
    matrix = {s: {r: _summarize(scores[s], np.flatnonzero(truth == j)) for j, r in enumerate(routes)}
              for s in routes}
    cost = {}
    for r in routes:
        own = matrix[r][r]["psnr"]
        others = [matrix[s][r]["psnr"] for s in routes if s != r and matrix[s][r]["psnr"] is not None]
        cost[r] = {"own_psnr": own, "other_specialists_psnr": float(np.mean(others)) if others else None,
                   "psnr_drop": (own - float(np.mean(others))) if others and own is not None else None,
                   "global_psnr": per_route[r]["global"]["psnr"]}
    wrong = [i for i, c in enumerate(choice) if not c.fallback and truth[i] >= 0 and c.predicted != routes[truth[i]]]
    paid = None
    if wrong:
        w = np.array(wrong)
        paid = {"photos": len(wrong), "routed": _summarize(routed_scores, w), "global": _summarize(scores[GLOBAL], w),
                "oracle": _summarize(oracle, w)}
    drops = [c["psnr_drop"] for c in cost.values() if c["psnr_drop"] is not None]
    return {"overall": overall, "per_route": per_route, "threshold_sweep": sweep,
            "verdict": _verdict(routed_scores, scores[GLOBAL], oracle),
            "wrong_route": {"matrix": matrix, "cost": cost, "misrouted_photos": paid,
                            "mean_psnr_drop": float(np.mean(drops)) if drops else None},
            "choices": choice}


def _paired(a: np.ndarray, b: np.ndarray, seed: int = 0, rounds: int = 2000) -> dict[str, Any]:
    """Mean of a - b per photo with a seeded 95% bootstrap interval, and how often a beats b."""
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (rounds, len(d)))].mean(1) if len(d) else np.zeros(1)
    return {"mean": float(d.mean()) if len(d) else None, "ci95": [float(np.percentile(means, 2.5)),
            float(np.percentile(means, 97.5))], "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
            "photos": int(len(d))}


def _verdict(routed: list, global_: list, oracle: list) -> dict[str, Any]:
    """The decision numbers: routed − global per photo (PSNR, ΔCF; paired, with bootstrap CIs)."""
    def col(rows: list, key: str) -> np.ndarray:
        return np.array([getattr(r, key) for r in rows], dtype=np.float64)
    return {"psnr_routed_minus_global": _paired(col(routed, "psnr"), col(global_, "psnr")),
            "psnr_oracle_minus_global": _paired(col(oracle, "psnr"), col(global_, "psnr")),
            # ΔCF: lower is better, so global − routed > 0 means routing keeps colorfulness closer to the truth.
            "delta_cf_global_minus_routed": _paired(col(global_, "delta_cf"), col(routed, "delta_cf"))}


def _router_tables(routes: list[str], truth: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Top-1 accuracy, top-3 error and the confusion matrix, over photos with a known route."""
    known = truth >= 0
    top = np.argsort(-probs, axis=1, kind="stable")
    top1 = top[:, 0] == truth
    top3 = (top[:, :3] == truth[:, None]).any(1)
    per = {}
    for r, name in enumerate(routes):
        idx = truth == r
        per[name] = {"photos": int(idx.sum()),
                     "top1_accuracy": float(top1[idx].mean()) if idx.any() else None,
                     "top3_error": float(1 - top3[idx].mean()) if idx.any() else None,
                     "mean_confidence": float(probs[idx].max(1).mean()) if idx.any() else None}
    confusion = np.zeros((len(routes), len(routes)), dtype=np.int64)
    np.add.at(confusion, (truth[known], top[known, 0]), 1)
    return {"photos": int(known.sum()), "unknown_route_photos": int((~known).sum()),
            "top1_accuracy": float(top1[known].mean()) if known.any() else None,
            "top3_error": float(1 - top3[known].mean()) if known.any() else None,
            "per_route": per, "confusion": confusion.tolist(), "confusion_axes": "rows = true route, columns = predicted"}


@dataclass
class BundleEvalReport:
    out: Path
    photos: int
    routed_psnr: float | None
    global_psnr: float | None
    router_top1: float | None
    fallback_rate: float
    result: dict = field(default_factory=dict, repr=False)  # the eval.json content

    def summary_line(self) -> str:
        def f(v, unit=""):
            return "n/a" if v is None else f"{v:.2f}{unit}"
        acc = "n/a" if self.router_top1 is None else f"{100 * self.router_top1:.0f}%"
        return (f"routed {f(self.routed_psnr, ' dB')} vs global {f(self.global_psnr, ' dB')} PSNR on "
                f"{self.photos} photos; router top-1 {acc}, fallback {100 * self.fallback_rate:.0f}% "
                f"-> {self.out / 'report.html'}")


def evaluate_bundle(model, shards, split: str, images, temperature: float, out, device, gallery: int,
                    batch: int = 16, max_pixels: int = MAX_SCAN_PIXELS) -> BundleEvalReport:
    """Evaluate a bundle on a shard split (or a folder of photos); write eval.json, report.html, a run record."""
    from colorize.models.routing.report import write_report

    t0 = time.perf_counter()
    photos = eval_photos(shards, split, images)
    bundle = load_bundle(Path(model), device)
    samples = _samples(photos, bundle.size, bundle.fit, max_pixels)
    if samples.L.shape[1] != bundle.size:
        raise ColorizeError(f"the shards are {samples.L.shape[1]} px but the bundle was trained at {bundle.size} px",
                            "evaluate on the shards the bundle was trained on")
    min_conf = float(bundle.index.get("min_confidence", ROUTER_MIN_CONFIDENCE))
    g = bundle.global_model
    lut, prior = g.ab_lut.cpu().numpy(), g.prior.cpu().numpy()
    names = [GLOBAL, *bundle.routes]
    scores: dict[str, list] = {k: [] for k in [*names, "gray"]}
    probs_all, n = [], len(samples.L)
    keep_gallery: dict[int, dict[str, np.ndarray]] = {}
    for i in progress(range(0, n, batch), desc="eval bundle", unit="batch"):
        sl = slice(i, i + batch)
        L, ab, mask = samples.L[sl], samples.ab[sl], samples.mask[sl]
        truth_rgb = stored_to_rgb(L, ab)
        gray_rgb = stored_to_rgb(L, np.zeros(ab.shape, np.float32))
        probs_all.append(bundle.route_probs(L))
        preds = {name: _predict_rgb(bundle.model_for(name), L, temperature) for name in names}
        for k in range(len(L)):
            j = i + k
            scores["gray"].append(score_image(gray_rgb[k], truth_rgb[k], mask[k], lut, prior))
            for name in names:
                scores[name].append(score_image(preds[name][k], truth_rgb[k], mask[k], lut, prior))
            if j < gallery:
                keep_gallery[j] = {"gray": gray_rgb[k], "truth": truth_rgb[k], **{m: preds[m][k] for m in names}}
    probs = np.concatenate(probs_all)
    truth = _true_routes(bundle, samples)
    tables = _route_tables(bundle, truth, probs, scores, min_conf)
    choices = tables.pop("choices")
    router = _router_tables(bundle.routes, truth, probs)
    per_category = None
    if bundle.kind == "profile":  # profiles are not categories: also say how each category fared
        per_category = {}
        for cat in sorted(set(samples.category)):
            idx = np.flatnonzero(np.array(samples.category) == cat)
            per_category[cat] = {"photos": int(len(idx)), "global": _summarize(scores[GLOBAL], idx),
                                 "routed": _summarize([scores[c.route][i] for i, c in enumerate(choices)], idx)}
    photos = [{"photo_id": samples.photo_id[i], "category": samples.category[i],
               "true_route": bundle.routes[truth[i]] if truth[i] >= 0 else None, **choices[i].info(),
               "psnr_routed": scores[choices[i].route][i].psnr, "psnr_global": scores[GLOBAL][i].psnr}
              for i in range(n)]
    result = {
        "schema": SCHEMA, "model": str(model), "route": bundle.kind, "routes": bundle.routes,
        "source": {"shards": str(shards) if shards else None, "split": split if shards else None,
                   "images": str(images) if images else None},
        "temperature": temperature, "min_confidence": min_conf, "conventions": CONVENTIONS,
        "fallback_rate": float(np.mean([c.fallback for c in choices])),
        **tables, "router": router, "per_category": per_category, "photos": photos,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "eval.json", result)
    write_report(out / "report.html", result, keep_gallery, choices)
    elapsed = time.perf_counter() - t0
    write_run_record(out / "eval-run.json", "eval", {"model": str(model), "shards": shards, "split": split,
                     "images": images, "temperature": temperature, "device": str(device), "gallery": gallery},
                     counts={"photos": n, "routes": len(bundle.routes)}, timings={"total": elapsed})
    overall = tables["overall"]
    return BundleEvalReport(out, n, overall["routed"]["psnr"], overall["global"]["psnr"], router["top1_accuracy"],
                            result["fallback_rate"], result)
