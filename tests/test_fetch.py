"""Verified downloads under faults, and `colorize fetch` rebuilding a shared dataset (no browser)."""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli
from colorize.errors import ColorizeError
from colorize.io import sha256_bytes, sha256_file
from colorize.scraper.cards import Photo, Photographer
from colorize.scraper.download import Caps, DownloadError, HostLimiter, check_jpeg, fetch_bytes, make_session
from colorize.scraper.fetch import run_fetch
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.localsite.site import LocalSite
from colorize.scraper.manifest import Manifest, photo_entry
from colorize.scraper.urls import download_url

WIDTH = 64


@pytest.fixture
def site():
    with LocalSite(n_photos=12) as s:
        yield s


def _session(site: LocalSite, per_host: int = 4):
    """A download session that may reach the local site (only images.unsplash.com by default)."""
    return make_session(per_host, HostPolicy(base_url=site.base_url))


def _allow(site: LocalSite) -> tuple[str, ...]:
    return (site.base_url.split("//", 1)[1],)


def _urls(site: LocalSite, n: int) -> list[tuple[str, str]]:
    photos = [c.photo for c in site.cards("beach") if c.kind == "free"][:n]
    return [(p.id, download_url(site.base_url + p.image_path, WIDTH)) for p in photos]


def _seed_dataset(site: LocalSite, out: Path, n: int = 6) -> Manifest:
    """What a scrape leaves behind (built directly, without a browser)."""
    manifest = Manifest(out / "manifest.json", {"base_url": site.base_url})
    session = _session(site)
    for rank, photo in enumerate([c.photo for c in site.cards("beach") if c.kind == "free"][:n], 1):
        url = download_url(site.base_url + photo.image_path, WIDTH)
        data, w, h = fetch_bytes(session, url, Caps())
        (out / "beach").mkdir(parents=True, exist_ok=True)
        (out / "beach" / f"{photo.id}.jpg").write_bytes(data)
        record = Photo(photo.id, photo.slug, f"{site.base_url}/photos/{photo.slug}-{photo.id}",
                       site.base_url + photo.image_path, photo.alt, None, None,
                       Photographer(photo.username, photo.name, f"{site.base_url}/@{photo.username}"), rank)
        manifest.put(photo_entry(record, "beach", "beach", url, sha256_bytes(data), len(data), w, h))
    manifest.save()
    return manifest


# ----------------------------------------------------------------------------------- downloads
def test_retry_after_is_waited_for(site):
    (pid, url), = _urls(site, 1)
    site.faults.rate_limit, site.faults.retry_after_s = 1, 1
    data, width, _ = fetch_bytes(_session(site), url, Caps())
    assert width == WIDTH
    hits = [h for h in site.log if h.path == site.photo_by_id(pid).image_path]
    assert [h.status for h in hits] == [429, 200]
    assert hits[1].at - hits[0].at >= 0.95  # the server asked for 1 s


def test_a_burst_of_503_is_survived_and_per_host_bound_holds(site):
    urls = _urls(site, 8)
    site.faults.burst_503, site.faults.latency_s = 3, 0.05
    session, limiter = _session(site, 2), HostLimiter(2)
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda u: fetch_bytes(session, u[1], Caps(), limiter), urls))
    assert all(r[1] == WIDTH for r in results)
    assert sum(h.status == 503 for h in site.log) == 3
    assert site.max_inflight <= 2


def test_a_truncated_body_is_retried_and_never_accepted(site):
    (pid, url), = _urls(site, 1)
    site.faults.truncate = {pid: 1}
    data, _, _ = fetch_bytes(_session(site), url, Caps())
    assert data == site.jpeg(site.photo_by_id(pid), WIDTH, 85)
    assert site.image_hits(pid) == 2
    site.faults.truncate = {pid: 10}
    with pytest.raises(DownloadError) as err:
        fetch_bytes(_session(site), url, Caps(attempts=2))
    assert err.value.reason == "truncated"


