"""The scrape skeleton both sources run (`scrape.py`: web search; `unsplash_dataset/scrape.py`: the Dataset).

A scrape reads as plan -> open the folder -> download -> finish, and only the download differs by source:
- `plan_run`: the categories, the `--base-url` check, the host policy (images.unsplash.com, `--allow-host`
  and the chosen base URL) and the download caps;
- `open_folder`: the dataset folder, a sweep of the temp files a killed run left, the manifest (refused
  when it holds another source's photos) with its entries whose file is gone pruned;
- `download_context`: one session, one per-host limiter, the caps and the manifest, for `download_photo`,
  through which every photo of both sources goes (one host policy, one set of checks);
- `finish`: runs the source's download; after it, or after any failure or Ctrl-C, the manifest is saved
  and `scrape-run.json` written (with the error), then the ATTRIBUTION.md files; a run in which no photo
  could be had is an error.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from colorize.errors import ColorizeError, UsageError
from colorize.io import atomic_write_bytes, remove_stale_temps, sha256_bytes, sha256_file, write_run_record
from colorize.scraper.cards import Photo
from colorize.scraper.categories import Category, plan_categories
from colorize.scraper.download import Caps, DownloadError, HostLimiter, check_jpeg, fetch_bytes, make_session
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.manifest import (
    MANIFEST_NAME,
    Manifest,
    check_category_folders,
    check_source,
    photo_entry,
    write_attribution,
)
from colorize.scraper.urls import download_url, is_http, is_premium, photo_file

log = logging.getLogger(__name__)
SAVE_INTERVAL_S = 2.0
RUN_RECORD = "scrape-run.json"


@dataclass
class CategoryReport:
    category: str
    query: str
    cards_seen: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    downloaded: int = 0
    reused: int = 0
    adopted: int = 0
    failed: Counter = field(default_factory=Counter)
    generation: str = ""
    harvest_s: float = 0.0


@dataclass
class ScrapeReport:
    out: Path
    categories: list[CategoryReport]
    seconds: float
    browser_version: str = ""

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.categories)

    def summary_line(self) -> str:
        failed = sum((c.failed for c in self.categories), Counter())
        skipped = sum((c.skipped for c in self.categories), Counter())
        n = len(self.categories)
        ok = self.total("downloaded") + self.total("reused") + self.total("adopted")
        skip_txt = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"
        fail_txt = f"{sum(failed.values())} failed" + (f" ({', '.join(f'{k} {v}' for k, v in sorted(failed.items()))})"
                                                       if failed else "")
        return (f"scrape: {ok} photos in {n} categor{'y' if n == 1 else 'ies'} ({self.total('downloaded')} downloaded, "
                f"{self.total('reused') + self.total('adopted')} already there, {fail_txt}; skipped {skip_txt}) "
                f"-> {self.out / MANIFEST_NAME}")


@dataclass
class DownloadContext:
    out: Path
    base_url: str
    width: int
    session: requests.Session
    limiter: HostLimiter
    caps: Caps
    manifest: Manifest


def download_photo(ctx: DownloadContext, category: str, query: str, photo: Photo,
                   extra: dict | None = None) -> tuple[str, str]:
    """Make `<out>/<category>/<id>.jpg` present and verified; returns (outcome, failure reason).

    Both sources (web search and Unsplash Dataset) download through here, so one host policy and one
    set of checks apply to every photo; `extra` adds the source's own fields to the manifest entry.
    Which hosts may be asked is the session's `HostPolicy` alone (Unsplash's CDN, `--allow-host`, the
    `--base-url` host): a refused host fails as `forbidden_host`, naming the --allow-host that would
    trust it.
    """
    if not is_http(photo.image_url) or is_premium(photo.image_url):
        return "failed", "bad_url"
    path = ctx.out / photo_file(category, photo.id)
    url = download_url(photo.image_url, ctx.width)
    previous = ctx.manifest.get(category, photo.id)
    try:
        if path.exists():
            if previous and previous.get("sha256") == sha256_file(path):
                return "reused", ""
            if previous is None and (adopted := _adopt(path, ctx.caps)):  # a killed run's finished file
                data, w, h = adopted
                ctx.manifest.put(photo_entry(photo, category, query, url, sha256_bytes(data), len(data), w, h, extra))
                return "adopted", ""
        data, w, h = fetch_bytes(ctx.session, url, ctx.caps, ctx.limiter)
        atomic_write_bytes(path, data)
        ctx.manifest.put(photo_entry(photo, category, query, url, sha256_bytes(data), len(data), w, h, extra))
        return "downloaded", ""
    except DownloadError as exc:
        log.warning("%s/%s: %s", category, photo.id, exc)
        if previous is not None:
            ctx.manifest.remove(category, photo.id)  # its file is not there or not verified any more
        return "failed", exc.reason


def _adopt(path: Path, caps: Caps) -> tuple[bytes, int, int] | None:
    """(bytes, w, h) of an unlisted file that is a whole JPEG; None for a truncated or corrupt one, which
    is then downloaded again and replaced (it must not block its photo forever)."""
    try:
        data = path.read_bytes()
        return (data, *check_jpeg(data, caps))
    except (OSError, DownloadError) as exc:
        log.warning("%s is not a whole JPEG (%s); downloading it again", path, exc)
        return None


def prune(manifest: Manifest, out: Path) -> int:
    """Drop entries whose file is gone (a rerun downloads them again if they are still listed)."""
    gone = [e for e in manifest.entries() if not (out / photo_file(e["category"], e["id"])).is_file()]
    for e in gone:
        manifest.remove(e["category"], e["id"])
    return len(gone)


@dataclass
class ScrapeRun:
    """One scrape under way: what `plan_run` decided, then the folder's manifest and the finished downloads."""

    out: Path
    plan: list[Category]
    base_url: str
    policy: HostPolicy
    caps: Caps
    started: float = field(default_factory=time.monotonic)
    manifest: Manifest | None = None
    reports: list[CategoryReport] = field(default_factory=list)
    futures: dict[cf.Future, tuple[CategoryReport, str]] = field(default_factory=dict)
    times: dict[str, Any] = field(default_factory=lambda: {"version": "", "harvest_done": 0.0, "finished": 0.0})


