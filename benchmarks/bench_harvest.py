"""Benchmark one scroll step of the harvester on a very long search page, in one process, real Chromium.

A search page that grew long (5,000 cards by default; `--cards 20000` is the size the issue measured; the local Unsplash-like site, all cards on one page) is loaded in
headless Chromium. The old step re-read `page_source` and parsed the whole page with BeautifulSoup; the
new step (`harvest.new_cards`) asks the browser for the cards from the queue position on and parses only
those (steady state: the first step on a document also reads it whole once, to look for a bot wall). Both are timed on the same page at the same position (the last page_size cards are new).

    .venv/bin/python benchmarks/bench_harvest.py [--cards 5000] [--new 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from colorize.scraper.browser import chromium
from colorize.scraper.cards import parse_page
from colorize.scraper.harvest import new_cards
from colorize.scraper.localsite.site import LocalSite
from colorize.scraper.urls import search_url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=5000, help="photos on the page (the issue measured 20000; that takes minutes)")
    ap.add_argument("--new", type=int, default=20, help="cards a scroll step adds (the site's page size)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the new step (median shown)")
    args = ap.parse_args()

    with LocalSite(n_photos=args.cards, page_size=args.cards + 100) as site, \
            chromium(allow_hosts=("127.0.0.1",), images=False) as driver:
        t0 = time.perf_counter()
        driver.set_page_load_timeout(600)
        driver.get(search_url(site.base_url, "bench"))
        load_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        html = driver.page_source
        generation, whole = parse_page(html, site.base_url)  # what every step cost before
        whole_s = time.perf_counter() - t0
        start = len(whole) - args.new

        new_cards(driver, generation, start, site.base_url)  # the first step also reads the page for a wall
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fresh, wall = new_cards(driver, generation, start, site.base_url)
            times.append(time.perf_counter() - t0)
        step_s = statistics.median(times)
        assert not wall and fresh == whole[start:], "the new step must parse the same cards as the whole page"

    print(f"page: {len(whole)} cards, {len(html) / 1e6:.1f} MB of HTML, loaded in {load_s:.1f} s ({generation} markup)")
    print(f"harvest step: {whole_s / step_s:.0f}x faster than re-parsing the whole {len(whole):,}-card page "
          f"(whole page {whole_s:.2f} s, new part {step_s * 1000:.0f} ms for {args.new} new cards)")


if __name__ == "__main__":
    main()
