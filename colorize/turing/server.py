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

import hmac
import json
import logging
import secrets
import threading
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from colorize.io import atomic_write_json
from colorize.localhttp import (
    LOOPBACK_NAMES,  # noqa: F401 - part of this module's API (tests, run.py)
    MAX_PENDING,
    SECURITY_HEADERS,
    BackgroundServer,
    BufferedRequestHandler,
    HttpError,
    PooledHTTPServer,
    allowed_host_names,
    bind_error,
    host_allowed,
    is_loopback,
    read_json_object,
)

from .store import MAX_JOINS_PER_CLIENT, AnswerStore, ApiError
from .study import SIDES, TRIAL_RE, load_study

log = logging.getLogger(__name__)

MAX_BODY = 4096
MAX_THREADS = 16  # requests served at once; more get 503 at once (a study is a handful of people)
SOCKET_TIMEOUT_S = 20.0  # a whole request (head and body) must arrive within this many seconds of the connect
RESULTS_PAGE, RESULTS_API = "/results/", "/api/results/"
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
                "/static/style.css": ("style.css", "text/css; charset=utf-8")}


class _Handler(BufferedRequestHandler):
    """Routes for the page; `self.server.app` is the StudyServer."""

    server_version = "colorize-turing"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler sets it on the connection (for writing the answer)

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
        return read_json_object(self.headers, self.rfile, MAX_BODY)

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
        except HttpError as exc:  # ApiError (store.py) is one
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




class StudyServer(BackgroundServer):
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
            self.httpd = PooledHTTPServer((host, port), handler, max_threads, MAX_BODY, socket_timeout, max_pending,
                                          "turing-http")
        except OSError as exc:
            raise bind_error(exc, host, port) from exc
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self.loopback = is_loopback(str(self.host))
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
        if not host_allowed(host_header, self.allowed_hosts, self.port):
            raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header")

    def log_request_seen(self, method: str, path: str, client: str) -> None:
        with self._req_lock:
            if len(self.requests) < 100_000:
                self.requests.append((method, path, client))

    # ------------------------------------------------------------------------------------ lifecycle
    thread_name = "turing-server"

    def serve_until_interrupted(self) -> dict[str, Any]:
        """Block until Ctrl-C (or SIGTERM), then stop cleanly; write and return the tally."""
        try:
            self.wait_until_interrupted("study server")
        finally:
            tally = self.results()
            atomic_write_json(self.dir / "tally.json", tally)
        return tally

