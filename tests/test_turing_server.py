"""The study server under hostile requests (issue 13), all on 127.0.0.1: exact Host names, request limits,
a bounded thread pool, socket timeouts, and the running tally kept from participants."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time

import pytest
from test_turing import http as api
from test_turing import make_study

from colorize.turing import StudyServer
from colorize.turing.server import LOOPBACK_NAMES, MAX_THREADS, allowed_host_names


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, return the whole answer (what urllib would refuse to send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(port: int, host_header: str, path: str = "/api/study") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host_header})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture()
def study_dir(tmp_path):
    make_study(tmp_path, pairs=2, practice=1)
    return tmp_path / "study"


def test_only_the_exact_loopback_names_and_port_pass_the_host_check(study_dir):
    with StudyServer(study_dir, port=0) as server:
        port = server.port
        for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert _status(port, good) == 200, good
        for bad in (f"127.0.0.1.evil.example:{port}", f"127.0.0.2:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
                    f"evil.example:{port}", f"localhost.:{port}", f"evil.example@127.0.0.1:{port}",
                    f"127.0.0.1:{port}/x", f"127.0.0.1:{port}x", ""):
            assert _status(port, bad) == 403, bad


def test_a_network_host_accepts_the_names_it_was_started_with():
    names = allowed_host_names("Study.Lab.example", "192.0.2.7")
    assert names == {*LOOPBACK_NAMES, "study.lab.example", "192.0.2.7"}
    wildcard = allowed_host_names("0.0.0.0", "0.0.0.0")
    assert socket.gethostname().lower() in wildcard and "evil.example" not in wildcard


def test_content_length_must_be_plain_digits(study_dir):
    """A negative length made read() take everything: a 3 MB body was accepted past the 4 KB limit."""
    with StudyServer(study_dir, port=0) as server:
        big = b'{"label": "' + b"x" * 3_000_000 + b'"}'
        for length in (b"-1", b"+5", b"1_0", b" 5x"):
            head = (b"POST /api/participants HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %s\r\n\r\n"
                    % (server.port, length))
            answer = _raw(server.port, head + big[:200_000])
            assert answer.startswith(b"HTTP/1.0 400"), (length, answer[:80])
        head = b"POST /api/participants HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n" % (
            server.port, len(big))
        assert _raw(server.port, head + big[:10_000]).startswith(b"HTTP/1.0 413")
    assert not list((study_dir / "participants").glob("*.json"))  # nothing was created


def test_non_finite_numbers_in_an_answer_are_400_not_500(study_dir):
    with StudyServer(study_dir, port=0) as server:
        base = server.url.rstrip("/")
        created = api(base + "/api/participants", {})[2]
        pid, trial = created["participant"], created["trial"]["id"]
        for position, rt in ((float("inf"), 5), (float("-inf"), 5), (float("nan"), 5), (0, float("nan")),
                             (0, float("inf"))):
            body = {"participant": pid, "position": position, "trial": trial, "choice": "left", "rt_ms": rt}
            status, _, answer = api(base + "/api/answer", body)
            assert status == 400, (position, rt, answer)
        raw = json.dumps({"participant": pid, "trial": trial, "choice": "left", "rt_ms": 5}).replace(
            "{", '{"position": 1e400, ', 1).encode()
        head = b"POST /api/answer HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n" % (server.port, len(raw))
        assert _raw(server.port, head + raw).startswith(b"HTTP/1.0 400")
        assert api(base + "/api/participants/" + pid)[2]["position"] == 0  # nothing recorded


def test_a_silent_client_is_dropped_after_the_socket_timeout(study_dir):
    with StudyServer(study_dir, port=0, socket_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /api/study HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
            t0 = time.monotonic()
            answer = b"".join(iter(lambda: s.recv(100), b""))  # to the end: the server hung up
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 5


def test_connections_still_sending_are_bounded_and_extra_ones_get_503(study_dir):
    with StudyServer(study_dir, port=0, max_threads=2, max_pending=2) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        for s in idle:
            s.sendall(b"GET /api/study HTTP/1.1\r\n")  # still sending: counts against max_pending
        time.sleep(0.3)
        try:
            flood = [_raw(server.port, b"GET /api/study HTTP/1.0\r\n\r\n") for _ in range(20)]
            assert all(a.startswith(b"HTTP/1.1 503") for a in flood)
            workers = [t for t in threading.enumerate() if t.name.startswith("turing-http")]
            assert len(workers) <= 2
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 10
        while (status := api(server.url + "api/study")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200  # the places are given back


def _drip(port: int, n: int, stop: threading.Event) -> list[socket.socket]:
    """`n` sockets that each send the start of a request, then keep dripping one byte until `stop`."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    head = b"POST /api/participants HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % port
    for s in socks:
        s.sendall(head)

    def drip() -> None:
        for _ in range(200):  # bounded: stops by itself after at most 200 rounds
            if stop.wait(0.1):
                return
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"a")

    threading.Thread(target=drip, daemon=True).start()
    return socks


