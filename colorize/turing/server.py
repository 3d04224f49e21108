"""The study's local web server: the page, the pair images and a tiny JSON API, on the standard library.

Why `http.server` and not a framework: a study is a handful of people on one machine or one network, the
page is three static files, and nothing extra has to be installed. `ThreadingHTTPServer` lets several
participants answer at once; one lock orders every write.

Nothing is lost: each answer is one JSON line appended with a single `write` on an `O_APPEND` file and
fsynced before the page hears "recorded", so closing the tab (or killing the server) loses at most the
answer that was in flight. A torn last line (power loss mid-write) is cut off the next time that
participant's file is opened. The true side of a pair never reaches the browser before the answer does;
practice feedback comes back in the answer's response.

The server binds 127.0.0.1 unless `--host` says otherwise, sends a `default-src 'self'` Content Security
Policy (the page cannot fetch anything from elsewhere, even by mistake), and keeps a log of every request
it served (tests check that the page asked for nothing else).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from colorize.errors import ColorizeError
from colorize.io import atomic_write_json, read_json, utc_now

from .study import ANSWER_SCHEMA, PARTICIPANT_RE, PARTICIPANT_SCHEMA, SIDES, TRIAL_RE, Study, load_study

log = logging.getLogger(__name__)

MAX_BODY = 4096
MAX_RT_MS = 3_600_000.0  # an hour: anything longer is a tab left open, kept but capped
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/results": ("index.html", "text/html; charset=utf-8"),
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


class ApiError(Exception):
    """A request the API refuses: HTTP status + a message for the page."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def append_line(path: Path, line: str) -> None:
    """Append one complete line in one write and fsync it (callers hold the store's lock)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # make the new file's directory entry durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def cut_torn_tail(path: Path) -> bool:
    """If the file does not end in a newline (a write cut short), drop the partial last line."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return False
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("%s: removed a torn last line (%d bytes)", path.name, len(data) - keep)
    return True


@dataclass
class _Participant:
    pid: str
    order: list[str]  # trial ids in the order this participant sees them
    position: int  # answers recorded so far = index of the next trial


class AnswerStore:
    """Participants and their answers in a study folder; every method is safe to call from many threads."""

    def __init__(self, study_dir: Path, study: Study, view_ms: int) -> None:
        self.dir = Path(study_dir)
        self.study = study
        self.view_ms = int(view_ms)
        self.trials = study.trials_by_id()
        self.lock = threading.Lock()
        self._cache: dict[str, _Participant] = {}
        (self.dir / "answers").mkdir(parents=True, exist_ok=True)
        (self.dir / "participants").mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------- participants
    def order_for(self, pid: str) -> list[str]:
        """Practice pairs first, in plan order; test pairs shuffled per participant (from seed + id) so that
        order effects average out across participants, yet the same participant always gets the same order."""
        test = [t.id for t in self.study.test()]
        random.Random(f"{self.study.params.get('seed', 0)}:{pid}").shuffle(test)
        return [t.id for t in self.study.practice()] + test

    def new_participant(self, label: str = "", user_agent: str = "") -> str:
        with self.lock:
            while True:
                pid = secrets.token_hex(6)
                if not (self.dir / "participants" / f"{pid}.json").exists():
                    break
            order = self.order_for(pid)
            atomic_write_json(self.dir / "participants" / f"{pid}.json", {
                "schema": PARTICIPANT_SCHEMA, "participant": pid, "study_id": self.study.study_id,
                "created": utc_now(), "label": label, "user_agent": user_agent[:300], "order": order})
            self._cache[pid] = _Participant(pid, order, 0)
        log.info("participant %s joined%s", pid, f" ({label})" if label else "")
        return pid

    def _load(self, pid: str) -> _Participant:
        """The participant's state from the cache or from disk (lock held). Unknown ids are a 404."""
        if not PARTICIPANT_RE.fullmatch(pid):
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown participant")
        if pid in self._cache:
            return self._cache[pid]
        meta_path = self.dir / "participants" / f"{pid}.json"
        try:
            meta = read_json(meta_path)
        except (FileNotFoundError, ValueError) as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown participant") from exc
        order = [str(t) for t in meta.get("order", [])]
        if meta.get("study_id") != self.study.study_id or sorted(order) != sorted(self.trials):
            raise ApiError(HTTPStatus.NOT_FOUND, "this participant belongs to another study")
        answers = self.dir / "answers" / f"{pid}.jsonl"
        cut_torn_tail(answers)
        position = 0
        if answers.exists():
            for line in answers.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    rec = json.loads(line)
                    if int(rec["position"]) == position and rec["trial"] == order[position]:
                        position += 1
                if position >= len(order):
                    break
        state = _Participant(pid, order, position)
        self._cache[pid] = state
        return state

    def state(self, pid: str) -> dict[str, Any]:
        with self.lock:
            return self._public_state(self._load(pid))

    def _public_state(self, p: _Participant) -> dict[str, Any]:
        """What the page may know: where the participant is and the next pair, never its true side."""
        n_practice = len(self.study.practice())
        total = len(p.order)
        out: dict[str, Any] = {"participant": p.pid, "position": p.position, "total": total,
                               "practice_total": n_practice, "test_total": total - n_practice,
                               "done": p.position >= total, "trial": None}
        if p.position < total:
            trial = self.trials[p.order[p.position]]
            in_practice = trial.phase == "practice"
            out["trial"] = {"id": trial.id, "phase": trial.phase,
                            "number": p.position + 1 if in_practice else p.position - n_practice + 1,
                            "of": n_practice if in_practice else total - n_practice,
                            "width": trial.width, "height": trial.height,
                            "images": [f"/img/{trial.image_name(s)}" for s in SIDES]}
        return out

    # ----------------------------------------------------------------------------------------- answers
    def record(self, pid: str, position: int, trial_id: str, choice: str, rt_ms: float) -> dict[str, Any]:
        """Append one answer (idempotent: a resent earlier answer is acknowledged, not written twice)."""
        if choice not in SIDES:
            raise ApiError(HTTPStatus.BAD_REQUEST, "choice must be 'left' or 'right'")
        if not (rt_ms >= 0):  # also rejects NaN
            raise ApiError(HTTPStatus.BAD_REQUEST, "rt_ms must be a non-negative number")
        with self.lock:
            p = self._load(pid)
            if position < p.position:
                return {"recorded": False, "duplicate": True, "state": self._public_state(p)}
            if position > p.position or position >= len(p.order) or p.order[position] != trial_id:
                raise ApiError(HTTPStatus.CONFLICT, "this answer is not for the current pair; reload the page")
            trial = self.trials[trial_id]
            correct = choice == trial.real_side
            rec = {"schema": ANSWER_SCHEMA, "study_id": self.study.study_id, "participant": pid,
                   "position": position, "phase": trial.phase, "trial": trial.id, "photo_id": trial.photo_id,
                   "category": trial.category, "condition": trial.condition, "real_side": trial.real_side,
                   "choice": choice, "correct": correct, "rt_ms": round(min(float(rt_ms), MAX_RT_MS), 1),
                   "view_ms": self.view_ms, "answered_at": utc_now()}
            append_line(self.dir / "answers" / f"{pid}.jsonl", json.dumps(rec, sort_keys=True))
            p.position += 1
            out: dict[str, Any] = {"recorded": True, "duplicate": False, "state": self._public_state(p)}
            if trial.phase == "practice":
                out["feedback"] = {"correct": correct, "real_side": trial.real_side}
            return out


