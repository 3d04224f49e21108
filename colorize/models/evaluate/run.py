"""`colorize eval`: how good is a model, honestly — always next to the gray baseline, overall and per category.

Every test photo is colorized exactly as `colorize predict` would (same fit, same decoding, same gamut
handling), so the numbers describe what users get. Each metric (see `metrics.py` for the conventions) is
computed for the model at temperature T and for the gray baseline (the photo's own L with ab = 0), which
is hard to beat on PSNR/SSIM: the colorfulness gap ΔCF and the rebalanced AuC show whether the colors
are there at all. Output: `eval.json` (numbers, byte-stable for the same inputs), `report.html` with a
gallery (images referenced relative to the page), and the run record `eval-run.json` (timings).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from colorize import __version__
from colorize.dataset import MAX_SCAN_PIXELS
from colorize.errors import ColorizeError, UsageError
from colorize.imaging import write_image
from colorize.io import atomic_write_json, remove_stale_temps, sha256_file, write_run_record
from colorize.models.evaluate.photos import EvalPhotos, check_one_source, eval_photos
from colorize.models.evaluate.report import write_report
from colorize.models.infer.arrays import predict_images
from colorize.models.infer.colorizer import open_model
from colorize.models.infer.pictures import legend_image, stretch_range, stretched_image
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.models.net.bundle import is_bundle
from colorize.models.net.metrics import CONVENTIONS, Totals, cast_warning_against_gray, score_image
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
class _SampleStrip:
    """Keeps the first few samples of every category (as thumbnails), then picks round-robin."""

    wanted: int
    per_category: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def offer(self, sample: Sample, pred: Any, gray: np.ndarray, row: dict[str, float]) -> None:
        keep = self.per_category.setdefault(sample.category, [])
        if len(keep) < self.wanted:
            f = pred.framing
            keep.append({"name": sample.name, "category": sample.category, "metrics": row,
                         "pictures": {"gray": _thumb(gray), "pred": _thumb(pred.colors[0]),
                                      "truth": _thumb(sample.rgb)},
                         "confidence": _thumb(f.upsample(pred.top, cv2.INTER_LINEAR))})

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
                f"AuC rebalanced {pair('auc_rebalanced', '.1f')} %{cast} -> {self.out / 'report.html'}")


def _clean(summary: dict[str, Any]) -> dict[str, Any]:
    """Round for stable, readable JSON (NaN never reaches the file)."""
    return {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else
                round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}


def run_eval(model: str | Path, shards: str | Path | None = None, split: str = "test",
             images: str | Path | None = None, temperature: float = DEFAULT_TEMPERATURE, out: str | Path = "eval",
             device: str = "auto", gallery: int = 12, max_pixels: int = MAX_SCAN_PIXELS) -> Any:
    """`colorize eval`: score the model and the gray baseline; write eval.json, report.html, eval-run.json."""
    model = Path(model)
    check_one_source(shards, images)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"temperature must be > 0, got {temperature}", "e.g. --temperature 0.38")
    t0 = time.perf_counter()
    if is_bundle(model):
        raise UsageError(f"{model} is a model bundle; run_eval scores one colorizer",
                         "use `colorize eval --model BUNDLE` (models.routing.evaluate.evaluate_bundle)")
    colorizer = open_model(model, device)
    out = Path(out)
    skipped: list[dict[str, str]] = []
    photos = eval_photos(shards, split, images)
    samples = _samples(photos, skipped, max_pixels)
    data = {"shards": str(shards), "split": split} if shards is not None else {"images": str(images)}
    lut = colorizer.ab_lut.cpu().numpy()
    prior = colorizer.prior.cpu().numpy()
    totals: dict[str, dict[str, Totals]] = {"overall": {"model": Totals(), "gray": Totals()}}
    rows: list[dict[str, Any]] = []
    shelf = _SampleStrip(gallery)
    bar = progress(total=len(photos.photos), desc="eval", unit="img")

    def flush(batch: list[Sample]) -> None:
        for sample, pred in zip(batch, predict_images(colorizer, [s.rgb for s in batch], [temperature])):
            gray = pred.gray()  # both composed in strips (strips.py): a large photo costs its pictures only
            scores = {"model": score_image(pred.colors[0], sample.rgb, None, lut, prior),
                      "gray": score_image(gray, sample.rgb, None, lut, prior)}
            group = totals.setdefault(sample.category, {"model": Totals(), "gray": Totals()})
            for method, s in scores.items():
                totals["overall"][method].add(s)
                group[method].add(s)
            row = _clean(scores["model"].row())
            rows.append({"name": sample.name, "category": sample.category, "model": row,
                         "gray": _clean(scores["gray"].row())})
            shelf.offer(sample, pred, gray, row)
            bar.update(1)

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
    n = totals["overall"]["model"].n
    if n == 0:
        raise ColorizeError("no photo could be evaluated (all were skipped)", "see the log for why each was skipped")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    remove_stale_temps(out / "gallery")
    gallery_entries, legend = shelf.write(out)
    overall = {m: _clean(t.summary()) for m, t in totals.pop("overall").items()}
    categories = {c: {m: _clean(t.summary()) for m, t in g.items()} for c, g in sorted(totals.items())}
    groups = [("the model", overall)] + [(f"the model on {c!r}", rows) for c, rows in categories.items()]
    warnings = [w for what, rows in groups if (w := cast_warning_against_gray(what, rows["model"], rows["gray"]))]
    for line in warnings:
        log.warning("%s", line)
    result = {
        "schema": SCHEMA, "tool_version": __version__, "model": str(model), "model_name": model.stem,
        "model_sha256": sha256_file(model), "data": data, "temperature": temperature, "images": n,
        "conventions": CONVENTIONS, "skipped": skipped,
        "overall": overall,
        "categories": categories,
        "warnings": warnings,
        "samples": rows,
        "gallery": gallery_entries,
        "confidence": legend,
    }
    atomic_write_json(out / "eval.json", result)
    write_report(out / "report.html", result)
    write_run_record(out / "eval-run.json", "eval",
                     {"model": str(model), **data, "temperature": temperature, "device": device, "gallery": gallery,
                      "max_pixels": max_pixels},
                     {"images": n, "skipped": len(skipped), "categories": len(result["categories"])},
                     {"total": time.perf_counter() - t0})
    return EvalReport(out, result)
