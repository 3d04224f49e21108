"""`colorize scrape`: harvest search pages with headless Chromium, download photos, keep the manifest.

Downloads start while the browser is still scrolling (a thread pool fed by the harvester), the manifest
is rewritten atomically every few seconds, and a rerun skips every file that is already there and
verified — so a killed run resumes where it stopped and never fetches a finished file twice.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests
from protego import Protego

from colorize.errors import ColorizeError, UsageError
from colorize.io import atomic_write_bytes, remove_stale_temps, sha256_bytes, sha256_file, write_run_record
from colorize.progress import progress
from colorize.scraper import DOWNLOAD_DEADLINE_S
from colorize.scraper.browser import browser_version, chromium
from colorize.scraper.cards import Photo
from colorize.scraper.categories import plan_categories
from colorize.scraper.download import (
    ROBOTS_AGENT,
    Caps,
    DownloadError,
    HostLimiter,
    check_jpeg,
    fetch_bytes,
    http_get,
    make_session,
)
from colorize.scraper.harvest import harvest, identify_browser
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.manifest import (
    MANIFEST_NAME,
    Manifest,
    check_category_folders,
    check_source,
    photo_entry,
    search_source,
    write_attribution,
)
from colorize.scraper.urls import (
    browser_hosts,
    download_url,
    is_http,
    is_premium,
    photo_file,
    query_params,
    search_url,
)

log = logging.getLogger(__name__)
SAVE_INTERVAL_S = 2.0
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 section 2.5: parsers must read at least 500 KiB, may ignore the rest


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
    trust it. (Another host list here made `--allow-host` useless for a dataset mirror.)
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


def _prune(manifest: Manifest, out: Path) -> int:
    """Drop entries whose file is gone (a rerun downloads them again if they are still listed)."""
    gone = [e for e in manifest.entries() if not (out / photo_file(e["category"], e["id"])).is_file()]
    for e in gone:
        manifest.remove(e["category"], e["id"])
    return len(gone)


def run_scrape(categories=(), categories_file=None, query=None, limit: int = 200, out: Path | str = "data/raw",
               base_url: str = "https://unsplash.com", width: int = 1080, workers: int = 8, per_host: int = 4,
               scroll_pause: float = 0.5, browser: str = "/usr/bin/chromium", driver: str = "/usr/bin/chromedriver",
               show_browser: bool = False, caps: Caps | None = None, first_wait: float = 3.0,
               idle_seconds: float = 2.5, allow_hosts: tuple[str, ...] = (),
               timeout: float = DOWNLOAD_DEADLINE_S) -> ScrapeReport:
    """Scrape `limit` photos per category into `<out>/<category>/<id>.jpg` with `<out>/manifest.json`."""
    started = time.monotonic()
    plan = plan_categories(categories, categories_file, query)
    if not is_http(base_url):
        raise UsageError(f"--base-url must be an http(s) URL, got {base_url!r}", "e.g. --base-url https://unsplash.com")
    base_url = base_url.rstrip("/")
    policy = HostPolicy(allow_hosts, base_url)  # the user chose --base-url: its host is allowed too
    caps = caps or Caps(deadline=timeout)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_category_folders(out, [c.name for c in plan])
    for folder in [out] + [out / c.name for c in plan]:
        if remove_stale_temps(folder, root=out):
            log.info("removed temp files a killed run left in %s", folder)
    manifest = Manifest.load(out / MANIFEST_NAME)
    check_source(manifest, search_source(base_url))
    if manifest.header.get("base_url") not in (None, base_url):
        log.warning("%s was scraped from %s; adding photos from %s", manifest.path, manifest.header["base_url"], base_url)
    if (n := _prune(manifest, out)):
        log.warning("%d manifest entries had no file; they are fetched again if still found", n)
    session = make_session(per_host, policy)
    check_robots(session, base_url, [search_url(base_url, c.query) for c in plan], caps)
    ctx = DownloadContext(out, base_url, width, session, HostLimiter(per_host), caps, manifest)
    reports = [CategoryReport(c.name, c.query) for c in plan]
    futures: dict[cf.Future, tuple[CategoryReport, str]] = {}
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
    bar = progress(total=0, desc="photos", unit="img")
    run = {"version": "", "harvest_done": 0.0, "finished": 0.0}
    params = {"categories": [c.name for c in plan], "queries": [c.query for c in plan], "limit": limit,
              "base_url": base_url, "width": width, "workers": workers, "per_host": per_host,
              "scroll_pause": scroll_pause, "headless": not show_browser, "allow_hosts": list(policy.allow_hosts),
              "timeout": caps.deadline}
    try:
        with chromium(browser, driver, headless=not show_browser, allow_hosts=browser_hosts(base_url),
                      images=False) as wd:
            identify_browser(wd)
            run["version"] = browser_version(wd)
            manifest.header.update(base_url=base_url, browser_version=run["version"],
                                   query_params=query_params(width), source=search_source(base_url))
            for report in reports:
                def on_photo(photo: Photo, report: CategoryReport = report) -> None:
                    future = pool.submit(download_photo, ctx, report.category, report.query, photo)
                    future.add_done_callback(lambda _f: bar.update(1))
                    futures[future] = (report, photo.id)
                    bar.total += 1
                    bar.refresh()

                stats = harvest(wd, base_url, report.query, limit, on_photo, scroll_pause,
                                debug_html=out / f"scrape-{report.category}-page.html", first_wait=first_wait,
                                idle_seconds=idle_seconds, tick=lambda: manifest.maybe_save(SAVE_INTERVAL_S))
                report.cards_seen, report.kept, report.skipped = stats.cards_seen, stats.kept, stats.skipped
                report.generation, report.harvest_s = stats.generation, stats.seconds
                if stats.kept < limit:
                    log.warning("%s: only %d of %d photos found", report.category, stats.kept, limit)
        run["harvest_done"] = time.monotonic()
        pending = set(futures)
        while pending:
            _, pending = cf.wait(pending, timeout=SAVE_INTERVAL_S / 2)
            manifest.maybe_save(SAVE_INTERVAL_S)
        run["finished"] = time.monotonic()
    except BaseException as exc:  # errors and Ctrl-C: keep what finished, record the run, then re-raise
        pool.shutdown(wait=True, cancel_futures=True)  # in-flight files finish, queued ones are dropped
        bar.close()
        if manifest.dirty:
            manifest.save()
        error = exc.line() if isinstance(exc, ColorizeError) else type(exc).__name__
        _record(out, params, reports, futures, started, run, error=error)
        raise
    pool.shutdown(wait=True)
    bar.close()
    manifest.save()
    for report in reports:
        write_attribution(out, report.category, manifest.entries(report.category))
    result = _record(out, params, reports, futures, started, run)
    if futures and not (result.total("downloaded") + result.total("reused") + result.total("adopted")):
        raise ColorizeError(f"no photo could be downloaded ({result.summary_line()})",
                            "see the warnings above; rerun later to retry the failed photos")
    return result


def _record(out: Path, params: dict, reports: list[CategoryReport], futures: dict, started: float,
            run: dict, error: str | None = None, extra_timings: dict | None = None, **extra) -> ScrapeReport:
    """Tally the finished downloads into the reports and write `<out>/scrape-run.json`."""
    failures = []
    for future, (report, pid) in futures.items():
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
    result = ScrapeReport(out, reports, time.monotonic() - started, run["version"])
    timings = {f"harvest_{r.category}": r.harvest_s for r in reports}
    if run["finished"]:
        timings["downloads_after_harvest"] = run["finished"] - run["harvest_done"]
    timings.update(extra_timings or {})
    write_run_record(
        out / "scrape-run.json", "scrape", params=params,
        counts={r.category: {"cards_seen": r.cards_seen, "kept": r.kept, "skipped": dict(r.skipped),
                             "downloaded": r.downloaded, "reused": r.reused, "adopted": r.adopted,
                             "failed": dict(r.failed), "markup": r.generation} for r in reports},
        timings={**timings, "total": result.seconds}, browser_version=run["version"],
        manifest=str(out / MANIFEST_NAME), failures=failures, error=error, **extra,
    )
    return result
