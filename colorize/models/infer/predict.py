"""`colorize predict`: color on the user's own black-and-white photos, folders and films.

This module is the command: finding inputs (`collect_inputs`), coloring them in batches (`_Painter`),
resuming and keeping the record (`_Record`). How one image is colorized (the network sees the photo
fitted as in training; the output keeps the input's own full-resolution L) lives in `arrays.py`, its
full-resolution composition in strips (bounded memory, 16-bit kept) in `strips.py`, reading photo files
(header first, one decoded copy, ICC/DPI) in `dataset/scans.py`; films in `video.py`; the loaded model
(checkpoint or bundle) in `colorizer.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize import __version__
from colorize.dataset.scans import Scan, open_scan
from colorize.errors import ColorizeError, UsageError
from colorize.imaging import IMAGE_EXTS, write_image, write_image16
from colorize.io import read_json, remove_stale_temps, sha256_file, write_run_record
from colorize.models.infer import video as vid
from colorize.models.infer.arrays import ImagePrediction, parse_temperatures
from colorize.models.infer.colorizer import Bundle, Colorizer, open_model
from colorize.models.infer.hintfile import read_hints
from colorize.models.infer.params import PREDICT_DEFAULTS, PredictParams
from colorize.models.infer.pictures import SHEET_MAX_HEIGHT, confidence_picture, temperature_sheet
from colorize.models.infer.provenance import provenance_warning
from colorize.models.infer.strips import shrink
from colorize.models.net.unet import require_hints_support
from colorize.progress import progress

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ the run
RECORD_NAME = "predict-run.json"
RECORD_EVERY_S = 10.0
FAILURES_SHOWN = 10  # failed inputs named on the terminal, each with its reason
BATCH_PIXELS = 64_000_000  # decoded photos one batch may hold: a large scan is colorized alone


@dataclass
class Job:
    """One input file and the stem (relative to --out) its outputs are named after."""

    src: Path
    kind: str  # "image" or "video"
    stem: Path
    rel: Path = Path()  # the input's path below the folder it was found in (its name for a file)
    hints: Path | None = None  # the photo's hints file (`HintFiles`), None: coloured automatically
    hints_sha256: str | None = None


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
            line += f"; {self.failed} input(s) FAILED (details in {self.record})" + self.failure_lines()
        return line

    def failure_lines(self) -> str:
        """One line per failed input with its reason (the first `FAILURES_SHOWN`; the record has them all)."""
        failed = [i for i in self.items or [] if i.get("status") == "failed"]
        lines = [f"\n  {_reason(i)}" for i in failed[:FAILURES_SHOWN]]
        if len(failed) > FAILURES_SHOWN:
            lines.append(f"\n  ... and {len(failed) - FAILURES_SHOWN} more in {self.record}")
        return "".join(lines)


def _reason(item: dict[str, Any]) -> str:
    """A failed item's error line, naming its input (once)."""
    error = str(item.get("error", "failed"))
    return error if item["input"] in error else f"{item['input']}: {error}"


def collect_inputs(inputs: Sequence[Path], out: Path) -> tuple[list[Job], list[dict[str, Any]], int]:
    """Files and folders (recursive) -> jobs with unique output stems, missing paths, ignored count."""
    out_abs = out.resolve()
    jobs: list[Job] = []
    missing: list[dict[str, Any]] = []
    ignored = 0
    used: set[str] = set()

    def add(src: Path, rel: Path) -> None:
        kind = "video" if src.suffix.lower() in vid.VIDEO_EXTS else "image"
        stem = rel.with_name(rel.stem)
        if str(stem).lower() in used:  # photo.png and photo.tif: keep both
            stem = rel.with_name(rel.name.replace(".", "_"))
        base, n = stem, 2
        while str(stem).lower() in used:
            stem, n = base.with_name(f"{base.name}-{n}"), n + 1
        used.add(str(stem).lower())
        jobs.append(Job(src, kind, stem, rel))

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if f.resolve().is_relative_to(out_abs):  # our own outputs from an earlier run
                    continue
                if f.suffix.lower() in IMAGE_EXTS | vid.VIDEO_EXTS:
                    add(f, rel)
                else:
                    ignored += 1
        elif path.is_file():
            add(path, Path(path.name))
        else:
            missing.append({"input": str(path), "kind": "missing", "status": "failed",
                            "error": f"{path}: no such file or folder — check the path"})
    return jobs, missing, ignored


