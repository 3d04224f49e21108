"""Pieces of a hardened local web server on the standard library, shared by the turing study and the editor.

Why `http.server` and not a framework: these pages serve one person (the editor) or a handful (a study) on
one machine or network, and nothing extra has to be installed. What makes it safe to leave running:
- `PooledHTTPServer`: one selector thread (`RequestReader`) reads every request whole, within a deadline
  from the connect, before a thread of a fixed pool handles it (`BufferedRequestHandler` reads it from
  memory), so clients dripping bytes cannot hold the pool (slowloris); a request that finds every thread
  busy gets a quick 503 (never one thread each, never a growing queue); `server_close` ends the rest.
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
import io
import ipaddress
import json
import logging
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from colorize.errors import ColorizeError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_HEAD = 65536  # bytes of request line and headers (http.server's own line limit)
MAX_PENDING = 256  # connections still sending their request; more get 503 at once
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


def request_complete(data: bytes, max_body: int) -> bool:
    """True once `data` holds a whole request head and the body its Content-Length announces, or once it
    is clear the handler will refuse it without reading on (a chunked body, a bad or too large length)."""
    ends = [(i, n) for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if i >= 0]
    if not ends:
        return False
    end, sep = min(ends)
    length = 0
    for line in data[:end].split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            if not value.isdigit() or int(value) > max_body:
                return True
            length = int(value)
    return len(data) - end - sep >= length


@dataclass
class _Pending:
    sock: socket.socket
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class RequestReader:
    """One thread that reads every connection's request before any pool thread is given to it.

    A pool thread per connection from the first byte let 16 sockets dripping a byte every 8 s hold the
    whole pool (each read stayed under the socket timeout). Here a selector collects the bytes of all
    connections at once; a connection gets a pool thread only with its whole request in hand (head and
    body, at most `MAX_HEAD` + `max_body` bytes), so a pool thread never waits on a client. A request
    must arrive within `deadline` seconds of the connect, however it is dripped (else 408 and closed),
    and at most `max_pending` connections may be sending at once (more get 503 at once).
    """

    def __init__(self, dispatch: Callable[[socket.socket, Any, bytes], None], deadline: float,
                 max_pending: int, max_body: int, name: str) -> None:
        self.dispatch, self.deadline, self.max_pending = dispatch, deadline, max_pending
        self.max_body = max_body
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._new: list[_Pending] = []
        self._pending: dict[socket.socket, _Pending] = {}
        self._count = 0  # new + pending, under the lock
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"{name}-read", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket, address: Any) -> bool:
        """Take a fresh connection; False when `max_pending` connections are already sending."""
        with self._lock:
            if self._count >= self.max_pending or self._stop:
                return False
            self._count += 1
            self._new.append(_Pending(sock, address, time.monotonic() + self.deadline))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        return True

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.2):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                else:
                    try:
                        self._read(key.data)
                    except Exception:  # noqa: BLE001 - one broken connection must never stop the reader
                        log.debug("dropping a connection", exc_info=True)
                        if key.data.sock in self._pending:
                            self._drop(key.data, None)
            with self._lock:
                new, self._new = self._new, []
            for p in new:
                try:
                    p.sock.setblocking(False)
                    self._selector.register(p.sock, selectors.EVENT_READ, p)
                except (OSError, ValueError):  # closed by the client already: nothing to read
                    with self._lock:
                        self._count -= 1
                    _close(p.sock)
                    continue
                self._pending[p.sock] = p
            now = time.monotonic()
            for p in [p for p in self._pending.values() if now > p.deadline]:
                self._drop(p, b"408 Request Timeout")

    def _read(self, p: _Pending) -> None:
        try:
            chunk = p.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(p, None)
            return
        p.data += chunk
        if request_complete(p.data, self.max_body):
            self._forget(p)
            p.sock.setblocking(True)
            self.dispatch(p.sock, p.address, bytes(p.data))
        elif len(p.data) > MAX_HEAD + self.max_body:
            self._drop(p, b"431 Request Header Fields Too Large")

    def _forget(self, p: _Pending) -> None:
        self._selector.unregister(p.sock)
        del self._pending[p.sock]
        with self._lock:
            self._count -= 1

    def _drop(self, p: _Pending, status: bytes | None) -> None:
        self._forget(p)
        if status is not None:
            with contextlib.suppress(OSError):
                p.sock.send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        _close(p.sock)

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        with self._lock:
            left = list(self._pending.values()) + self._new
            self._new = []
        for p in left:
            _close(p.sock)
        self._pending.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose requests run on a fixed pool of `max_threads` threads, once they have arrived whole.

    `ThreadingHTTPServer` starts one thread per connection without limit. Here `RequestReader` reads
    each request first; a whole request that finds every thread busy is answered 503 right away (a tiny
    write into a fresh socket never blocks) and closed, so neither threads nor a queue grow with the load.
    """

    def __init__(self, address: tuple[str, int], handler: type, max_threads: int, max_body: int,
                 request_deadline: float, max_pending: int = MAX_PENDING, thread_prefix: str = "colorize-http") -> None:
        # Set before binding: a failed bind calls server_close() from inside HTTPServer.__init__.
        self.max_threads = max_threads
        self._slots = threading.BoundedSemaphore(max_threads)
        self._pool = cf.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=thread_prefix)
        self._live: set[socket.socket] = set()  # connections being served, closed by server_close
        self._live_lock = threading.Lock()
        self._requests: dict[socket.socket, bytes] = {}  # the bytes read for each connection handed over
        self._reader = RequestReader(self._dispatch, request_deadline, max_pending, max_body, thread_prefix)
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        if not self._reader.add(request, client_address):
            self._busy(request)

    def _busy(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
        self.shutdown_request(request)

    def _dispatch(self, request: socket.socket, client_address: Any, data: bytes) -> None:
        if not self._slots.acquire(blocking=False):
            self._busy(request)
            return
        with self._live_lock:
            self._requests[request] = data
        self._pool.submit(self._work, request, client_address)

    def request_bytes(self, request: socket.socket) -> bytes:
        """The request read for this connection (the handler reads it from memory, never from the socket)."""
        with self._live_lock:
            return self._requests.pop(request, b"")

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
                self._requests.pop(request, None)
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address, exc_info=True)

    def server_close(self) -> None:
        """Stop listening and end the connections still open, so no pool thread outlives the server."""
        super().server_close()
        self._reader.stop()
        with self._live_lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)


