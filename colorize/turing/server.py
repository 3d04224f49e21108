"""The study's local web server: the page, the pair images and a tiny JSON API, on the standard library.

Why `http.server` and not a framework: a study is a handful of people on one machine or one network, the
page is three static files, and nothing extra has to be installed. A bounded pool of threads lets several
participants answer at once (a flood of connections gets a quick 503, never one thread each); one lock
orders every write. Every connection has a socket timeout, so a silent client frees its thread.

The running tally is for the experimenter only: a participant id is the only credential, so whoever
could read the tally could see (and answer as) other participants. It is served at
`/results/<token>` with a random token printed on the console at start (or tallied offline with
`colorize turing --results DIR`).

Answers are recorded by `store.AnswerStore` (appended + fsynced per answer; see there).

The server binds 127.0.0.1 unless `--host` says otherwise, sends a `default-src 'self'` Content Security
Policy (the page cannot fetch anything from elsewhere, even by mistake), and keeps a log of every request
it served (tests check that the page asked for nothing else).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import hmac
import io
import ipaddress
import json
import logging
import secrets
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from colorize.errors import ColorizeError
from colorize.io import atomic_write_json

from .store import MAX_JOINS_PER_CLIENT, AnswerStore, ApiError
from .study import SIDES, TRIAL_RE, load_study

log = logging.getLogger(__name__)

MAX_BODY = 4096
MAX_HEAD = 65536  # bytes of request line and headers (http.server's own line limit)
MAX_THREADS = 16  # requests served at once; more get 503 at once (a study is a handful of people)
MAX_PENDING = 256  # connections still sending their request; more get 503 at once
SOCKET_TIMEOUT_S = 20.0  # a whole request (head and body) must arrive within this many seconds of the connect
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
RESULTS_PAGE, RESULTS_API = "/results/", "/api/results/"
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
                "/static/style.css": ("style.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def bind_error(exc: OSError, host: str, port: int) -> ColorizeError:
    """The one-line error for a failed bind of `host:port` (the server's own, and run.py's early check)."""
    if exc.errno == errno.EADDRINUSE:
        return ColorizeError(f"port {port} on {host} is already in use",
                             "stop what uses it or pick another with --port (0 = any free port)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ColorizeError(f"cannot bind {host}: no such address on this machine",
                             "use --host 127.0.0.1, or an address of this machine to open the study to the network")
    return ColorizeError(f"cannot serve on {host}:{port} ({exc.strerror or exc})", "pick another --host/--port")


def request_complete(data: bytes) -> bool:
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
            if not value.isdigit() or int(value) > MAX_BODY:
                return True
            length = int(value)
    return len(data) - end - sep >= length


@dataclass
class _Pending:
    sock: socket.socket
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _RequestReader:
    """One thread that reads every connection's request before any pool thread is given to it.

    A pool thread per connection from the first byte let 16 sockets dripping a byte every 8 s hold the
    whole pool (each read stayed under the socket timeout). Here a selector collects the bytes of all
    connections at once; a connection gets a pool thread only with its whole request in hand (head and
    body, at most `MAX_HEAD` + `MAX_BODY` bytes), so a pool thread never waits on a client. A request
    must arrive within `deadline` seconds of the connect, however it is dripped (else 408 and closed),
    and at most `max_pending` connections may be sending at once (more get 503 at once).
    """

    def __init__(self, dispatch: Callable[[socket.socket, Any, bytes], None], deadline: float,
                 max_pending: int) -> None:
        self.dispatch, self.deadline, self.max_pending = dispatch, deadline, max_pending
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._new: list[_Pending] = []
        self._pending: dict[socket.socket, _Pending] = {}
        self._count = 0  # new + pending, under the lock
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="turing-read", daemon=True)
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
        if request_complete(p.data):
            self._forget(p)
            p.sock.setblocking(True)
            self.dispatch(p.sock, p.address, bytes(p.data))
        elif len(p.data) > MAX_HEAD + MAX_BODY:
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


class _PooledHTTPServer(HTTPServer):
    """HTTPServer whose requests run on a fixed pool of `max_threads` threads, once they have arrived whole.

    `ThreadingHTTPServer` starts one thread per connection without limit. Here `_RequestReader` reads
    each request first; a whole request that finds every thread busy is answered 503 right away (a tiny
    write into a fresh socket never blocks) and closed, so neither threads nor a queue grow with the load.
    """

    def __init__(self, address: tuple[str, int], handler: type, max_threads: int = MAX_THREADS,
                 request_deadline: float = SOCKET_TIMEOUT_S, max_pending: int = MAX_PENDING) -> None:
        # Set before binding: a failed bind calls server_close() from inside HTTPServer.__init__.
        self.max_threads = max_threads
        self._slots = threading.BoundedSemaphore(max_threads)
        self._pool = cf.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="turing-http")
        self._live: set[socket.socket] = set()  # connections being served, closed by server_close
        self._live_lock = threading.Lock()
        self._requests: dict[socket.socket, bytes] = {}  # the bytes read for each connection handed over
        self._reader = _RequestReader(self._dispatch, request_deadline, max_pending)
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


class _Handler(BaseHTTPRequestHandler):
    """Routes for the page; `self.server.app` is the StudyServer."""

    server_version = "colorize-turing"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler sets it on the connection (for writing the answer)

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BytesIO(self.server.request_bytes(self.request))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(self, status: int, body: bytes, ctype: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, sort_keys=True).encode("utf-8"), "application/json")

    def _body(self) -> dict[str, Any]:
        if "Transfer-Encoding" in self.headers:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        text = self.headers.get("Content-Length", "0").strip()
        # Digits only: int() also takes "-5" (which read() treats as "read to the end", past the limit),
        # "+5", "1_0" and spaces.
        if not text.isascii() or not text.isdigit():
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        length = int(text)
        if length > MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        try:
            obj = json.loads(self.rfile.read(length) or b"{}", parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from exc
        except RecursionError as exc:  # 4 KB of `[` nests deeper than the parser's recursion limit
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is nested too deeply") from exc
        if not isinstance(obj, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return obj

    def _dispatch(self, method: str) -> None:
        app: StudyServer = self.server.app  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        app.log_request_seen(method, self.path, self.client_address[0])
        try:
            app.check_host(self.headers.get("Host", ""))
            if method == "GET":
                self._get(app, path)
            else:
                self._post(app, path)
        except ApiError as exc:
            self._json({"error": exc.message}, exc.status)
        except Exception:  # noqa: BLE001 - one bad request must never stop the study
            log.exception("error serving %s %s", method, self.path)
            self._json({"error": "internal error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # ----------------------------------------------------------------------------------------- routes
    def _get(self, app: StudyServer, path: str) -> None:
        if path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            self._send(200, app.static(name), ctype, cache="no-cache")
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon", cache="max-age=86400")
        elif path.startswith("/img/"):
            self._send(200, app.image(path[len("/img/"):]), "image/jpeg", cache="private, max-age=3600")
        elif path == "/api/study":
            self._json(app.public_study())
        elif path.startswith("/api/participants/"):
            self._json(app.store.state(path[len("/api/participants/"):]))
        elif path.startswith(RESULTS_PAGE) and app.results_token_ok(path[len(RESULTS_PAGE):]):
            self._send(200, app.static("index.html"), "text/html; charset=utf-8", cache="no-store")
        elif path.startswith(RESULTS_API) and app.results_token_ok(path[len(RESULTS_API):]):
            self._json(app.results())
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")

    def _post(self, app: StudyServer, path: str) -> None:
        body = self._body()
        if path == "/api/participants":
            label = "".join(ch for ch in str(body.get("label", ""))[:40] if ch.isprintable()).strip()
            pid = app.store.new_participant(label, self.headers.get("User-Agent", ""), self.client_address[0])
            self._json(app.store.state(pid), HTTPStatus.CREATED)
        elif path == "/api/answer":
            try:
                pid = str(body["participant"])
                position = int(body["position"])  # 1e400 parses as inf: OverflowError
                trial = str(body["trial"])
                choice = str(body["choice"])
                rt_ms = float(body["rt_ms"])
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, "answer needs participant, position, trial, choice, rt_ms") from exc
            self._json(app.store.record(pid, position, trial, choice, rt_ms))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")


def _no_constant(name: str) -> None:
    """json.loads accepts NaN and Infinity (not JSON); an answer holding one is a bad request."""
    raise ValueError(f"{name} is not a JSON number")


class StudyServer:
    """Binds, serves and stops the study; `url` is where participants go, `results_url` the experimenter.

    Binding happens in the constructor so a port in use fails at once, with one clear error.
    """

    def __init__(self, study_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, view_ms: int = 1000,
                 title: str = "Real or colorized?", max_threads: int = MAX_THREADS,
                 socket_timeout: float = SOCKET_TIMEOUT_S, max_pending: int = MAX_PENDING,
                 joins_per_client: int = MAX_JOINS_PER_CLIENT) -> None:
        self.dir = Path(study_dir)
        self.study = load_study(self.dir)
        self.store = AnswerStore(self.dir, self.study, view_ms, joins_per_client)
        self.title = title
        self.requests: list[tuple[str, str, str]] = []  # (method, path, client): every request served
        self._req_lock = threading.Lock()
        self._static: dict[str, bytes] = {}
        self._thread: threading.Thread | None = None
        try:
            handler = type("_Handler", (_Handler,), {"timeout": socket_timeout})
            self.httpd = _PooledHTTPServer((host, port), handler, max_threads, socket_timeout, max_pending)
        except OSError as exc:
            raise bind_error(exc, host, port) from exc
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self.loopback = _is_loopback(str(self.host))
        self.allowed_hosts = allowed_host_names(host, str(self.host))
        self.results_token = secrets.token_urlsafe(18)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

    @property
    def results_url(self) -> str:
        """The experimenter's view of the running tally (the token is the only key: keep it private)."""
        return f"{self.url}results/{self.results_token}"

    def results_token_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.results_token.encode())

    # ------------------------------------------------------------------------------------- content
    def static(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = resources.files("colorize.turing").joinpath("static", name).read_bytes()
        return self._static[name]

    def image(self, name: str) -> bytes:
        """A pair image by its URL name; the name is checked against the plan before it becomes a path."""
        stem, _, ext = name.partition(".")
        trial_id, _, side = stem.partition("-")
        if ext != "jpg" or side not in SIDES or not TRIAL_RE.fullmatch(trial_id) or trial_id not in self.store.trials:
            raise ApiError(HTTPStatus.NOT_FOUND, "no such image")
        try:
            return (self.dir / "pairs" / f"{trial_id}-{side}.jpg").read_bytes()
        except FileNotFoundError as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, "image missing from the study folder") from exc

    def public_study(self) -> dict[str, Any]:
        return {"title": self.title, "study_id": self.study.study_id, "view_ms": self.store.view_ms,
                "practice": len(self.study.practice()), "pairs": len(self.study.test())}

    def results(self) -> dict[str, Any]:
        from .tally import tally_study

        return tally_study(self.dir)

    def check_host(self, host_header: str) -> None:
        """Accept only the exact names this server was started with, on its own port: a web page elsewhere
        cannot reach the study through DNS rebinding (`127.0.0.1.evil.example`, `evil.example:8765`)."""
        if not host_header or any(c in host_header for c in "/@?#\\ \t") or not host_header.isascii():
            raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header")
        parts = urlsplit("//" + host_header)
        try:
            port = parts.port
        except ValueError:
            port = -1
        name = (parts.hostname or "").lower()
        if name not in self.allowed_hosts or port not in (self.port, None if self.port == 80 else self.port):
            raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header")

    def log_request_seen(self, method: str, path: str, client: str) -> None:
        with self._req_lock:
            if len(self.requests) < 100_000:
                self.requests.append((method, path, client))

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> StudyServer:
        """Serve in a background thread (tests, and `serve_forever` below)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="turing-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> StudyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self) -> dict[str, Any]:
        """Block until Ctrl-C (or SIGTERM via KeyboardInterrupt), then stop cleanly; write and return the tally."""
        self.start()
        previous = None
        if threading.current_thread() is threading.main_thread():  # `kill` stops it as cleanly as Ctrl-C
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self._thread is not None and self._thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            log.info("stopping the study server")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stop()
            tally = self.results()
            atomic_write_json(self.dir / "tally.json", tally)
        return tally


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_host_names(requested: str, bound: str) -> frozenset[str]:
    """The Host names a participant's browser may send: the loopback names always (the experimenter
    on this machine), the --host value as given and the address it bound; for a wildcard bind
    (0.0.0.0, ::) also this machine's name and addresses, the names it is reached by on the network."""
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


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
