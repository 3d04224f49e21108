"""`colorize prep`: a dataset folder -> sharded .npz training data, color-bin statistics and a manifest.

Shape of the work: list the photos, give each a split by hash, expand train photos into variants, cut
each split's sample list into fixed shards, and run one independent task per shard (locally or on
dask). A task stores only the variants that need the photo (the original and the crops, augment.STORED)
and lists every sample in the shard's sample table; the loader makes flip and noise on the fly. The plan depends only on the source and the parameters, so the bytes of every shard do too,
whatever --workers/--engine. A journal of finished shards (with their sha256) lets a killed run
resume: a shard whose file still has the recorded hash is not rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize import __version__
from colorize.dataset import (
    ENGINES,
    MIN_SIDE,
    SPLITS,
    PrepParams,
    assign_split,
    bins,
    check_prep_params,
    engines,
    order_key,
    parse_split,
    shards,
    variants_for,
)
from colorize.dataset import augment as aug
from colorize.dataset.images import MAX_FILE_BYTES, decode
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
    count: int  # samples (what the loader serves)
    bytes: int
    sha256: str
    skipped: list[dict[str, str]]
    categories: dict[str, int]
    hist: np.ndarray | None  # fine ab histogram of a train shard, each stored row weighted by its samples
    seconds: float = 0.0
    stored: int = 0  # stored rows (the original and the crops of each photo)
    content_sha256: str = ""

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "count": self.count, "stored": self.stored,
                "bytes": self.bytes, "sha256": self.sha256, "content_sha256": self.content_sha256}


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
    by_split: dict[str, list[Photo]] = {s: [] for s in SPLITS}
    for photo in photos:
        by_split[assign_split(photo.id, params.seed, params.split)].append(photo)
    tasks = []
    for split in SPLITS:
        ordered = sorted(by_split[split], key=lambda p: order_key(p.id, params.seed))
        variants = variants_for(split, params.augment)
        items = [(p, v) for p in ordered for v in variants]
        for index, start in enumerate(range(0, len(items), params.shard_size)):
            tasks.append(ShardTask(shards.shard_name(split, index), split,
                                   tuple(items[start:start + params.shard_size]), str(src), str(out), params))
    return tasks


# ---------------------------------------------------------------------------------------------- task
def run_shard_task(task: ShardTask) -> ShardResult:
    """Decode the task's photos, build their stored variants and write one shard (runs on any worker).

    Flip and noise samples are only listed in the shard's sample table: the loader makes them from the
    stored original (augment.derive), so prep neither computes nor writes them."""
    engines.worker_setup()
    t0 = time.perf_counter()
    rows: list[aug.Sample] = []
    ids, cats, stored, sample_row, sample_variant, skipped = [], [], [], [], [], []
    for photo, wanted in _by_photo(task.items):
        needed = sorted({aug.stored_variant(v) for v in wanted}, key=aug.STORED.index)
        try:
            samples = _photo_samples(photo, needed, task)
        except ColorizeError as exc:
            skipped.append({"file": photo.file, "reason": exc.what.split(": ", 1)[-1]})
            continue
        at = {}
        for name in needed:
            at[name] = len(rows)
            rows.append(samples[name])
            ids.append(photo.id)
            cats.append(photo.category)
            stored.append(name)
        sample_row += [at[aug.stored_variant(v)] for v in wanted]
        sample_variant += wanted
    s = task.params.size
    L = np.stack([r[0] for r in rows]) if rows else np.zeros((0, s, s), np.uint8)
    ab = np.stack([r[1] for r in rows]) if rows else np.zeros((0, s, s, 2), np.int8)
    mask = np.stack([r[2] for r in rows]) if rows else np.zeros((0, s, s), bool)
    rows_arr = np.array(sample_row, np.int32)
    nbytes, digest, content = shards.write_shard(Path(task.out) / task.name, L, ab, mask, ids, cats, stored,
                                                 rows_arr, sample_variant)
    hist = None
    if task.split == "train":
        hist = _weighted_histogram(ab, mask, np.bincount(rows_arr, minlength=len(rows)))
    return ShardResult(task.name, task.split, len(sample_row), nbytes, digest, skipped,
                       dict(Counter(cats[r] for r in sample_row)), hist, time.perf_counter() - t0, len(rows), content)


def _by_photo(items: tuple[tuple[Photo, str], ...]) -> list[tuple[Photo, list[str]]]:
    """Consecutive (photo, variant) items grouped by photo, in order."""
    groups: list[tuple[Photo, list[str]]] = []
    for photo, variant in items:
        if groups and groups[-1][0] == photo:
            groups[-1][1].append(variant)
        else:
            groups.append((photo, [variant]))
    return groups


def _weighted_histogram(ab: np.ndarray, mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ab histogram of all samples: a stored row counts once per sample made from it (flip and noise
    keep ab's values), so the bin statistics are those of the full augmented set."""
    hist = np.zeros((256, 256), np.int64)
    for w in sorted(set(weights.tolist()) - {0}):  # not np.unique: its first call imports numpy.ma (~0.1 s)
        keep = weights == w
        rows = slice(None) if keep.all() else keep  # one weight for all rows (--augment 0): no copy of ab
        hist += int(w) * bins.ab_histogram(ab[rows], mask[rows])
    return hist


