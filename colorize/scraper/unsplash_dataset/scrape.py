"""`colorize scrape --dataset PATH`: category folders from an Unsplash Dataset release instead of web search.

unsplash.com itself refuses honest headless browsers (Anubis) and its terms point machine learning to
the Unsplash Dataset, whose image URLs (images.unsplash.com) are not behind the wall. So the same
command builds the same dataset folder from the release's tables: the photos are chosen by
`unsplash_dataset.select` (deterministic), and downloaded through the web scrape's own `download_photo`, so the
host rules, caps, verification, atomic writes, manifest and resume are the same code. A photo that
answers 404/410 is reported missing and the next candidate takes its place.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError, UsageError
from colorize.io import remove_stale_temps
from colorize.progress import progress
from colorize.scraper import DOWNLOAD_DEADLINE_S
from colorize.scraper.cards import Photo, Photographer
from colorize.scraper.categories import plan_categories
from colorize.scraper.download import Caps, HostLimiter, make_session
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.manifest import (
    MANIFEST_NAME,
    Manifest,
    check_category_folders,
    check_source,
    write_attribution,
)
from colorize.scraper.scrape import (
    SAVE_INTERVAL_S,
    CategoryReport,
    DownloadContext,
    ScrapeReport,
    _prune,
    _record,
    download_photo,
)
from colorize.scraper.unsplash_dataset.select import Candidate, Selection, select, selection_options
from colorize.scraper.unsplash_dataset.tables import Release, UnsplashDataset
from colorize.scraper.urls import is_http, query_params

log = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 50.0


def dataset_source(dataset: UnsplashDataset, release: Release, options: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `source` record: enough for someone with the same release to rebuild the selection."""
    root = len(dataset.root)
    return {"kind": "unsplash-dataset", "file": dataset.path.name,
            "release": {"name": release.name, "version": release.version, "read_from": list(release.read_from)},
            "naming": dataset.naming, "tables": {name[root:]: sha for name, sha in sorted(dataset.hashes.items())},
            "options": options}


def _photo(c: Candidate) -> Photo:
    who = c.photographer
    return Photo(c.id, "", c.page_url, c.image_url, c.alt, c.width, c.height,
                 Photographer(who["username"], who["name"], who["url"]), c.rank)


def _download_all(ctx: DownloadContext, selection: Selection, reports: list[CategoryReport], limit: int,
                  workers: int, extra: dict[str, Any], futures: dict[cf.Future, tuple[CategoryReport, str]]) -> None:
    """Download the top `limit` of each category into `futures`; each 404/410 brings in the next candidate.

    A photo that answered 404/410 is recorded in the manifest (`Manifest.mark_missing`); a rerun counts
    it missing again without asking for it (the next candidate took its place; a photo that came back
    would change the selection).
    """
    gone = ctx.manifest.known_missing()
    cursor = {r.category: 0 for r in reports}
    taken = {r.category: 0 for r in reports}  # places filled or in flight (a missing photo frees its place)
    bar = progress(total=0, desc="photos", unit="img")
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")

    def fill(report: CategoryReport) -> set[cf.Future]:
        ranked, new = selection.ranked[report.category], set()
        query = ", ".join(_keywords(selection, report.category))
        while taken[report.category] < limit and cursor[report.category] < len(ranked):
            c = ranked[cursor[report.category]]
            cursor[report.category] += 1
            report.kept += 1
            if f"{c.category}/{c.id}" in gone:
                report.failed["missing"] += 1  # as the run that found it gone counted it
                continue
            taken[report.category] += 1
            fields = {**extra, "keyword": c.keyword, "score": c.score}
            future = pool.submit(download_photo, ctx, c.category, query, _photo(c), fields)
            futures[future] = (report, c.id)
            new.add(future)
        bar.total += len(new)
        bar.refresh()
        return new

    try:
        pending = set().union(*(fill(r) for r in reports))
        while pending:
            done, pending = cf.wait(pending, timeout=SAVE_INTERVAL_S / 2, return_when=cf.FIRST_COMPLETED)
            for future in done:
                report, pid = futures[future]
                bar.update(1)
                if future.exception() is None and future.result() == ("failed", "missing"):
                    ctx.manifest.mark_missing(report.category, pid)
                    taken[report.category] -= 1
                    pending |= fill(report)
            ctx.manifest.maybe_save(SAVE_INTERVAL_S)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # in-flight files finish, queued ones are dropped
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)


