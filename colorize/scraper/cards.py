"""Search-page HTML -> `Photo` records: layered card selectors, skip rules. No browser needed.

The real DOM drifts, so cards are found by the newest known markup first, then older generations,
then a structural fallback (a `figure` holding an `img` whose URL is a photo on the image CDN). Every
card either becomes a `Photo` or is skipped with a reason that the run report counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from bs4 import BeautifulSoup, Tag

from colorize.scraper.urls import (
    ID_RE,
    USERNAME_RE,
    bare_url,
    is_http,
    is_photo_url,
    is_premium,
    is_vector,
)

# (generation, CSS selector of a card), newest first.
CARD_LAYERS = (
    ("2025", 'figure[data-testid="asset-grid-masonry-figure"]'),
    ("2024", 'figure[data-testid="photo-grid-masonry-figure"]'),
    ("2021", 'figure[data-test="photo-grid-masonry-figure"], figure[itemprop="image"]'),
)
IMG_SELECTORS = (
    'img[data-testid="asset-grid-masonry-img"]',
    'img[data-testid="photo-grid-masonry-img"]',
    'img[data-test="photo-grid-masonry-img"]',
    'img[itemprop="thumbnailUrl"]',
)
SPONSOR_WORDS = re.compile(r"\b(Promoted|Sponsored)\b")
SPONSOR_TESTID = re.compile(r"(?<!non-)sponsor")
ANUBIS_MARKERS = ("anubis_version", "anubis_challenge", "/.within.website/", "Making sure you&#39;re not a bot",
                  "Making sure you're not a bot")
CLOUDFLARE_MARKERS = ("challenge-platform", "cf-chl", "_cf_chl_opt")
CLOUDFLARE_TITLE = re.compile(r"<title>\s*Just a moment\.\.\.\s*</title>", re.I)
ACCESS_DENIED = re.compile(r"access denied", re.I)
# What each wall is, in the words of the error line.
WALLS = {
    "anubis-deny": "an Anubis 'Access Denied' page (Anubis's default policy denies HeadlessChrome)",
    "anubis-challenge": "an Anubis proof-of-work challenge ('Making sure you're not a bot!')",
    "cloudflare-challenge": "a Cloudflare challenge ('Just a moment...')",
}


@dataclass(frozen=True)
class Photographer:
    username: str = ""
    name: str = ""
    url: str = ""


@dataclass(frozen=True)
class Photo:
    """One free photo found on a search page (URLs bare: no ixid, no size parameters)."""

    id: str
    slug: str
    page_url: str
    image_url: str
    alt: str = ""
    width: int | None = None
    height: int | None = None
    photographer: Photographer = field(default_factory=Photographer)
    rank: int = 0


@dataclass(frozen=True)
class ParsedCard:
    """A card and what became of it: a photo, or the reason it was skipped."""

    photo: Photo | None
    skip: str | None = None  # premium, sponsored, illustration, avatar, placeholder, bad_id, no_link...
    id: str | None = None  # when known (for duplicate counting)


def bot_wall(html: str) -> str:
    """Which bot wall the page is (a key of `WALLS`), or "" for a real page: stop at one, never try to pass it.

    Anubis serves both its deny page and its challenge from `/.within.website/`; the deny page says
    "Access Denied" and carries no challenge. Cloudflare's challenge is "Just a moment..." with its
    `challenge-platform` script and `cf-chl` markers.
    """
    if any(marker in html for marker in ANUBIS_MARKERS):
        if ACCESS_DENIED.search(html) and "anubis_challenge" not in html:
            return "anubis-deny"
        return "anubis-challenge"
    if CLOUDFLARE_TITLE.search(html) or any(marker in html for marker in CLOUDFLARE_MARKERS):
        return "cloudflare-challenge"
    return ""


def find_cards(soup: BeautifulSoup, base_url: str) -> tuple[str, list[Tag]]:
    """The card elements of the page and the markup generation that found them ("" if none)."""
    for generation, selector in CARD_LAYERS:
        found = soup.select(selector)
        if found:
            return generation, found
    fallback = [fig for fig in soup.find_all("figure")
                if any(_img_urls(img, base_url) for img in fig.find_all("img"))]
    # Figures holding only an avatar are cards too (to be skipped and counted), if real cards exist.
    if fallback:
        fallback = [fig for fig in soup.find_all("figure") if fig.find("img")]
    return ("structural" if fallback else ""), fallback


def parse_page(html: str, base_url: str) -> tuple[str, list[ParsedCard]]:
    """Parse a whole search page: (generation, cards in DOM order)."""
    soup = BeautifulSoup(html, "html.parser")
    generation, elements = find_cards(soup, base_url)
    return generation, [parse_card(el, base_url) for el in elements]


def card_selector(generation: str) -> tuple[str, bool]:
    """(CSS selector, keep only elements holding an img) that finds a generation's cards in the live DOM.

    The structural fallback counts every `figure` with an `img`, as `find_cards` does once real cards exist.
    """
    layers = dict(CARD_LAYERS)
    return layers.get(generation, "figure"), generation not in layers


def parse_fragments(fragments: list[str], base_url: str) -> list[ParsedCard]:
    """Parse cards given as their own HTML (`outerHTML` of each card element), in order.

    A card's classification reads only its own subtree, so this equals `parse_page` on those cards.
    """
    cards = []
    for html in fragments:
        element = BeautifulSoup(html, "html.parser").find()
        cards.append(parse_card(element, base_url) if isinstance(element, Tag) else ParsedCard(None, "no_link"))
    return cards


def _srcset_urls(srcset: str) -> list[str]:
    return [part.strip().split()[0] for part in srcset.split(",") if part.strip()]


def _img_urls(img: Tag, base_url: str, photos_only: bool = True) -> list[str]:
    """URLs an img points at (srcset first), ignoring `data:` placeholders."""
    urls = _srcset_urls(str(img.get("srcset") or "")) + [str(img.get("src") or "")]
    urls = [u for u in urls if u and not u.startswith("data:")]
    return [u for u in urls if is_photo_url(u, base_url)] if photos_only else urls


def _photo_img(card: Tag) -> Tag | None:
    for selector in IMG_SELECTORS:
        img = card.select_one(selector)
        if img is not None:
            return img
    for img in card.find_all("img"):  # structural: any img that is not an avatar
        srcs = " ".join(str(img.get(a) or "") for a in ("src", "srcset"))
        if "/profile-" not in srcs:
            return img
    return None


def _photo_link(card: Tag) -> tuple[str, str] | None:
    """(kind, path) of the card's photo link: kind is "photos" or "illustrations"."""
    links = card.select('a[itemprop="contentUrl"][href]') + card.find_all("a", href=True)
    for a in links:
        path = urlsplit(str(a["href"])).path
        for kind in ("photos", "illustrations"):
            if path.startswith(f"/{kind}/"):
                return kind, path
    return None