class _Handler(BaseHTTPRequestHandler):
    """Routes for the page; `self.server.app` is the StudyServer."""

    server_version = "colorize-turing"
    sys_version = ""

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
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from exc
        if length > MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        try:
            obj = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from exc
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
        elif path == "/api/results":
            self._json(app.results())
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")

    def _post(self, app: StudyServer, path: str) -> None:
        body = self._body()
        if path == "/api/participants":
            label = "".join(ch for ch in str(body.get("label", ""))[:40] if ch.isprintable()).strip()
            pid = app.store.new_participant(label, self.headers.get("User-Agent", ""))
            self._json(app.store.state(pid), HTTPStatus.CREATED)
        elif path == "/api/answer":
            try:
                pid = str(body["participant"])
                position = int(body["position"])
                trial = str(body["trial"])
                choice = str(body["choice"])
                rt_ms = float(body["rt_ms"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, "answer needs participant, position, trial, choice, rt_ms") from exc
            self._json(app.store.record(pid, position, trial, choice, rt_ms))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")


class StudyServer:
    """Binds, serves and stops the study; `url` is where participants go.

    Binding happens in the constructor so a port in use fails at once, with one clear error.
    """

    def __init__(self, study_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, view_ms: int = 1000,
                 title: str = "Real or colorized?") -> None:
        self.dir = Path(study_dir)
        self.study = load_study(self.dir)
        self.store = AnswerStore(self.dir, self.study, view_ms)
        self.view_ms = int(view_ms)
        self.title = title
        self.requests: list[tuple[str, str, str]] = []  # (method, path, client): every request served
        self._req_lock = threading.Lock()
        self._static: dict[str, bytes] = {}
        self._thread: threading.Thread | None = None
        try:
            self.httpd = ThreadingHTTPServer((host, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ColorizeError(f"port {port} on {host} is already in use",
                                    "stop what uses it or pick another with --port (0 = any free port)") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ColorizeError(f"cannot bind {host}: no such address on this machine",
                                    "use --host 127.0.0.1, or an address of this machine to open the study "
                                    "to the network") from exc
            raise ColorizeError(f"cannot serve on {host}:{port} ({exc.strerror or exc})",
                                "pick another --host/--port") from exc
        self.httpd.daemon_threads = True
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self.loopback = str(self.host).startswith("127.") or self.host in ("::1", "localhost")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

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
        return {"title": self.title, "study_id": self.study.study_id, "view_ms": self.view_ms,
                "practice": len(self.study.practice()), "pairs": len(self.study.test())}

    def results(self) -> dict[str, Any]:
        from .tally import tally_study

        return tally_study(self.dir)

    def check_host(self, host_header: str) -> None:
        """On a loopback address, accept only loopback Host names: a web page elsewhere cannot reach the
        study through DNS rebinding. On another address (--host) participants may use any name."""
        if not self.loopback:
            return
        name = urlsplit("//" + host_header).hostname or ""
        if name not in ("127.0.0.1", "localhost", "::1") and not name.startswith("127."):
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

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (or SIGTERM via KeyboardInterrupt), then stop cleanly and write the tally."""
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
            atomic_write_json(self.dir / "tally.json", self.results())



def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
