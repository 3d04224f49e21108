"""`colorize predict`: color on the user's own black-and-white photos, folders and films.

This module is the command: finding inputs, naming outputs, resuming, records and failures. How one
image is colorized (the network sees the photo fitted as in training; the output keeps the input's own
full-resolution L) lives in `inference.py`; films in `video.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colorize.errors import ColorizeError
from colorize.imaging import IMAGE_EXTS, JPEG_SUFFIXES, write_image
from colorize.models.infer.arrays import (  # noqa: F401  (colorize_rgb & co. re-exported: the contract's names)
    ImagePrediction,
    colorize_rgb,
    compose,
    decode_ab,
    gray_of,
    model_probs,
    parse_temperatures,
    predict_images,
    prepare,
)
from colorize.models.infer.pictures import prediction_pictures

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ the run
RECORD_NAME = "predict-run.json"
RECORD_EVERY_S = 10.0


@dataclass
class Job:
    """One input file and the stem (relative to --out) its outputs are named after."""

    src: Path
    kind: str  # "image" or "video"
    stem: Path


@dataclass
class PredictReport:
    """What `colorize predict` did; `failed` > 0 makes the CLI exit 1 after all good inputs are done."""

    out: Path
    record: Path
    images: int = 0
    videos: int = 0
    failed: int = 0
    ignored: int = 0
    kept: int = 0  # unchanged since the last run with the same model and options: not redone
    items: list[dict[str, Any]] | None = None

    def summary_line(self) -> str:
        line = f"colorized {self.images} image(s) and {self.videos} video(s) into {self.out}"
        flicker = [(i["flicker_raw"], i["flicker_smoothed"]) for i in self.items or []
                   if i.get("flicker_raw") is not None]
        if flicker:
            raw, smooth = (float(np.mean(v)) for v in zip(*flicker))
            line += f"; video flicker |Δab| {raw:.2f} -> {smooth:.2f} with smoothing"
        if self.kept:
            line += f" ({self.kept} already done by an earlier run, kept)"
        if self.failed:
            line += f"; {self.failed} input(s) FAILED (details in {self.record})"
        return line


def collect_inputs(inputs: Sequence[Path], out: Path) -> tuple[list[Job], list[dict[str, Any]], int]:
    """Files and folders (recursive) -> jobs with unique output stems, missing paths, ignored count."""
    from colorize.models.infer.video import VIDEO_EXTS

    out_abs = out.resolve()
    jobs: list[Job] = []
    missing: list[dict[str, Any]] = []
    ignored = 0
    used: set[str] = set()

    def add(src: Path, rel: Path) -> None:
        kind = "video" if src.suffix.lower() in VIDEO_EXTS else "image"
        stem = rel.with_name(rel.stem)
        if str(stem).lower() in used:  # photo.png and photo.tif: keep both
            stem = rel.with_name(rel.name.replace(".", "_"))
        base, n = stem, 2
        while str(stem).lower() in used:
            stem, n = base.with_name(f"{base.name}-{n}"), n + 1
        used.add(str(stem).lower())
        jobs.append(Job(src, kind, stem))

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if f.resolve().is_relative_to(out_abs):  # our own outputs from an earlier run
                    continue
                if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    add(f, rel)
                else:
                    ignored += 1
        elif path.is_file():
            add(path, Path(path.name))
        else:
            missing.append({"input": str(path), "kind": "missing", "status": "failed",
                            "error": f"{path}: no such file or folder — check the path"})
    return jobs, missing, ignored


def _named(out: Path, stem: Path, tag: str, suffix: str) -> Path:
    return out / stem.parent / f"{stem.name}.{tag}{suffix}"


def open_model(model: Path, device: str) -> Any:
    """A checkpoint -> Colorizer; a bundle folder -> routing.Bundle (routing is imported only then)."""
    if model.is_dir():
        from colorize.models.net import bundle as routing

        if not routing.is_bundle(model):
            raise ColorizeError(f"{model} is a folder but not a model bundle (no bundle index)",
                                "pass a .pt checkpoint or a folder written by `colorize train --route ...`")
        return routing.load_bundle(model, device)
    from colorize.models.net.checkpoint import load_colorizer

    return load_colorizer(model, device)


def _route(bundle: Any, rgb: np.ndarray, min_confidence: float) -> tuple[Any, dict[str, Any]]:
    """Pick a bundle's colorizer for one photo (router top route, or global below min_confidence)."""
    from colorize.models.net.bundle import choose_routes

    choice = choose_routes(bundle.route_rgb(rgb), bundle.routes, min_confidence)[0]
    return bundle.model_for(choice.route), choice.info()


