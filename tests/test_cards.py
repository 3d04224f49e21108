"""Card parsing and URL rules, without a browser: layered selectors, skip rules, hostile input."""

from __future__ import annotations

from collections import Counter

import pytest

from colorize.errors import ColorizeError, UsageError
from colorize.scraper.cards import bot_wall, parse_page
from colorize.scraper.localsite.pages import WALL_PAGES, grid_html, search_page
from colorize.scraper.localsite.site import LocalSite
from colorize.scraper.urls import (
    bare_url,
    check_category,
    check_id,
    download_url,
    is_photo_url,
    is_premium,
    photo_file,
    search_url,
)

BASE = "http://127.0.0.1:8000"


def _page(markup: str, eager: int = 100) -> tuple[LocalSite, str]:
    """A whole first page plus page 2 of the local site's catalog, every card with real URLs."""
    site = LocalSite(markup=markup, n_photos=40)
    cards = site.cards("beach")[:40]
    html = search_page("beach", grid_html(cards, BASE, markup, 0, eager=eager), markup, more=True, consent=False)
    return site, html


@pytest.mark.parametrize("markup,generation", [("2025", "2025"), ("2024", "2024"), ("2021", "2021"),
                                               ("bare", "structural")])
def test_each_markup_generation_gives_the_same_photos(markup, generation):
    site, html = _page(markup)
    found, cards = parse_page(html, BASE)
    assert found == generation
    assert len(cards) == 40
    kept = [c.photo.id for c in cards if c.photo]
    free = [c.photo.id for c in site.cards("beach")[:40] if c.kind in ("free", "duplicate")]
    assert kept == free  # the duplicate appearance is a photo too; harvest counts it as duplicate
    skips = Counter(c.skip for c in cards if c.photo is None)
    assert skips == {"premium": 2, "sponsored": 2, "illustration": 1, "avatar": 1, "bad_id": 1}


def test_photo_record_fields_are_bare_and_complete():
    site, html = _page("2025")
    _, cards = parse_page(html, BASE)
    photo = next(c.photo for c in cards if c.photo)
    truth = site.cards("beach")[0].photo
    assert photo.id == truth.id and photo.slug == truth.slug
    assert photo.image_url == BASE + truth.image_path  # no ixid, no size parameters
    assert "?" not in photo.image_url
    assert photo.page_url == f"{BASE}/photos/{truth.slug}-{truth.id}"
    assert photo.alt == truth.alt
    assert (photo.width, photo.height) == (truth.width, truth.height)
    assert photo.photographer.username == truth.username
    assert photo.photographer.name == truth.name
    assert photo.photographer.url == f"{BASE}/@{truth.username}"


def test_lazy_cards_are_placeholders_until_their_urls_arrive():
    _, html = _page("2025", eager=6)
    _, cards = parse_page(html, BASE)
    assert [c.skip for c in cards[:6]].count("placeholder") == 0
    assert sum(c.skip == "placeholder" for c in cards[6:]) > 10
    assert all(c.id for c in cards if c.skip == "placeholder")  # the id is known from the link


def test_ids_keep_dashes_and_underscores_and_hostile_ids_are_rejected():
    html = (f'<figure data-testid="asset-grid-masonry-figure"><a itemprop="contentUrl" href="/photos/a-b-c-hw_YHLXoP-Q">'
            f'<img data-testid="asset-grid-masonry-img" src="{BASE}/photo-1500000000000-abc?w=1"></a></figure>'
            f'<figure data-testid="asset-grid-masonry-figure"><a itemprop="contentUrl" href="/photos/x-..%2F..%2Fetc">'
            f'<img data-testid="asset-grid-masonry-img" src="{BASE}/photo-1500000000001-abc?w=1"></a></figure>'
            f'<figure data-testid="asset-grid-masonry-figure"><a itemprop="contentUrl" href="/photos/..%2F..%2Fetc-Ab_dEfGh-jK">'
            f'<img data-testid="asset-grid-masonry-img" src="{BASE}/photo-1500000000002-abc?w=1"></a></figure>')
    _, cards = parse_page(html, BASE)
    assert cards[0].photo.id == "hw_YHLXoP-Q" and cards[0].photo.slug == "a-b-c"
    assert cards[1].photo is None and cards[1].skip == "bad_id"
    hostile = cards[2].photo  # a valid id with a hostile slug: the slug stays text, never a path
    assert hostile.id == "Ab_dEfGh-jK" and photo_file("beach", hostile.id) == "beach/Ab_dEfGh-jK.jpg"
    assert "/" not in hostile.page_url.split("/photos/")[1]


def test_images_on_foreign_hosts_or_premium_paths_are_not_photos():
    other = ('<figure data-testid="asset-grid-masonry-figure"><a itemprop="contentUrl" href="/photos/x-AAAAAAAAAAA">'
             '<img data-testid="asset-grid-masonry-img" src="https://evil.example/photo-1500000000000-abc"></a></figure>'
             '<figure data-testid="asset-grid-masonry-figure"><a itemprop="contentUrl" href="/photos/x-BBBBBBBBBBB">'
             f'<img data-testid="asset-grid-masonry-img" srcset="{BASE}/premium_photo-1500000000000-abc?w=1 1w"></a></figure>')
    _, cards = parse_page(other, BASE)
    assert [c.skip for c in cards] == ["foreign_image", "premium"]
    assert is_photo_url("https://images.unsplash.com/photo-1500000000000-abcdef?ixid=x", BASE)
    assert not is_photo_url("https://images.unsplash.com/profile-1500000000000-abcdef", BASE)
    assert not is_photo_url("ftp://images.unsplash.com/photo-1500000000000-abcdef", BASE)
    assert is_premium("https://plus.unsplash.com/photo-1500000000000-abc")
    assert is_premium(f"{BASE}/premium_photo-1500000000000-abc")
    assert not is_premium("https://images.unsplash.com/photo-1500000000000-abc")


def test_download_url_is_explicit_and_reproducible():
    url = download_url("https://images.unsplash.com/photo-1-abc?ixid=M3w&ixlib=rb-4.1.0&auto=format&w=400", 1080)
    assert url == "https://images.unsplash.com/photo-1-abc?fm=jpg&q=85&w=1080&fit=max&cs=srgb"
    assert bare_url("http://h/p?x=1#f") == "http://h/p"
    assert search_url("https://unsplash.com/", "sandy  beach") == "https://unsplash.com/s/photos/sandy-beach?license=free"


def test_each_bot_wall_is_recognised_and_a_real_page_is_none():
    assert {name: bot_wall(page) for name, (_, page) in WALL_PAGES.items()} == {
        name: name for name in ("anubis-challenge", "anubis-deny", "cloudflare-challenge")}
    assert bot_wall(_page("2025")[1]) == ""
    # A photo captioned "access denied" on a real page is still a real page.
    assert bot_wall(_page("2025")[1].replace("</h1>", " access denied</h1>")) == ""


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "", ".hidden", "a\\b", "x" * 80, "new york"])
def test_hostile_category_names_are_usage_errors(name):
    with pytest.raises(UsageError):
        check_category(name)


@pytest.mark.parametrize("pid", ["../../etc/pa", "short", "AAAAAAAAAA%", None, "AAAAAAAAAAAA"])
def test_hostile_ids_are_rejected(pid):
    with pytest.raises(ColorizeError):
        check_id(pid)