def plan_run(out: Path | str, categories, categories_file, query, base_url: str, allow_hosts: tuple[str, ...],
             caps: Caps | None, timeout: float) -> ScrapeRun:
    """Parse what both sources take alike; a bad category or --base-url is a `UsageError` before any work."""
    started = time.monotonic()
    plan = plan_categories(categories, categories_file, query)
    if not is_http(base_url):
        raise UsageError(f"--base-url must be an http(s) URL, got {base_url!r}", "e.g. --base-url https://unsplash.com")
    base_url = base_url.rstrip("/")
    policy = HostPolicy(allow_hosts, base_url)  # the user chose --base-url: its host is allowed too
    return ScrapeRun(Path(out), plan, base_url, policy, caps or Caps(deadline=timeout), started)


def open_folder(run: ScrapeRun, source: dict[str, Any]) -> Manifest:
    """Create the dataset folder, sweep a killed run's temp files, and load its manifest for `source`."""
    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    check_category_folders(out, [c.name for c in run.plan])
    for folder in [out] + [out / c.name for c in run.plan]:
        if remove_stale_temps(folder, root=out):
            log.info("removed temp files a killed run left in %s", folder)
    run.manifest = Manifest.load(out / MANIFEST_NAME)
    check_source(run.manifest, source)
    if (n := prune(run.manifest, out)):
        log.warning("%d manifest entries had no file; they are fetched again if still found", n)
    return run.manifest


def download_context(run: ScrapeRun, width: int, per_host: int) -> DownloadContext:
    """The session, limiter, caps and manifest every `download_photo` of this run shares."""
    assert run.manifest is not None, "open_folder first"
    session = make_session(per_host, run.policy)
    return DownloadContext(run.out, run.base_url, width, session, HostLimiter(per_host), run.caps, run.manifest)


def finish(run: ScrapeRun, params: dict[str, Any], download: Callable[[], None],
           extra_timings: dict | None = None, **extra: Any) -> ScrapeReport:
    """Run `download`, then save the manifest, the run record and the attribution files (on failure too)."""
    manifest = run.manifest
    assert manifest is not None, "open_folder first"
    try:
        download()
        run.times["finished"] = time.monotonic()
    except BaseException as exc:  # errors and Ctrl-C: keep what finished, record the run, then re-raise
        if manifest.dirty:
            manifest.save()
        error = exc.line() if isinstance(exc, ColorizeError) else type(exc).__name__
        write_record(run, params, error=error, extra_timings=extra_timings, **extra)
        raise
    manifest.save()
    for report in run.reports:
        write_attribution(run.out, report.category, manifest.entries(report.category))
    result = write_record(run, params, extra_timings=extra_timings, **extra)
    if run.futures and not (result.total("downloaded") + result.total("reused") + result.total("adopted")):
        raise ColorizeError(f"no photo could be downloaded ({result.summary_line()})",
                            "see the warnings above; rerun later to retry the failed photos")
    return result


def write_record(run: ScrapeRun, params: dict, error: str | None = None, extra_timings: dict | None = None,
                 **extra: Any) -> ScrapeReport:
    """Tally the finished downloads into the reports and write `<out>/scrape-run.json`."""
    out, reports, times = run.out, run.reports, run.times
    failures = []
    for future, (report, pid) in run.futures.items():
        if future.cancelled() or not future.done():
            continue
        if (exc := future.exception()) is not None:  # e.g. the disk is full: a failure, never a silent loss
            log.warning("%s/%s: %s: %s", report.category, pid, type(exc).__name__, exc)
            outcome, reason = "failed", "error"
        else:
            outcome, reason = future.result()
        if outcome == "failed":
            report.failed[reason] += 1
            failures.append({"category": report.category, "id": pid, "reason": reason})
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)
    result = ScrapeReport(out, reports, time.monotonic() - run.started, times["version"])
    timings = {f"harvest_{r.category}": r.harvest_s for r in reports}
    if times["finished"]:
        timings["downloads_after_harvest"] = times["finished"] - times["harvest_done"]
    timings.update(extra_timings or {})
    write_run_record(
        out / RUN_RECORD, "scrape", params=params,
        counts={r.category: {"cards_seen": r.cards_seen, "kept": r.kept, "skipped": dict(r.skipped),
                             "downloaded": r.downloaded, "reused": r.reused, "adopted": r.adopted,
                             "failed": dict(r.failed), "markup": r.generation} for r in reports},
        timings={**timings, "total": result.seconds}, browser_version=times["version"],
        manifest=str(out / MANIFEST_NAME), failures=failures, error=error, **extra,
    )
    return result
