"""The hint editor's local web server: the page, the photo, and a small JSON API over an `engine.Engine`.

Hardened like the study server (`colorize.localhttp`): bound to 127.0.0.1, a bounded thread pool, a
socket timeout per connection, the Host header checked against the names it was started with (no DNS
rebinding), bodies capped at the hints file's own cap, a `default-src 'self'` Content Security Policy
(the preview is shown through a `blob:` URL of the PNG the page fetched, nothing else is allowed).
The engine is called under one lock: the network runs one colouring at a time, in request order.

Routes: `GET /`, `/static/editor.js`, `/static/editor.css`, `/img/photo.png` (the photo's lightness),
`/api/state`; `POST /api/preview` {points} -> PNG (header `X-Preview-Digest`: its sha256),
`POST /api/suggest` {x, y} -> {colors}, `POST /api/save` {points} -> {hints, image}. Points are the hints
file's own records, parsed by the hints file's own parser.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from colorize.errors import ColorizeError
from colorize.localhttp import (
    CSP,
    SECURITY_HEADERS,
    BackgroundServer,
    BufferedRequestHandler,
    HttpError,
    PooledHTTPServer,
    allowed_host_names,
    bind_error,
    host_allowed,
    read_json_object,
)
from colorize.models.infer.hintfile import (
    MAX_HINT_POINTS,
    MAX_HINTS_FILE_BYTES,
    HintSpec,
    default_hint_size,
    max_hint_size,
    parse_hint_specs,
)

from .engine import Engine

log = logging.getLogger(__name__)

MAX_BODY = MAX_HINTS_FILE_BYTES  # a request carries at most one hints file's worth of points
MAX_THREADS = 4  # one person edits; a few connections for the page's parallel fetches
SOCKET_TIMEOUT_S = 20.0  # a whole request (head and body) must arrive within this many seconds of the connect
HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": CSP.replace("img-src 'self'", "img-src 'self' blob:")}
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/editor.js": ("editor.js", "text/javascript; charset=utf-8"),
                "/static/editor.css": ("editor.css", "text/css; charset=utf-8")}






class _Handler(BufferedRequestHandler):
    """Routes for the page; `self.server.app` is the EditorServer."""

    server_version = "colorize-hints"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in {**HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, sort_keys=True).encode("utf-8"), "application/json")

    def _body(self) -> dict[str, Any]:
        return read_json_object(self.headers, self.rfile, MAX_BODY)

    def _dispatch(self, method: str) -> None:
        app: EditorServer = self.server.app  # type: ignore[attr-defined]
        app.log_request_seen(method, self.path)
        try:
            if not host_allowed(self.headers.get("Host", ""), app.allowed_hosts, app.port):
                raise HttpError(HTTPStatus.FORBIDDEN, "unexpected Host header")
            path = urlsplit(self.path).path
            if method == "GET":
                self._get(app, path)
            else:
                self._post(app, path)
        except HttpError as exc:
            self._json({"error": exc.message}, exc.status)
        except ColorizeError as exc:  # a bad point, a model without hint input: the page shows the line
            self._json({"error": exc.line()}, HTTPStatus.UNPROCESSABLE_ENTITY if exc.exit_code == 2
                       else HTTPStatus.INTERNAL_SERVER_ERROR)
        except Exception:  # noqa: BLE001 - one bad request must never stop the editor
            log.exception("error serving %s %s", method, self.path)
            self._json({"error": "internal error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _get(self, app: EditorServer, path: str) -> None:
        if path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            self._send(200, app.static(name), ctype)
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        elif path == "/img/photo.png":
            self._send(200, app.photo(), "image/png")
        elif path == "/api/state":
            self._json(app.state())
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")

    def _post(self, app: EditorServer, path: str) -> None:
        if path not in ("/api/preview", "/api/suggest", "/api/save"):
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        body = self._body()
        if path == "/api/suggest":
            x, y = app.pixel(body)
            self._json({"colors": app.call(app.engine.suggest, x, y)})
            return
        specs = app.specs(body)
        if path == "/api/preview":
            png = app.call(app.engine.preview, [s.point() for s in specs])
            self._send(200, png, "image/png", {"X-Preview-Digest": hashlib.sha256(png).hexdigest()})
        else:
            hints, image = app.call(app.engine.save, specs)
            self._json({"hints": str(hints), "image": str(image), "points": len(specs)})


class EditorServer(BackgroundServer):
    """Binds (in the constructor: a port in use fails at once), serves and stops the editor for one engine."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, max_threads: int = MAX_THREADS,
                 socket_timeout: float = SOCKET_TIMEOUT_S) -> None:
        self.engine = engine
        self.requests: list[tuple[str, str]] = []  # (method, path): every request served
        self._lock = threading.Lock()
        self._static: dict[str, bytes] = {}
        self._photo: bytes | None = None
        self._thread: threading.Thread | None = None
        try:
            handler = type("_Handler", (_Handler,), {"timeout": socket_timeout})
            self.httpd = PooledHTTPServer((host, port), handler, max_threads, MAX_BODY, socket_timeout,
                                          thread_prefix="hints-http")
        except OSError as exc:
            raise bind_error(exc, host, port) from exc
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self.allowed_hosts = allowed_host_names(host, str(self.host))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------------------------- content
    def static(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = resources.files("colorize.editor").joinpath("static", name).read_bytes()
        return self._static[name]

    def photo(self) -> bytes:
        if self._photo is None:
            self._photo = self.call(self.engine.photo_png)
        return self._photo

    def state(self) -> dict[str, Any]:
        e = self.engine
        return {"name": e.name, "width": e.width, "height": e.height,
                "preview": {"width": e.preview_width, "height": e.preview_height},
                "default_size": default_hint_size(e.width, e.height), "max_size": max_hint_size(e.width, e.height),
                "max_points": MAX_HINT_POINTS, "points": [s.to_json() for s in e.initial]}

    def specs(self, body: dict[str, Any]) -> list[HintSpec]:
        """A request's points, checked by the hints file's parser (its error line is the page's message)."""
        if set(body) != {"points"}:
            raise HttpError(HTTPStatus.BAD_REQUEST, 'send {"points": [...]} and nothing else')
        try:
            return parse_hint_specs(body, self.engine.width, self.engine.height)
        except ColorizeError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, exc.line()) from exc

    def pixel(self, body: dict[str, Any]) -> tuple[float, float]:
        x, y = body.get("x"), body.get("y")
        ok = all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in (x, y))
        if not ok or set(body) != {"x", "y"} or not (0 <= x <= self.engine.width - 1  # type: ignore[operator]
                                                     and 0 <= y <= self.engine.height - 1):  # type: ignore[operator]
            raise HttpError(HTTPStatus.BAD_REQUEST, f"send {{\"x\", \"y\"}}: a pixel of the "
                                                    f"{self.engine.width} x {self.engine.height} photo")
        return float(x), float(y)  # type: ignore[arg-type]

    def call(self, fn: Any, *args: Any) -> Any:
        """Run an engine call alone: one colouring at a time (the network and its caches are not shared)."""
        with self._lock:
            return fn(*args)

    def log_request_seen(self, method: str, path: str) -> None:
        if len(self.requests) < 100_000:
            self.requests.append((method, path))

    # ------------------------------------------------------------------------------------ lifecycle
    thread_name = "hints-server"

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (or SIGTERM), then stop cleanly; saving happens from the page."""
        self.wait_until_interrupted("hint editor")

