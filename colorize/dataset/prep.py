"""`colorize prep`: a dataset folder -> sharded .npz training data, color-bin statistics and a manifest.

Shape of the work: list the photos, give each a split by hash, expand train photos into variants, cut
each split's sample list into fixed shards, and run one independent task per shard (locally or on
dask). The plan depends only on the source and the parameters, so the bytes of every shard do too,
whatever --workers/--engine. A journal of finished shards (with their sha256) lets a killed run
resume: a shard whose file still has the recorded hash is not rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize import __version__
from colorize.dataset import augment as aug
from colorize.dataset import bins, engines, shards, splits
from colorize.dataset.images import DEFAULT_MAX_PIXELS, FIT_MODES, MAX_FILE_BYTES, decode
from colorize.dataset.sources import Photo, discover
from colorize.errors import ColorizeError, UsageError
from colorize.io import (
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    read_folder_record,
    read_json,
    read_regular_bytes,
    remove_stale_temps,
    sha256_bytes,
    sha256_file,
    write_run_record,
)
from colorize.progress import progress

log = logging.getLogger(__name__)

JOURNAL = ".prep-journal.json"
DERIVED_MANIFEST = "source-manifest.json"
MIN_SIDE = 32


@dataclass(frozen=True)
class PrepParams:
    """Everything that decides the output bytes (and nothing that does not, like --workers)."""

    size: int = 256
    fit: str = "pad"
    grid: int = 10
    bins: int = 32
    lam: float = 0.8
    sigma: float = 5.0
    augment: int = 7
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    shard_size: int = 1024
    max_pixels: int = DEFAULT_MAX_PIXELS

    def manifest_params(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lam")
        d["split"] = list(self.split)
        d["min_side"] = MIN_SIDE
        d["variants"] = list(aug.variants_for("train", self.augment))
        return d


@dataclass(frozen=True)
class ShardTask:
    name: str
    split: str
    items: tuple[tuple[Photo, str], ...]  # (photo, variant) in storage order
    src: str
    out: str
    params: PrepParams


@dataclass
class ShardResult:
    name: str
    split: str
    count: int
    bytes: int
    sha256: str
    skipped: list[dict[str, str]]
    categories: dict[str, int]
    hist: np.ndarray | None  # fine ab histogram of a train shard
    seconds: float = 0.0

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "count": self.count, "bytes": self.bytes,
                "sha256": self.sha256}


@dataclass
class PrepReport:
    out: Path
    samples: dict[str, int]
    photos: int
    skipped: int
    shards: int
    rebuilt: int
    n_bins: int
    seconds: float
    skipped_list: list[dict[str, str]] = field(default_factory=list)

    def summary_line(self) -> str:
        total = sum(self.samples.values())
        per_split = " / ".join(f"{k} {v}" for k, v in self.samples.items())
        reused = f", {self.shards - self.rebuilt} reused" if self.rebuilt < self.shards else ""
        return (f"prep: {total} samples ({per_split}) from {self.photos} photos in {self.shards} shards{reused}, "
                f"{self.skipped} skipped, {self.n_bins} color bins -> {self.out} ({self.seconds:.1f} s)")


# ---------------------------------------------------------------------------------------------- plan
def plan_tasks(photos: list[Photo], params: PrepParams, src: Path, out: Path) -> list[ShardTask]:
    """Cut each split's (photo, variant) list into shards of at most `shard_size` samples."""
    by_split: dict[str, list[Photo]] = {s: [] for s in splits.SPLITS}
    for photo in photos:
        by_split[splits.assign_split(photo.id, params.seed, params.split)].append(photo)
    tasks = []
    for split in splits.SPLITS:
        ordered = sorted(by_split[split], key=lambda p: splits.order_key(p.id, params.seed))
        variants = aug.variants_for(split, params.augment)
        items = [(p, v) for p in ordered for v in variants]
        for index, start in enumerate(range(0, len(items), params.shard_size)):
            tasks.append(ShardTask(shards.shard_name(split, index), split,
                                   tuple(items[start:start + params.shard_size]), str(src), str(out), params))
    return tasks


