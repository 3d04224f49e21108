"""`colorize eval`: how good is a model, honestly — always next to the gray baseline, overall and per category.

Every test photo is colorized exactly as `colorize predict` would (same fit, same decoding, same gamut
handling), so the numbers describe what users get. Each metric (see `metrics.py` for the conventions) is
computed for the model at temperature T and for the gray baseline (the photo's own L with ab = 0), which
is hard to beat on PSNR/SSIM: the colorfulness gap ΔCF and the rebalanced AuC show whether the colors
are there at all. Output: `eval.json` (numbers, byte-stable for the same inputs), `report.html` with a
gallery (images referenced relative to the page), and the run record `eval-run.json` (timings).
A bundle is a model here: its row is what predict gives (each photo routed), and an extension
(`models/routing/evaluate.py`) adds its routing tables to the same eval.json and a page of its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from colorize import __version__
from colorize.errors import ColorizeError, UsageError
from colorize.imaging import write_image
from colorize.io import atomic_write_json, remove_stale_temps, sha256_file, write_run_record
from colorize.models.evaluate.params import EVAL_DEFAULTS
from colorize.models.evaluate.photos import EvalPhotos, check_one_source, eval_photos
from colorize.models.evaluate.report import write_report
from colorize.models.evaluate.sweep import HintSweep, parse_counts
from colorize.models.infer.arrays import as_sources
from colorize.models.infer.colorizer import open_model
from colorize.models.infer.pictures import legend_image, stretch_range, stretched_image
from colorize.models.infer.predict import require_hints
from colorize.models.net.bundle import INDEX
from colorize.models.net.metrics import (
    CONVENTIONS,
    ImageScores,
    Totals,
    cast_warning_against_gray,
    score_image,
)
from colorize.progress import progress

log = logging.getLogger(__name__)

SCHEMA = "colorize.eval/1"
BATCH = 16
THUMB_MAX = 320  # gallery pictures are at most this many px on their long side


@dataclass
class Sample:
    """One truth photo (uint8 RGB, real pixels only) with its name and category (both untrusted text)."""

    name: str
    category: str
    rgb: np.ndarray


def _samples(photos: EvalPhotos, skipped: list[dict[str, str]], max_pixels: int) -> Iterator[Sample]:
    """Each photo's truth in order; an unusable one is recorded in `skipped` and left out."""
    for photo in photos.photos:
        try:
            rgb = photos.rgb(photo, max_pixels=max_pixels)
        except ColorizeError as exc:
            skipped.append({"file": photo.name, "reason": exc.line()})
            log.warning("skipping %s", exc.line())
            continue
        yield Sample(photo.name, photo.category, rgb)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, THUMB_MAX / max(h, w))
    if scale == 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass
