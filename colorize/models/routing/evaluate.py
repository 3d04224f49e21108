"""`colorize eval`: the one evaluator, with a bundle's routing tables: does routing beat one model, and
what does a wrong route cost?

A bundle is scored by `evaluate.run.run_eval` like any model (its row: each photo routed, as predict
does); `RoutingTables` adds the rest to the same eval.json (key "routing") and draws routing.html.
Every photo is colored by the global model *and* by every specialist once, through the one coloring
path at full resolution (mirror, gamut fit), so the global row equals `eval` of global.pt; all the
questions a practitioner asks are then answered from those same predictions, so the numbers are
directly comparable:
- routed vs global (and the gray baseline) per route, at the bundle's confidence threshold and over a
  sweep of thresholds (threshold 1.0 = always global, 0 = always trust the router);
- "oracle" routing (each photo to its true route's specialist): the ceiling a perfect router reaches;
- the router's top-1 accuracy, top-3 error and confusion matrix per route
  (as the category-classifier-then-specialist colorization pipelines report their classifier);
- the wrong-route matrix: specialist s on the photos of route r, and the drop from r's own specialist.
Rebalanced AuC uses the *global* model's prior for every model, so all rows weigh pixels alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset.color import rgb_to_stored
from colorize.dataset.images import fit
from colorize.models.evaluate.params import EVAL_DEFAULTS
from colorize.models.evaluate.run import EvalReport, Sample, Scorer, run_eval
from colorize.models.infer.arrays import as_sources
from colorize.models.infer.colorizer import Bundle
from colorize.models.net.bundle import GLOBAL, choose_routes
from colorize.models.net.metrics import ImageScores, Totals
from colorize.models.routing.profiles import bin_histograms, load_bundle_profiles

log = logging.getLogger(__name__)

PAGE = "routing.html"  # the routing tables' page, beside report.html
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9, 1.0)


def _true_routes(bundle: Bundle, ab: np.ndarray, mask: np.ndarray, categories: list[str]) -> np.ndarray:
    """Index of each photo's true route (-1 when its category is not one of the bundle's routes); a profile
    bundle's true route is the profile nearest the photo's colors (int8 ab + mask at the bundle's size)."""
    if bundle.kind == "profile":
        lut = bundle.global_model.ab_lut.cpu().numpy()
        hist = bin_histograms(ab, mask, lut, bundle.global_model.n_bins)
        return load_bundle_profiles(bundle.path, bundle.index).assign(hist)
    pos = {r: i for i, r in enumerate(bundle.routes)}
    return np.array([pos.get(c, -1) for c in categories], dtype=np.int64)


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
class RoutingTables:
    """The eval extension of a bundle (`evaluate.run.EvalExtension`): every photo colored by the global
    model and by every specialist through the one coloring path, plus the router's choice and the truth."""

    bundle: Bundle
    gallery: int  # photos drawn on routing.html
    temperature: float
    key: str = "routing"
    scores: dict[str, list] = field(default_factory=dict)
    probs: list[np.ndarray] = field(default_factory=list)
    ab: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    pictures: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    choices: list = field(default_factory=list)  # bundle.RouteChoice per photo, once `tables` ran

    def add(self, batch: Sequence[Sample], gray: Sequence[ImageScores], score: Scorer) -> None:
        b = self.bundle
        sources = as_sources([s.rgb for s in batch])
        preds = {name: col.predict(sources, [self.temperature]) for name, col in b.members.items()}
        colored = {name: [p.colors[0] for p in ps] for name, ps in preds.items()}
        for k, sample in enumerate(batch):
            fitted, m = fit(sample.rgb, b.size, b.fit)
            self.probs.append(b.route_probs(rgb_to_stored(fitted)[0][None])[0])
            self.ab.append(rgb_to_stored(fitted)[1])
            self.mask.append(m)
            self.names.append(sample.name)
            self.categories.append(sample.category)
            self.scores.setdefault("gray", []).append(gray[k])
            for name, pictures in colored.items():
                self.scores.setdefault(name, []).append(score(pictures[k], sample.rgb))
            if len(self.pictures) < self.gallery:
                self.pictures[len(self.pictures)] = {"gray": preds[GLOBAL][k].gray(), "truth": sample.rgb,
                                                     **{n: c[k] for n, c in colored.items()}}

    def tables(self) -> dict[str, Any]:
        b = self.bundle
        probs = np.stack(self.probs)
        truth = _true_routes(b, np.stack(self.ab), np.stack(self.mask), self.categories)
        tables = _route_tables(b, truth, probs, self.scores, b.min_confidence)
        choices = tables.pop("choices")
        photos = [{"name": self.names[i], "category": self.categories[i],
                   "true_route": b.routes[truth[i]] if truth[i] >= 0 else None, **choices[i].info(),
                   "psnr_routed": self.scores[choices[i].route][i].psnr, "psnr_global": self.scores[GLOBAL][i].psnr}
                  for i in range(len(truth))]
        self.choices = choices
        return {"page": PAGE, "route": b.kind, "routes": b.routes, "min_confidence": b.min_confidence,
                "fallback_rate": float(np.mean([c.fallback for c in choices])), **tables,
                "router": _router_tables(b.routes, truth, probs),
                "per_category": self._per_category(choices), "photos": photos}

    def _per_category(self, choices: list) -> dict[str, Any] | None:
        """Profiles are not categories: a profile bundle also says how each category fared."""
        if self.bundle.kind != "profile":
            return None
        cats = np.array(self.categories)
        routed = [self.scores[c.route][i] for i, c in enumerate(choices)]
        return {cat: {"photos": int((cats == cat).sum()),
                      "global": _summarize(self.scores[GLOBAL], np.flatnonzero(cats == cat)),
                      "routed": _summarize(routed, np.flatnonzero(cats == cat))} for cat in sorted(set(self.categories))}

    def write(self, out: Path, result: dict[str, Any]) -> None:
        from colorize.models.routing.report import write_report

        page = {**result[self.key], "model": result["model"], "temperature": result["temperature"]}
        write_report(out / PAGE, page, self.pictures, self.choices)


def routing_tables(gallery: int, temperature: float) -> Callable[[Any], RoutingTables | None]:
    """`run_eval`'s `extend`: routing tables for a bundle, nothing for one colorizer."""
    def extend(model: Any) -> RoutingTables | None:
        if not isinstance(model, Bundle):
            return None
        return RoutingTables(model, gallery, temperature)
    return extend


def evaluate(model: str | Path, shards: str | Path | None = None, split: str = EVAL_DEFAULTS.split,
             images: str | Path | None = None, temperature: float = EVAL_DEFAULTS.temperature,
             out: str | Path = EVAL_DEFAULTS.out, device: str = EVAL_DEFAULTS.device,
             gallery: int = EVAL_DEFAULTS.gallery, max_pixels: int = EVAL_DEFAULTS.max_pixels,
             hints_sweep: str | None = EVAL_DEFAULTS.hints_sweep) -> EvalReport:
    """`colorize eval` of any model: the one evaluator (`evaluate.run.run_eval`); a bundle's eval.json has the
    same keys as a checkpoint's, plus its routing tables under "routing" and the page routing.html."""
    return run_eval(model, shards, split, images, temperature, out, device, gallery, max_pixels,
                    extend=routing_tables(gallery, temperature), hints_sweep=hints_sweep)