# ---------------------------------------------------------------------------------------------- task
def run_shard_task(task: ShardTask) -> ShardResult:
    """Decode the task's photos, build their variants and write one shard (runs on any worker)."""
    engines.worker_setup()
    t0 = time.perf_counter()
    p = task.params
    n, size = len(task.items), p.size
    L = np.zeros((n, size, size), np.uint8)
    ab = np.zeros((n, size, size, 2), np.int8)
    mask = np.zeros((n, size, size), bool)
    ids, cats, names, skipped = [], [], [], []
    count = 0
    i = 0
    while i < n:
        photo = task.items[i][0]
        j = i
        while j < n and task.items[j][0] == photo:
            j += 1
        wanted = [v for _, v in task.items[i:j]]
        try:
            samples = _photo_samples(photo, wanted, task)
        except ColorizeError as exc:
            skipped.append({"file": photo.file, "reason": exc.what.split(": ", 1)[-1]})
            samples = {}
        for variant in wanted if samples else []:
            L[count], ab[count], mask[count] = samples[variant]
            ids.append(photo.id)
            cats.append(photo.category)
            names.append(variant)
            count += 1
        i = j
    arrays = {"L": L[:count], "ab": ab[:count], "mask": mask[:count], "photo_id": _str_array(ids),
              "category": _str_array(cats), "variant": _str_array(names)}
    nbytes, digest = shards.write_npz(Path(task.out) / task.name, arrays)
    hist = bins.ab_histogram(ab[:count], mask[:count]) if task.split == "train" else None
    return ShardResult(task.name, task.split, count, nbytes, digest, skipped, dict(Counter(cats)), hist,
                       time.perf_counter() - t0)


