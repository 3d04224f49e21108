"""A local Unsplash-like site on 127.0.0.1: the scraper's test bed and the demo's offline photo source.

It reproduces what the scraper must cope with on the real site (README, `### scrape`): ~20 cards
rendered first, a "Load more" button, infinite scroll that appends cards from JavaScript, lazy images
with a color placeholder and a `data:` src until visible, repeated photos with another `ixid`,
Unsplash+, sponsored and illustration cards, photographer avatars, a hostile card id, an optional
consent dialog, `robots.txt`, and image URLs answering real JPEGs of the requested width. Faults can be
switched on while it runs (`site.faults`): 429 with Retry-After, bursts of 503, slow responses, truncated
bodies, wrong content type, 404/410 for some ids, bot walls (Anubis deny and challenge, Cloudflare), 401/403 pages.

    with LocalSite(gallery=Path("gallery")) as site:   # subfolders = categories of images
        run_scrape(categories=["beach"], base_url=site.base_url, ...)
        site.hits["/photo-..."]                          # requests per path, to check resumes
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from colorize.scraper.localsite.pages import (
    MARKUPS,
    WALL_PAGES,
    Card,
    SitePhoto,
    grid_html,
    picture_jpeg,
    render_picture,
    search_page,
)

log = logging.getLogger(__name__)

GALLERY_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
IMAGE_PATH = re.compile(r"^/(?:premium_photo|premium_vector|photo|profile)-\d+-[0-9a-f]+\Z")
WORDS = ("golden", "quiet", "misty", "bright", "old", "wide", "blue", "green", "calm", "wild", "late", "early")
PEOPLE = (("anna_k", "Anna Kowalska"), ("jdoe", "John Doe"), ("mei.lin", "Mei Lin"), ("o-ade", "Ola Ade"),
          ("rsilva", "Rita Silva"), ("t_nguyen", "Tam Nguyen"))


def stable_id(text: str | bytes) -> str:
    """An 11-character Unsplash-style id (letters, digits, `-`, `_`) derived from `text`."""
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()[:11]


def normalize_query(query: str) -> str:
    return " ".join(unquote(query).lower().replace("-", " ").replace("_", " ").split())


@dataclass
class Faults:
    """Switchable misbehaviour of the image URLs and pages (change fields while the site runs)."""

    latency_s: float = 0.0  # every image response waits this long
    rate_limit: int = 0  # the next N image requests answer 429 with Retry-After
    retry_after_s: int = 1
    burst_503: int = 0  # the next N image requests answer 503
    truncate: dict[str, int] = field(default_factory=dict)  # photo id -> times its body is cut short
    wrong_type: set[str] = field(default_factory=set)  # photo ids answered with text/html
    missing: set[str] = field(default_factory=set)  # photo ids answered 404
    gone: set[str] = field(default_factory=set)  # photo ids answered 410
    wall: str = ""  # search pages are this bot wall: "anubis-challenge", "anubis-deny", "cloudflare-challenge"
    page_status: int = 0  # search pages answer this status (401, 403) with an empty page
    robots_disallow: bool = False  # robots.txt forbids the search path


@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    status: int
    user_agent: str


class LocalSite:
    """The threaded HTTP server; a context manager. `base_url` is set once it runs."""

    def __init__(self, gallery: Path | None = None, markup: str = "2025", faults: Faults | None = None,
                 n_photos: int = 60, consent: bool = False, page_size: int = 20) -> None:
        if markup not in MARKUPS:
            raise ValueError(f"markup must be one of {MARKUPS}")
        self.gallery = Path(gallery) if gallery is not None else None
        self.markup = markup
        self.faults = faults or Faults()
        self.n_photos = n_photos
        self.consent = consent
        self.page_size = page_size
        self.hits: Counter[str] = Counter()
        self.inflight = 0  # image requests being answered right now
        self.max_inflight = 0  # the most seen at once (checks per-host bounds)
        self.log: list[Hit] = []
        self._lock = threading.Lock()
        self._cards: dict[str, list[Card]] = {}
        self._by_path: dict[str, SitePhoto] = {}
        self._jpeg_cache: dict[tuple[str, int, int], bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ catalog
    def categories(self) -> list[str]:
        """Gallery categories (subfolder names), or [] without a gallery."""
        if self.gallery is None:
            return []
        return sorted(p.name for p in self.gallery.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _free_photos(self, query: str) -> list[SitePhoto]:
        if self.gallery is not None:
            folders = [self.gallery / c for c in self.categories() if normalize_query(c) == query]
            photos, seen = [], set()
            for f in sorted(p for d in folders for p in d.iterdir() if p.suffix.lower() in GALLERY_EXTS):
                data = f.read_bytes()
                pid = stable_id(data)
                if pid in seen:
                    continue
                seen.add(pid)
                with Image.open(f) as im:
                    w, h = im.size
                photos.append(self._photo(pid, "free", f.stem, w, h, source=f))
            return photos
        # Photo 1 carries a hostile slug: it must stay text and never become part of a path.
        return [self._photo(stable_id(f"{query}:{i}"), "free", f"{query} {i}", *((1600, 1067) if i % 3 else (1067, 1600)),
                            slug="..%2F..%2Fetc-passwd" if i == 1 else None)
                for i in range(self.n_photos)]

    def _photo(self, pid: str, kind: str, label: str, w: int, h: int, source: Path | None = None,
               slug: str | None = None) -> SitePhoto:
        digest = hashlib.sha256(f"{kind}:{pid}".encode()).hexdigest()
        words = [WORDS[int(digest[i], 16) % len(WORDS)] for i in (0, 1)]
        slug = slug or "-".join(words + re.sub(r"[^a-z0-9]+", " ", label.lower()).split())[:60].strip("-")
        user, name = PEOPLE[int(digest[2:4], 16) % len(PEOPLE)]
        prefix = {"premium": "premium_photo", "vector": "premium_vector"}.get(kind, "photo")
        path = f"/{prefix}-{1500000000000 + int(digest[4:13], 16) % 10**11}-{digest[13:25]}"
        color = "#" + digest[25:31]
        alt = f"{' '.join(words)} {label}".strip()
        photo = SitePhoto(pid, slug, kind, path, w, h, user, name, alt, color, source)
        self._by_path[path] = photo
        return photo

    def cards(self, query: str) -> list[Card]:
        """Every card of the search grid for `query`, in page order (built once, deterministic)."""
        query = normalize_query(query)
        with self._lock:
            if query not in self._cards:
                self._cards[query] = self._build_cards(query)
            return self._cards[query]

    def _build_cards(self, query: str) -> list[Card]:
        free = self._free_photos(query)
        cards: list[Card] = []
        page, slot, i = 0, 0, 0

        def extra(kind: str) -> SitePhoto:
            return self._photo(stable_id(f"{kind}:{query}:{page}"), kind, f"{query} {kind}", 1600, 1067)

        while i < len(free):
            ixid = "M3w" + stable_id(f"{query}:{page}:{slot}") * 2
            special = {(True, 2): "bad_id", (True, 5): "premium", (True, 9): "sponsored", (True, 12): "avatar",
                       (True, 15): "vector", (False, 3): "duplicate", (False, 7): "premium",
                       (False, 11): "sponsored"}.get((page == 0, slot))
            if special in ("premium", "sponsored", "vector"):
                cards.append(Card(special, extra(special), ixid))
            elif special == "duplicate":
                earlier = [c for c in cards if c.kind == "free"]
                cards.append(Card("duplicate", earlier[len(earlier) // 2].photo, ixid))
            elif special in ("bad_id", "avatar"):
                cards.append(Card(special, extra("free"), ixid))
            else:
                cards.append(Card("free", free[i], ixid))
                i += 1
            slot += 1
            if slot == self.page_size:
                page, slot = page + 1, 0
        return cards

    def expected_ids(self, query: str, n: int) -> list[str]:
        """The ids a correct scraper keeps for `query` with `--limit n`: free photos, first appearance."""
        out: list[str] = []
        for card in self.cards(query):
            if card.kind == "free" and card.photo.id not in out:
                out.append(card.photo.id)
        return out[:n]

    def photo_by_id(self, pid: str) -> SitePhoto:
        for cards in list(self._cards.values()):
            for card in cards:
                if card.photo.id == pid:
                    return card.photo
        raise KeyError(pid)

    def image_hits(self, pid: str) -> int:
        """How many times the picture of photo `pid` was requested (any width)."""
        return self.hits[self.photo_by_id(pid).image_path]

    # ------------------------------------------------------------------ server
    def __enter__(self) -> LocalSite:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        site = self

        class Handler(_Handler):
            pass

        Handler.site = site
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="localsite",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, path: str, status: int, ua: str) -> None:
        with self._lock:
            self.hits[path] += 1
            self.log.append(Hit(time.monotonic(), path, status, ua))

    def _take(self, name: str) -> bool:
        """Consume one unit of a counted fault (rate_limit, burst_503) atomically."""
        with self._lock:
            left = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    def _take_truncate(self, pid: str) -> bool:
        with self._lock:
            left = self.faults.truncate.get(pid, 0)
            if left > 0:
                self.faults.truncate[pid] = left - 1
                return True
            return False

    def jpeg(self, photo: SitePhoto, width: int, quality: int) -> bytes:
        key = (photo.image_path, width, quality)
        data = self._jpeg_cache.get(key)
        if data is None:
            data = picture_jpeg(photo, width, quality)
            with self._lock:
                self._jpeg_cache[key] = data
        return data


class _Server(ThreadingHTTPServer):
    """A client that hangs up mid-request (a cancelled download, a closing browser) is not a site error."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("localsite: %s hung up", client_address, exc_info=True)
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    site: LocalSite
    protocol_version = "HTTP/1.1"  # keep-alive, as a real CDN does
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    # add ~40 ms to every keep-alive response, which is not what a real CDN does.
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args) -> None:  # quiet: tests read site.log instead
        log.debug("localsite: " + fmt, *args)

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None, cut: bool = False) -> None:
        self.site._record(self._path, status, self.headers.get("User-Agent", ""))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if cut:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[: len(body) // 2] if cut else body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self._path = parts.path
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        faults = self.site.faults
        try:
            if parts.path == "/robots.txt":
                rules = "Disallow: /s/\n" if faults.robots_disallow else "Allow: /s/photos/\nDisallow: /napi/\n"
                return self._send(200, f"User-agent: *\n{rules}".encode(), "text/plain")
            if parts.path.startswith("/s/photos/"):
                return self._search(unquote(parts.path[len("/s/photos/"):]))
            if parts.path == "/_grid":
                return self._grid(params.get("query", ""), int(params.get("page", "1") or 1))
            if IMAGE_PATH.fullmatch(parts.path):
                return self._image(parts.path, params)
            if parts.path.startswith("/.within.website/"):
                return self._send(200, b"", "text/css")
            return self._send(404, b"<h1>Not found</h1>")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # a bug in the test site must show up as a 500, not as a dropped connection
            log.exception("localsite failed on %s", self.path)
            self._send(500, b"internal error")

    def _search(self, query: str) -> None:
        site, faults = self.site, self.site.faults
        if faults.page_status:
            return self._send(faults.page_status, b"", headers={"Set-Cookie": "require_cookie_consent=true"})
        if faults.wall:
            status, page = WALL_PAGES[faults.wall]
            return self._send(status, page.encode())
        cards = site.cards(query)
        first = cards[: site.page_size]
        grid = grid_html(first, site.base_url, site.markup, 0)
        page = search_page(normalize_query(query), grid, site.markup, more=len(cards) > len(first),
                           consent=site.consent)
        self._send(200, page.encode())

    def _grid(self, query: str, page: int) -> None:
        site = self.site
        cards = site.cards(query)
        start = (page - 1) * site.page_size
        chunk = cards[start: start + site.page_size] if page > 1 else []
        last = start + site.page_size >= len(cards)
        body = grid_html(chunk, site.base_url, site.markup, start).encode()
        self._send(200, body, headers={"X-Last-Page": "1" if last else "0"})

    def _image(self, path: str, params: dict[str, str]) -> None:
        site = self.site
        with site._lock:
            site.inflight += 1
            site.max_inflight = max(site.max_inflight, site.inflight)
        try:
            self._image_body(path, params)
        finally:
            with site._lock:
                site.inflight -= 1

    def _image_body(self, path: str, params: dict[str, str]) -> None:
        site, faults = self.site, self.site.faults
        if faults.latency_s:
            time.sleep(faults.latency_s)
        try:
            width = int(params.get("w", "1080"))
            quality = int(params.get("q", "85"))
        except ValueError:
            return self._send(400, b"bad parameters")
        if path.startswith("/profile-"):
            return self._send(200, _avatar_jpeg(path), "image/jpeg")
        photo = site._by_path.get(path)
        if photo is None:
            return self._send(404, b"no such photo")
        if photo.id in faults.missing:
            return self._send(404, b"Not found")
        if photo.id in faults.gone:
            return self._send(410, b"Gone")
        if site._take("rate_limit"):
            return self._send(429, b"Too many requests", headers={"Retry-After": str(faults.retry_after_s)})
        if site._take("burst_503"):
            return self._send(503, b"Service unavailable")
        if photo.id in faults.wrong_type:
            return self._send(200, b"<html><body>Sign in to continue</body></html>")
        body = site.jpeg(photo, max(8, min(width, 6000)), quality)
        cut = site._take_truncate(photo.id)
        self._send(200, body, "image/jpeg", headers={"Cache-Control": "public, max-age=31536000"}, cut=cut)


def _avatar_jpeg(path: str) -> bytes:
    import io

    buf = io.BytesIO()
    render_picture(path, 32, 32).save(buf, "JPEG", quality=70)
    return buf.getvalue()
