"""After each scroll step only the new part of the search page is parsed, never the whole page again."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from colorize.scraper.cards import card_selector, parse_fragments, parse_page
from colorize.scraper.localsite.pages import grid_html, search_page
from colorize.scraper.localsite.site import LocalSite

BASE = "http://127.0.0.1:8000"


@pytest.mark.parametrize("markup", ["2025", "2024", "2021", "bare"])
def test_cards_parsed_one_by_one_equal_the_whole_page_parse(markup):
    site = LocalSite(markup=markup, n_photos=40)
    html = search_page("beach", grid_html(site.cards("beach")[:40], BASE, markup, 0, eager=8), markup, more=True,
                       consent=False)
    generation, whole = parse_page(html, BASE)
    selector, structural = card_selector(generation)
    elements = [e for e in BeautifulSoup(html, "html.parser").select(selector) if not structural or e.find("img")]
    assert parse_fragments([str(e) for e in elements], BASE) == whole
    assert {c.skip for c in whole} >= {None, "placeholder"}  # lazy cards included


@pytest.mark.browser
def test_each_scroll_step_hands_over_and_parses_only_the_new_cards(monkeypatch):
    import colorize.scraper.harvest as harvest
    from colorize.scraper.browser import chromium

    whole, steps = [], []
    real_page, real_fragments = harvest.parse_page, harvest.parse_fragments
    monkeypatch.setattr(harvest, "parse_page", lambda html, base: whole.append(len(html)) or real_page(html, base))
    monkeypatch.setattr(harvest, "parse_fragments",
                        lambda parts, base: steps.append(len(parts)) or real_fragments(parts, base))
    kept = []
    with LocalSite(n_photos=70) as site, chromium(allow_hosts=("127.0.0.1",), images=False) as driver:
        stats = harvest.harvest(driver, site.base_url, "beach", 60, kept.append, scroll_pause=0.05,
                                idle_seconds=0.5, first_wait=3.0)
        expected, total = site.expected_ids("beach", 60), len(site.cards("beach"))
    assert [p.id for p in kept] == expected
    assert len(whole) == 1  # the first page only
    assert len(steps) == stats.steps >= 3
    assert max(steps) < total // 2  # a step hands over the cards from the queue position on, not the page


@pytest.mark.browser
def test_a_bot_wall_served_mid_scroll_is_still_noticed():
    from colorize.errors import ColorizeError
    from colorize.scraper.browser import chromium
    from colorize.scraper.harvest import harvest

    with LocalSite(n_photos=70) as site, chromium(allow_hosts=("127.0.0.1",), images=False) as driver:
        ticks = []

        def wall_after_two_steps() -> None:
            ticks.append(1)
            if len(ticks) == 2:  # the site starts answering with Anubis and the page is reloaded
                site.faults.wall = "anubis-challenge"
                driver.refresh()

        with pytest.raises(ColorizeError, match="switched to .*Anubis.*--dataset"):
            harvest(driver, site.base_url, "beach", 60, lambda p: None, scroll_pause=0.05, idle_seconds=0.5,
                    tick=wall_after_two_steps)