def _photo_samples(photo: Photo, variants: list[str], task: ShardTask) -> dict[str, aug.Sample]:
    path = Path(task.src) / photo.file
    try:  # never opens a FIFO or device (it could block or stream forever), even one swapped in since discovery
        data = read_regular_bytes(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise ColorizeError(f"{photo.file}: cannot read ({exc.strerror or exc})") from exc
    if photo.sha256 and sha256_bytes(data) != photo.sha256:
        raise ColorizeError(f"{photo.file}: sha256 differs from the manifest")
    p = task.params
    decoded = decode(data, max_pixels=p.max_pixels, reduce_to=p.size, fit=p.fit, min_side=MIN_SIDE)
    return aug.make_samples(decoded.rgb, p.size, p.fit, variants, p.seed, photo.id)


def _str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


# ------------------------------------------------------------------------------------------- driver
def _reuse(task: ShardTask, record: dict[str, Any] | None) -> ShardResult | None:
    """The recorded result of a finished shard, if its file still has the recorded size and hash."""
    path = Path(task.out) / task.name
    if not record or not path.is_file() or path.stat().st_size != record["bytes"]:
        return None
    if sha256_file(path) != record["sha256"]:
        return None
    hist = None
    if task.split == "train":
        arrays = shards.load_shard(path)
        hist = bins.ab_histogram(arrays["ab"], arrays["mask"])
    return ShardResult(task.name, task.split, record["count"], record["bytes"], record["sha256"],
                       record["skipped"], record["categories"], hist)


def run_prep(src: str | os.PathLike, out: str | os.PathLike, size: int = PrepParams.size, fit: str = PrepParams.fit,
             grid: int = PrepParams.grid, bins: int = PrepParams.bins, lam: float = PrepParams.lam,
             sigma: float = PrepParams.sigma, augment: int = PrepParams.augment,
             split: str = ",".join(map(str, PrepParams.split)), seed: int = PrepParams.seed,
             shard_size: int = PrepParams.shard_size, workers: int | None = None, engine: str = "local",
             scheduler: str | None = None, max_pixels: int = PrepParams.max_pixels) -> PrepReport:
    """Run the prep stage (see module docstring); returns a report with `summary_line()`.

    Its defaults are `PrepParams`'s, the one source of prep defaults (the CLI reads them too)."""
    t_start = time.perf_counter()
    src, out = Path(src), Path(out)
    if engine not in engines.ENGINES:
        raise UsageError(f"unknown engine {engine!r}", "use --engine local or --engine dask")
    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask", "add --engine dask")
    if out.resolve() == src.resolve():
        raise UsageError("--out must differ from --src", "write the shards to their own folder")
    params = PrepParams(size, fit, grid, bins, float(lam), float(sigma), augment, splits.parse_split(split), seed,
                        shard_size, max_pixels)
    _validate(params)
    source = discover(src, exclude=out)
    photos, skipped_upfront, source_sha, source_kind = source.photos, source.skipped, source.manifest_sha256, source.kind
    if not photos:
        raise ColorizeError(f"no usable photos in {src}", "give prep a scraped dataset or category folders of images")
    read_folder_record(out, shards.MANIFEST, "a shard folder written by colorize prep",
                       "pass --out a new folder for the shards (e.g. data/shards)", schema=shards.SCHEMA,
                       missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, root=out)
    _retire_other_manifest(out, source_sha, params)
    if source.derived_manifest is not None:  # the folder's derived manifest, hashed into the shard manifest
        atomic_write_text(out / DERIVED_MANIFEST, source.derived_manifest)
    elif (out / DERIVED_MANIFEST).exists():  # left by an earlier run on a plain folder
        (out / DERIVED_MANIFEST).unlink()
    t_plan = time.perf_counter()
    tasks = plan_tasks(photos, params, src, out)
    plan_key = sha256_bytes(dumps_json({"tool_version": __version__, "source": source_sha,
                                        "params": params.manifest_params(),
                                        "shards": [[t.name, [(p.id, v) for p, v in t.items]] for t in tasks]}).encode())
    journal_path = out / JOURNAL
    journal = _read_journal(journal_path, plan_key)

    results: dict[str, ShardResult] = {}
    pending = []
    for task in tasks:
        reused = _reuse(task, journal["shards"].get(task.name))
        if reused:
            results[task.name] = reused
        else:
            pending.append(task)
    if results:
        log.info("resuming: %d of %d shards already done", len(results), len(tasks))
    bar = progress(total=len(tasks), initial=len(results), desc="prep", unit="shard")
    t_work = time.perf_counter()
    built = 0
    try:
        for result in engines.run_tasks(run_shard_task, pending, engine=engine, workers=workers, scheduler=scheduler):
            results[result.name] = result
            journal["shards"][result.name] = {**result.entry(), "skipped": result.skipped,
                                              "categories": result.categories}
            atomic_write_json(journal_path, journal)
            built += result.count
            bar.set_postfix(samples=built, skipped=sum(len(r.skipped) for r in results.values()), refresh=False)
            bar.update(1)
    finally:
        bar.close()
    t_stats = time.perf_counter()
    ordered = [results[t.name] for t in tasks]
    failed = {s["file"] for r in ordered for s in r.skipped}
    used = len(photos) - len(failed)
    manifest, bin_stats = _finish(out, ordered, params, source_sha, source_kind, skipped_upfront, used,
                                  source.origin)
    _remove_stale_shards(out, {t.name for t in tasks})
    t_end = time.perf_counter()

    samples = {s: sum(r.count for r in ordered if r.split == s) for s in splits.SPLITS}
    skipped_all = manifest["skipped"]
    if skipped_all:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped_all[:5])
        more = f"; and {len(skipped_all) - 5} more" if len(skipped_all) > 5 else ""
        log.warning("skipped %d files (all listed in %s): %s%s", len(skipped_all), out / shards.MANIFEST, shown, more)
    rebuilt = len(pending)
    work_s = t_stats - t_work
    write_run_record(
        out / shards.RUN_RECORD, "prep",
        params={**params.manifest_params(), "src": str(src), "out": str(out), "workers": workers or engines.default_workers(),
                "engine": engine, "scheduler": scheduler},
        counts={"photos": used, "samples": samples, "skipped": len(skipped_all), "shards": len(tasks),
                "shards_rebuilt": rebuilt, "source": source_kind},
        timings={"discover": t_plan - t_start, "plan": t_work - t_plan, "shards": work_s,
                 "shard_tasks_summed": sum(r.seconds for r in ordered),
                 "stats_and_manifest": t_end - t_stats, "total": t_end - t_start},
        throughput={"samples_per_s": round(sum(r.count for r in ordered if r.name in {t.name for t in pending})
                                           / work_s, 2) if work_s > 0 and rebuilt else None},
        manifest_sha256=sha256_file(out / shards.MANIFEST),
    )
    return PrepReport(out, samples, used, len(skipped_all), len(tasks), rebuilt, bin_stats.n_bins,
                      t_end - t_start, skipped_all)


