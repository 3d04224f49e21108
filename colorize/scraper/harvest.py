"""The search-page loop: open, refuse bot walls, dismiss consent, Load more, scroll, parse, dedupe.

The page is a React app whose element handles go stale, so the first page is parsed whole from
`page_source`, and after every scroll step the browser hands over only the cards from where the last
step stopped (their `outerHTML`), which BeautifulSoup parses: a 20,000-card page is never parsed whole
again (see benchmarks/bench_harvest.py). Cards are taken in DOM order. A card
still showing its `data:` placeholder holds the queue for a few steps (it gets its URL when scrolled
into view), so photos are kept in search-rank order.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from colorize import __version__
from colorize.errors import ColorizeError
from colorize.io import atomic_write_text
from colorize.scraper.cards import (
    WALLS,
    ParsedCard,
    Photo,
    bot_wall,
    card_selector,
    parse_fragments,
    parse_page,
)
from colorize.scraper.unsplash_dataset.tables import LITE_URL
from colorize.scraper.urls import host_of, search_url

log = logging.getLogger(__name__)

CONSENT_XPATH = ("//*[@role='dialog' or @aria-modal='true']//button[contains(translate(normalize-space(.),"
                 " 'ACEPTLGRO', 'aceptlgro'), 'accept') or contains(translate(normalize-space(.), 'ACEPTLGRO',"
                 " 'aceptlgro'), 'agree')]")
LOAD_MORE_XPATH = "//button[normalize-space(.)='Load more'] | //a[normalize-space(.)='Load more']"
# Only a button already in the viewport is clicked: clicking one further down would make the browser jump
# to it, and the lazy cards jumped over would never get their URLs.
IN_VIEW_JS = ("const r = arguments[0].getBoundingClientRect();"
              " return r.bottom > 0 && r.top < window.innerHeight;")
# Scroll card number `i` (DOM order, as cards.find_cards counts them) to the middle of the viewport.
REVEAL_JS = ("let els = [...document.querySelectorAll(arguments[0])];"
             " if (arguments[2]) els = els.filter((e) => e.querySelector('img'));"
             " const el = els[arguments[1]]; if (el) el.scrollIntoView({block: 'center'}); return !!el;")
# The cards from DOM index arguments[1] on, as HTML, their total, and whether this is still the document
# marked by the previous step: only the new part of a long page crosses over to Python to be parsed.
NEW_CARDS_JS = ("let els = [...document.querySelectorAll(arguments[0])];"
                " if (arguments[2]) els = els.filter((e) => e.querySelector('img'));"
                " const same = window.__colorizeHarvest === true; window.__colorizeHarvest = true;"
                " return {total: els.length, same: same, cards: els.slice(arguments[1]).map((e) => e.outerHTML)};")
NAV_STATUS_JS = ("const e = performance.getEntriesByType('navigation')[0];"
                 " return e && e.responseStatus ? e.responseStatus : 0;")
BOT_WALL_FIX = ("colorize never tries to get past bot walls nor changes its User-Agent to pass; use the Unsplash "
                f"Dataset instead: download Lite from {LITE_URL}, then run colorize scrape --dataset "
                "PATH-TO-THE-ZIP --category NAME")


def wall_error(kind: str, url: str, switched: bool = False) -> ColorizeError:
    """One line naming the wall `kind` (a key of cards.WALLS) and the Unsplash Dataset as the way on."""
    return ColorizeError(f"{host_of(url)} {'switched to' if switched else 'answered with'} {WALLS[kind]} "
                         "instead of search results", BOT_WALL_FIX)


def check_wall(html: str, url: str, switched: bool = False) -> None:
    """Stop at a bot wall, never try to pass it."""
    if kind := bot_wall(html):
        raise wall_error(kind, url, switched)


@dataclass
class HarvestStats:
    """What one category's search page gave: counted for the run report."""

    cards_seen: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    generation: str = ""
    steps: int = 0
    seconds: float = 0.0


def identify_browser(driver) -> None:
    """Append the tool's name and version to the browser's own User-Agent (honest, not disguised)."""
    try:
        ua = driver.execute_script("return navigator.userAgent") or ""
        driver.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": f"{ua} colorize/{__version__}"})
    except Exception:  # a driver without CDP keeps its own (already honest: HeadlessChrome) User-Agent
        log.debug("could not set the User-Agent", exc_info=True)


def open_search(driver, url: str) -> str:
    """Load the search page; raise ColorizeError on errors, 401/403 and bot walls; return its HTML."""
    from selenium.common.exceptions import WebDriverException

    try:
        driver.get(url)
    except WebDriverException as exc:
        first = (str(exc.msg or exc).strip().splitlines() or ["unknown error"])[0]
        raise ColorizeError(f"could not open {url} ({first})", "check --base-url and the network connection") from None
    try:
        status = int(driver.execute_script(NAV_STATUS_JS) or 0)
    except Exception:  # older browsers do not report the status; the checks below still apply
        status = 0
    html = driver.page_source
    check_wall(html, url)  # first: walls answer 403 too, and the line should name them
    if status in (401, 403):
        raise ColorizeError(f"{host_of(url)} answered HTTP {status} for {url}",
                            f"the site refuses automated access from here; {BOT_WALL_FIX}")
    if status >= 400:
        raise ColorizeError(f"{url} answered HTTP {status}", "check --base-url and the query")
    return html


