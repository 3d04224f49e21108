"""Stage 1: harvest Unsplash search pages with headless Chromium, download photos, keep a manifest.

`ScrapeDefaults` is the stage's one defaults record: `colorize scrape`'s options, `run_scrape`,
`run_dataset_scrape`, the downloader's caps and the browser launcher read theirs from `SCRAPE_DEFAULTS`.
It is plain Python, so the CLI can show the defaults without importing the downloader (requests, Pillow).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The per-photo download deadline in seconds (`--timeout`, `download.Caps.deadline`).
DOWNLOAD_DEADLINE_S = 120.0
#: Where Debian and Ubuntu install Chromium and its driver (`--browser`, `--driver`).
DEFAULT_BROWSER = "/usr/bin/chromium"
DEFAULT_DRIVER = "/usr/bin/chromedriver"
#: `scrape --dataset --min-confidence`: the least keyword score (0..100: 100 for a keyword the user
#: suggested, else the release's larger AI confidence; see unsplash_dataset/select.py) a photo needs. A score, unlike a bundle's router probability
#: (`models.net.ROUTER_MIN_CONFIDENCE`, 0..1).
MIN_KEYWORD_SCORE = 50.0
KEYWORD_SCORE_RANGE = (0.0, 100.0)


@dataclass(frozen=True)
class ScrapeDefaults:
    """The defaults of `colorize scrape` (both sources; the browser fields are the web source's)."""

    limit: int = 200
    base_url: str = "https://unsplash.com"
    width: int = 1080
    workers: int = 8
    per_host: int = 4
    scroll_pause: float = 0.5
    browser: str = DEFAULT_BROWSER
    driver: str = DEFAULT_DRIVER
    timeout: float = DOWNLOAD_DEADLINE_S
    min_keyword_score: float = MIN_KEYWORD_SCORE


SCRAPE_DEFAULTS = ScrapeDefaults()
