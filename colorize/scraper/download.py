"""Polite, verified image downloads: one deadline per photo, host policy on every hop, size/pixel caps.

A response is saved only if it is a JPEG that Pillow decodes completely, under the byte and pixel caps.
Every request, redirect hops included, goes through `hosts.HostPolicy` first (redirects are followed
here, by hand, never by requests, so a hop to a forbidden host is refused before it is sent). Each photo
has one wall-clock deadline (`Caps.deadline`) across connects, reads, redirects and retries: a server
dripping a byte a second cannot keep a download alive. Only transient failures are retried (429/408/5xx
with `Retry-After` honoured, timeouts, broken or undecodable bodies); a refused connection, an unknown
name, 404/410 and other 4xx fail at once.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from PIL import Image
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NameResolutionError, NewConnectionError, ReadTimeoutError

from colorize import __version__
from colorize.scraper import DOWNLOAD_DEADLINE_S
from colorize.scraper.hosts import ForbiddenHost, GuardedAdapter, HostPolicy
from colorize.scraper.urls import host_of

log = logging.getLogger(__name__)

USER_AGENT = f"colorize/{__version__} (open-source photo colorization toolkit; personal research use)"
ROBOTS_AGENT = "colorize"
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_RETRY_AFTER = 60.0  # a server asking for an hour would otherwise park a download thread for an hour
# Backoff jitter only spreads retries in time; it never changes what is saved, so it needs no seed.
_jitter = random.Random()


@dataclass(frozen=True)
class Caps:
    """Limits on a download before it is given up (untrusted servers stay bounded in bytes and time)."""

    max_bytes: int = 40_000_000
    max_pixels: int = 60_000_000
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # the longest silence on a socket
    deadline: float = DOWNLOAD_DEADLINE_S  # wall-clock seconds per photo: connects, reads, redirects and retries together
    attempts: int = 4  # tries for transient failures (429/5xx, timeouts, truncated or undecodable bodies)
    backoff: float = 0.5  # first retry pause in seconds, doubled each time (capped at 8 s), plus jitter
    max_redirects: int = 10


class DownloadError(Exception):
    """A response that cannot be saved; `reason` is the short key the reports count."""

    def __init__(self, reason: str, detail: str = "", transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


class GuardedSession(requests.Session):
    """A Session that carries its host policy; its adapters enforce it again at connect time."""

    host_policy: HostPolicy


def make_session(per_host: int = 4, policy: HostPolicy | None = None,
                 user_agent: str = USER_AGENT) -> GuardedSession:
    """A Session with a pool per host whose connections only reach hosts `policy` allows (default: Unsplash)."""
    policy = policy or HostPolicy()
    session = GuardedSession()
    session.host_policy = policy
    for scheme in ("http://", "https://"):
        # No urllib3 retries and no automatic redirects: fetch_bytes decides both, under the deadline.
        session.mount(scheme, GuardedAdapter(policy, pool_connections=16, pool_maxsize=per_host, pool_block=True))
    session.headers.update({"User-Agent": user_agent, "Accept": "image/jpeg,image/*;q=0.8",
                            "Accept-Encoding": "identity"})  # no compressed bodies: nothing to inflate
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


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DownloadError("deadline", "the per-photo time limit ran out (see --timeout)")
    return left


def _timeout(exc: Exception, deadline: float) -> DownloadError:
    """A socket wait that ran out: the photo's deadline (final) or one read's silence (retried)."""
    if deadline - time.monotonic() < 0.05:  # the wait was cut to what was left of the deadline
        return DownloadError("deadline", "the per-photo time limit ran out (see --timeout)")
    return DownloadError("timeout", str(exc)[:120], transient=True)


def _read_body(response: requests.Response, caps: Caps, deadline: float, cap: int, truncate: bool = False) -> bytes:
    """The body, at most `cap` bytes (more: too_large, or cut when `truncate`), read under the deadline.

    `read1` returns as soon as any bytes arrive, so a dripping server is noticed at the deadline, and each
    socket wait is bounded by what is left of it.
    """
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        raise DownloadError("too_large", f"{declared} bytes > cap {cap}")
    buf = bytearray()
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    while True:
        left = _left(deadline)
        if sock is not None:
            sock.settimeout(min(caps.read_timeout, left))
        chunk = response.raw.read1(64 * 1024)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            if truncate:
                return bytes(buf[:cap])
            raise DownloadError("too_large", f"more than {cap} bytes")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _connection_error(exc: requests.exceptions.ConnectionError) -> DownloadError:
    """Refused and unresolvable hosts are permanent (retrying costs minutes); a reset is transient."""
    reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
    if isinstance(reason, NameResolutionError):
        return DownloadError("dns", str(reason)[:120])
    if isinstance(reason, NewConnectionError):
        return DownloadError("refused", str(reason)[:120])
    return DownloadError("connection", str(exc)[:120], transient=True)


@contextlib.contextmanager
def _open(session: GuardedSession, url: str, caps: Caps, deadline: float) -> Iterator[requests.Response]:
    """One request, no redirects followed, after the host policy allowed `url`."""
    try:
        session.host_policy.check(url)
        left = _left(deadline)
        response = session.get(url, timeout=(min(caps.connect_timeout, left), min(caps.read_timeout, left)),
                               stream=True, allow_redirects=False)
    except ForbiddenHost as exc:
        raise DownloadError("forbidden_host", str(exc)[:200]) from None
    except socket.gaierror as exc:  # from the policy's own resolution, before anything is sent
        raise DownloadError("dns", str(exc)[:120]) from None
    except requests.exceptions.Timeout as exc:
        raise _timeout(exc, deadline) from None
    except requests.exceptions.ConnectionError as exc:
        raise _connection_error(exc) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as exc:
        raise DownloadError("bad_url", str(exc)[:120]) from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError("connection", str(exc)[:120], transient=True) from None
    with response:
        yield response


@dataclass
class Fetched:
    """What one GET gave after its redirects: the final status and, for a 200, the (capped) body."""

    url: str
    status: int
    content_type: str
    retry_after: float | None
    data: bytes = b""


def http_get(session: GuardedSession, url: str, caps: Caps, deadline: float, limiter: HostLimiter | None = None,
             max_bytes: int | None = None, truncate: bool = False) -> Fetched:
    """GET `url`, following redirects by hand: every hop is checked by the host policy before it is sent."""
    limiter = limiter or HostLimiter(4)
    for _hop in range(caps.max_redirects + 1):
        try:
            with limiter.slot(url), _open(session, url, caps, deadline) as response:
                target = session.get_redirect_target(response) if response.status_code in REDIRECT_STATUSES else None
                if target is None:
                    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    data = (_read_body(response, caps, deadline, max_bytes or caps.max_bytes, truncate)
                            if response.status_code == 200 else b"")
                    return Fetched(url, response.status_code, ctype, _retry_after(response), data)
        except ReadTimeoutError as exc:
            raise _timeout(exc, deadline) from None
        except (Urllib3Error, requests.exceptions.RequestException, OSError) as exc:
            raise DownloadError("truncated", str(exc)[:120], transient=True) from None
        nxt = urljoin(url, target).split("#", 1)[0]
        if urlsplit(url).scheme == "https" and urlsplit(nxt).scheme != "https":
            raise DownloadError("insecure_redirect", f"{host_of(url)} redirects to {nxt[:80]}")
        log.debug("redirect %s -> %s", url, nxt)
        url = nxt
    raise DownloadError("too_many_redirects", f"more than {caps.max_redirects}")


def _status_error(status: int, retry_after: float | None) -> DownloadError:
    if status in (404, 410):
        return DownloadError("missing", f"HTTP {status}")
    if status in (401, 403):
        return DownloadError("forbidden", f"HTTP {status}")
    return DownloadError(f"http_{status}", f"HTTP {status}", transient=status in RETRY_STATUSES,
                         retry_after=retry_after)


def _pause(last: DownloadError, attempt: int, caps: Caps, deadline: float) -> None:
    """Wait before retry `attempt` (Retry-After, else exponential backoff); give up if past the deadline."""
    if last.retry_after is not None:
        wait = min(last.retry_after, MAX_RETRY_AFTER)
    else:
        wait = min(8.0, caps.backoff * 2 ** (attempt - 1)) + _jitter.uniform(0, caps.backoff / 2)
    if time.monotonic() + wait >= deadline:
        raise last
    time.sleep(wait)


def fetch_bytes(session: GuardedSession, url: str, caps: Caps, limiter: HostLimiter | None = None
                ) -> tuple[bytes, int, int]:
    """GET `url` and return (bytes, width, height) of a verified JPEG, or raise DownloadError."""
    deadline = time.monotonic() + caps.deadline
    last: DownloadError | None = None
    for attempt in range(caps.attempts):
        if last is not None:
            _pause(last, attempt, caps, deadline)
        try:
            got = http_get(session, url, caps, deadline, limiter)
            if got.status != 200:
                raise _status_error(got.status, got.retry_after)
            if not got.content_type.startswith("image/"):
                raise DownloadError("not_image", f"Content-Type {got.content_type or 'missing'}")
            width, height = check_jpeg(got.data, caps)
            return got.data, width, height
        except DownloadError as exc:
            if not exc.transient:
                raise
            last = exc
        log.debug("attempt %d for %s failed: %s", attempt + 1, url, last)
    assert last is not None
    raise last
