"""Polite, verified image downloads: retries with backoff, per-host bounds, size/pixel caps, atomic files.

A response is saved only if it is a JPEG that Pillow decodes completely, under the byte and pixel caps.
Status retries (429/5xx, `Retry-After` honoured) are urllib3's `Retry`; failures inside the body
(truncated transfer, undecodable bytes) get a few more attempts here, since urllib3 does not retry a
body that breaks halfway.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from PIL import Image
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from colorize import __version__
from colorize.scraper.urls import host_of

log = logging.getLogger(__name__)

USER_AGENT = f"colorize/{__version__} (open-source photo colorization toolkit; personal research use)"
ROBOTS_AGENT = "colorize"
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Backoff jitter only spreads retries in time; it never changes what is saved, so it needs no seed.
_jitter = random.Random()


@dataclass(frozen=True)
class Caps:
    """Limits on what a response may be before it is rejected (untrusted data stays bounded)."""

    max_bytes: int = 40_000_000
    max_pixels: int = 60_000_000
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    attempts: int = 3  # tries for failures inside a body (truncated, undecodable)


class DownloadError(Exception):
    """A response that cannot be saved; `reason` is the short key the reports count."""

    def __init__(self, reason: str, detail: str = "", transient: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.transient = transient


class CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After but never sleeps longer than `MAX_RETRY_AFTER` seconds.

    A server asking for an hour would otherwise park a download thread for an hour.
    """

    MAX_RETRY_AFTER = 60.0

    def get_retry_after(self, response):  # type: ignore[override]
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.MAX_RETRY_AFTER)


def make_session(per_host: int = 4, retries: int = 5, backoff: float = 0.5,
                 user_agent: str = USER_AGENT) -> requests.Session:
    """A requests Session with status retries, exponential backoff + jitter, and a pool per host."""
    retry = CappedRetry(
        total=retries, connect=retries, read=2, status=retries, other=1,
        backoff_factor=backoff, backoff_jitter=backoff, backoff_max=30.0,
        status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True, raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=16, pool_maxsize=per_host, pool_block=True)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept": "image/jpeg,image/*;q=0.8"})
    return session


class HostLimiter:
    """At most `per_host` requests in flight to any one host, however many threads there are."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = host_of(url)
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with sem:
            yield


def check_jpeg(data: bytes, caps: Caps) -> tuple[int, int]:
    """(width, height) of a JPEG that decodes completely within the pixel cap, else DownloadError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG":
                raise DownloadError("not_jpeg", f"got {im.format}")
            width, height = im.size
            if width * height > caps.max_pixels:
                raise DownloadError("too_many_pixels", f"{width}x{height}")
            im.load()  # a full decode: a truncated or corrupt file fails here
    except DownloadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DownloadError("undecodable", str(exc)[:120], transient=True) from exc
    return width, height


def _read_capped(response: requests.Response, cap: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise DownloadError("too_large", f"{declared} bytes > cap {cap}")
    buf = bytearray()
    for chunk in response.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            raise DownloadError("too_large", f"more than {cap} bytes")
    return bytes(buf)


def _status_error(status: int) -> DownloadError:
    if status in (404, 410):
        return DownloadError("missing", f"HTTP {status}")
    if status in (401, 403):
        return DownloadError("forbidden", f"HTTP {status}")
    return DownloadError(f"http_{status}", f"HTTP {status} after retries")


def fetch_bytes(session: requests.Session, url: str, caps: Caps, limiter: HostLimiter | None = None
                ) -> tuple[bytes, int, int]:
    """GET `url` and return (bytes, width, height) of a verified JPEG, or raise DownloadError."""
    limiter = limiter or HostLimiter(4)
    last: DownloadError | None = None
    for attempt in range(caps.attempts):
        if attempt:
            time.sleep(min(8.0, 0.25 * 2 ** attempt) + _jitter.uniform(0, 0.25))
        try:
            with limiter.slot(url), session.get(
                url, timeout=(caps.connect_timeout, caps.read_timeout), stream=True
            ) as response:
                if response.status_code != 200:
                    raise _status_error(response.status_code)
                ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if not ctype.startswith("image/"):
                    raise DownloadError("not_image", f"Content-Type {ctype or 'missing'}")
                data = _read_capped(response, caps.max_bytes)
            width, height = check_jpeg(data, caps)
            return data, width, height
        except DownloadError as exc:
            if not exc.transient:
                raise
            last = exc
        except requests.exceptions.ChunkedEncodingError as exc:
            last = DownloadError("truncated", str(exc)[:120], transient=True)
        except requests.exceptions.Timeout as exc:
            last = DownloadError("timeout", str(exc)[:120], transient=True)
        except requests.exceptions.RetryError as exc:
            last = DownloadError("retries_exhausted", str(exc)[:120])
            break
        except requests.exceptions.RequestException as exc:
            last = DownloadError("connection", str(exc)[:120], transient=True)
        log.debug("attempt %d for %s failed: %s", attempt + 1, url, last)
    assert last is not None
    raise last