def test_slowloris_sockets_do_not_hold_the_pool(study_dir):
    """16 sockets dripping a request held all 16 pool threads: every other request got 503."""
    with StudyServer(study_dir, port=0) as server:
        stop = threading.Event()
        socks = _drip(server.port, MAX_THREADS, stop)
        try:
            time.sleep(0.5)  # the drip sockets have connected and are sending
            assert _status(server.port, f"127.0.0.1:{server.port}") == 200
            status, _, created = api(server.url + "api/participants", {})
            assert status == 201 and created["position"] == 0
        finally:
            stop.set()
            for s in socks:
                s.close()


def test_a_request_has_one_deadline_for_head_and_body_however_it_is_dripped(study_dir):
    """The timeout was per read: a byte every few seconds kept a request alive for ever."""
    with StudyServer(study_dir, port=0, socket_timeout=1.0) as server:
        stop = threading.Event()
        (sock,) = _drip(server.port, 1, stop)  # a byte every 0.1 s: every read well under the timeout
        try:
            answer = b"".join(iter(lambda: sock.recv(100), b""))  # until the server hangs up
        finally:
            stop.set()
            sock.close()
        assert answer.startswith(b"HTTP/1.1 408")


def test_a_deeply_nested_body_is_400_not_500(study_dir):
    with StudyServer(study_dir, port=0) as server:
        body = b"[" * 4000
        head = b"POST /api/participants HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n" % (
            server.port, len(body))
        assert _raw(server.port, head + body).startswith(b"HTTP/1.0 400")


def test_one_client_cannot_create_participants_without_limit(study_dir):
    with StudyServer(study_dir, port=0, joins_per_client=3) as server:
        statuses = [api(server.url + "api/participants", {})[0] for _ in range(5)]
        assert statuses == [201, 201, 201, 429, 429]
        assert len(list((study_dir / "participants").glob("*.json"))) == 3


def test_the_running_tally_is_for_the_experimenter_only(study_dir):
    with StudyServer(study_dir, port=0) as server, StudyServer(study_dir, port=0) as other:
        base = server.url.rstrip("/")
        created = api(base + "/api/participants", {})[2]
        api(base + "/api/answer", {"participant": created["participant"], "position": 0,
                                    "trial": created["trial"]["id"], "choice": "left", "rt_ms": 700})
        token = server.results_token
        assert token != other.results_token and len(token) >= 20  # random per start
        near = token[:-1] + ("y" if token[-1] == "x" else "x")
        for path in ("/api/results", "/results", "/api/results/", "/api/results/" + near,
                     "/api/results/" + other.results_token, "/results/" + token + "x"):
            assert api(base + path)[0] == 404, path
        status, headers, tally = api(base + "/api/results/" + token)
        assert status == 200 and tally["answers"]["practice"] == 1 and headers["Cache-Control"] == "no-store"
        assert server.results_url == f"{server.url}results/{token}"
        page = api(server.results_url)
        assert page[0] == 200 and "text/html" in page[1]["Content-Type"]