def _photo_samples(photo: Photo, variants: list[str], task: ShardTask) -> dict[str, aug.Sample]:
    path = Path(task.src) / photo.file
    try:  # never opens a FIFO or device (it could block or stream forever), even one swapped in since discovery
        data = read_regular_bytes(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise ColorizeError(f"{photo.file}: cannot read ({exc.strerror or exc})") from exc
    if photo.sha256 and sha256_bytes(data) != photo.sha256:
        raise ColorizeError(f"{photo.file}: sha256 differs from the manifest")
    p = task.params
    rgb = decode(data, max_pixels=p.max_pixels, reduce_to=p.size, fit=p.fit, min_side=MIN_SIDE).rgb
    return aug.stored_samples(rgb, p.size, p.fit, variants, p.seed, photo.id)


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
        hist = _weighted_histogram(arrays["ab"], arrays["mask"], shards.sample_weights(arrays))
    return ShardResult(task.name, task.split, record["count"], record["bytes"], record["sha256"],
                       record["skipped"], record["categories"], hist, 0.0, record["stored"], record["content_sha256"])


def run_prep(src: str | os.PathLike, out: str | os.PathLike, size: int = PrepParams.size, fit: str = PrepParams.fit,
             grid: int = PrepParams.grid, bins: int = PrepParams.bins, lam: float = PrepParams.lam,
             sigma: float = PrepParams.sigma, augment: int = PrepParams.augment,
             split: str = ",".join(map(str, PrepParams.split)), seed: int = PrepParams.seed,
             shard_size: int = PrepParams.shard_size, workers: int | None = None, engine: str = "local",
             scheduler: str | None = None, max_pixels: int = PrepParams.max_pixels) -> PrepReport:
    """Run the prep stage (see module docstring); returns a report with `summary_line()`.

    Its defaults are `PrepParams`'s, the one source of prep defaults (the CLI reads them too)."""
    t = {"start": time.perf_counter()}
    # parse
    src, out = Path(src), Path(out)
    _check_options(src, out, engine, scheduler)
    params = PrepParams(size, fit, grid, bins, float(lam), float(sigma), augment, parse_split(split), seed,
                        shard_size, max_pixels)
    check_prep_params(params)
    source = discover(src, exclude=out)
    if not source.photos:
        raise ColorizeError(f"no usable photos in {src}", "give prep a scraped dataset or category folders of images")
    _prepare_out(out, source, params)
    # plan
    t["plan"] = time.perf_counter()
    tasks = plan_tasks(source.photos, params, src, out)
    journal = _read_journal(out / JOURNAL, _plan_key(tasks, params, source.manifest_sha256))
    results = {task.name: r for task in tasks if (r := _reuse(task, journal["shards"].get(task.name)))}
    pending = [task for task in tasks if task.name not in results]
    if results:
        log.info("resuming: %d of %d shards already done", len(results), len(tasks))
    # run
    t["work"] = time.perf_counter()
    _run_pending(pending, results, journal, out / JOURNAL, len(tasks), engine, workers, scheduler)
    t["stats"] = time.perf_counter()
    ordered = [results[task.name] for task in tasks]
    used = len(source.photos) - len({s["file"] for r in ordered for s in r.skipped})
    manifest, bin_stats = _finish(out, ordered, params, source.manifest_sha256, source.kind, source.skipped, used,
                                  source.origin)
    _remove_stale_shards(out, {task.name for task in tasks})
    t["end"] = time.perf_counter()
    # record
    samples = {s: sum(r.count for r in ordered if r.split == s) for s in SPLITS}
    skipped_all = manifest["skipped"]
    if skipped_all:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped_all[:5])
        more = f"; and {len(skipped_all) - 5} more" if len(skipped_all) > 5 else ""
        log.warning("skipped %d files (all listed in %s): %s%s", len(skipped_all), out / shards.MANIFEST, shown, more)
    work_s, built = t["stats"] - t["work"], sum(results[task.name].count for task in pending)
    write_run_record(
        out / shards.RUN_RECORD, "prep",
        params={**params.manifest_params(), "src": str(src), "out": str(out),
                "workers": workers or engines.default_workers(), "engine": engine, "scheduler": scheduler},
        counts={"photos": used, "samples": samples, "stored": sum(r.stored for r in ordered),
                "skipped": len(skipped_all), "shards": len(tasks), "shards_rebuilt": len(pending),
                "source": source.kind},
        timings={"discover": t["plan"] - t["start"], "plan": t["work"] - t["plan"], "shards": work_s,
                 "shard_tasks_summed": sum(r.seconds for r in ordered),
                 "stats_and_manifest": t["end"] - t["stats"], "total": t["end"] - t["start"]},
        throughput={"samples_per_s": round(built / work_s, 2) if work_s > 0 and pending else None},
        manifest_sha256=sha256_file(out / shards.MANIFEST),
    )
    return PrepReport(out, samples, used, len(skipped_all), len(tasks), len(pending), bin_stats.n_bins,
                      t["end"] - t["start"], skipped_all)


