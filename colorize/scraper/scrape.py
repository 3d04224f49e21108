"""`colorize scrape`: harvest search pages with headless Chromium, download photos, keep the manifest.

Downloads start while the browser is still scrolling (a thread pool fed by the harvester), the manifest
is rewritten atomically every few seconds, and a rerun skips every file that is already there and
verified — so a killed run resumes where it stopped and never fetches a finished file twice.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from pathlib import Path
from typing import Any

import requests
from protego import Protego

from colorize.errors import ColorizeError
from colorize.progress import progress
from colorize.scraper import SCRAPE_DEFAULTS as SD
from colorize.scraper.browser import browser_version, chromium
from colorize.scraper.cards import Photo
from colorize.scraper.download import ROBOTS_AGENT, Caps, DownloadError, http_get
from colorize.scraper.harvest import harvest, identify_browser
from colorize.scraper.manifest import search_source
from colorize.scraper.skeleton import (
    SAVE_INTERVAL_S,
    CategoryReport,
    DownloadContext,
    ScrapeReport,
    ScrapeRun,
    download_context,
    download_photo,
    finish,
    open_folder,
    plan_run,
)
from colorize.scraper.urls import browser_hosts, query_params, search_url

log = logging.getLogger(__name__)
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 section 2.5: parsers must read at least 500 KiB, may ignore the rest


def check_robots(session: requests.Session, base_url: str, urls: list[str], caps: Caps | None = None) -> None:
    """Refuse to scrape paths the site's robots.txt disallows for us (Protego: wildcards, `$`, longest match)."""
    robots_url = base_url.rstrip("/") + "/robots.txt"
    caps = caps or Caps()
    try:
        got = http_get(session, robots_url, caps, time.monotonic() + caps.deadline, max_bytes=ROBOTS_MAX_BYTES,
                       truncate=True)
    except DownloadError as exc:
        raise ColorizeError(f"cannot read {robots_url} ({exc})", "check --base-url and the network connection") from None
    if got.status in (401, 403) or got.status >= 500:
        rules = "User-agent: *\nDisallow: /\n"  # RFC 9309: unreachable rules mean "assume everything is disallowed"
    elif got.status != 200:
        rules = ""  # 4xx: no rules, everything is allowed
    else:
        rules = got.data.decode("utf-8", errors="replace")
    parser = Protego.parse(rules)
    for url in urls:
        if not parser.can_fetch(url, ROBOTS_AGENT):
            raise ColorizeError(f"{robots_url} does not allow {url} for automated clients (HTTP {got.status})",
                                "colorize honours robots.txt; use the official Unsplash API or the Unsplash Dataset")


def run_scrape(categories=(), categories_file=None, query=None, limit: int = SD.limit,
               out: Path | str = "data/raw",
               base_url: str = SD.base_url, width: int = SD.width, workers: int = SD.workers,
               per_host: int = SD.per_host, scroll_pause: float = SD.scroll_pause, browser: str = SD.browser,
               driver: str = SD.driver, show_browser: bool = False, caps: Caps | None = None,
               first_wait: float = 3.0, idle_seconds: float = 2.5, allow_hosts: tuple[str, ...] = (),
               timeout: float = SD.timeout) -> ScrapeReport:
    """Scrape `limit` photos per category into `<out>/<category>/<id>.jpg` with `<out>/manifest.json`.

    Its defaults are `ScrapeDefaults`'s, the one source of scrape defaults (the CLI reads them too)."""
    run = plan_run(out, categories, categories_file, query, base_url, allow_hosts, caps, timeout)
    manifest = open_folder(run, search_source(run.base_url))
    if manifest.header.get("base_url") not in (None, run.base_url):
        log.warning("%s was scraped from %s; adding photos from %s", manifest.path, manifest.header["base_url"],
                    run.base_url)
    ctx = download_context(run, width, per_host)
    check_robots(ctx.session, run.base_url, [search_url(run.base_url, c.query) for c in run.plan], run.caps)
    run.reports = [CategoryReport(c.name, c.query) for c in run.plan]
    params = {"categories": [c.name for c in run.plan], "queries": [c.query for c in run.plan], "limit": limit,
              "base_url": run.base_url, "width": width, "workers": workers, "per_host": per_host,
              "scroll_pause": scroll_pause, "headless": not show_browser,
              "allow_hosts": list(run.policy.allow_hosts), "timeout": run.caps.deadline}
    browse = {"browser": browser, "driver": driver, "show_browser": show_browser, "scroll_pause": scroll_pause,
              "first_wait": first_wait, "idle_seconds": idle_seconds}
    return finish(run, params, lambda: _harvest_and_download(run, ctx, limit, workers, browse))


def _harvest_and_download(run: ScrapeRun, ctx: DownloadContext, limit: int, workers: int,
                          browse: dict[str, Any]) -> None:
    """Scroll each category's search page; every photo found goes to the download pool at once."""
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
    bar = progress(total=0, desc="photos", unit="img")
    manifest = ctx.manifest
    try:
        with chromium(browse["browser"], browse["driver"], headless=not browse["show_browser"],
                      allow_hosts=browser_hosts(run.base_url), images=False) as wd:
            identify_browser(wd)
            run.times["version"] = browser_version(wd)
            manifest.header.update(base_url=run.base_url, browser_version=run.times["version"],
                                   query_params=query_params(ctx.width), source=search_source(run.base_url))
            for report in run.reports:
                def on_photo(photo: Photo, report: CategoryReport = report) -> None:
                    future = pool.submit(download_photo, ctx, report.category, report.query, photo)
                    future.add_done_callback(lambda _f: bar.update(1))
                    run.futures[future] = (report, photo.id)
                    bar.total += 1
                    bar.refresh()

                stats = harvest(wd, run.base_url, report.query, limit, on_photo, browse["scroll_pause"],
                                debug_html=run.out / f"scrape-{report.category}-page.html",
                                first_wait=browse["first_wait"], idle_seconds=browse["idle_seconds"],
                                tick=lambda: manifest.maybe_save(SAVE_INTERVAL_S))
                report.cards_seen, report.kept, report.skipped = stats.cards_seen, stats.kept, stats.skipped
                report.generation, report.harvest_s = stats.generation, stats.seconds
                if stats.kept < limit:
                    log.warning("%s: only %d of %d photos found", report.category, stats.kept, limit)
        run.times["harvest_done"] = time.monotonic()
        pending = set(run.futures)
        while pending:
            _, pending = cf.wait(pending, timeout=SAVE_INTERVAL_S / 2)
            manifest.maybe_save(SAVE_INTERVAL_S)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # in-flight files finish, queued ones are dropped
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
