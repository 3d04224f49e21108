"""HTML and JPEGs of the local Unsplash-like site: card markup of each generation, the page, the bot wall.

Kept apart from the server (`site.py`) so the markup that the scraper must understand is easy to
compare with the real site's pages. Markup generations:
- "2025": `figure[data-testid=asset-grid-masonry-figure]`, `img[data-testid=asset-grid-masonry-img]`;
- "2024": the same with `photo-grid-masonry-*`;
- "2021": `data-test=...` and `itemprop` attributes;
- "bare": plain `figure > a > img` (only the structural fallback finds it);
- "unknown": a layout without any figure (the scraper must report zero cards).
"""

from __future__ import annotations

import hashlib
import html
import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

MARKUPS = ("2025", "2024", "2021", "bare", "unknown")
PLACEHOLDER_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
SRCSET_WIDTHS = (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000)


@dataclass(frozen=True)
class SitePhoto:
    """One photo of the site's catalog (what the real site knows about a photo)."""

    id: str
    slug: str
    kind: str  # "free", "premium", "sponsored" or "vector"
    image_path: str  # "/photo-1600000000000-0123456789ab" (premium: "/premium_photo-...")
    width: int
    height: int
    username: str
    name: str
    alt: str
    color: str
    source: Path | None = None  # gallery file, or None for a rendered picture


@dataclass(frozen=True)
class Card:
    """One appearance of a photo in the grid (the same photo may appear twice with another ixid)."""

    kind: str  # a SitePhoto kind, or "duplicate", "avatar", "bad_id"
    photo: SitePhoto
    ixid: str


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img_attrs(base: str, card: Card, lazy: bool) -> str:
    url = f"{base}{card.photo.image_path}"
    common = f"ixlib=rb-4.1.0&amp;ixid={e(card.ixid)}&amp;auto=format&amp;fit=crop&amp;q=60"
    srcset = ", ".join(f"{url}?{common}&amp;w={w} {w}w" for w in SRCSET_WIDTHS)
    src = f"{url}?{common}&amp;w=1000"
    if lazy:  # a data: placeholder until the picture scrolls into view; JavaScript swaps the URLs in
        return f'src="{PLACEHOLDER_GIF}" data-src="{src}" data-srcset="{srcset}"'
    return f'src="{src}" srcset="{srcset}"'


def _avatar(base: str, p: SitePhoto) -> str:
    digest = hashlib.sha1(p.username.encode()).hexdigest()[:12]
    return (f'<a href="/@{e(p.username)}" class="uAv9x"><img src="{base}/profile-1600000000000-{digest}'
            f'?w=32&amp;h=32&amp;fit=crop&amp;crop=faces" alt="Go to {e(p.name)}&#x27;s profile" '
            f'class="avatar-Q2"></a><a href="/@{e(p.username)}" class="nm-Z3">{e(p.name)}</a>')


def card_html(card: Card, base: str, markup: str, lazy: bool) -> str:
    """The HTML of one grid card in the given markup generation."""
    p = card.photo
    if card.kind == "avatar":  # a "featured photographer" tile: a figure whose only image is an avatar
        tid = {"2025": ' data-testid="asset-grid-masonry-figure"', "2024": ' data-testid="photo-grid-masonry-figure"',
               "2021": ' data-test="photo-grid-masonry-figure"'}.get(markup, "")
        return f'<figure{tid} class="fg-1"><div class="feat">{_avatar(base, p)}<span>Featured</span></div></figure>'
    segment = "x-..%2F..%2Fetc" if card.kind == "bad_id" else f"{p.slug}-{p.id}"
    prefix = "/illustrations/" if p.kind == "vector" else "/photos/"
    imgs = _img_attrs(base, card, lazy)
    box = f'style="background-color:{p.color};aspect-ratio:{p.width}/{p.height}"'
    badge = ""
    if p.kind == "premium":
        badge = '<a href="/plus" class="pl-b"><span>Unsplash+</span></a>'
    elif p.kind == "sponsored":
        badge = '<div class="sp-x"><a href="/advertise">Promoted</a><span>Sponsored by Brand</span></div>'
    dl = (f'<a data-testid="non-sponsored-photo-download-button" href="/photos/{e(p.id)}/download?ixid='
          f'{e(card.ixid)}&amp;force=true" rel="nofollow">Download</a>' if p.kind == "free" else "")
    if markup == "2025":
        return (f'<figure data-testid="asset-grid-masonry-figure" itemscope itemtype="https://schema.org/ImageObject" '
                f'class="fg-1"><div class="hd-2">{_avatar(base, p)}{badge}</div>'
                f'<a itemprop="contentUrl" href="{prefix}{e(segment)}" title="{e(p.alt)}" class="lk-3">'
                f'<div class="ph-4" {box}><img data-testid="asset-grid-masonry-img" itemprop="thumbnailUrl" '
                f'alt="{e(p.alt)}" loading="lazy" width="{p.width}" height="{p.height}" {imgs}></div></a>{dl}</figure>')
    if markup == "2024":
        return (f'<figure data-testid="photo-grid-masonry-figure" itemprop="image" class="fg-1">'
                f'<div class="hd-2">{_avatar(base, p)}{badge}</div>'
                f'<a itemprop="contentUrl" href="{prefix}{e(segment)}" title="{e(p.alt)}">'
                f'<div class="ph-4" {box}><img data-testid="photo-grid-masonry-img" alt="{e(p.alt)}" '
                f'loading="lazy" {imgs}></div></a>{dl}</figure>')
    if markup == "2021":
        return (f'<figure itemprop="image" data-test="photo-grid-masonry-figure" class="fg-1">'
                f'<div class="hd-2">{_avatar(base, p)}{badge}</div>'
                f'<a data-test="photo-grid-masonry-figure-link" itemprop="contentUrl" href="{prefix}{e(segment)}">'
                f'<div class="ph-4" {box}><img data-test="photo-grid-masonry-img" itemprop="thumbnailUrl" '
                f'alt="{e(p.alt)}" {imgs}></div></a>{dl}</figure>')
    if markup == "bare":
        return (f'<figure class="c9"><div class="hd-2">{_avatar(base, p)}{badge}</div><a href="{prefix}{e(segment)}">'
                f'<div class="ph-4" {box}><img alt="{e(p.alt)}" {imgs}></div></a></figure>')
    # "unknown": a redesign with no figure at all
    return (f'<div class="tile-7" role="listitem"><a href="{prefix}{e(segment)}"><picture {box}>'
            f'<img alt="{e(p.alt)}" {imgs}></picture></a></div>')