def _validate(p: PrepParams) -> None:
    """The CLI's option types check these already; Python callers (demo, notebooks) get the same rules."""
    problems = [msg for bad, msg in [
        (p.fit not in FIT_MODES, f"--fit must be one of {', '.join(FIT_MODES)}"),
        (not 32 <= p.size <= 1024, "--size must be 32..1024"), (not 1 <= p.grid <= 64, "--grid must be 1..64"),
        (p.bins < 2, "--bins must be >= 2"), (not 0.0 <= p.lam <= 1.0, "--lambda must be in [0, 1]"),
        (p.sigma < 0, "--sigma must be >= 0"), (not 0 <= p.augment <= len(aug.VARIANTS), "--augment must be 0..7"),
        (p.shard_size < 1, "--shard-size must be >= 1"), (p.max_pixels < 1, "max_pixels must be >= 1"),
    ] if bad]
    if problems:
        raise UsageError("; ".join(problems), "see `colorize prep --help`")


def _retire_other_manifest(out: Path, source_sha: str, params: PrepParams) -> None:
    """An existing manifest for other inputs or options would describe shards this run is replacing:
    remove it now, so a reader (or --verify) never trusts a half-replaced folder; this run writes a new one."""
    path = out / shards.MANIFEST
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return
    if not isinstance(old, dict) or old.get("source_manifest_sha256") != source_sha \
            or old.get("params") != json.loads(dumps_json(params.manifest_params())) \
            or old.get("tool_version") != __version__:
        log.info("replacing the shards in %s (other source or options)", out)
        path.unlink()


def _read_journal(path: Path, plan_key: str) -> dict[str, Any]:
    fresh = {"plan_key": plan_key, "shards": {}}
    if not path.is_file():
        return fresh
    try:
        journal = read_json(path)
    except (OSError, ValueError):
        return fresh
    if not isinstance(journal, dict) or journal.get("plan_key") != plan_key or not isinstance(journal.get("shards"), dict):
        return fresh
    return journal


def _finish(out: Path, results: list[ShardResult], params: PrepParams, source_sha: str, source_kind: str,
            skipped_upfront: list[dict[str, str]], n_photos: int, origin: dict[str, Any]) -> tuple[dict[str, Any], bins.BinStats]:
    """Bin statistics from the train shards, then the manifest (both with deterministic bytes)."""
    train_hists = [r.hist for r in results if r.split == "train" and r.hist is not None]
    fine = np.sum(train_hists, axis=0) if train_hists else np.zeros((256, 256), np.int64)
    bin_stats = bins.compute_bin_stats(fine, params.grid, params.bins, params.lam, params.sigma)
    stats_bytes, stats_sha = shards.save_stats(out / shards.STATS_FILE, bin_stats)

    counts: dict[str, dict[str, int]] = {s: {} for s in splits.SPLITS}
    for r in results:
        for cat, k in r.categories.items():
            counts[r.split][cat] = counts[r.split].get(cat, 0) + k
    skipped_by_file = {s["file"]: s for s in skipped_upfront}
    for r in results:
        for s in r.skipped:
            skipped_by_file.setdefault(s["file"], s)
    categories = sorted({c for per in counts.values() for c in per})
    manifest = {
        "schema": shards.SCHEMA, "tool_version": __version__, "source_manifest_sha256": source_sha,
        "source_kind": source_kind, "source": origin, "photos": n_photos, "params": params.manifest_params(),
        "shards": [r.entry() for r in results],
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "samples": {s: sum(r.count for r in results if r.split == s) for s in splits.SPLITS},
        "categories": categories,
        "skipped": [skipped_by_file[k] for k in sorted(skipped_by_file)],
        "stats": {"file": shards.STATS_FILE, "sha256": stats_sha, "bytes": stats_bytes, **bin_stats.summary()},
    }
    atomic_write_json(out / shards.MANIFEST, manifest)
    return manifest, bin_stats


def _remove_stale_shards(out: Path, keep: set[str]) -> None:
    """Shards of an earlier run with other options that this run's manifest no longer lists."""
    for path in out.glob("*.npz"):
        if shards.SHARD_RE.match(path.name) and path.name not in keep:
            log.info("removing %s (not part of this run's shards)", path.name)
            path.unlink()