class _GalleryPicker:
    """Keeps the first few samples of every category (as thumbnails), then picks round-robin."""

    wanted: int
    per_category: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def offer(self, sample: Sample, pred: Any, gray: np.ndarray, row: dict[str, float]) -> None:
        keep = self.per_category.setdefault(sample.category, [])
        if len(keep) < self.wanted:
            keep.append({"name": sample.name, "category": sample.category, "metrics": row,
                         "pictures": {"gray": _thumb(gray), "pred": _thumb(pred.colors[0]),
                                      "truth": _thumb(sample.rgb)},
                         "confidence": _thumb(pred.confidence_map())})

    def write(self, out: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The picked samples' pictures under out/gallery, and the confidence legend (one range for all maps,
        so maps compare across photos)."""
        picked: list[dict[str, Any]] = []
        queues = [list(self.per_category[c]) for c in sorted(self.per_category)]
        while len(picked) < self.wanted and any(queues):
            for q in queues:
                if q and len(picked) < self.wanted:
                    picked.append(q.pop(0))
        legend = None
        if picked:
            lo, hi = stretch_range(*(item["confidence"] for item in picked))
            write_image(out / "gallery" / "confidence-legend.png", legend_image(lo, hi))
            legend = {"range": [round(lo, 4), round(hi, 4)], "legend": "gallery/confidence-legend.png"}
        entries = []
        for n, item in enumerate(picked):
            files = {}
            item["pictures"]["confidence"] = stretched_image(item.pop("confidence"), lo, hi)
            for kind, rgb in item.pop("pictures").items():
                rel = f"gallery/{n:03d}-{kind}.png"  # by position: untrusted names never become paths
                write_image(out / rel, rgb)
                files[kind] = rel
            entries.append({**item, **files})
        return entries, legend


@dataclass
class EvalReport:
    out: Path
    result: dict[str, Any]

    def summary_line(self) -> str:
        m, g = self.result["overall"]["model"], self.result["overall"]["gray"]

        def pair(key: str, fmt: str) -> str:
            a, b = m.get(key), g.get(key)
            return f"{'–' if a is None else format(a, fmt)} vs gray {'–' if b is None else format(b, fmt)}"

        cast = "" if m.get("ab_offset_a") is None else \
            f", mean ab offset ({m['ab_offset_a']:+.1f}, {m['ab_offset_b']:+.1f})"
        return (f"eval on {self.result['images']} image(s) at T={self.result['temperature']:g}: "
                f"PSNR {pair('psnr', '.2f')} dB, ΔCF {pair('delta_cf', '.1f')}, "
                f"AuC rebalanced {pair('auc_rebalanced', '.1f')} %{cast} -> {self.out / 'report.html'}"
                + self._routing_line())

    def _routing_line(self) -> str:
        """A bundle's eval also says routed vs global and how the router did."""
        r = self.result.get("routing")
        if not r:
            return ""
        routed, glob = r["overall"]["routed"]["psnr"], r["overall"]["global"]["psnr"]
        top1 = r["router"]["top1_accuracy"]
        return (f"\n  routed {'–' if routed is None else f'{routed:.2f}'} vs global "
                f"{'–' if glob is None else f'{glob:.2f}'} dB PSNR; router top-1 "
                f"{'–' if top1 is None else f'{100 * top1:.0f}%'}, fallback {100 * r['fallback_rate']:.0f}% "
                f"-> {self.out / r['page']}")


def _clean(summary: dict[str, Any]) -> dict[str, Any]:
    """Round for stable, readable JSON (NaN never reaches the file)."""
    return {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else
                round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}


class EvalExtension(Protocol):
    """More tables for a model that has more to say (a bundle's routing: `models/routing/evaluate.py`)."""

    key: str  # where its tables go in eval.json

    def add(self, batch: Sequence[Sample], gray: Sequence[ImageScores], score: Scorer) -> None:
        """See a batch of photos (their truth and gray-baseline scores); `score(pred, truth)` scores a picture."""

    def tables(self) -> dict[str, Any]:
        """What goes into eval.json under the extension's key."""

    def write(self, out: Path, result: dict[str, Any]) -> None:
        """Its own page and pictures beside report.html, from the finished eval.json `result`."""


Scorer = Callable[[np.ndarray, np.ndarray], ImageScores]


@dataclass
class _Tally:
    """Scores so far: totals overall and per category, one row per photo, the gallery's picks."""

    score: Scorer
    picker: _GalleryPicker
    totals: dict[str, dict[str, Totals]] = field(
        default_factory=lambda: {"overall": {"model": Totals(), "gray": Totals()}})
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batch: Sequence[Sample], preds: Sequence[Any]) -> list[ImageScores]:
        """Score a batch colored by the model; returns the gray baseline's scores (for extensions)."""
        grays = []
        for sample, pred in zip(batch, preds):
            gray = pred.gray()  # both composed in strips (strips.py): a large photo costs its pictures only
            scores = {"model": self.score(pred.colors[0], sample.rgb), "gray": self.score(gray, sample.rgb)}
            group = self.totals.setdefault(sample.category, {"model": Totals(), "gray": Totals()})
            for method, sc in scores.items():
                self.totals["overall"][method].add(sc)
                group[method].add(sc)
            row = _clean(scores["model"].row())
            self.rows.append({"name": sample.name, "category": sample.category, "model": row,
                              "gray": _clean(scores["gray"].row())})
            self.picker.offer(sample, pred, gray, row)
            grays.append(scores["gray"])
        return grays


def _score_all(model: Any, samples: Iterator[Sample], total: int, temperature: float, tally: _Tally,
               extensions: Sequence[EvalExtension]) -> None:
    """Every photo colored as `colorize predict` would (`model.predict`: the one coloring path), in batches."""
    bar = progress(total=total, desc="eval", unit="img")

    def flush(batch: list[Sample]) -> None:
        grays = tally.add(batch, model.predict(as_sources([s.rgb for s in batch]), [temperature]))
        for extension in extensions:
            extension.add(batch, grays, tally.score)
        bar.update(len(batch))

    batch: list[Sample] = []
    try:
        for sample in samples:
            batch.append(sample)
            if len(batch) >= BATCH:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    finally:
        bar.close()