def _check_options(src: Path, out: Path, engine: str, scheduler: str | None) -> None:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", "use --engine local or --engine dask")
    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask", "add --engine dask")
    if out.resolve() == src.resolve():
        raise UsageError("--out must differ from --src", "write the shards to their own folder")


def _prepare_out(out: Path, source: Any, params: PrepParams) -> None:
    """Refuse a folder that is not ours, clear what an earlier run left, and write the derived manifest."""
    try:
        old_schema = read_json(out / shards.MANIFEST).get("schema")
    except (OSError, ValueError, AttributeError):
        old_schema = None
    if old_schema not in shards.OLD_SCHEMAS:  # shards of an older format are ours: this run replaces them
        read_folder_record(out, shards.MANIFEST, "a shard folder written by colorize prep",
                           "pass --out a new folder for the shards (e.g. data/shards)", schema=shards.SCHEMA,
                           missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, root=out)
    _retire_other_manifest(out, source.manifest_sha256, params)
    if source.derived_manifest is not None:  # the folder's derived manifest, hashed into the shard manifest
        atomic_write_text(out / DERIVED_MANIFEST, source.derived_manifest)
    elif (out / DERIVED_MANIFEST).exists():  # left by an earlier run on a plain folder
        (out / DERIVED_MANIFEST).unlink()


def _plan_key(tasks: list[ShardTask], params: PrepParams, source_sha: str) -> str:
    """What a finished shard in the journal must have been made for (the format too: old shards are rebuilt)."""
    return sha256_bytes(dumps_json({"tool_version": __version__, "schema": shards.SCHEMA, "codec": shards.CODEC,
                                    "source": source_sha, "params": params.manifest_params(),
                                    "shards": [[t.name, [(p.id, v) for p, v in t.items]] for t in tasks]}).encode())


def _run_pending(pending: list[ShardTask], results: dict[str, ShardResult], journal: dict[str, Any],
                 journal_path: Path, total: int, engine: str, workers: int | None, scheduler: str | None) -> None:
    """Build the pending shards on the engine, journalling each as it finishes (so a killed run resumes)."""
    bar = progress(total=total, initial=len(results), desc="prep", unit="shard")
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


def _retire_other_manifest(out: Path, source_sha: str, params: PrepParams) -> None:
    """An existing manifest for other inputs or options would describe shards this run is replacing:
    remove it now, so a reader (or --verify) never trusts a half-replaced folder; this run writes a new one."""
    path = out / shards.MANIFEST
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return
    if not isinstance(old, dict) or old.get("schema") != shards.SCHEMA or old.get("source_manifest_sha256") != source_sha \
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

    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for r in results:
        for cat, k in r.categories.items():
            counts[r.split][cat] = counts[r.split].get(cat, 0) + k
    skipped_by_file = {s["file"]: s for s in skipped_upfront}
    for r in results:
        for s in r.skipped:
            skipped_by_file.setdefault(s["file"], s)
    categories = sorted({c for per in counts.values() for c in per})
    noise = None
    if any(v in aug.NOISE_SIGMA for v in variants_for("train", params.augment)):
        noise_bytes, noise_sha = shards.save_noise_bank(out / shards.NOISE_FILE, aug.noise_bank(params.seed, params.size))
        noise = {"file": shards.NOISE_FILE, "sha256": noise_sha, "bytes": noise_bytes, "fields": aug.BANK_FIELDS,
                 "sigma": aug.NOISE_SIGMA, "pick": "sha256(noise:{seed}:{photo_id}:{variant}) % fields"}
    elif (out / shards.NOISE_FILE).exists():  # left by an earlier run with noise variants
        (out / shards.NOISE_FILE).unlink()
    manifest = {
        "schema": shards.SCHEMA, "tool_version": __version__, "source_manifest_sha256": source_sha,
        "source_kind": source_kind, "source": origin, "photos": n_photos, "params": params.manifest_params(),
        "shards": [r.entry() for r in results],
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "samples": {s: sum(r.count for r in results if r.split == s) for s in SPLITS},
        "categories": categories,
        "skipped": [skipped_by_file[k] for k in sorted(skipped_by_file)],
        "stats": {"file": shards.STATS_FILE, "sha256": stats_sha, "bytes": stats_bytes, **bin_stats.summary()},
        "noise": noise, "codec": shards.CODEC,
    }
    atomic_write_json(out / shards.MANIFEST, manifest)
    return manifest, bin_stats


def _remove_stale_shards(out: Path, keep: set[str]) -> None:
    """Shards of an earlier run with other options that this run's manifest no longer lists."""
    for path in out.glob("*.npz"):
        if shards.SHARD_RE.match(path.name) and path.name not in keep:
            log.info("removing %s (not part of this run's shards)", path.name)
            path.unlink()

