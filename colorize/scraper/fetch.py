"""`colorize fetch MANIFEST`: rebuild a dataset someone shared, verifying every sha256.

A shared manifest carries ids, URLs and hashes, never images. Every photo is downloaded again from its
exact `image_url` and kept only if its hash matches: `ok`; a 404/410 is `missing` (photographers
delete photos); a different hash is `changed` (the file is kept aside under `.changed/`, never in the
dataset); anything else is `failed`. Nothing is written outside `--out`, whatever the manifest says, and nothing
is requested outside the host policy (`hosts.HostPolicy`: images.unsplash.com unless `--allow-host`).

The copy of the manifest in `--out` is written before the first download and then every few seconds
(like scrape), so after a kill -9 a rerun finds every verified photo listed. `--out` may be an existing
dataset folder (the photos are merged into its manifest); a folder holding another tool's record is
refused, never overwritten.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError, UsageError
from colorize.io import (
    atomic_write_bytes,
    read_folder_record,
    remove_stale_temps,
    sha256_bytes,
    sha256_file,
    utc_now,
    write_run_record,
)
from colorize.progress import progress
from colorize.scraper import SCRAPE_DEFAULTS
from colorize.scraper.download import Caps, DownloadError, HostLimiter, fetch_bytes, make_session
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.manifest import MANIFEST_NAME, SCHEMA, Manifest, write_attribution
from colorize.scraper.urls import is_http, photo_file

log = logging.getLogger(__name__)
CHANGED_DIR = ".changed"
SAVE_INTERVAL_S = 2.0


@dataclass
class FetchReport:
    out: Path
    counts: Counter = field(default_factory=Counter)  # ok / missing / changed / failed
    reasons: Counter = field(default_factory=Counter)  # why "failed"
    downloaded: int = 0
    seconds: float = 0.0

    @property
    def not_ok(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "ok")

    def summary_line(self) -> str:
        c = self.counts
        return (f"fetch: {c['ok']} ok ({self.downloaded} downloaded), {c['missing']} missing, {c['changed']} changed, "
                f"{c['failed']} failed -> {self.out / MANIFEST_NAME}")


def _inside(out: Path, rel: str) -> Path:
    """`out/rel`, refusing anything that would land outside `out` (rel is built from validated parts)."""
    path = (out / rel).resolve()
    if not path.is_relative_to(out.resolve()):
        raise ColorizeError(f"manifest entry {rel!r} points outside {out}", "the manifest is hostile; do not use it")
    return path


def _fetch_one(entry: dict[str, Any], out: Path, session, limiter: HostLimiter, caps: Caps) -> tuple[str, str, bool]:
    """(status, failure reason, downloaded?) for one manifest entry; writes only under `out`."""
    rel = photo_file(entry["category"], entry["id"])
    dest = _inside(out, rel)
    url, want = entry.get("image_url"), entry.get("sha256")
    if not want:
        return "failed", "no_sha256", False
    if dest.is_file() and sha256_file(dest) == want:
        return "ok", "", False
    if not is_http(url):
        return "failed", "bad_url", False
    try:
        data, _, _ = fetch_bytes(session, url, caps, limiter)
    except DownloadError as exc:
        log.warning("%s: %s", rel, exc)
        return ("missing", exc.reason, False) if exc.reason == "missing" else ("failed", exc.reason, False)
    if sha256_bytes(data) != want:
        atomic_write_bytes(_inside(out, f"{CHANGED_DIR}/{rel}"), data)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()  # a stale file with the wrong hash is not part of the dataset either
        log.warning("%s: the photo changed since the manifest was written (kept in %s/)", rel, CHANGED_DIR)
        return "changed", "sha256", True
    atomic_write_bytes(dest, data)
    return "ok", "", True


def output_manifest(out: Path, source: Manifest) -> Manifest:
    """The manifest `fetch` keeps in `out`: new, or the dataset already there (merged); never another tool's."""
    fix = "give --out a new or empty folder, or a dataset folder written by scrape or fetch"
    try:
        record = read_folder_record(out, MANIFEST_NAME, f"a dataset folder (no readable {MANIFEST_NAME})", fix,
                                    schema=SCHEMA)  # another tool's record: UsageError from io itself
    except UsageError:
        raise
    except ColorizeError as exc:  # a non-empty folder with no record: also a usage mistake here
        raise UsageError(exc.what, exc.fix) from None
    if record is None:
        return Manifest(out / MANIFEST_NAME, dict(source.header))
    return Manifest.load(out / MANIFEST_NAME)


@dataclass
class FetchPlan:
    """What `fetch` will do, decided before the first request: the work in order and the copy to merge into."""

    entries: list[dict[str, Any]]  # the source manifest's entries, sorted (the objects, not copies)
    copy: Manifest  # the manifest kept in `out`
    categories: list[str]


