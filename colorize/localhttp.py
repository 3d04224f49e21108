"""Pieces of a hardened local web server on the standard library, shared by the turing study and the editor.

Why `http.server` and not a framework: these pages serve one person (the editor) or a handful (a study) on
one machine or network, and nothing extra has to be installed. What makes it safe to leave running:
- `PooledHTTPServer`: a fixed pool of threads; a connection that finds every thread busy gets a quick 503
  (never one thread each, never a growing queue); `server_close` ends the connections still open.
- `host_allowed`: only the exact names the server was started with, on its own port, so a web page
  elsewhere cannot reach it through DNS rebinding (`127.0.0.1.evil.example`, `evil.example:8765`).
- `SECURITY_HEADERS`: a `default-src 'self'` Content Security Policy (a page cannot fetch anything from
  elsewhere, even by mistake) and the usual no-sniff / no-referrer headers.
- `content_length`: the digits-only parse of a request's Content-Length (bodies are capped by the caller).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import ipaddress
import logging
import socket
import threading
from http.server import HTTPServer
from typing import Any
from urllib.parse import urlsplit

from colorize.errors import ColorizeError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def bind_error(exc: OSError, host: str, port: int) -> ColorizeError:
    """The one-line error for a failed bind of `host:port`."""
    if exc.errno == errno.EADDRINUSE:
        return ColorizeError(f"port {port} on {host} is already in use",
                             "stop what uses it or pick another with --port (0 = any free port)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ColorizeError(f"cannot bind {host}: no such address on this machine",
                             "use --host 127.0.0.1, or an address of this machine to open the page to the network")
    return ColorizeError(f"cannot serve on {host}:{port} ({exc.strerror or exc})", "pick another --host/--port")


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose connections run on a fixed pool of `max_threads` threads named `thread_prefix`-N.

    `ThreadingHTTPServer` starts one thread per connection without limit. Here a connection that
    finds every thread busy is answered 503 right away by the accepting thread (a tiny write into a
    fresh socket never blocks) and closed, so neither threads nor a queue grow with the load.
    """

    def __init__(self, address: tuple[str, int], handler: type, max_threads: int,
                 thread_prefix: str = "colorize-http") -> None:
        # Set before binding: a failed bind calls server_close() from inside HTTPServer.__init__.
        self.max_threads = max_threads
        self._slots = threading.BoundedSemaphore(max_threads)
        self._pool = cf.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=thread_prefix)
        self._live: set[socket.socket] = set()  # connections being served, closed by server_close
        self._live_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request: socket.socket, client_address: Any) -> None:
        with self._live_lock:
            self._live.add(request)
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - what socketserver does: log, and keep serving the others
            self.handle_error(request, client_address)
        finally:
            with self._live_lock:
                self._live.discard(request)
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address, exc_info=True)

    def server_close(self) -> None:
        """Stop listening and end the connections still open, so no pool thread outlives the server."""
        super().server_close()
        with self._live_lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_host_names(requested: str, bound: str) -> frozenset[str]:
    """The Host names a browser may send: the loopback names always (the user on this machine), the
    requested host as given and the address it bound; for a wildcard bind (0.0.0.0, ::) also this
    machine's name and addresses, the names it is reached by on the network."""
    names = {*LOOPBACK_NAMES, requested.strip("[]").lower(), bound.lower()}
    try:
        wildcard = ipaddress.ip_address(bound).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        for machine in {socket.gethostname(), socket.getfqdn()}:
            names.add(machine.lower())
            try:
                names.update(str(info[4][0]).lower() for info in socket.getaddrinfo(machine, None))
            except OSError:
                pass
    return frozenset(n for n in names if n)


def host_allowed(host_header: str, allowed: frozenset[str], port: int) -> bool:
    """Whether a request's Host header names one of `allowed` on this server's `port` (DNS rebinding guard)."""
    if not host_header or any(c in host_header for c in "/@?#\\ \t") or not host_header.isascii():
        return False
    parts = urlsplit("//" + host_header)
    try:
        given = parts.port
    except ValueError:
        return False
    name = (parts.hostname or "").lower()
    return name in allowed and given in (port, None if port == 80 else port)


def content_length(text: str | None) -> int | None:
    """A Content-Length header's value, or None when it is not plain digits.

    Digits only: int() also takes "-5" (which read() treats as "read to the end", past any cap), "+5",
    "1_0" and spaces.
    """
    text = (text if text is not None else "0").strip()
    return int(text) if text.isascii() and text.isdigit() else None
