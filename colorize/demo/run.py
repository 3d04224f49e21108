"""`colorize demo`: the whole product, offline, in one command.

Why it exists: a newcomer should see scrape -> prep -> train -> predict -> eval work on a fresh machine
with no internet before reading any further. So the demo generates a photo gallery by code
(`colorize.demo.scenes`), serves it with the same local Unsplash-like site the scraper tests use, and drives
the *real* stages through their plain functions — the same code `colorize scrape/prep/...` runs —
with the real headless Chromium. Nothing here re-implements a stage.

Layout of `--out` (default `demo-run/`)::

    gallery/      the generated photos, as the local site serves them (<category>/*.jpg)
    raw/          the scraped dataset: manifest.json, <category>/<id>.jpg, ATTRIBUTION.md
    unsplash-dataset/  --source dataset: the gallery as a miniature Unsplash Dataset release (the
                  real format), which `scrape --dataset` reads instead of the search pages
    shards/       prep output: {train,val,test}-NNNNN.npz, stats.npz, manifest.json
    run/          training: last.pt, best.pt, metrics.jsonl, pictures
    holdout/      photos never served nor trained on: color/<category>/*.jpg (truth), gray/*.jpg (input)
    colorized/    predict output for holdout/gray
    eval/         eval.json and report.html: the model against the gray baseline
    demo-state.json   which steps finished, with the parameters they ran with
    demo-run.json     the run record (parameters, counts, timings, headline metrics)

The result is the same on every machine: training runs a planned number of steps (never a time budget),
on the CPU with a fixed number of torch threads, so a slow or busy machine takes longer and reaches the
same model, figures and verdict; the training step logs its progress and the time left.

Re-running is clean: a finished step is kept, and an unfinished one is removed and redone; Ctrl-C
removes the step it interrupted, so the folder only ever holds finished steps. Other parameters
(`--quick`, `--seed`) rebuild the folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colorize import __version__
from colorize.errors import ColorizeError
from colorize.io import (
    atomic_write_bytes,
    atomic_write_json,
    dumps_json,
    read_folder_record,
    read_json,
    write_run_record,
)
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.names import MANIFEST
from colorize.scraper import SCRAPE_DEFAULTS

log = logging.getLogger("colorize.demo")  # the name the demo has always logged under (README shows it)

# The bits of a float reduction depend on how it is split over threads, so the demo fixes their number: the
# same model on a 2-core laptop and a 16-core server. And the CPU everywhere: a GPU's kernels give other
# bits, and a model this small needs none.
TORCH_THREADS = 2
DEVICE = "cpu"
STATE_FILE = "demo-state.json"
RECORD_FILE = "demo-run.json"
STEPS = ("gallery", "scrape", "prep", "train", "holdout", "predict", "eval")
# Measured wall seconds per training step on 2 idle cores, by prep size: only for the estimate shown up front.
IDLE_STEP_S = {64: 0.06, 96: 0.72}
DATASET_DIR = "unsplash-dataset"  # --source dataset: the gallery written as a miniature Unsplash Dataset release
_FOLDERS = {"gallery": "gallery", "scrape": "raw", "prep": "shards", "train": "run",
            "holdout": "holdout", "predict": "colorized", "eval": "eval"}


@dataclass(frozen=True)
class DemoPlan:
    """Sizes that make a small model clearly beat the gray baseline on a CPU in a few minutes.

    The gallery is learnable fast: the quick plan (208 steps: 4 epochs of 413 samples at 64 px in batches
    of 8, ~12 s on 2 idle cores) gives a colorfulness error of ~26 (gray 77) and rebalanced AuC ~91% (gray
    80%) on held-out photos; smaller batches beat bigger ones for the same compute. Training is a planned
    number of `steps` (`train --steps`), so the result does not depend on the machine's speed or load.
    The full plan's 234 steps (3 epochs of 78) take ~2.8 minutes on 2 idle cores (0.72 s a step: 234 steps
    in 168 s, 22.8 img/s; 1.35 CPU-s a step on one thread, measured on a busy machine) and beat gray
    clearly; 146 steps did not (colorfulness error 37.4 against a bar of 35.1)."""

    categories: tuple[str, ...]
    per_category: int      # photos the site serves (and the scraper takes) per category
    holdout: int           # further photos per category, never served: predict and eval use them
    image_size: tuple[int, int] | None  # gallery photo size (w, h); None = seeded 320..512 px
    download_width: int    # the scraper's --width
    size: int              # prep --size
    bins: int              # prep --bins
    augment: int           # prep --augment
    width: int             # train --width
    batch_size: int
    steps: int             # train --steps: the planned optimizer steps

    def params(self) -> dict[str, Any]:
        return asdict(self)


# prep --lambda of the demo: its README lines were measured with Zhang et al.'s 0.5 (prep's default, 0.8, was
# measured better on the larger real-photo set of bench_quality); every other prep option is prep's default.
DEMO_LAMBDA = 0.5

QUICK = DemoPlan(categories=("beach", "forest", "sunset"), per_category=24, holdout=3,
                 image_size=(320, 240), download_width=320, size=64, bins=16, augment=7, width=16,
                 batch_size=8, steps=208)
FULL = DemoPlan(categories=("beach", "forest", "sunset", "snow", "sea", "field"), per_category=40,
                holdout=4, image_size=None, download_width=480, size=96, bins=32, augment=7, width=24,
                batch_size=16, steps=234)


@dataclass
class DemoReport:
    out: Path
    ran: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    headline: dict[str, Any] = field(default_factory=dict)
    report_html: Path | None = None

    def summary_line(self) -> str:
        h = self.headline
        verdict = "beats" if h.get("beats_baseline") else "does NOT beat"
        metrics = ""
        if h:
            bars = "; ".join(f"{b['text']}: {'passed' if b['passed'] else 'FAILED'}" for b in h["bars"])
            metrics = (f": {bars} (colorfulness {h['model_colorfulness']:.1f}, truth {h['truth_colorfulness']:.1f}; "
                       f"PSNR {h['model_psnr']:.2f} vs gray {h['gray_psnr']:.2f} dB)")
        kept = f", {len(self.kept)} kept from an earlier run" if self.kept else ""
        return (f"demo: the model {verdict} the gray baseline{metrics}. {len(self.ran)} steps ran{kept}. "
                f"Report: {self.report_html}")


# ------------------------------------------------------------------------------------------- state
def _load_state(out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The finished steps of an earlier run with the same parameters; otherwise a clean folder."""
    state_path = out / STATE_FILE
    state = read_folder_record(out, STATE_FILE, "a demo folder", "pass --out with a new or empty folder, or remove it")
    if state is not None:
        if state.get("params") == params and state.get("tool_version") == __version__:
            return state
        log.info("demo parameters changed: rebuilding %s", out)
        for name in (*_FOLDERS.values(), RECORD_FILE, DATASET_DIR):
            _remove(out / name)
    state = {"schema": "colorize.demo/1", "tool_version": __version__, "params": params, "done": {}}
    atomic_write_json(state_path, state)
    return state


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _run_step(out: Path, state: dict[str, Any], report: DemoReport, name: str,
              body: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run one step into its own folder; only a finished step is recorded, an interrupted one is removed."""
    folder = out / _FOLDERS[name]
    if name in state["done"] and folder.exists():
        report.kept.append(name)
        log.info("demo: %s already done, kept", name)
        return state["done"][name]
    _remove(folder)  # left over from an interrupted run: redo it whole
    log.info("demo: %s ...", name)
    start = time.perf_counter()
    try:
        info = body(folder)
    except BaseException:
        _remove(folder)  # Ctrl-C or a failure: never leave a half-written step behind
        raise
    info["seconds"] = round(time.perf_counter() - start, 3)
    state["done"][name] = info
    atomic_write_json(out / STATE_FILE, state)
    if info.get("summary"):
        log.info("demo: %s", info["summary"])
    report.ran.append(name)
    return info


# ------------------------------------------------------------------------------------------- steps
def _gallery(plan: DemoPlan, seed: int) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.demo.scenes import build_scene_folder

        g = build_scene_folder(folder, plan.per_category, plan.categories, seed, plan.image_size)
        return {"photos": sum(g.counts.values()), "summary": g.summary_line()}

    return body


def _scrape(plan: DemoPlan, gallery: Path, browser: str, driver: str, source: str = "web"
            ) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.scraper.localsite.site import LocalSite
        from colorize.scraper.scrape import run_scrape

        with LocalSite(gallery=gallery) as site:
            if source == "dataset":  # the gallery as an Unsplash Dataset release, then `scrape --dataset`
                from colorize.scraper.unsplash_dataset.scrape import run_dataset_scrape
                from colorize.scraper.unsplash_dataset.writer import site_release

                release = site_release(site, plan.categories, folder.parent / DATASET_DIR)
                result = run_dataset_scrape(release, categories=plan.categories, limit=plan.per_category,
                                            out=folder, base_url=site.base_url, width=plan.download_width,
                                            workers=4, per_host=4)
            else:
                result = run_scrape(categories=plan.categories, categories_file=None, query=None,
                                    limit=plan.per_category, out=folder, base_url=site.base_url,
                                    width=plan.download_width, workers=4, per_host=4, scroll_pause=0.1,
                                    browser=browser, driver=driver,
                                    show_browser=False, first_wait=3.0, idle_seconds=1.0)
        photos = [p for p in read_json(folder / MANIFEST)["photos"] if p.get("status") == "ok"]
        if len({p["category"] for p in photos}) < len(plan.categories):
            raise ColorizeError(f"the scrape found photos in only {len({p['category'] for p in photos})} "
                                f"of {len(plan.categories)} categories", "see raw/ and rerun the demo")
        return {"photos": len(photos), "summary": _summary(result)}

    return body


def _prep(plan: DemoPlan, raw: Path, seed: int) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.dataset.prep import run_prep

        result = run_prep(src=raw, out=folder, size=plan.size, bins=plan.bins, lam=DEMO_LAMBDA,
                          augment=plan.augment, seed=seed, shard_size=256,
                          workers=min(2, os.cpu_count() or 1), engine="local", scheduler=None)
        return {"summary": _summary(result)}

    return body


class _TrainProgress:
    """`on_step` for the demo's training: a line at every tenth of the planned steps with the time left,
    from the pace so far (a busy machine takes longer; the steps, and so the model, stay the same)."""

    def __init__(self, total: int) -> None:
        self.total, self.every = total, max(1, total // 10)
        self.t0 = time.monotonic()

    def __call__(self, step: int, loss: Any) -> None:
        if step % self.every and step != self.total:
            return
        spent = time.monotonic() - self.t0
        left = spent / step * (self.total - step)
        log.info("demo: train step %d/%d (%d%%), %s so far, about %s left", step, self.total,
                 round(100 * step / self.total), _clock(spent), _clock(left))


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if seconds >= 60 else f"{seconds:.0f}s"


def _train(plan: DemoPlan, shards: Path, seed: int) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.models.train.loop import run_train

        log.info("demo: training %d planned steps on the CPU (%d torch threads): about %s on 2 idle cores, longer "
                 "on a busy machine, the same model either way", plan.steps, TORCH_THREADS,
                 _clock(plan.steps * IDLE_STEP_S.get(plan.size, 0.75)))
        result = run_train(shards=shards, out=folder, epochs=1, steps=plan.steps, batch_size=plan.batch_size,
                           lr=2e-3, width=plan.width, temperature=DEFAULT_TEMPERATURE, soft_targets=0, device=DEVICE,
                           amp=True, compile_model=False, workers=0, seed=seed, resume=False,
                           on_step=_TrainProgress(plan.steps))
        return {"checkpoint": _checkpoint(folder).name, "summary": _summary(result)}

    return body


def _holdout(plan: DemoPlan, seed: int) -> Callable[[Path], dict[str, Any]]:
    """Photos the site never served: the truth in color for eval, and black-and-white inputs for predict."""

    def body(folder: Path) -> dict[str, Any]:
        from colorize.dataset.color import gray_rgb
        from colorize.demo.scenes import JPEG_QUALITY, render_scene
        from colorize.imaging import encode_image

        n = 0
        for category in plan.categories:
            for i in range(plan.per_category, plan.per_category + plan.holdout):
                rgb, _ = render_scene(category, seed, i, plan.image_size)
                atomic_write_bytes(folder / "color" / category / f"{category}-{i:04d}.jpg", encode_image(rgb, ".jpg", JPEG_QUALITY))
                atomic_write_bytes(folder / "gray" / f"{category}-{i:04d}.jpg", encode_image(gray_rgb(rgb), ".jpg", JPEG_QUALITY))
                n += 1
        return {"photos": n, "summary": f"holdout: {n} photos never served nor trained on -> {folder}"}

    return body


def _predict(model: Path, inputs: Path) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.models.infer.predict import run_predict

        result = run_predict(model=str(model), inputs=(str(inputs),), out=str(folder), confidence=True,
                             device=DEVICE)
        if getattr(result, "failed", 0):
            raise ColorizeError(f"predict failed on {result.failed} held-out photos", "see the log above")
        return {"summary": _summary(result)}

    return body


def _eval(model: Path, images: Path) -> Callable[[Path], dict[str, Any]]:
    def body(folder: Path) -> dict[str, Any]:
        from colorize.models.evaluate.run import run_eval

        result = run_eval(model=str(model), shards=None, split="test", images=str(images), temperature=DEFAULT_TEMPERATURE,
                          out=str(folder), device=DEVICE, gallery=12)
        return {"summary": _summary(result), "headline": _with_verdict(folder)}

    return body


# ----------------------------------------------------------------------------------------- helpers
def _summary(result: Any) -> str:
    return result.summary_line() if hasattr(result, "summary_line") else str(result)


def _checkpoint(run: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise ColorizeError(f"training wrote no checkpoint in {run}", "see the training log above")


def _with_verdict(folder: Path) -> dict[str, Any]:
    """The headline of the eval in `folder`, its verdict also at the top of report.html."""
    from colorize.models.evaluate.report import write_report

    result = read_json(folder / "eval.json")
    h = headline(result)
    title = f"The model {'beats' if h['beats_baseline'] else 'does NOT beat'} the gray baseline"
    write_report(folder / "report.html", {**result, "verdict": {"title": title, "passed": h["beats_baseline"],
                                                                "bars": h["bars"]}})
    return h


def headline(eval_json: dict[str, Any]) -> dict[str, Any]:
    """The numbers the demo promises: model vs gray on colorfulness and rebalanced AuC, and each bar."""
    overall = eval_json["overall"]
    model, gray = overall["model"], overall["gray"]
    # Gray has colorfulness ~0, so its colorfulness error is the truth's colorfulness.
    truth_cf = gray["delta_cf"] + gray["colorfulness"]
    h = {"model_colorfulness": model["colorfulness"], "gray_colorfulness": gray["colorfulness"],
         "truth_colorfulness": truth_cf, "model_delta_cf": model["delta_cf"], "gray_delta_cf": gray["delta_cf"],
         "model_auc_rebalanced": model["auc_rebalanced"], "gray_auc_rebalanced": gray["auc_rebalanced"],
         "model_psnr": model["psnr"], "gray_psnr": gray["psnr"]}
    # "Clearly": colorfulness error at most half the gray one, rebalanced AuC at least 5 points higher.
    cf_bar, auc_bar = 0.5 * gray["delta_cf"], gray["auc_rebalanced"] + 5.0
    cf_ok, auc_ok = bool(model["delta_cf"] <= cf_bar), bool(model["auc_rebalanced"] >= auc_bar)
    h["bars"] = [
        {"name": "colorfulness error", "passed": cf_ok, "model": model["delta_cf"], "bar": cf_bar,
         "text": f"colorfulness error {model['delta_cf']:.1f} {'<=' if cf_ok else '>'} {cf_bar:.1f} "
                 f"(half of gray's {gray['delta_cf']:.1f})"},
        {"name": "rebalanced AuC", "passed": auc_ok, "model": model["auc_rebalanced"], "bar": auc_bar,
         "text": f"rebalanced AuC {model['auc_rebalanced']:.1f}% {'>=' if auc_ok else '<'} {auc_bar:.1f}% "
                 f"(gray's {gray['auc_rebalanced']:.1f}% + 5 points)"}]
    h["beats_baseline"] = cf_ok and auc_ok
    return h


# ------------------------------------------------------------------------------------------- entry
def run_demo(out: str | os.PathLike = "demo-run", quick: bool = False, seed: int = 0,
             browser: str = SCRAPE_DEFAULTS.browser, driver: str = SCRAPE_DEFAULTS.driver,
             source: str = "web") -> DemoReport:
    """Generate, serve, scrape, prep, train, predict and evaluate; return a report with the headline.

    `browser`/`driver` only say where Chromium is; they do not change the results, so they are not part
    of the parameters that decide whether earlier steps can be kept.
    """
    import torch

    out = Path(out)
    plan = QUICK if quick else FULL
    params = json.loads(dumps_json({"quick": quick, "seed": seed, "plan": plan.params(), "source": source}))
    state = _load_state(out, params)
    report = DemoReport(out)
    start = time.perf_counter()
    d = {name: out / folder for name, folder in _FOLDERS.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        _run_step(out, state, report, "gallery", _gallery(plan, seed))
        _run_step(out, state, report, "scrape", _scrape(plan, d["gallery"], browser, driver, source))
        _run_step(out, state, report, "prep", _prep(plan, d["scrape"], seed))
        trained = _run_step(out, state, report, "train", _train(plan, d["prep"], seed))
        model = d["train"] / trained["checkpoint"]
        _run_step(out, state, report, "holdout", _holdout(plan, seed))
        _run_step(out, state, report, "predict", _predict(model, d["holdout"] / "gray"))
        evaluated = _run_step(out, state, report, "eval", _eval(model, d["holdout"] / "color"))
    finally:
        torch.set_num_threads(threads)

    report.headline = evaluated["headline"]
    report.report_html = d["eval"] / "report.html"
    write_run_record(
        out / RECORD_FILE, "demo", params,
        counts={name: {k: v for k, v in info.items() if k not in ("seconds", "summary", "headline")}
                for name, info in state["done"].items()},
        timings={**{name: info["seconds"] for name, info in state["done"].items()},
                 "this_run": time.perf_counter() - start},
        steps={name: info.get("summary", "") for name, info in state["done"].items()},
        ran=report.ran, kept=report.kept, headline=report.headline, report=str(report.report_html),
        model=str(model))
    if not report.headline["beats_baseline"]:
        log.warning("the model did not clearly beat the gray baseline this time; see %s", report.report_html)
    return report