def _click_first(driver, xpath: str, in_view: bool = False) -> bool:
    """Click the first displayed element matching `xpath` (JS click if something covers it)."""
    from selenium.common.exceptions import WebDriverException

    try:
        for el in driver.find_elements("xpath", xpath):
            if el.is_displayed() and (not in_view or driver.execute_script(IN_VIEW_JS, el)):
                try:
                    el.click()
                except WebDriverException:
                    driver.execute_script("arguments[0].click();", el)
                return True
    except WebDriverException:
        log.debug("click on %s failed", xpath, exc_info=True)
    return False


@dataclass
class _Queue:
    """Cards in DOM order, consumed from `next_index`; ids seen so far (for duplicates)."""

    next_index: int = 0
    seen: set[str] = field(default_factory=set)
    placeholder_steps: int = 0


def new_cards(driver, generation: str, start: int, base_url: str) -> tuple[list[ParsedCard], str]:
    """(parsed cards from DOM index `start` on, the bot wall's kind or ""): the step's new part only.

    The whole page is looked at (for a bot wall, not parsed) only when it is not the document the
    previous step saw (a navigation: a wall is served that way) or when its cards vanished.
    """
    selector, structural = card_selector(generation)
    got = driver.execute_script(NEW_CARDS_JS, selector, start, structural) or {}
    wall = ""
    if not got.get("same") or int(got.get("total") or 0) < start:
        wall = bot_wall(driver.page_source)
    return parse_fragments(list(got.get("cards") or []), base_url), wall


def harvest(driver, base_url: str, query: str, limit: int, on_photo: Callable[[Photo], None],
            scroll_pause: float = 0.5, debug_html: Path | None = None, first_wait: float = 3.0,
            patience: int = 6, idle_seconds: float = 2.5, placeholder_patience: int = 4,
            tick: Callable[[], None] | None = None) -> HarvestStats:
    """Scroll the search results for `query`, calling `on_photo` for each new free photo, up to `limit`."""
    started = time.monotonic()
    stats = HarvestStats()
    url = search_url(base_url, query)
    html = open_search(driver, url)
    generation, cards = parse_page(html, base_url)
    deadline = time.monotonic() + first_wait
    while not cards and time.monotonic() < deadline:  # give client-side rendering a moment
        time.sleep(0.25)
        html = driver.page_source
        check_wall(html, url)
        generation, cards = parse_page(html, base_url)
    if not cards:
        saved = ""
        if debug_html is not None:
            atomic_write_text(debug_html, html)
            saved = f" (page saved to {debug_html})"
        raise ColorizeError(f"no photo cards found on {url} — the page layout may have changed{saved}",
                            "please report it with the saved page; meanwhile try an older colorize or --base-url")
    stats.generation = generation
    log.info("%s: %d cards on the first page (%s markup)", query, len(cards), generation)

    queue = _Queue()
    idle_steps, last_progress = 0, time.monotonic()
    while True:
        before = (queue.next_index, len(cards))
        _consume(cards, queue, stats, limit, on_photo, placeholder_patience)
        if stats.kept >= limit:
            break
        if tick is not None:
            tick()
        _click_first(driver, CONSENT_XPATH)
        _click_first(driver, LOAD_MORE_XPATH, in_view=True)
        if queue.placeholder_steps >= 2:
            # A lazy card that was appended above the viewport never got its URL: go back to it.
            selector, structural = card_selector(generation)
            driver.execute_script(REVEAL_JS, selector, queue.next_index, structural)
        else:
            driver.execute_script("window.scrollBy(0, window.innerHeight);")
        time.sleep(scroll_pause)
        stats.steps += 1
        fresh, wall = new_cards(driver, generation, queue.next_index, base_url)
        if wall:
            raise wall_error(wall, url, switched=True)
        cards = cards[: queue.next_index] + fresh  # cards before the queue position are consumed already
        if (queue.next_index, len(cards)) != before:
            idle_steps, last_progress = 0, time.monotonic()
        else:
            idle_steps += 1
            if idle_steps >= patience and time.monotonic() - last_progress >= idle_seconds:
                log.info("%s: no new cards after %d steps; the results end here", query, idle_steps)
                _consume(cards, queue, stats, limit, on_photo, final=True)
                break
    stats.seconds = time.monotonic() - started
    return stats


def _consume(cards: list[ParsedCard], queue: _Queue, stats: HarvestStats, limit: int,
             on_photo: Callable[[Photo], None], placeholder_patience: int = 4, final: bool = False) -> None:
    """Take cards from the queue position on; stop at the limit or at a placeholder still loading."""
    while queue.next_index < len(cards) and stats.kept < limit:
        card = cards[queue.next_index]
        if card.skip == "placeholder" and not final and queue.placeholder_steps < placeholder_patience:
            queue.placeholder_steps += 1  # wait: it gets its URL once scrolled into view
            return
        queue.placeholder_steps = 0
        queue.next_index += 1
        stats.cards_seen += 1
        if card.photo is None:
            stats.skipped[card.skip or "unknown"] += 1
            continue
        if card.photo.id in queue.seen:
            stats.skipped["duplicate"] += 1
            continue
        queue.seen.add(card.photo.id)
        stats.kept += 1
        on_photo(replace(card.photo, rank=queue.next_index))