def _image_outputs(out: Path, job: Job, temps: Sequence[float], pred: ImagePrediction, with_confidence: bool,
                   protected: set[Path]) -> list[Path]:
    """Write one photo's colorized file(s), strip and confidence map; returns the paths written."""

    suffix = ".jpg" if job.src.suffix.lower() in JPEG_SUFFIXES else ".png"
    todo = [(_named(out, job.stem, tag, ".png" if tag == "confidence" else suffix), rgb)
            for tag, rgb in prediction_pictures(pred, temps, with_confidence)]
    for path, _ in todo:
        if path.resolve() in protected:
            raise ColorizeError(f"output {path} would overwrite an input", "choose another --out folder")
    for path, rgb in todo:
        write_image(path, rgb)
    return [p for p, _ in todo]


def _fingerprint(model: Path, **options: Any) -> dict[str, Any]:
    """What decides the outputs' content: the model's bytes (a bundle's index pins all its files) + options."""
    from colorize import __version__
    from colorize.io import sha256_file

    return {"model_sha256": sha256_file(model / "bundle.json" if model.is_dir() else model),
            "tool_version": __version__, **options}


def _previous_items(record: Path, fingerprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished items of an earlier run into the same --out with the same fingerprint (what resume may keep)."""
    from colorize.io import read_json

    try:
        old = read_json(record)
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("fingerprint") != fingerprint:
        return {}
    return {i["input"]: i for i in old.get("items", []) if isinstance(i, dict) and i.get("status") == "ok"
            and isinstance(i.get("input"), str) and isinstance(i.get("outputs"), list) and i.get("input_sha256")}


def run_predict(model: str | Path, inputs: Sequence[str | Path], out: str | Path = "colorized",
                temperature: str | float = "0.38", confidence: bool = False, device: str = "auto",
                batch: int = 8, alpha: float = 0.2, window: int = 20, min_confidence: float = 0.5) -> PredictReport:
    """`colorize predict`: colorize every image and video in `inputs`; a bad input is recorded, not fatal."""
    from colorize.dataset.images import load_rgb
    from colorize.io import remove_stale_temps, sha256_file, write_run_record
    from colorize.models.infer import video as vid
    from colorize.progress import progress

    t0 = time.perf_counter()
    temps = parse_temperatures(temperature)
    out = Path(out)
    jobs, items, ignored = collect_inputs([Path(p) for p in inputs], out)
    if not jobs and not items:
        raise ColorizeError(f"no images or videos found in {', '.join(map(str, inputs))}",
                            f"pass image files ({' '.join(sorted(IMAGE_EXTS))}), videos or folders of them")
    engine = open_model(Path(model), device)
    is_bundle = not hasattr(engine, "probs")
    protected = {j.src.resolve() for j in jobs}
    report = PredictReport(out=out, record=out / RECORD_NAME, ignored=ignored, items=items)
    multi = len(temps) > 1
    fingerprint = _fingerprint(Path(model), temperatures=temps, confidence=confidence, alpha=alpha, window=window,
                               min_confidence=min_confidence)
    previous = _previous_items(report.record, fingerprint)
    input_sha: dict[Path, str] = {}

    def failed(job: Job, exc: ColorizeError) -> None:
        items.append({"input": str(job.src), "kind": job.kind, "status": "failed", "error": exc.line()})
        log.error("%s", exc.line())

    def flush(chunk: list[tuple[Job, np.ndarray]]) -> None:
        if not chunk:
            return
        if is_bundle:  # each photo may go to a different specialist
            preds = []
            for job, rgb in chunk:
                try:
                    col, info = _route(engine, rgb, min_confidence)
                except ColorizeError as exc:
                    failed(job, exc)
                    continue
                preds.append((job, predict_images(col, [rgb], temps)[0], info))
        else:
            batch_preds = predict_images(engine, [rgb for _, rgb in chunk], temps)
            preds = [(job, p, None) for (job, _), p in zip(chunk, batch_preds)]
        for job, pred, info in preds:
            try:
                written = _image_outputs(out, job, temps, pred, confidence, protected)
            except ColorizeError as exc:
                failed(job, exc)
                continue
            h, w = pred.colors[0].shape[:2]
            items.append({"input": str(job.src), "input_sha256": input_sha[job.src], "kind": "image", "status": "ok",
                          "width": w, "height": h,
                          "outputs": [str(p) for p in written], "mean_confidence": round(pred.mean_confidence(), 6),
                          **({"route": info} if info else {})})
            report.images += 1

    def do_video(job: Job) -> None:
        suffix = vid.output_suffix(job.src)
        paths = [_named(out, job.stem, f"t{t:g}.color" if multi else "color", suffix) for t in temps]
        if any(p.resolve() in protected for p in paths):
            raise ColorizeError(f"output {paths[0]} would overwrite an input", "choose another --out folder")
        if confidence:
            log.info("%s: --confidence maps are written for photos only", job.src)
        col, info = _route(engine, vid.read_first_frame(job.src), min_confidence) if is_bundle else (engine, None)
        stats = vid.colorize_video(col, job.src, paths, temps, batch=batch, alpha=alpha, window=window)
        items.append({"input": str(job.src), "input_sha256": input_sha[job.src], "kind": "video", "status": "ok",
                      "outputs": [str(p) for p in paths],
                      **stats.__dict__, **({"route": info} if info else {})})
        report.videos += 1

    def save_record() -> None:
        report.failed = sum(1 for i in items if i["status"] == "failed")
        write_run_record(report.record, "predict",
                         {"model": str(model), "inputs": [str(p) for p in inputs], "out": str(out),
                          "temperatures": temps, "confidence": confidence, "device": device, "batch": batch,
                          "alpha": alpha, "window": window, "min_confidence": min_confidence},
                         {"images": report.images, "videos": report.videos, "kept": report.kept,
                          "failed": report.failed, "ignored": ignored}, {"total": time.perf_counter() - t0},
                         fingerprint=fingerprint, items=items)

    def unchanged(job: Job) -> bool:
        """Resume: an earlier run with the same fingerprint already wrote this input's outputs."""
        try:
            input_sha[job.src] = sha256_file(job.src)
        except OSError as exc:
            raise ColorizeError(f"cannot read {job.src}: {exc.strerror or exc}", "check the file") from exc
        prev = previous.get(str(job.src))
        if not prev or prev["input_sha256"] != input_sha[job.src] or not all(Path(p).is_file() for p in prev["outputs"]):
            return False
        items.append({**prev, "kept": True})
        report.kept += 1
        return True

    out.mkdir(parents=True, exist_ok=True)
    for folder in {out} | {(out / j.stem).parent for j in jobs}:  # temps a killed run left behind
        remove_stale_temps(folder)
    bar = progress(total=len(jobs), desc="predict", unit="file")
    pending: list[tuple[Job, np.ndarray]] = []
    last_save = time.monotonic()
    try:
        for job in jobs:
            try:
                if unchanged(job):
                    pass
                elif job.kind == "video":
                    do_video(job)
                else:
                    pending.append((job, load_rgb(job.src)))
            except ColorizeError as exc:
                failed(job, exc)
            if len(pending) >= batch:
                flush(pending)
                pending = []
            if time.monotonic() - last_save > RECORD_EVERY_S:  # a killed run still leaves what it finished
                save_record()
                last_save = time.monotonic()
            bar.update(1)
        flush(pending)
    finally:
        bar.close()
        save_record()
    return report
