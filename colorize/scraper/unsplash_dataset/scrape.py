"""`colorize scrape --dataset PATH`: category folders from an Unsplash Dataset release instead of web search.

unsplash.com itself refuses honest headless browsers (Anubis) and its terms point machine learning to
the Unsplash Dataset, whose image URLs (images.unsplash.com) are not behind the wall. So the same
command builds the same dataset folder from the release's tables: the photos are chosen by
`unsplash_dataset.select` (deterministic), and the run follows the scrape skeleton (`scraper/skeleton.py`):
its `download_photo`, host rules, caps, verification, atomic writes, manifest, resume and run record are
the web scrape's own code. A photo that
answers 404/410 is reported missing and the next candidate takes its place.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from pathlib import Path
from typing import Any

from colorize.errors import UsageError
from colorize.progress import progress
from colorize.scraper import KEYWORD_SCORE_RANGE
from colorize.scraper import SCRAPE_DEFAULTS as SD
from colorize.scraper.cards import Photo, Photographer
from colorize.scraper.categories import Category
from colorize.scraper.download import Caps
from colorize.scraper.skeleton import (
    SAVE_INTERVAL_S,
    CategoryReport,
    DownloadContext,
    ScrapeReport,
    download_context,
    download_photo,
    finish,
    open_folder,
    plan_run,
)
from colorize.scraper.unsplash_dataset.select import Candidate, Selection, select, selection_options
from colorize.scraper.unsplash_dataset.tables import Release, UnsplashDataset
from colorize.scraper.urls import query_params

log = logging.getLogger(__name__)


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
                       min_confidence: float = SD.min_keyword_score, limit: int = SD.limit,
                       out: Path | str = "data/raw", base_url: str = SD.base_url, width: int = SD.width,
                       workers: int = SD.workers, per_host: int = SD.per_host, caps: Caps | None = None,
                       allow_hosts: tuple[str, ...] = (), timeout: float = SD.timeout) -> ScrapeReport:
    """Choose up to `limit` photos per category from the release at `dataset` and download them into `out`.

    Its defaults are `ScrapeDefaults`'s, the one source of scrape defaults (the CLI reads them too)."""
    run = plan_run(out, categories, categories_file, query, base_url, allow_hosts, caps, timeout)
    lo, hi = KEYWORD_SCORE_RANGE
    if not lo <= float(min_confidence) <= hi:
        raise UsageError(f"--min-confidence must be {lo:g}..{hi:g}, got {min_confidence}", "e.g. --min-confidence 40")
    options = selection_options(run.plan, float(min_confidence), limit, width)
    with UnsplashDataset(dataset) as ds:
        selection = select(ds, run.plan, float(min_confidence))
        release = ds.release()
        source = dataset_source(ds, release, options)
    manifest = open_folder(run, source)
    manifest.header.update(source=source, query_params={k: v for k, v in query_params(width).items() if k != "license"})
    run.reports = [_category_report(c, selection, limit, float(min_confidence)) for c in run.plan]
    ctx = download_context(run, width, per_host)
    params = {"dataset": str(dataset), **options, "base_url": run.base_url, "workers": workers, "per_host": per_host,
              "allow_hosts": list(run.policy.allow_hosts), "timeout": run.caps.deadline}
    info = {"source": source, "rows": {"keywords": selection.keyword_rows, "keywords_matched": selection.matched_rows,
                                       "photos": selection.photo_rows}}
    timings = {f"select_{k}": v for k, v in selection.timings.items()}
    run.times["harvest_done"] = time.monotonic()
    return finish(run, params, lambda: _download_all(ctx, selection, run.reports, limit, workers,
                                                     {"license": release.license()}, run.futures),
                  extra_timings=timings, **info)


def _category_report(c: Category, selection: Selection, limit: int, min_confidence: float) -> CategoryReport:
    """A category's report before downloading: the candidates seen and why the others were skipped."""
    report = CategoryReport(c.name, ", ".join(c.keywords))
    report.cards_seen = len(selection.ranked[c.name]) + sum(selection.skipped[c.name].values())
    report.skipped = selection.skipped[c.name]
    if len(selection.ranked[c.name]) < limit:
        log.warning("%s: only %d photos qualify (keywords %s, --min-confidence %g)", c.name,
                    len(selection.ranked[c.name]), ", ".join(c.keywords), min_confidence)
    return report