def _keywords(selection: Selection, category: str) -> tuple[str, ...]:
    return next(c.keywords for c in selection.categories if c.name == category)


def run_dataset_scrape(dataset: str | Path, categories=(), categories_file=None, query=None,
                       min_confidence: float | None = None, limit: int = 200, out: Path | str = "data/raw",
                       base_url: str = "https://unsplash.com", width: int = 1080, workers: int = 8,
                       per_host: int = 4, caps: Caps | None = None, allow_hosts: tuple[str, ...] = (),
                       timeout: float = DOWNLOAD_DEADLINE_S) -> ScrapeReport:
    """Choose up to `limit` photos per category from the release at `dataset` and download them into `out`."""
    started = time.monotonic()
    plan = plan_categories(categories, categories_file, query)
    min_confidence = DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)
    if not 0 <= min_confidence <= 100:
        raise UsageError(f"--min-confidence must be 0..100, got {min_confidence}", "e.g. --min-confidence 40")
    if not is_http(base_url):
        raise UsageError(f"--base-url must be an http(s) URL, got {base_url!r}", "e.g. --base-url https://unsplash.com")
    base_url = base_url.rstrip("/")
    policy = HostPolicy(allow_hosts, base_url)  # images.unsplash.com, --allow-host and the chosen --base-url
    caps = caps or Caps(deadline=timeout)
    options = selection_options(plan, min_confidence, limit, width)
    with UnsplashDataset(dataset) as ds:
        selection = select(ds, plan, min_confidence)
        release = ds.release()
        source = dataset_source(ds, release, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_category_folders(out, [c.name for c in plan])
    for folder in [out] + [out / c.name for c in plan]:
        remove_stale_temps(folder, root=out)
    manifest = Manifest.load(out / MANIFEST_NAME)
    check_source(manifest, source)
    if (n := _prune(manifest, out)):
        log.warning("%d manifest entries had no file; they are fetched again", n)
    manifest.header.update(source=source, query_params={k: v for k, v in query_params(width).items() if k != "license"})
    reports = []
    for c in plan:
        report = CategoryReport(c.name, ", ".join(c.keywords))
        report.cards_seen = len(selection.ranked[c.name]) + sum(selection.skipped[c.name].values())
        report.skipped = selection.skipped[c.name]
        reports.append(report)
        if len(selection.ranked[c.name]) < limit:
            log.warning("%s: only %d photos qualify (keywords %s, --min-confidence %g)", c.name,
                        len(selection.ranked[c.name]), ", ".join(c.keywords), min_confidence)
    session = make_session(per_host, policy)
    ctx = DownloadContext(out, base_url, width, session, HostLimiter(per_host), caps, manifest)
    params = {"dataset": str(dataset), **options, "base_url": base_url, "workers": workers, "per_host": per_host,
              "allow_hosts": list(policy.allow_hosts), "timeout": caps.deadline}
    run: dict[str, Any] = {"version": "", "harvest_done": time.monotonic(), "finished": 0.0}
    info = {"source": source, "rows": {"keywords": selection.keyword_rows, "keywords_matched": selection.matched_rows,
                                       "photos": selection.photo_rows}}
    timings = {f"select_{k}": v for k, v in selection.timings.items()}
    futures: dict[cf.Future, tuple[CategoryReport, str]] = {}
    try:
        _download_all(ctx, selection, reports, limit, workers, {"license": release.license()}, futures)
        run["finished"] = time.monotonic()
    except BaseException as exc:
        if manifest.dirty:
            manifest.save()
        error = exc.line() if isinstance(exc, ColorizeError) else type(exc).__name__
        _record(out, params, reports, futures, started, run, error=error, extra_timings=timings, **info)
        raise
    manifest.save()
    for report in reports:
        write_attribution(out, report.category, manifest.entries(report.category))
    result = _record(out, params, reports, futures, started, run, extra_timings=timings, **info)
    if futures and not (result.total("downloaded") + result.total("reused") + result.total("adopted")):
        raise ColorizeError(f"no photo could be downloaded ({result.summary_line()})",
                            "see the warnings above; rerun later to retry the failed photos")
    return result