def _result(model: Path, data: dict[str, Any], temperature: float, tally: _Tally, skipped: list[dict[str, str]],
            gallery: tuple[list[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """eval.json: overall and per-category summaries, warnings, every photo's row, the gallery."""
    totals = dict(tally.totals)
    overall = {m: _clean(t.summary()) for m, t in totals.pop("overall").items()}
    categories = {c: {m: _clean(t.summary()) for m, t in g.items()} for c, g in sorted(totals.items())}
    groups = [("the model", overall)] + [(f"the model on {c!r}", rows) for c, rows in categories.items()]
    warnings = [w for what, rows in groups if (w := cast_warning_against_gray(what, rows["model"], rows["gray"]))]
    for line in warnings:
        log.warning("%s", line)
    return {
        "schema": SCHEMA, "tool_version": __version__, "model": str(model), "model_name": model.stem,
        "model_sha256": sha256_file(model / INDEX if model.is_dir() else model), "data": data,
        "temperature": temperature, "images": overall["model"]["images"], "conventions": CONVENTIONS,
        "skipped": skipped, "overall": overall, "categories": categories, "warnings": warnings,
        "samples": tally.rows, "gallery": gallery[0], "confidence": gallery[1],
    }


def run_eval(model: str | Path, shards: str | Path | None = None, split: str = EVAL_DEFAULTS.split,
             images: str | Path | None = None, temperature: float = EVAL_DEFAULTS.temperature,
             out: str | Path = EVAL_DEFAULTS.out, device: str = EVAL_DEFAULTS.device,
             gallery: int = EVAL_DEFAULTS.gallery, max_pixels: int = EVAL_DEFAULTS.max_pixels,
             extend: Callable[[Any], EvalExtension | None] | None = None,
             hints_sweep: str | Sequence[int] | None = EVAL_DEFAULTS.hints_sweep) -> EvalReport:
    """`colorize eval`: score the model (a checkpoint, or a bundle routing each photo) and the gray baseline;
    write eval.json, report.html, eval-run.json. `extend(model)` may add tables (a bundle's routing);
    `hints_sweep` ("0,1,2,5,10,20,50") adds the hints sweep (`sweep.py`) against colour propagation."""
    model, out = Path(model), Path(out)
    check_one_source(shards, images)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"temperature must be > 0, got {temperature}", "e.g. --temperature 0.38")
    counts = parse_counts(hints_sweep) if hints_sweep is not None else None
    t0 = time.perf_counter()
    engine = open_model(model, device)
    if counts and counts[-1] > 0:
        require_hints(engine)
    extensions = [e for e in (extend(engine) if extend is not None else None,
                              HintSweep(engine, counts, temperature) if counts else None) if e is not None]
    photos = eval_photos(shards, split, images)
    data = {"shards": str(shards), "split": split} if shards is not None else {"images": str(images)}
    lut, prior = engine.ab_lut.cpu().numpy(), engine.prior.cpu().numpy()
    skipped: list[dict[str, str]] = []
    tally = _Tally(lambda pred, truth: score_image(pred, truth, None, lut, prior), _GalleryPicker(gallery))
    _score_all(engine, _samples(photos, skipped, max_pixels), len(photos.photos), temperature, tally, extensions)
    if tally.totals["overall"]["model"].n == 0:
        raise ColorizeError("no photo could be evaluated (all were skipped)", "see the log for why each was skipped")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    remove_stale_temps(out / "gallery")
    result = _result(model, data, temperature, tally, skipped, tally.picker.write(out))
    for extension in extensions:
        result[extension.key] = extension.tables()
    atomic_write_json(out / "eval.json", result)
    write_report(out / "report.html", result)
    for extension in extensions:
        extension.write(out, result)
    write_run_record(out / "eval-run.json", "eval",
                     {"model": str(model), **data, "temperature": temperature, "device": device, "gallery": gallery,
                      "max_pixels": max_pixels, "hints_sweep": counts},
                     {"images": result["images"], "skipped": len(skipped), "categories": len(result["categories"])},
                     {"total": time.perf_counter() - t0})
    return EvalReport(out, result)
