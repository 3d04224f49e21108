"""The host policy and the download path under hostile URLs and servers (127.0.0.1 only, servers in-test).

Every test that could reach a host that is not allowed checks the victim server's own hit log.
"""

from __future__ import annotations

import io
import json
import socket

import pytest
from click.testing import CliRunner
from PIL import Image
from tinyserver import TinyServer

from colorize.cli import cli
from colorize.errors import ColorizeError, UsageError
from colorize.io import sha256_bytes
from colorize.scraper.download import Caps, DownloadError, fetch_bytes, http_get, make_session
from colorize.scraper.fetch import run_fetch
from colorize.scraper.hosts import ForbiddenHost, HostPolicy, canonical_host, is_public, parse_allow_host
from colorize.scraper.manifest import Manifest
from colorize.scraper.scrape import ROBOTS_MAX_BYTES, check_robots

FAST = Caps(backoff=0.01, deadline=20)


def _jpeg(color=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


JPEG = _jpeg()
IMAGE = (200, {"Content-Type": "image/jpeg"}, JPEG)


def _session(*allow: str):
    return make_session(2, HostPolicy(allow))


def _reason(session, url: str, caps: Caps = FAST) -> str:
    with pytest.raises(DownloadError) as err:
        fetch_bytes(session, url, caps)
    return err.value.reason


# ------------------------------------------------------------------------------------------ policy
def test_the_default_policy_allows_only_the_unsplash_cdn_over_https():
    policy = HostPolicy(resolver=lambda *a: [(socket.AF_INET, 1, 6, "", ("151.101.2.208", 443))])
    assert policy.check("https://images.unsplash.com/photo-1-abc?w=64") == ("151.101.2.208",)
    for url in ("http://images.unsplash.com/photo-1", "https://images.unsplash.com:8443/photo-1",
                "https://unsplash.com/photo-1", "https://plus.unsplash.com/premium_photo-1",
                "https://images.unsplash.com.evil.example/x", "ftp://images.unsplash.com/x"):
        with pytest.raises(ForbiddenHost):
            policy.check(url)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "017700000001"])
def test_ipv4_in_disguise_is_never_a_host_name(host):
    with pytest.raises(ValueError, match="four decimal numbers"):
        canonical_host(host)
    with pytest.raises(UsageError):
        parse_allow_host(host)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.5", "169.254.169.254",
                                     "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::",
                                     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
                                     "2002:7f00:1::1", "ff02::1"])
def test_non_public_addresses_are_recognised_in_every_form(address):
    assert not is_public(address)


def test_public_addresses_pass():
    assert is_public("151.101.2.208") and is_public("2a04:4e42::720")


def test_allow_host_forms():
    assert parse_allow_host("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_allow_host("Mirror.Example.ORG.") == ("mirror.example.org", None)
    assert parse_allow_host("[::1]:9") == ("::1", 9)
    for bad in ("a b", "x:0", "x:99999", "user@host", "http://x", ""):
        with pytest.raises(UsageError, match="--allow-host"):
            parse_allow_host(bad)
    policy = HostPolicy(("mirror.example.org",), base_url="http://127.0.0.1:5000")
    resolved = HostPolicy(("mirror.example.org",), base_url="http://127.0.0.1:5000",
                          resolver=lambda h, p, *a: [(socket.AF_INET, 1, 6, "", ("10.0.0.7", p))])
    assert resolved.check("http://mirror.example.org:8123/x") == ("10.0.0.7",)  # named: the user trusts it
    assert policy.check("http://127.0.0.1:5000/photo-1") == ("127.0.0.1",)  # --base-url's own host
    with pytest.raises(ForbiddenHost):
        policy.check("http://127.0.0.1:5001/photo-1")  # another port of the same address is another host


def test_allow_host_is_one_option_shared_by_scrape_and_fetch(tmp_path):
    options = {name: {p.name: p for p in cli.commands[name].params} for name in ("scrape", "fetch")}
    for name in ("allow_hosts", "timeout"):
        assert options["scrape"][name].opts == options["fetch"][name].opts
    assert options["fetch"]["allow_hosts"].multiple
    Manifest(tmp_path / "m.json").save()
    result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "m.json"), "--out", str(tmp_path / "o"),
                                      "--allow-host", "2130706433"])
    assert result.exit_code == 2 and "bad --allow-host '2130706433'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------ zero requests to victims