@dataclass(frozen=True)
class HintFiles:
    """`predict --hints PATH`: a hints file for the one input photo, or a folder of `<stem>.json` files found
    by each photo's relative path (`photos/a/b.png` -> `PATH/a/b.json`); a photo without one is coloured
    automatically. Videos take no hints."""

    root: Path | None

    @classmethod
    def of(cls, hints: str | Path | None, jobs: Sequence[Job]) -> HintFiles:
        if hints is None:
            return cls(None)
        root = Path(hints)
        if not root.exists():
            raise UsageError(f"--hints {root}: no such file or folder",
                             "pass a hints file (`colorize hints` writes one) or a folder of <stem>.json files")
        if root.is_file() and sum(j.kind == "image" for j in jobs) != 1:
            raise UsageError(f"--hints {root} is one hints file, but the inputs hold "
                             f"{sum(j.kind == 'image' for j in jobs)} photos",
                             "pass one photo, or a folder of <stem>.json files named like the photos")
        return cls(root)

    def attach(self, job: Job) -> None:
        """Set the job's hints file and its sha256 (what the record names and resume compares)."""
        if self.root is None or job.kind != "image":
            return
        path = self.root if self.root.is_file() else self.root / job.rel.with_suffix(".json")
        if path.is_file():
            job.hints, job.hints_sha256 = path, sha256_file(path)


def require_hints(model: Colorizer | Bundle) -> None:
    """Before any work: every network that may colour a hinted photo takes hints (one line if not)."""
    for col in model.members.values() if isinstance(model, Bundle) else [model]:
        require_hints_support(col.model, col.origin)


def _named(out: Path, stem: Path, tag: str, suffix: str) -> Path:
    return out / stem.parent / f"{stem.name}.{tag}{suffix}"


def _image_outputs(out: Path, job: Job, temps: Sequence[float], pred: ImagePrediction, with_confidence: bool,
                   protected: set[Path]) -> list[Path]:
    """Write one photo's colorized file(s), temperature sheet and confidence map; returns the paths written.

    One full-size buffer serves every temperature in turn (each is written before the next is composed),
    so a scan with several temperatures needs no more memory than with one. 16-bit scans give 16-bit files
    in their own container; the sheet (`NAME.strip.EXT` on disk, as released) and the confidence map are 8-bit pictures to look at.
    """
    scan: Scan = pred.source
    suffix, multi = scan.output_suffix, len(temps) > 1
    colors = [_named(out, job.stem, f"t{t:g}.color" if multi else "color", suffix) for t in temps]
    sheet = _named(out, job.stem, "strip", suffix if scan.depth == 8 else ".png") if multi else None
    conf = _named(out, job.stem, "confidence", ".png") if with_confidence else None
    written = [p for p in [*colors, sheet, conf] if p is not None]
    for path in written:
        if path.resolve() in protected:
            raise ColorizeError(f"output {path} would overwrite an input", "choose another --out folder")
    if scan.depth == 16:  # OpenCV writes BGR: compose into a reversed view, and it writes without a copy
        buffer = np.empty((scan.height, scan.width, 3), np.uint16)[..., ::-1]
    else:
        buffer = np.empty((scan.height, scan.width, 3), np.uint8)
    panels = [("gray input", shrink(pred.gray(out=buffer), SHEET_MAX_HEIGHT))] if multi else []
    for i, (t, path) in enumerate(zip(temps, colors)):
        rgb = pred.color(i, out=buffer, desc=f"{job.src.name} T={t:g}")
        if i == len(temps) - 1:  # the last full-size picture is composed: the decoded input can go before writing
            scan.release()
        write_picture(path, scan, rgb)
        if multi:
            panels.append((f"T = {t:g}", shrink(rgb, SHEET_MAX_HEIGHT)))
    del buffer, rgb
    if sheet is not None:
        write_image(sheet, temperature_sheet(panels))
    if conf is not None:
        write_image(conf, confidence_picture(pred))
    return written


def write_picture(path: Path, scan: Scan, rgb: np.ndarray) -> None:
    """One full-size colour picture in the photo's own depth and container, with its ICC profile and DPI
    (what predict writes; the editor saves with it too, so both give the same file)."""
    icc, dpi = scan.output_icc(), scan.dpi
    if scan.depth == 16:
        write_image16(path, rgb, icc, dpi)
    else:
        write_image(path, rgb, icc=icc, dpi=dpi)


def _fingerprint(model: Path, **options: Any) -> dict[str, Any]:
    """What decides the outputs' content: the model's bytes (a bundle's index pins all its files) + options."""
    return {"model_sha256": sha256_file(model / "bundle.json" if model.is_dir() else model),
            "tool_version": __version__, **options}