class BufferedRequestHandler(BaseHTTPRequestHandler):
    """A handler that reads the request `PooledHTTPServer` already read whole, from memory, never the socket."""

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BytesIO(self.server.request_bytes(self.request))  # type: ignore[attr-defined]


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


class HttpError(Exception):
    """A request refused: HTTP status + a one-line message the page shows."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _no_constant(name: str) -> None:
    """json.loads accepts NaN and Infinity (not JSON); a body holding one is a bad request."""
    raise ValueError(f"{name} is not a JSON number")


def read_json_object(headers: Any, rfile: Any, max_body: int) -> dict[str, Any]:
    """A request's JSON object body, or the `HttpError` that names what is wrong with it: chunked, a bad or
    too large Content-Length, not JSON (NaN and Infinity included), nested past the parser's depth, not an
    object. The one body parser of the study and the editor."""
    if "Transfer-Encoding" in headers:
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
    length = content_length(headers.get("Content-Length"))
    if length is None:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    if length > max_body:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request over {max_body} bytes")
    try:
        obj = json.loads(rfile.read(length) or b"{}", parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from exc
    except RecursionError as exc:  # 4 KB of `[` nests deeper than the parser's recursion limit
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is nested too deeply") from exc
    if not isinstance(obj, dict):
        raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return obj


def content_length(text: str | None) -> int | None:
    """A Content-Length header's value, or None when it is not plain digits.

    Digits only: int() also takes "-5" (which read() treats as "read to the end", past any cap), "+5",
    "1_0" and spaces.
    """
    text = (text if text is not None else "0").strip()
    return int(text) if text.isascii() and text.isdigit() else None


class BackgroundServer:
    """Serving `self.httpd` (a `PooledHTTPServer`) from a background thread, for the study and the editor.

    Subclasses set `httpd` and `thread_name`; `start`/`stop` are idempotent and the object is a context
    manager; `wait_until_interrupted` blocks until Ctrl-C or SIGTERM (`kill` stops it as cleanly).
    """

    httpd: PooledHTTPServer
    thread_name = "colorize-server"
    _thread: threading.Thread | None = None

    def start(self) -> Any:
        """Serve in a background thread (tests, and `wait_until_interrupted`)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_interrupted(self, what: str) -> None:
        """Serve until Ctrl-C or SIGTERM, then stop; `what` names the server in the log line."""
        self.start()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self._thread is not None and self._thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            log.info("stopping the %s", what)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stop()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