def test_a_hostile_manifest_sends_zero_requests_to_hosts_not_allowed(tmp_path):
    with TinyServer() as victim, TinyServer({"/ok": IMAGE}) as allowed:
        v = victim.port
        allowed.routes["/hop"] = (302, {"Location": victim.url("/secret")}, b"")
        allowed.routes["/hop-rel"] = (301, {"Location": f"//localhost:{v}/secret"}, b"")
        hostile = [f"http://localhost:{v}/secret", f"http://localhost.:{v}/secret", f"http://[::1]:{v}/secret",
                   f"http://2130706433:{v}/secret", f"http://0x7f000001:{v}/secret", f"http://0177.0.0.1:{v}/secret",
                   f"http://127.1:{v}/secret", f"http://[::ffff:127.0.0.1]:{v}/secret", victim.url("/secret"),
                   f"http://127.0.0.1.:{v}/secret", "http://169.254.169.254/latest/meta-data/",
                   f"http://{allowed.netloc}@127.0.0.1:{v}/secret", f"http://{allowed.netloc}\\@127.0.0.1:{v}/x",
                   f"http://127.0.0.1:{v}\\@{allowed.netloc}/ok", f"https://images.unsplash.com@127.0.0.1:{v}/x",
                   allowed.url("/hop"), allowed.url("/hop-rel")]
        entries = [{"id": f"hostile{i:04d}", "category": "beach", "image_url": url, "sha256": "0" * 64}
                   for i, url in enumerate(hostile)]
        entries.append({"id": "goodphoto01", "category": "beach", "image_url": allowed.url("/ok"),
                        "sha256": sha256_bytes(JPEG)})
        Manifest(tmp_path / "shared.json", {}, entries).save()
        report = run_fetch(tmp_path / "shared.json", tmp_path / "out", allow_missing=True,
                           allow_hosts=(allowed.netloc,), caps=FAST)
        assert victim.hits == []  # the victim's own log: not one request
        assert sorted(allowed.hits) == ["/hop", "/hop-rel", "/ok"]
    assert report.counts == {"ok": 1, "failed": len(hostile)}
    assert report.reasons == {"forbidden_host": len(hostile)}
    status = {p["id"]: p["status"] for p in json.loads((tmp_path / "out" / "manifest.json").read_text())["photos"]}
    assert status["goodphoto01"] == "ok" and list(status.values()).count("failed") == len(hostile)


def test_an_allowed_name_that_resolves_to_a_private_address_is_refused_without_a_request():
    with TinyServer({"/photo-1": IMAGE}) as local:
        to_local = HostPolicy(resolver=lambda h, p, *a: [(socket.AF_INET, 1, 6, "", ("127.0.0.1", local.port))])
        assert _reason(make_session(2, to_local), "https://images.unsplash.com/photo-1") == "forbidden_host"
        assert local.hits == []


def test_dns_rebinding_between_check_and_connect_is_refused_at_connect_time():
    answers = iter(["151.101.2.208", "127.0.0.1"])  # public when checked, loopback when connecting
    calls = []

    def rebinding(host, port, *args):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    session = make_session(2, HostPolicy(resolver=rebinding))
    assert _reason(session, "https://images.unsplash.com/photo-1") == "forbidden_host"
    assert calls == ["images.unsplash.com", "images.unsplash.com"]  # the connection resolved and checked again


# ------------------------------------------------------------------------------ redirects, deadline
def test_redirects_are_followed_by_hand_within_the_policy_and_a_hop_limit():
    with TinyServer({"/ok": IMAGE}) as a:
        a.routes["/r1"] = (302, {"Location": "/r2"}, b"")
        a.routes["/r2"] = (307, {"Location": a.url("/ok")}, b"")
        a.routes["/loop"] = (301, {"Location": "/loop"}, b"")
        session = _session(a.netloc)
        data, width, _ = fetch_bytes(session, a.url("/r1"), FAST)
        assert data == JPEG and width == 16 and a.hits == ["/r1", "/r2", "/ok"]
        a.hits.clear()
        assert _reason(session, a.url("/loop"), Caps(max_redirects=3)) == "too_many_redirects"
        assert a.hits == ["/loop"] * 4  # the first request and 3 hops, never retried