def grid_html(cards: list[Card], base: str, markup: str, first_index: int, eager: int = 6) -> str:
    """Cards `first_index...`; only the first `eager` of the whole grid carry real URLs up front."""
    return "\n".join(card_html(c, base, markup, lazy=first_index + i >= eager) for i, c in enumerate(cards))


PAGE_SCRIPT = """
const grid = document.getElementById('grid');
const query = grid.dataset.query, markup = grid.dataset.markup;
let page = 1, loading = false, armed = false, done = grid.dataset.done === '1';
function consentOpen() { const d = document.getElementById('consent'); return !!d && d.style.display !== 'none'; }
const io = new IntersectionObserver((entries) => {
  for (const en of entries) {
    if (!en.isIntersecting) continue;
    const img = en.target;
    if (img.dataset.srcset) { img.srcset = img.dataset.srcset; delete img.dataset.srcset; }
    if (img.dataset.src) { img.src = img.dataset.src; delete img.dataset.src; }
    io.unobserve(img);
  }
});
function observe() { document.querySelectorAll('img[data-src]').forEach((img) => io.observe(img)); }
async function more() {
  if (loading || done || consentOpen()) return;
  loading = true;
  try {
    const r = await fetch(`/_grid?query=${encodeURIComponent(query)}&page=${page + 1}&markup=${markup}`);
    const body = await r.text();
    if (r.ok) {
      page += 1;
      if (body.trim()) { grid.insertAdjacentHTML('beforeend', body); observe(); }
      if (r.headers.get('X-Last-Page') === '1') done = true;
    }
  } finally { loading = false; }
}
const btn = document.getElementById('load-more');
if (btn) btn.addEventListener('click', () => { if (consentOpen()) return; armed = true; btn.remove(); more(); });
window.addEventListener('scroll', () => {
  if (armed && window.innerHeight + window.scrollY >= document.body.scrollHeight - window.innerHeight) more();
});
const ok = document.getElementById('consent-accept');
if (ok) ok.addEventListener('click', () => { document.getElementById('consent').style.display = 'none'; });
observe();
"""

CONSENT = ('<div id="consent" role="dialog" aria-modal="true" style="position:fixed;inset:0;'
           'background:rgba(0,0,0,.5);z-index:10"><div class="cb-8"><p>We use cookies.</p>'
           '<button class="b-x1" type="button">Manage</button>'
           '<button id="consent-accept" class="b-x2" type="button">Accept all</button></div></div>')


def search_page(query: str, grid: str, markup: str, more: bool, consent: bool) -> str:
    """The whole search page: header, the first cards, Load more, optional consent dialog, the script."""
    load_more = '<button id="load-more" type="button" class="lm-5">Load more</button>' if more else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(query.title())} Pictures | '
            f'Download Free Images on Unsplash</title><style>body{{margin:0;font-family:sans-serif}}'
            f'#grid{{display:grid;grid-template-columns:repeat(3,1fr);gap:24px;width:1300px;margin:0 auto}}'
            f'figure,.tile-7{{margin:0;height:420px;overflow:hidden}}.ph-4,picture{{display:block;height:360px}}'
            f'img{{width:100%;height:360px;object-fit:cover}}.avatar-Q2{{width:32px;height:32px}}'
            f'.lm-5{{display:block;margin:40px auto;padding:12px 40px}}</style></head><body>'
            f'<header><a href="/">Unsplash</a><form action="/s/photos"><input name="q" value="{e(query)}"></form>'
            f'</header><h1>{e(query.title())}</h1>'
            f'<div id="grid" data-query="{e(query)}" data-markup="{e(markup)}" data-done="{0 if more else 1}">'
            f'{grid}</div>{load_more}{CONSENT if consent else ""}<footer style="height:200px">Unsplash</footer>'
            f'<script>{PAGE_SCRIPT}</script></body></html>')


