"""`colorize predict`: color on the user's own black-and-white photos, folders and films.

How an image is colorized (and why):
- The network sees the photo's lightness fitted into its square exactly as training did (Lanczos, pad +
  mask), so a result does not depend on how large the input was.
- The output keeps the input's own full-resolution L; only ab comes from the model, cropped to the real
  (unpadded) area and upsampled bicubic. Fine detail therefore stays as sharp as the original.
- Out-of-gamut colors are brought into sRGB by reducing chroma at constant L and hue (a per-channel clip
  would change lightness), so the output's L matches the input's L up to 8-bit rounding.
Color inputs are used through their L only, i.e. they are turned gray first.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from colorize.dataset.color import encode_l, lab_to_rgb, rgb_to_lab
from colorize.dataset.images import fit, fit_geometry
from colorize.errors import ColorizeError, UsageError
from colorize.models.decode import annealed_mean, confidence

log = logging.getLogger(__name__)

# Linear-sRGB matrix and D65 white used to test whether a Lab color fits the sRGB gamut (OpenCV's own
# float conversion clips silently, so it cannot tell us).
_XYZ_TO_RGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]], dtype=np.float32)
_WHITE = (0.950456, 1.0, 1.088754)
_GAMUT_TOL = 1e-3
_GAMUT_STEPS = 12  # bisection steps on the chroma scale: 1/4096 of the chroma is below 8-bit rounding


def parse_temperatures(value: str | float | Sequence[float]) -> list[float]:
    """'0.38' or '0.2,0.38,1.0' (or numbers) -> a list of distinct temperatures > 0, in the given order."""
    items = [value] if isinstance(value, (int, float)) else (
        [v for v in str(value).split(",") if v.strip()] if isinstance(value, str) else list(value))
    try:
        temps = [float(v) for v in items]
    except ValueError:
        temps = []
    if not temps or any(not (math.isfinite(t) and t > 0) for t in temps):
        raise UsageError(f"--temperature {value!r} is not a positive number or a comma-separated list of them",
                         "e.g. --temperature 0.38 or --temperature 0.2,0.38,1.0")
    return list(dict.fromkeys(temps))


@dataclass(frozen=True)
class Framing:
    """Where a photo of `height` x `width` sits inside the model's square (the pad fit of training)."""

    height: int
    width: int
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, height: int, width: int, size: int) -> Framing:
        _, (w, h), (x, y) = fit_geometry(width, height, size, "pad")
        return cls(height, width, x, y, w, h)

    def upsample(self, plane: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
        """A model-size map [S,S(,C)] -> the photo's full size, using only the unpadded area."""
        crop = np.ascontiguousarray(plane[self.y:self.y + self.h, self.x:self.x + self.w], dtype=np.float32)
        if (self.w, self.h) == (self.width, self.height):
            return crop
        out = cv2.resize(crop, (self.width, self.height), interpolation=interpolation)
        return out.reshape((self.height, self.width) + plane.shape[2:])


@dataclass
class Prepared:
    """One photo ready for the model: full-resolution L (0..100) and the fitted uint8 L the net sees."""

    L_full: np.ndarray  # float32 [H, W]
    L_small: np.ndarray  # uint8 [S, S]
    framing: Framing


def prepare(rgb: np.ndarray, size: int) -> Prepared:
    """Split a uint8 RGB photo into what the model needs (color inputs are used through L only)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    L_full = rgb_to_lab(rgb)[..., 0]
    small, _ = fit(rgb, size, "pad")
    L_small = encode_l(rgb_to_lab(small)[..., 0])
    return Prepared(L_full, L_small, Framing.of(rgb.shape[0], rgb.shape[1], size))


def model_probs(colorizer: Any, L_small: np.ndarray) -> torch.Tensor:
    """uint8 [B,S,S] -> bin probabilities [B,n,S,S] on the colorizer's device (pinned copy + AMP on CUDA)."""
    from colorize.models.runtime import amp_dtype, autocast

    t = torch.from_numpy(np.ascontiguousarray(L_small))
    device = colorizer.device
    if device.type == "cuda":
        t = t.pin_memory()
    with autocast(device, amp_dtype(device, True)):  # bf16/fp16 on CUDA only; probs come back float32
        return colorizer.probs(t)


def decode_ab(probs: torch.Tensor, centers: torch.Tensor, temperature: float) -> np.ndarray:
    """Probabilities [B,n,S,S] -> annealed-mean ab as numpy float32 [B,S,S,2]."""
    ab = annealed_mean(probs, centers, temperature)
    return ab.permute(0, 2, 3, 1).float().cpu().numpy()


def _linear_rgb(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> unclipped linear sRGB [..., 3]."""
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    d = 6.0 / 29.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > d, t * t * t, 3 * d * d * (t - 4.0 / 29.0))

    xyz = np.stack([_WHITE[0] * finv(fx), finv(fy), _WHITE[2] * finv(fz)], axis=-1).astype(np.float32)
    return xyz @ _XYZ_TO_RGB.T


def _in_gamut(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rgb = _linear_rgb(L, a, b)
    return np.all((rgb >= -_GAMUT_TOL) & (rgb <= 1.0 + _GAMUT_TOL), axis=-1)


def fit_gamut(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Scale each out-of-gamut pixel's ab toward gray (same L and hue) until it fits sRGB."""
    ab = np.asarray(ab, dtype=np.float32)
    ok = _in_gamut(L, ab[..., 0], ab[..., 1])
    if ok.all():
        return ab
    bad = ~ok
    Lb, abb = L[bad], ab[bad]
    lo = np.zeros(len(Lb), np.float32)  # ab * 0 (gray at this L) is always inside
    hi = np.ones(len(Lb), np.float32)
    for _ in range(_GAMUT_STEPS):
        mid = (lo + hi) * 0.5
        good = _in_gamut(Lb, abb[:, 0] * mid, abb[:, 1] * mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    out = ab.copy()
    out[bad] = abb * lo[:, None]
    return out


def compose(L_full: np.ndarray, ab_full: np.ndarray) -> np.ndarray:
    """Full-resolution L + ab -> uint8 sRGB, chroma-reduced into the gamut."""
    ab = fit_gamut(L_full, ab_full)
    return lab_to_rgb(np.concatenate([L_full[..., None], ab], axis=-1))


def gray_of(L_full: np.ndarray) -> np.ndarray:
    """What the black-and-white input looks like (ab = 0)."""
    return lab_to_rgb(np.stack([L_full, np.zeros_like(L_full), np.zeros_like(L_full)], axis=-1))


@dataclass
class ImagePrediction:
    """A colorized photo at each requested temperature, plus the model-size confidence maps."""

    colors: list[np.ndarray]  # uint8 [H, W, 3], one per temperature
    top: np.ndarray  # float32 [S, S]: top bin probability
    ratio: np.ndarray  # float32 [S, S]: first / second probability
    prepared: Prepared

    def mean_confidence(self) -> float:
        f = self.prepared.framing
        return float(self.top[f.y:f.y + f.h, f.x:f.x + f.w].mean())


def predict_images(colorizer: Any, rgbs: Sequence[np.ndarray], temperatures: Sequence[float]) -> list[ImagePrediction]:
    """Colorize a batch of photos (any sizes) in one forward pass."""
    prepared = [prepare(rgb, colorizer.size) for rgb in rgbs]
    probs = model_probs(colorizer, np.stack([p.L_small for p in prepared]))
    top, ratio = (t.float().cpu().numpy() for t in confidence(probs))
    abs_per_t = [decode_ab(probs, colorizer.centers, t) for t in temperatures]
    out = []
    for i, p in enumerate(prepared):
        colors = [compose(p.L_full, p.framing.upsample(ab[i])) for ab in abs_per_t]
        out.append(ImagePrediction(colors, top[i], ratio[i], p))
    return out


def colorize_rgb(colorizer: Any, rgb_u8: np.ndarray, temperature: float = 0.38) -> np.ndarray:
    """The prediction API (docs/contracts.md): uint8 RGB [H,W,3] -> colorized uint8 RGB of the same size."""
    return predict_images(colorizer, [rgb_u8], [temperature])[0].colors[0]


# ------------------------------------------------------------------------------------------ the run
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
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
    from colorize.models.video import VIDEO_EXTS

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
        from colorize.models import routing

        if not routing.is_bundle(model):
            raise ColorizeError(f"{model} is a folder but not a model bundle (no bundle index)",
                                "pass a .pt checkpoint or a folder written by `colorize train --route ...`")
        return routing.load_bundle(model, device)
    from colorize.models.checkpoint import load_colorizer

    return load_colorizer(model, device)


def _route(bundle: Any, rgb: np.ndarray, min_confidence: float) -> tuple[Any, dict[str, Any]]:
    """Pick a bundle's colorizer for one photo (router top route, or global below min_confidence)."""
    from colorize.models.routing import choose_routes

    choice = choose_routes(bundle.route_rgb(rgb), bundle.routes, min_confidence)[0]
    return bundle.model_for(choice.route), choice.info()


def _image_outputs(out: Path, job: Job, temps: Sequence[float], pred: ImagePrediction, with_confidence: bool,
                   protected: set[Path]) -> list[Path]:
    """Write one photo's colorized file(s), strip and confidence map; returns the paths written."""
    from colorize.models.report import prediction_pictures, write_image

    suffix = ".jpg" if job.src.suffix.lower() in (".jpg", ".jpeg") else ".png"
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
    from colorize.models import video as vid
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