def test_a_server_dripping_bytes_is_cut_at_the_deadline_and_not_retried():
    def drip(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(100000):
                if a.stopping.wait(0.05):
                    return
                handler.wfile.write(b"x")
                handler.wfile.flush()
        except OSError:
            pass

    with TinyServer({"/drip": drip}) as a:
        caps = Caps(deadline=0.6, read_timeout=30, backoff=0.01)  # every read is far below its own timeout
        assert _reason(_session(a.netloc), a.url("/drip"), caps) == "deadline"
        assert a.hits == ["/drip"]


# -------------------------------------------------------------------------------- what is retried
def test_permanent_failures_fail_at_once_and_transient_ones_are_retried(monkeypatch):
    import colorize.scraper.download as download

    pauses = []
    monkeypatch.setattr(download.time, "sleep", pauses.append)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    assert _reason(_session(f"127.0.0.1:{port}"), f"http://127.0.0.1:{port}/x") == "refused"

    def no_such_name(*args):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    unknown = make_session(2, HostPolicy(("cdn.invalid",), resolver=no_such_name))
    assert _reason(unknown, "http://cdn.invalid/x") == "dns"
    assert pauses == []  # neither was retried
    with TinyServer({"/400": (400, {}, b""), "/404": (404, {}, b""), "/410": (410, {}, b""),
                     "/503": (503, {}, b""), "/429": (429, {"Retry-After": "3600"}, b"")}) as a:
        session = _session(a.netloc)
        assert [_reason(session, a.url(p)) for p in ("/400", "/404", "/410")] == ["http_400", "missing", "missing"]
        assert a.hits == ["/400", "/404", "/410"] and pauses == []
        assert _reason(session, a.url("/503"), Caps(attempts=3, backoff=0.01)) == "http_503"
        assert a.hits.count("/503") == 3 and len(pauses) == 2
        # Asked to come back in an hour, past the photo's deadline: give up now instead of parking a thread.
        assert _reason(session, a.url("/429")) == "http_429"
        assert a.hits.count("/429") == 1 and len(pauses) == 2


# ------------------------------------------------------------------------------------- robots.txt
def test_robots_txt_wildcards_are_understood():
    with TinyServer({"/robots.txt": (200, {}, b"User-agent: *\nDisallow: /*?license=\nAllow: /s/\n")}) as site:
        session = make_session(2, HostPolicy(base_url=site.url("")))
        check_robots(session, site.url(""), [site.url("/s/photos/beach")])
        with pytest.raises(ColorizeError, match="does not allow"):
            check_robots(session, site.url(""), [site.url("/s/photos/beach?license=free")])


def test_robots_txt_is_read_up_to_its_size_cap_only():
    padding = b"# " + b"x" * 1000 + b"\n"
    body = b"User-agent: *\n" + padding * (ROBOTS_MAX_BYTES // len(padding) + 1) + b"Disallow: /\n" + padding * 5000
    with TinyServer({"/robots.txt": (200, {}, body)}) as site:
        session = make_session(2, HostPolicy(base_url=site.url("")))
        got = http_get(session, site.url("/robots.txt"), Caps(), deadline=1e12, max_bytes=ROBOTS_MAX_BYTES,
                       truncate=True)
        assert got.status == 200 and len(got.data) == ROBOTS_MAX_BYTES < len(body)
        check_robots(session, site.url(""), [site.url("/s/photos/beach")])  # the rule past the cap is ignored


def test_robots_txt_redirect_to_a_host_not_allowed_is_refused():
    with TinyServer() as victim, TinyServer() as site:
        site.routes["/robots.txt"] = (302, {"Location": victim.url("/robots.txt")}, b"")
        session = make_session(2, HostPolicy(base_url=site.url("")))
        with pytest.raises(ColorizeError, match="forbidden_host"):
            check_robots(session, site.url(""), [site.url("/s/photos/beach")])
        assert victim.hits == []