def plan_fetch(manifest_path: Path | str, out: Path) -> FetchPlan:
    """Read and check the shared manifest and `out`'s own, in time and memory linear in the manifest."""
    source = Manifest.load(Path(manifest_path), missing_ok=False)
    copy = output_manifest(out, source)
    entries = sorted(source.photos.values(), key=lambda e: (e["category"], e.get("rank") or 0, e["id"]))
    return FetchPlan(entries, copy, sorted({e["category"] for e in entries}))


def _results(entries: list[dict[str, Any]], workers: int, work: Callable[[dict[str, Any]], tuple[str, str, bool]]
             ) -> Iterator[tuple[dict[str, Any], tuple[str, str, bool] | OSError]]:
    """(entry, result or the OSError it raised) as downloads finish, with a bounded number queued.

    Submitting a million futures at once would hold a million futures (and their closures) before the
    first photo is saved; a window of a few per worker keeps the pool busy and the memory flat.
    """
    window = max(1, workers) * 4
    todo = iter(entries)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        pending = {pool.submit(work, e): e for e in itertools.islice(todo, window)}
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                entry = pending.pop(future)
                try:
                    yield entry, future.result()
                except OSError as exc:  # e.g. the disk is full: this photo failed, the others still count
                    yield entry, exc
            for entry in itertools.islice(todo, len(done)):
                pending[pool.submit(work, entry)] = entry


def run_fetch(manifest_path: Path | str, out: Path | str, workers: int = SCRAPE_DEFAULTS.workers,
              allow_missing: bool = False, per_host: int = SCRAPE_DEFAULTS.per_host, caps: Caps | None = None,
              allow_hosts: tuple[str, ...] = (),
              timeout: float = Caps.deadline) -> FetchReport:
    """Download every photo of `manifest_path` into `out` (same layout) and merge it into `out`'s manifest."""
    started = time.monotonic()
    out = Path(out)
    policy = HostPolicy(allow_hosts)  # a bad --allow-host is refused before anything is touched
    plan = plan_fetch(manifest_path, out)
    copy, entries, categories = plan.copy, plan.entries, plan.categories
    out.mkdir(parents=True, exist_ok=True)
    for folder in [out] + [out / c for c in categories] + [out / CHANGED_DIR / c for c in categories]:
        remove_stale_temps(folder, root=out)
    session, limiter = make_session(per_host, policy), HostLimiter(per_host)
    caps = caps or Caps(deadline=timeout)
    report = FetchReport(out)
    copy.header["fetched_at"] = utc_now()
    copy.save()  # the folder carries its record before the first photo lands: a kill -9 leaves a dataset
    bar = progress(total=len(entries), desc="fetch", unit="img")
    with bar:
        for entry, result in _results(entries, workers, lambda e: _fetch_one(e, out, session, limiter, caps)):
            if isinstance(result, OSError):
                log.warning("%s/%s: %s: %s", entry["category"], entry["id"], type(result).__name__, result)
                result = ("failed", "error", False)
            status, reason, downloaded = result
            bar.update(1)
            report.counts[status] += 1
            report.downloaded += downloaded and status == "ok"
            if status == "failed":
                report.reasons[reason] += 1
            entry.update(status=status, file=photo_file(entry["category"], entry["id"]))
            copy.put(entry)  # the entry itself (the source manifest is not kept): one copy in memory
            copy.maybe_save(SAVE_INTERVAL_S)  # a kill -9 loses at most the last few seconds of results
    copy.save()
    by_category = copy.by_category()
    for category in categories:  # credit goes with the photos that are actually there
        write_attribution(out, category, [e for e in by_category.get(category, []) if e["status"] == "ok"])
    report.seconds = time.monotonic() - started
    write_run_record(out / "fetch-run.json", "fetch",
                     params={"manifest": str(manifest_path), "workers": workers, "allow_missing": allow_missing,
                             "allow_hosts": list(policy.allow_hosts), "timeout": caps.deadline},
                     counts={**{k: report.counts[k] for k in ("ok", "missing", "changed", "failed")},
                             "downloaded": report.downloaded, "failed_reasons": dict(report.reasons)},
                     timings={"total": report.seconds})
    if report.not_ok and not allow_missing:
        c = report.counts
        raise ColorizeError(
            f"{report.not_ok} of {len(entries)} photos are not ok ({c['missing']} missing, {c['changed']} changed, "
            f"{c['failed']} failed; details in {out / 'fetch-run.json'})",
            f"the {c['ok']} verified photos are in {out}; rerun to retry, or add --allow-missing to accept them")
    return report