def _photographer(card: Tag, base_url: str) -> Photographer:
    for a in card.find_all("a", href=True):
        path = urlsplit(str(a["href"])).path
        if path.startswith("/@"):
            username = path[2:].split("/")[0]
            if not USERNAME_RE.fullmatch(username):
                continue
            name = a.get_text(" ", strip=True)
            if not name:  # the avatar link: "Go to Jane Doe's profile"
                img = a.find("img")
                alt = str(img.get("alt") or "") if img else ""
                m = re.match(r"Go to (.+?)['’]s profile", alt)
                name = m.group(1) if m else ""
                sibling = a.find_next_sibling("a", href=str(a["href"]))
                name = sibling.get_text(" ", strip=True) if sibling is not None and sibling.get_text(strip=True) else name
            return Photographer(username, name[:200], f"{base_url.rstrip('/')}/@{username}")
    return Photographer()


def _int_attr(img: Tag, name: str) -> int | None:
    value = str(img.get(name) or "")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else None


def parse_card(card: Tag, base_url: str) -> ParsedCard:
    """Classify one card; the checks go from "not for us" (premium...) to "not usable yet" (placeholder)."""
    text = card.get_text(" ", strip=True)
    hrefs = [urlsplit(str(a["href"])).path for a in card.find_all("a", href=True)]
    img = _photo_img(card)
    all_urls = _img_urls(img, base_url, photos_only=False) if img is not None else []
    link = _photo_link(card)
    segment = link[1].split("/")[2] if link and len(link[1].split("/")) > 2 else ""
    pid = segment[-11:] if ID_RE.fullmatch(segment[-11:]) else None

    if any(is_vector(u) for u in all_urls) or (link and link[0] == "illustrations"):
        return ParsedCard(None, "illustration", pid)
    if any(is_premium(u) for u in all_urls) or "/plus" in hrefs or "Unsplash+" in text:
        return ParsedCard(None, "premium", pid)
    testids = " ".join(str(t.get("data-testid")) for t in card.select("[data-testid]"))
    if "/advertise" in hrefs or SPONSOR_WORDS.search(text) or SPONSOR_TESTID.search(testids):
        return ParsedCard(None, "sponsored", pid)
    if link is None:
        if img is None and card.find("img") is not None:
            return ParsedCard(None, "avatar")
        return ParsedCard(None, "no_link")
    if pid is None:
        return ParsedCard(None, "bad_id")
    if img is None:
        return ParsedCard(None, "no_image", pid)
    urls = [u for u in all_urls if is_http(u)]
    if not urls:
        src = str(img.get("src") or "")
        return ParsedCard(None, "placeholder" if src.startswith("data:") or not src else "foreign_image", pid)
    photo_urls = [u for u in urls if is_photo_url(u, base_url)]
    if not photo_urls:
        return ParsedCard(None, "foreign_image", pid)
    slug = segment[:-12] if len(segment) > 12 and segment[-12] == "-" else ""
    page_url = f"{base_url.rstrip('/')}/photos/{quote(segment, safe='-_.~')}"
    photo = Photo(
        id=pid, slug=slug[:200], page_url=page_url, image_url=bare_url(photo_urls[0]),
        alt=str(img.get("alt") or "")[:500], width=_int_attr(img, "width"), height=_int_attr(img, "height"),
        photographer=_photographer(card, base_url),
    )
    return ParsedCard(photo, None, pid)
