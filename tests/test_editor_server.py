"""The hint editor's server under bad requests, all on 127.0.0.1: exact Host names, body caps, bad JSON,
unknown routes, points checked by the hints file's parser, and a model without a hint input."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket

import pytest
from editorkit import colorizer, photo

from colorize.editor import EditorServer, open_engine, run_editor
from colorize.models.infer.hintfile import MAX_HINTS_FILE_BYTES, HintSpec, write_hints


def _request(port: int, method: str, path: str, body: bytes | None = None, host: str | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": host or f"127.0.0.1:{port}", **(headers or {})})
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


def _post(port: int, path: str, obj) -> tuple[int, dict, bytes]:
    return _request(port, "POST", path, json.dumps(obj).encode(), headers={"Content-Type": "application/json"})


def _error(raw: bytes) -> str:
    return json.loads(raw)["error"]


@pytest.fixture()
def hinted(tmp_path):
    img = photo(tmp_path / "p.png")
    write_hints(tmp_path / "p.json", [HintSpec(10, 20, "#00ff00", 5)])  # an earlier session's file
    with EditorServer(open_engine(img, colorizer(hints=True), tmp_path)) as server:
        yield server


def test_state_page_and_photo_continue_an_earlier_hints_file(hinted):
    port = hinted.port
    status, _, raw = _request(port, "GET", "/api/state")
    state = json.loads(raw)
    assert status == 200 and state["points"] == [{"x": 10, "y": 20, "color": "#00ff00", "size": 5}]
    assert (state["width"], state["height"], state["default_size"], state["max_points"]) == (240, 160, 4, 256)
    for path, ctype in [("/", "text/html"), ("/static/editor.js", "javascript"), ("/static/editor.css", "text/css"),
                        ("/img/photo.png", "image/png")]:
        status, headers, body = _request(port, "GET", path)
        assert status == 200 and ctype in headers["Content-Type"] and body, path
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "img-src 'self' blob:" in headers["Content-Security-Policy"]
    html = _request(port, "GET", "/")[2].decode()
    assert "http" not in html.replace("http-equiv", "")  # no external asset


def test_only_the_exact_loopback_names_and_port_pass_the_host_check(hinted):
    port = hinted.port
    for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert _request(port, "GET", "/api/state", host=good)[0] == 200, good
    for bad in (f"127.0.0.1.evil.example:{port}", f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
                f"evil.example@127.0.0.1:{port}"):
        status, _, raw = _request(port, "POST", "/api/save", b'{"points": []}', host=bad)
        assert status == 403 and _error(raw) == "unexpected Host header", bad
    assert not (hinted.engine.out_dir / "p.color.png").exists()  # nothing was saved through a bad Host


def test_bodies_are_capped_and_must_be_json_objects(hinted):
    port = hinted.port
    status, _, raw = _request(port, "POST", "/api/preview", b" " * (MAX_HINTS_FILE_BYTES + 1))
    assert status == 413 and "request over" in _error(raw)
    assert _request(port, "POST", "/api/preview", b"{points: []}")[0] == 400
    assert _request(port, "POST", "/api/preview", b'{"points": [NaN]}')[0] == 400
    assert _request(port, "POST", "/api/preview", b"[1]")[0] == 400
    status, _, raw = _request(port, "POST", "/api/preview", b"{}", headers={"Content-Length": "-1"})
    assert status == 400 and _error(raw) == "bad Content-Length"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # chunked bodies are refused
        s.sendall(f"POST /api/preview HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.0 411")


def test_unknown_routes_are_404(hinted):
    for method, path in [("GET", "/nope"), ("GET", "/static/../server.py"), ("POST", "/api/state"),
                         ("POST", "/api/delete"), ("GET", "/api/preview")]:
        status, _, raw = _request(hinted.port, method, path, b"{}" if method == "POST" else None)
        assert status == 404 and _error(raw) == "not found", path


def test_points_are_checked_by_the_hints_file_parser_and_previews_change(hinted):
    port = hinted.port
    status, _, raw = _post(port, "/api/preview", {"points": [{"x": 500, "y": 1, "color": "#ff0000"}]})
    assert status == 400 and "point 1 is outside the image" in _error(raw)
    status, _, raw = _post(port, "/api/preview", {"points": [{"x": 1, "y": 1, "color": "red"}]})
    assert status == 400 and "not an sRGB hex colour" in _error(raw)
    assert _post(port, "/api/preview", {"points": [], "extra": 1})[0] == 400
    status, headers, auto = _post(port, "/api/preview", {"points": []})
    assert status == 200 and auto[:4] == b"\x89PNG" and headers["X-Preview-Digest"] == hashlib.sha256(auto).hexdigest()
    status, _, hinted_png = _post(port, "/api/preview", {"points": [{"x": 120, "y": 80, "color": "#3a6ea5"}]})
    assert status == 200 and hinted_png != auto


def test_suggest_and_save(hinted):
    port = hinted.port
    status, _, raw = _post(port, "/api/suggest", {"x": 120, "y": 80})
    colors = json.loads(raw)["colors"]
    assert status == 200 and 3 <= len(colors) <= 5 and all(len(c) == 7 and c[0] == "#" for c in colors)
    for bad in ({"x": 240, "y": 0}, {"x": "1", "y": 0}, {"x": 1}, {"x": True, "y": 0}):
        assert _post(port, "/api/suggest", bad)[0] == 400, bad
    spec = {"x": 120, "y": 80, "color": colors[0], "size": 9}
    status, _, raw = _post(port, "/api/save", {"points": [spec]})
    saved = json.loads(raw)
    assert status == 200 and saved["points"] == 1
    assert json.loads(open(saved["hints"]).read()) == {"points": [spec]}
    assert open(saved["image"], "rb").read()[:4] == b"\x89PNG"


def test_a_model_without_hint_input_answers_with_the_one_line(tmp_path):
    server = run_editor(photo(tmp_path / "p.png"), colorizer(hints=False), tmp_path)
    try:
        assert _post(server.port, "/api/preview", {"points": []})[0] == 200
        status, _, raw = _post(server.port, "/api/preview", {"points": [{"x": 1, "y": 1, "color": "#ff0000"}]})
        assert status == 422 and "trained without colour hints" in _error(raw)
    finally:
        server.stop()


def test_the_cli_command_serves_until_stopped_and_says_what_was_saved(tmp_path, model_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    img = photo(tmp_path / "p.png")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "colorize", "hints", str(img), "--model", str(model_path), "--device", "cpu"]
    bad = subprocess.run([*cmd[:4], str(tmp_path / "none.png"), *cmd[5:]], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "no such photo" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([*cmd[:6], str(tmp_path / "none.pt"), *cmd[7:]], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 1 and "not found" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert json.loads(_request(port, "GET", "/api/state")[2])["name"] == "p.png"
        assert _post(port, "/api/save", {"points": []})[0] == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"hints: saved {tmp_path / 'p.json'} for {img}" in out
    assert json.loads((tmp_path / "p.json").read_text()) == {"points": []}