# The bot walls unsplash.com (Anubis, since 2026-03) and other sites (Cloudflare) answer instead of a page.
ANUBIS_CHALLENGE = """<!doctype html><html lang="en"><head><title>Making sure you&#39;re not a bot!</title>
<link rel="stylesheet" href="/.within.website/x/xess/xess.css">
<script id="anubis_version" type="application/json">"v1.21.3"</script>
<script id="anubis_challenge" type="application/json">{"rules":{"algorithm":"fast","difficulty":4}}</script>
</head><body id="top"><main><h1 id="title" class="centered-div">Making sure you&#39;re not a bot!</h1>
<p id="status">Loading...</p><p>Protected by <a href="https://github.com/TecharoHQ/anubis">Anubis</a></p>
<script async type="module" src="/.within.website/x/cmd/anubis/static/js/main.mjs"></script></main></body></html>"""

# Anubis's DENY action (its default policy's `headless-chrome` rule matches a HeadlessChrome User-Agent).
ANUBIS_DENY = """<!doctype html><html lang="en"><head><title>Oh noes!</title>
<link rel="stylesheet" href="/.within.website/x/xess/xess.css">
<meta name="viewport" content="width=device-width, initial-scale=1.0"></head>
<body id="top"><main><h1 id="title" class="centered-div">Oh noes!</h1>
<div class="centered-div"><img id="image" alt="Sad Anubis" style="width:100%;max-width:256px;"
src="/.within.website/x/cmd/anubis/static/img/reject.webp"><p>Access Denied: error code 7f3a9c</p>
<p>Go <a href="/">home</a> or contact the administrator of this site.</p></div>
<footer><p>Protected by <a href="https://github.com/TecharoHQ/anubis">Anubis</a></p></footer></main></body></html>"""

CLOUDFLARE_CHALLENGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta name="robots" content="noindex,nofollow">
<style>*{box-sizing:border-box;margin:0;padding:0}</style></head><body><div class="main-wrapper" role="main">
<div class="main-content"><noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to
continue</span></div></noscript></div></div><script>(function(){window._cf_chl_opt={cvId: '3',cZone: 'unsplash.com',
cType: 'managed',cRay: '8f0c2e1a2b3c4d5e'};var cpo=document.createElement('script');
cpo.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f0c2e1a2b3c4d5e';
document.getElementsByTagName('head')[0].appendChild(cpo);}());</script></body></html>"""

# wall name -> (HTTP status, page), as the real walls answer.
WALL_PAGES = {"anubis-challenge": (200, ANUBIS_CHALLENGE), "anubis-deny": (403, ANUBIS_DENY),
              "cloudflare-challenge": (403, CLOUDFLARE_CHALLENGE)}


# ------------------------------------------------------------------------------------------ pictures
def render_picture(seed: str, width: int, height: int) -> Image.Image:
    """A photo-like landscape (sky gradient, sun, hills, texture) that depends only on `seed` and size."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    top = np.array([rng.randint(20, 120), rng.randint(60, 170), rng.randint(150, 255)], np.float32)
    horizon = np.array([rng.randint(180, 255), rng.randint(140, 230), rng.randint(90, 200)], np.float32)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = (top * (1 - t) + horizon * t) * np.ones((1, width, 1), np.float32)
    img = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    r = max(2, int(min(width, height) * rng.uniform(0.05, 0.12)))
    cx, cy = int(width * rng.uniform(0.15, 0.85)), int(height * rng.uniform(0.1, 0.4))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, rng.randint(200, 245), rng.randint(120, 200)))
    for layer in range(3):
        base_y = height * (0.5 + 0.15 * layer)
        shade = [rng.randint(20, 90), rng.randint(70, 160), rng.randint(20, 90)]
        shade = tuple(int(c * (0.6 + 0.2 * layer)) for c in shade)
        pts = [(0, height)] + [(int(x), int(base_y - rng.uniform(0, height * 0.2)))
                               for x in np.linspace(0, width, 9)] + [(width, height)]
        draw.polygon(pts, fill=shade)
    img = img.filter(ImageFilter.GaussianBlur(radius=max(0.5, width / 400)))
    arr = np.asarray(img, np.int16) + nrng.integers(-6, 7, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def picture_jpeg(photo: SitePhoto, width: int, quality: int = 85) -> bytes:
    """The photo as a JPEG `width` px wide (never upscaled, like imgix fit=max)."""
    width = max(8, min(width, photo.width))
    if photo.source is not None:
        with Image.open(photo.source) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            height = max(1, round(im.height * width / im.width))
            if width < im.width:
                im = im.resize((width, height), Image.LANCZOS)
            pic = im.copy()
    else:
        height = max(8, round(photo.height * width / photo.width))
        pic = render_picture(photo.id, width, height)
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=max(1, min(quality, 95)))
    return buf.getvalue()