@pytest.mark.parametrize("fault,reason,hits", [("wrong_type", "not_image", 1), ("missing", "missing", 1),
                                               ("gone", "missing", 1)])
def test_permanent_faults_are_reported_not_retried(site, fault, reason, hits):
    (pid, url), = _urls(site, 1)
    getattr(site.faults, fault).add(pid)
    with pytest.raises(DownloadError) as err:
        fetch_bytes(_session(site), url, Caps())
    assert err.value.reason == reason
    assert site.image_hits(pid) == hits


def test_byte_and_pixel_caps(site):
    (_, url), = _urls(site, 1)
    with pytest.raises(DownloadError, match="too_large"):
        fetch_bytes(_session(site), url, Caps(max_bytes=300))
    with pytest.raises(DownloadError, match="too_many_pixels"):
        fetch_bytes(_session(site), url, Caps(max_pixels=WIDTH * 10))
    good, _, _ = fetch_bytes(_session(site), url, Caps())
    with pytest.raises(DownloadError, match="undecodable"):
        check_jpeg(good[: len(good) // 2], Caps())
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    with pytest.raises(DownloadError, match="not_jpeg"):
        check_jpeg(png.getvalue(), Caps())


# --------------------------------------------------------------------------------------- fetch
def test_fetch_into_a_new_folder_reproduces_identical_files(site, tmp_path):
    src = tmp_path / "src"
    _seed_dataset(site, src)
    report = run_fetch(src / "manifest.json", tmp_path / "copy", workers=4, allow_hosts=_allow(site))
    assert report.counts == {"ok": 6} and report.downloaded == 6
    for f in (src / "beach").glob("*.jpg"):
        assert (tmp_path / "copy" / "beach" / f.name).read_bytes() == f.read_bytes()
    copy = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    original = json.loads((src / "manifest.json").read_text())
    strip = ("status",)
    assert [{k: v for k, v in p.items() if k not in strip} for p in copy["photos"]] == \
           [{k: v for k, v in p.items() if k not in strip} for p in original["photos"]]
    assert (tmp_path / "copy" / "fetch-run.json").exists()
    attribution = (tmp_path / "copy" / "beach" / "ATTRIBUTION.md").read_text()
    assert all(f"`{p['id']}.jpg`: Photo by [" in attribution for p in original["photos"])
    again = run_fetch(src / "manifest.json", tmp_path / "copy", workers=4, allow_hosts=_allow(site))
    assert again.counts == {"ok": 6} and again.downloaded == 0  # verified files are not fetched again


def test_fetch_reports_changed_and_missing_and_exits_1(site, tmp_path):
    src = tmp_path / "src"
    manifest = _seed_dataset(site, src)
    entries = manifest.entries()
    entries[0]["sha256"] = "0" * 64  # tampered
    site.faults.missing.add(entries[1]["id"])
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps({**manifest.to_json(), "photos": entries}))
    out = tmp_path / "copy"
    result = CliRunner().invoke(cli, ["fetch", str(shared), "--out", str(out), "--workers", "2",
                                          "--allow-host", _allow(site)[0]])
    assert result.exit_code == 1
    assert "1 missing, 1 changed" in result.output and "--allow-missing" in result.output
    assert not (out / "beach" / f"{entries[0]['id']}.jpg").exists()  # a changed photo is not in the dataset
    assert (out / ".changed" / "beach" / f"{entries[0]['id']}.jpg").exists()
    assert not (out / "beach" / f"{entries[1]['id']}.jpg").exists()
    status = {p["id"]: p["status"] for p in json.loads((out / "manifest.json").read_text())["photos"]}
    assert status[entries[0]["id"]] == "changed" and status[entries[1]["id"]] == "missing"
    assert sorted(status.values()).count("ok") == 4
    ok = CliRunner().invoke(cli, ["fetch", str(shared), "--out", str(out), "--allow-missing",
                                      "--allow-host", _allow(site)[0]])
    assert ok.exit_code == 0 and "4 ok (0 downloaded), 1 missing, 1 changed" in ok.output
    for p in (out / "beach").glob("*.jpg"):
        assert sha256_file(p) in {e["sha256"] for e in entries}


def test_a_photo_that_cannot_be_written_is_failed_not_a_traceback(site, tmp_path, monkeypatch):
    import colorize.scraper.fetch as fetch

    src = tmp_path / "src"
    _seed_dataset(site, src, n=3)
    real_write = fetch.atomic_write_bytes
    calls = []

    def disk_fills_up(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(fetch, "atomic_write_bytes", disk_fills_up)
    with pytest.raises(ColorizeError, match="1 of 3 photos are not ok"):
        run_fetch(src / "manifest.json", tmp_path / "copy", workers=1, allow_hosts=_allow(site))
    status = [p["status"] for p in json.loads((tmp_path / "copy" / "manifest.json").read_text())["photos"]]
    assert sorted(status) == ["failed", "ok", "ok"]
    record = json.loads((tmp_path / "copy" / "fetch-run.json").read_text())
    assert record["counts"]["failed_reasons"] == {"error": 1}


@pytest.mark.parametrize("field,value", [("id", "../../../x"), ("category", ".."), ("category", "a/b"),
                                         ("id", "..%2F..%2Fab"), ("id", "abcdefghijk\n"),
                                         ("category", "manifest.json\n"), ("category", "beach\n"),
                                         ("sha256", "z" * 64), ("sha256", "a" * 63 + "\n")])
def test_a_hostile_manifest_writes_nothing(site, tmp_path, field, value):
    src = tmp_path / "src"
    manifest = _seed_dataset(site, src, n=2)
    entries = manifest.entries()
    entries[0][field] = value
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps({**manifest.to_json(), "photos": entries}))
    with pytest.raises(ColorizeError, match="invalid") as err:
        run_fetch(shared, tmp_path / "copy")
    assert "\n" not in err.value.line()
    assert not (tmp_path / "copy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json", "src"]


def _shared(manifest: Manifest, entries: list[dict], path: Path) -> Path:
    path.write_text(json.dumps({**manifest.to_json(), "photos": entries}))
    return path


def test_upper_case_hashes_are_the_same_photos_not_changed_ones(site, tmp_path):
    manifest = _seed_dataset(site, tmp_path / "src", n=2)
    entries = manifest.entries()
    for e in entries:
        e["sha256"] = e["sha256"].upper()
    shared = _shared(manifest, entries, tmp_path / "shared.json")
    report = run_fetch(shared, tmp_path / "copy", allow_hosts=_allow(site))
    assert report.counts == {"ok": 2}
    copy = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert [p["sha256"] for p in copy["photos"]] == [e["sha256"].lower() for e in entries]


def test_a_photo_listed_twice_with_two_hashes_is_refused_naming_both(site, tmp_path):
    manifest = _seed_dataset(site, tmp_path / "src", n=2)
    entries = manifest.entries()
    twin = dict(entries[0], sha256="0" * 64)
    shared = _shared(manifest, [*entries, twin], tmp_path / "shared.json")
    result = CliRunner().invoke(cli, ["fetch", str(shared), "--out", str(tmp_path / "copy")])
    assert result.exit_code == 1
    line = result.output.strip()
    assert f"beach/{entries[0]['id']} is listed twice with different sha256" in line
    assert entries[0]["sha256"][:12] in line and "000000000000" in line and "\n" not in line
    assert not (tmp_path / "copy").exists()
    same = _shared(manifest, [*entries, dict(entries[0])], tmp_path / "same.json")  # an exact repeat is harmless
    assert run_fetch(same, tmp_path / "copy", allow_hosts=_allow(site)).counts == {"ok": 2}


@pytest.mark.timeout(60)
def test_fetch_refuses_a_fifo_manifest_or_a_fifo_in_out_instead_of_hanging(site, tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.json")
    result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "pipe.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "FIFO" in result.output
    manifest = _seed_dataset(site, tmp_path / "src", n=1)
    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out" / "manifest.json")
    result = CliRunner().invoke(cli, ["fetch", str(manifest.path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "is not a dataset folder" in result.output


def test_a_manifest_nested_too_deeply_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "deep.json").write_text('{"schema": "colorize.dataset/1", "photos": ' + "[" * 5000 + "]" * 5000 + "}")
    result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "deep.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "nested too deeply" in result.output
    assert isinstance(result.exception, SystemExit)


def test_a_save_encodes_each_entry_once_until_it_changes(site, tmp_path, monkeypatch):
    """Every save re-encoded every entry with the pure-Python indenting encoder: fetch was superlinear."""
    from colorize.io import dumps_json
    from colorize.scraper import manifest as manifest_module

    manifest = _seed_dataset(site, tmp_path / "src", n=4)
    assert manifest.path.read_text() == dumps_json(manifest.to_json())  # byte for byte what it always wrote
    calls = []
    monkeypatch.setattr(manifest_module, "dumps_json", lambda obj: calls.append(obj) or dumps_json(obj))
    manifest.save()
    manifest.save()
    assert len(calls) == 2  # the document's head only, once per save: the entries were encoded before
    entry = manifest.entries()[0]
    manifest.put(dict(entry, alt="new text"))
    manifest.save()
    assert len(calls) == 4 and json.loads(manifest.path.read_text())["photos"][0]["alt"] == "new text"


def test_non_http_urls_are_refused(site, tmp_path):
    src = tmp_path / "src"
    manifest = _seed_dataset(site, src, n=2)
    entries = manifest.entries()
    entries[0]["image_url"] = "file:///etc/passwd"
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps({**manifest.to_json(), "photos": entries}))
    report = run_fetch(shared, tmp_path / "copy", allow_missing=True, allow_hosts=_allow(site))
    assert report.counts == {"ok": 1, "failed": 1} and report.reasons == {"bad_url": 1}


def test_fetch_refuses_what_is_not_a_manifest(tmp_path):
    (tmp_path / "m.json").write_text('{"schema": "something/else", "photos": []}')
    result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "m.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "is not a colorize.dataset/1 manifest" in result.output
    result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "manifest not found" in result.output


def test_attribution_escapes_untrusted_names_and_links(tmp_path):
    from colorize.scraper.manifest import write_attribution

    entry = {"id": "AAAAAAAAAAA", "page_url": "https://unsplash.com/photos/x)(evil", "photographer":
             {"name": "Eve](javascript:alert(1))[", "url": "javascript:alert(1)", "username": "eve"}}
    text = write_attribution(tmp_path, "beach", [entry]).read_text()
    line = text.splitlines()[-1]
    assert line.startswith("- `AAAAAAAAAAA.jpg`: Photo by Eve\\]\\(javascript:alert\\(1\\)\\)\\[ on [Unsplash](")
    assert "](javascript:" not in line and "x%29%28evil" in line


# ------------------------------------------------------------------------------ resume and folders
def test_fetch_killed_midway_leaves_a_manifest_and_a_rerun_fetches_only_the_rest(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from colorize.scraper.localsite.site import Faults

    n = 16
    with LocalSite(n_photos=n) as site:
        _seed_dataset(site, tmp_path / "src", n=n)
        before = {p.id: site.image_hits(p.id) for p in [c.photo for c in site.cards("beach") if c.kind == "free"][:n]}
        site.faults = Faults(latency_s=0.3)
        out = tmp_path / "copy"
        command = [sys.executable, "-m", "colorize", "-q", "fetch", str(tmp_path / "src" / "manifest.json"),
                   "--out", str(out), "--workers", "1", "--allow-host", _allow(site)[0]]
        proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            listed: list[dict] = []
            while not listed:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "the fetch made no progress"
                time.sleep(0.05)
                if (out / "manifest.json").exists():
                    listed = json.loads((out / "manifest.json").read_text())["photos"]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        at_kill = json.loads((out / "manifest.json").read_text())["photos"]
        assert 0 < len(at_kill) < n and all(p["status"] == "ok" for p in at_kill)
        for p in at_kill:  # every listed photo is there and verified
            assert sha256_file(out / p["file"]) == p["sha256"]
        site.faults = Faults()
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        for p in at_kill:
            assert site.image_hits(p["id"]) == before[p["id"]] + 1, f"{p['id']} was downloaded again"
    photos = json.loads((out / "manifest.json").read_text())["photos"]
    assert len(photos) == n and all(p["status"] == "ok" for p in photos)


def test_fetch_out_refuses_a_folder_holding_another_tools_record(site, tmp_path):
    _seed_dataset(site, tmp_path / "src", n=2)
    shards = tmp_path / "shards"
    shards.mkdir()
    record = '{"schema": "colorize.shards/1", "shards": []}'
    (shards / "manifest.json").write_text(record)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    for folder in (shards, tmp_path / "notes"):
        result = CliRunner().invoke(cli, ["fetch", str(tmp_path / "src" / "manifest.json"), "--out", str(folder),
                                          "--allow-host", _allow(site)[0]])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert f"{folder} " in result.output and "Traceback" not in result.output
    assert (shards / "manifest.json").read_text() == record and sorted(p.name for p in shards.iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]
    assert site.log == [h for h in site.log if h.status == 200] and len(site.log) == 2  # only the seeding


def test_fetch_out_merges_into_an_existing_dataset(site, tmp_path):
    seeded = _seed_dataset(site, tmp_path / "src", n=6)
    entries = seeded.entries()
    first = tmp_path / "first.json"
    first.write_text(json.dumps({**seeded.to_json(), "photos": entries[:3]}))
    out = tmp_path / "data"
    run_fetch(first, out, allow_hosts=_allow(site))
    kept = {p: p.read_bytes() for p in (out / "beach").glob("*.jpg")}
    # Another shared dataset, in another category, into the same folder.
    for e in entries[3:]:
        e["category"], e["file"] = "sea", f"sea/{e['id']}.jpg"
    second = tmp_path / "second.json"
    second.write_text(json.dumps({**seeded.to_json(), "photos": entries[3:]}))
    report = run_fetch(second, out, allow_hosts=_allow(site))
    assert report.counts == {"ok": 3}
    listed = json.loads((out / "manifest.json").read_text())["photos"]
    assert sorted((p["category"], p["status"]) for p in listed) == [("beach", "ok")] * 3 + [("sea", "ok")] * 3
    assert {p: p.read_bytes() for p in (out / "beach").glob("*.jpg")} == kept  # the first photos are untouched


def test_scrape_replaces_a_truncated_file_the_manifest_does_not_list(site, tmp_path):
    from colorize.scraper.skeleton import DownloadContext, download_photo

    photo = [c.photo for c in site.cards("beach") if c.kind == "free"][0]
    record = Photo(photo.id, photo.slug, "", site.base_url + photo.image_path)
    whole = site.jpeg(photo, WIDTH, 85)
    path = tmp_path / "beach" / f"{photo.id}.jpg"
    path.parent.mkdir()
    path.write_bytes(whole[: len(whole) // 2])  # a file a crash cut short, never listed
    ctx = DownloadContext(tmp_path, site.base_url, WIDTH, _session(site), HostLimiter(2), Caps(),
                          Manifest(tmp_path / "manifest.json"))
    assert download_photo(ctx, "beach", "beach", record) == ("downloaded", "")
    assert path.read_bytes() == whole and ctx.manifest.get("beach", photo.id)["sha256"] == sha256_bytes(whole)