def _previous_items(record: Path, fingerprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished items of an earlier run into the same --out with the same fingerprint (what resume may keep)."""
    try:
        old = read_json(record)
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("fingerprint") != fingerprint:
        return {}
    return {i["input"]: i for i in old.get("items", []) if isinstance(i, dict) and i.get("status") == "ok"
            and isinstance(i.get("input"), str) and isinstance(i.get("outputs"), list) and i.get("input_sha256")}


@dataclass
class _Record:
    """Keeping the record: one item per input (ok, kept or failed), resume against an earlier run, saving."""

    report: PredictReport
    params: dict[str, Any]
    fingerprint: dict[str, Any]
    previous: dict[str, dict[str, Any]]
    t0: float
    input_sha: dict[Path, str] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        assert self.report.items is not None
        return self.report.items

    def failed(self, job: Job, exc: ColorizeError) -> None:
        self.items.append({"input": str(job.src), "kind": job.kind, "status": "failed", "error": exc.line()})
        log.error("%s", exc.line())

    def done(self, job: Job, outputs: Sequence[Path], route: dict[str, Any] | None, **facts: Any) -> None:
        hints = {"hints": str(job.hints), "hints_sha256": job.hints_sha256} if job.hints else {}
        self.items.append({"input": str(job.src), "input_sha256": self.input_sha[job.src], "kind": job.kind,
                           "status": "ok", **hints, **facts, "outputs": [str(p) for p in outputs],
                           **({"route": route} if route else {})})

    def unchanged(self, job: Job) -> bool:
        """Resume: an earlier run with the same fingerprint already wrote this input's outputs."""
        try:
            self.input_sha[job.src] = sha256_file(job.src)
        except OSError as exc:
            raise ColorizeError(f"cannot read {job.src}: {exc.strerror or exc}", "check the file") from exc
        prev = self.previous.get(str(job.src))
        if not prev or prev["input_sha256"] != self.input_sha[job.src] or prev.get("hints_sha256") != \
                job.hints_sha256 or not all(Path(p).is_file() for p in prev["outputs"]):
            return False
        self.items.append({**prev, "kept": True})
        self.report.kept += 1
        return True

    def save(self) -> None:
        r = self.report
        r.failed = sum(1 for i in self.items if i["status"] == "failed")
        write_run_record(r.record, "predict", self.params,
                         {"images": r.images, "videos": r.videos, "kept": r.kept, "failed": r.failed,
                          "ignored": r.ignored}, {"total": time.perf_counter() - self.t0},
                         fingerprint=self.fingerprint, items=self.items)


@dataclass
class _Painter:
    """The coloring engine of one run: photos in batches through the model's one coloring path (a bundle
    routes each photo inside `predict`), films one by one; every result goes to the record."""

    model: Colorizer | Bundle
    record: _Record
    out: Path
    temps: list[float]
    confidence: bool
    protected: set[Path]
    pending: list[tuple[Job, Scan]] = field(default_factory=list)

    def add(self, job: Job, scan: Scan, size: int) -> None:
        """Queue a photo; photos are decoded as they are queued, so a batch holds at most `BATCH_PIXELS`
        of them (a large scan goes alone) besides its `size` limit."""
        if self.pending and sum(s.pixels for _, s in self.pending) + scan.pixels > BATCH_PIXELS:
            self.flush()
        if job.hints is not None:  # a bad file is the user's to fix: one line, the run stops (UsageError)
            scan.hints = tuple(read_hints(job.hints, scan.width, scan.height))
        scan.fitted(self.model.size, self.model.fit)  # the small copy the net sees: a bad file fails here, alone
        self.pending.append((job, scan))
        if len(self.pending) >= size:
            self.flush()

    def flush(self) -> None:
        chunk, self.pending = self.pending, []
        if not chunk:
            return
        preds = self.model.predict([scan for _, scan in chunk], self.temps)
        for (job, _), pred in zip(chunk, preds):
            try:
                written = _image_outputs(self.out, job, self.temps, pred, self.confidence, self.protected)
            except ColorizeError as exc:
                self.record.failed(job, exc)
                continue
            finally:
                pred.source.release()
            self.record.done(job, written, pred.route, width=pred.source.width, height=pred.source.height,
                             bits=pred.source.depth, mean_confidence=round(pred.mean_confidence(), 6))
            self.record.report.images += 1

    def video(self, job: Job, opts: PredictParams) -> None:
        multi = len(self.temps) > 1
        suffix = vid.output_suffix(job.src)
        paths = [_named(self.out, job.stem, f"t{t:g}.color" if multi else "color", suffix) for t in self.temps]
        if any(p.resolve() in self.protected for p in paths):
            raise ColorizeError(f"output {paths[0]} would overwrite an input", "choose another --out folder")
        if self.confidence:
            log.info("%s: --confidence maps are written for photos only", job.src)
        col, info = self.model.pick(vid.read_first_frame(job.src, opts.max_pixels))
        stats = vid.colorize_video(col, job.src, paths, self.temps, batch=opts.batch, alpha=opts.alpha,
                                   window=opts.window, max_pixels=opts.max_pixels)
        self.record.done(job, paths, info, **stats.__dict__)
        self.record.report.videos += 1


def _plan(inputs: Sequence[str | Path], opts: PredictParams) -> tuple[list[Job], PredictReport]:
    """The jobs (files found below `inputs`), and the report that starts with the missing ones."""
    out = Path(opts.out)
    jobs, items, ignored = collect_inputs([Path(p) for p in inputs], out)
    if not jobs and not items:
        raise ColorizeError(f"no images or videos found in {', '.join(map(str, inputs))}",
                            f"pass image files ({' '.join(sorted(IMAGE_EXTS))}), videos or folders of them")
    return jobs, PredictReport(out=out, record=out / RECORD_NAME, ignored=ignored, items=items)


def _record(model: str | Path, inputs: Sequence[str | Path], opts: PredictParams, temps: list[float],
            report: PredictReport) -> _Record:
    """The run's record, resuming an earlier run into the same --out with the same model and options."""
    fingerprint = _fingerprint(Path(model), temperatures=temps, confidence=opts.confidence, alpha=opts.alpha,
                               window=opts.window, min_confidence=opts.min_confidence)
    params = {"model": str(model), "inputs": [str(p) for p in inputs], **opts.as_dict(), "temperatures": temps}
    params.pop("temperature")
    return _Record(report, params, fingerprint, _previous_items(report.record, fingerprint), time.perf_counter())


def _run(jobs: list[Job], painter: _Painter, opts: PredictParams, hint_files: HintFiles) -> None:
    """Every job in order; a bad input is recorded and the run goes on; the record is saved as it goes."""
    record = painter.record
    bar = progress(total=len(jobs), desc="predict", unit="file")
    last_save = time.monotonic()
    try:
        for job in jobs:
            try:
                hint_files.attach(job)
                if record.unchanged(job):
                    pass
                elif job.kind == "video":
                    painter.video(job, opts)
                else:
                    painter.add(job, open_scan(job.src, opts.max_pixels), opts.batch)
            except UsageError:  # a bad hints file: the same mistake would fail every photo it is for
                raise
            except ColorizeError as exc:
                record.failed(job, exc)
            if time.monotonic() - last_save > RECORD_EVERY_S:  # a killed run still leaves what it finished
                record.save()
                last_save = time.monotonic()
            bar.update(1)
        painter.flush()
    finally:
        bar.close()
        record.save()


def run_predict(model: str | Path, inputs: Sequence[str | Path], out: str | Path = PREDICT_DEFAULTS.out,
                temperature: str | float = PREDICT_DEFAULTS.temperature,
                confidence: bool = PREDICT_DEFAULTS.confidence, device: str = PREDICT_DEFAULTS.device,
                batch: int = PREDICT_DEFAULTS.batch, alpha: float = PREDICT_DEFAULTS.alpha,
                window: int = PREDICT_DEFAULTS.window, min_confidence: float = PREDICT_DEFAULTS.min_confidence,
                max_pixels: int = PREDICT_DEFAULTS.max_pixels, hints: str | Path | None = None) -> PredictReport:
    """`colorize predict`: colorize every image and video in `inputs`; a bad input is recorded, not fatal.
    `hints`: a hints file for the one photo, or a folder of them (`HintFiles`)."""
    opts = PredictParams(str(out), temperature, confidence, device, batch, alpha, window, min_confidence,
                         max_pixels, None if hints is None else str(hints))
    temps = parse_temperatures(temperature)
    jobs, report = _plan(inputs, opts)
    hint_files = HintFiles.of(hints, jobs)
    engine = open_model(Path(model), device, min_confidence)
    if (note := provenance_warning(engine)):
        log.warning("%s", note)
    if hints is not None:
        require_hints(engine)
    record = _record(model, inputs, opts, temps, report)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in {out} | {(out / j.stem).parent for j in jobs}:  # temps a killed run left behind
        remove_stale_temps(folder)
    _run(jobs, _Painter(engine, record, out, temps, confidence, {j.src.resolve() for j in jobs}), opts, hint_files)
    return record.report
