"""`colorize scrape` with the real headless Chromium against the local Unsplash-like site."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli
from colorize.errors import UsageError
from colorize.io import sha256_bytes, sha256_file
from colorize.scraper.cards import Photo
from colorize.scraper.download import Caps, fetch_bytes, make_session
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.localsite.site import Faults, LocalSite
from colorize.scraper.manifest import Manifest, photo_entry
from colorize.scraper.scrape import run_scrape
from colorize.scraper.urls import download_url

LIMIT = 25
WIDTH = 64


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Browser profiles go to a private temp folder, so the test can see that teardown removed them."""
    folder = tmp_path / "sys-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []  # every Chromium profile was removed: the browser quit


def _scrape(site: LocalSite, out: Path, categories=("beach",), limit: int = LIMIT, **kw):
    opts = dict(categories=categories, limit=limit, out=out, base_url=site.base_url, width=WIDTH, workers=4,
                per_host=2, scroll_pause=0.05, idle_seconds=1.0)
    opts.update(kw)
    return run_scrape(**opts)


def _files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


@pytest.mark.browser
def test_scrape_gets_exactly_the_expected_photos_with_manifest_and_attribution(tmp_path):
    out = tmp_path / "raw"
    with LocalSite(n_photos=40) as site:
        report = _scrape(site, out, categories=("beach", "city"))
        expected = {c: site.expected_ids(c, LIMIT) for c in ("beach", "city")}
        bad = {c.photo.id for q in ("beach", "city") for c in site.cards(q)
               if c.kind in ("premium", "sponsored", "vector", "bad_id", "avatar")}
        user_agents = {h.user_agent for h in site.log}
    for cat, ids in expected.items():
        assert {p.stem for p in (out / cat).glob("*.jpg")} == set(ids)
        assert not bad & set(ids)
    # Nothing else was written, and no path came from a slug or a hostile id.
    assert _files(out) == ({"manifest.json", "scrape-run.json"} | {f"{c}/ATTRIBUTION.md" for c in expected}
                           | {f"{c}/{i}.jpg" for c, ids in expected.items() for i in ids})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "colorize.dataset/1" and manifest["base_url"] == site.base_url
    assert manifest["source"] == {"kind": "unsplash-search", "base_url": site.base_url}
    assert manifest["browser_version"] and manifest["query_params"]["w"] == WIDTH
    photos = manifest["photos"]
    assert len(photos) == 2 * LIMIT
    for p in photos:
        path = out / p["file"]
        assert p["file"] == f"{p['category']}/{p['id']}.jpg" and p["status"] == "ok"
        assert sha256_file(path) == p["sha256"] and path.stat().st_size == p["bytes"]
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            im.load()
            assert im.format == "JPEG" and im.size == (p["width"], p["height"]) and im.width == WIDTH
        assert p["image_url"].endswith(f"?fm=jpg&q=85&w={WIDTH}&fit=max&cs=srgb") and "ixid" not in p["image_url"]
        assert p["photographer"]["username"] and p["license"]["name"] == "Unsplash License"
    hostile = next(p for p in photos if p["slug"].startswith(".."))  # kept as text only
    assert (out / "beach" / f"{hostile['id']}.jpg").exists()
    ranks = [p["rank"] for p in photos if p["category"] == "beach"]
    assert ranks == sorted(ranks) and len(set(ranks)) == LIMIT
    for cat, ids in expected.items():
        attribution = (out / cat / "ATTRIBUTION.md").read_text()
        assert all(f"`{i}.jpg`: Photo by [" in attribution for i in ids)
        assert attribution.count("on [Unsplash](") == LIMIT
    record = json.loads((out / "scrape-run.json").read_text())
    beach = record["counts"]["beach"]
    assert beach["kept"] == LIMIT and beach["downloaded"] == LIMIT and beach["failed"] == {}
    assert beach["skipped"]["duplicate"] == 1 and beach["skipped"]["premium"] == 2
    assert beach["skipped"]["sponsored"] == 2 and beach["skipped"]["bad_id"] == 1
    assert beach["markup"] == "2025"
    assert "50 photos in 2 categories (50 downloaded" in report.summary_line()
    assert any("HeadlessChrome" in ua and "colorize/" in ua for ua in user_agents)  # honest browser UA
    assert any(ua.startswith("colorize/") for ua in user_agents)  # honest download UA


@pytest.mark.browser
def test_older_markup_behind_a_consent_dialog_merges_into_an_existing_dataset(tmp_path):
    out = tmp_path / "raw"
    with LocalSite(markup="2021", consent=True, n_photos=40) as site:
        # A dataset from an earlier run: 3 "beach" photos with their manifest.
        earlier = Manifest(out / "manifest.json", {"base_url": site.base_url})
        for rank, p in enumerate([c.photo for c in site.cards("beach") if c.kind == "free"][:3], 1):
            url = download_url(site.base_url + p.image_path, WIDTH)
            data, w, h = fetch_bytes(make_session(2, HostPolicy(base_url=site.base_url)), url, Caps())
            (out / "beach").mkdir(parents=True, exist_ok=True)
            (out / "beach" / f"{p.id}.jpg").write_bytes(data)
            record = Photo(p.id, p.slug, "", site.base_url + p.image_path, rank=rank)
            earlier.put(photo_entry(record, "beach", "beach", url, sha256_bytes(data), len(data), w, h))
        earlier.save()
        report = _scrape(site, out, categories=("city",))
        expected = site.expected_ids("city", LIMIT)
        grid_pages = site.hits["/_grid"]
    assert {p.stem for p in (out / "city").glob("*.jpg")} == set(expected)
    assert grid_pages >= 1  # "Load more" worked, which the dialog blocks until it is accepted
    assert report.categories[0].generation == "2021"
    photos = json.loads((out / "manifest.json").read_text())["photos"]
    assert sorted(p["id"] for p in photos if p["category"] == "beach") == sorted(e["id"] for e in earlier.entries())
    assert sorted(p["id"] for p in photos if p["category"] == "city") == sorted(expected)


@pytest.mark.browser
def test_faults_are_survived_or_reported_and_a_rerun_fetches_only_what_is_missing(tmp_path):
    out = tmp_path / "raw"
    with LocalSite(n_photos=40) as site:
        ids = site.expected_ids("beach", LIMIT)
        site.faults = Faults(rate_limit=2, retry_after_s=1, burst_503=3, truncate={ids[3]: 1},
                             wrong_type={ids[5]}, missing={ids[7]}, latency_s=0.02)
        report = _scrape(site, out)
        cat = report.categories[0]
        assert cat.downloaded == LIMIT - 2 and dict(cat.failed) == {"not_image": 1, "missing": 1}
        assert "2 failed (missing 1, not_image 1)" in report.summary_line()
        failures = json.loads((out / "scrape-run.json").read_text())["failures"]
        assert sorted((f["id"], f["reason"]) for f in failures) == sorted([(ids[5], "not_image"), (ids[7], "missing")])
        assert not (out / "beach" / f"{ids[5]}.jpg").exists() and not (out / "beach" / f"{ids[7]}.jpg").exists()
        listed = {p["id"] for p in json.loads((out / "manifest.json").read_text())["photos"]}
        assert listed == set(ids) - {ids[5], ids[7]}
        # Retry-After was waited for: the retry of a 429 came at least the asked second later.
        limited = [h for h in site.log if h.status == 429]
        assert len(limited) == 2
        for h in limited:
            assert min(x.at for x in site.log if x.path == h.path and x.at > h.at) - h.at >= 0.95
        # Truncated once, fetched again, saved whole (a 429/503 of the bursts may land on it too: retries no
        # longer hold a connection slot while they wait, so the bursts spread over more photos).
        truncated_path = site.photo_by_id(ids[3]).image_path
        assert [h.status for h in site.log if h.path == truncated_path].count(200) == 2
        before = {i: site.image_hits(i) for i in ids}
        site.faults = Faults()
        again = _scrape(site, out)
        assert again.categories[0].downloaded == 2 and again.categories[0].reused == LIMIT - 2
        assert {i for i in ids if site.image_hits(i) != before[i]} == {ids[5], ids[7]}
    assert {p.stem for p in (out / "beach").glob("*.jpg")} == set(ids)


@pytest.mark.browser
@pytest.mark.parametrize("faults,markup,message", [
    (Faults(wall="anubis-challenge"), "2025", "answered with an Anubis proof-of-work challenge"),
    (Faults(wall="anubis-deny"), "2025", "answered with an Anubis 'Access Denied' page"),
    (Faults(wall="cloudflare-challenge"), "2025", "answered with a Cloudflare challenge ('Just a moment...')"),
    (Faults(page_status=403), "2025", "answered HTTP 403"),
    (Faults(page_status=401), "2025", "answered HTTP 401"),
    (Faults(), "unknown", "no photo cards found on"),
])
def test_refusals_and_unknown_layouts_exit_1_with_their_message(tmp_path, faults, markup, message):
    out = tmp_path / "raw"
    with LocalSite(markup=markup, faults=faults) as site:
        result = CliRunner().invoke(cli, ["scrape", "--category", "beach", "--out", str(out), "--base-url",
                                          site.base_url, "--scroll-pause", "0.05", "--limit", "5"])
        images = sum(v for k, v in site.hits.items() if k.startswith("/photo-"))
        page_agents = [h.user_agent for h in site.log if h.path.startswith("/s/photos/")]
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert images == 0
    assert message in json.loads((out / "scrape-run.json").read_text())["error"]  # the run is recorded
    assert not (out / "manifest.json").exists()  # no empty manifest left behind
    if faults.wall:  # one line whose fix is the Unsplash Dataset, and the browser kept its honest User-Agent
        assert len(result.output.strip().splitlines()) == 1
        assert "--dataset" in result.output and "https://unsplash.com/data/lite/latest" in result.output
        assert page_agents and all("HeadlessChrome" in ua and "colorize/" in ua for ua in page_agents)
    if markup == "unknown":
        assert "the page layout may have changed" in result.output
        saved = out / "scrape-beach-page.html"
        assert saved.exists() and 'class="tile-7"' in saved.read_text()


def test_robots_txt_is_honoured(tmp_path):
    with LocalSite(faults=Faults(robots_disallow=True)) as site:
        result = CliRunner().invoke(cli, ["scrape", "--category", "beach", "--out", str(tmp_path / "raw"),
                                          "--base-url", site.base_url])
        pages = site.hits["/s/photos/beach"]
    assert result.exit_code == 1 and "robots.txt does not allow" in result.output
    assert pages == 0


@pytest.mark.parametrize("args,message", [
    (["--category", "../etc"], "invalid category name"),
    (["--category", "a", "--category", "b", "--query", "x"], "--query works with a single category"),
    ([], "no category given"),
])
def test_usage_mistakes_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["scrape", *args, "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "raw").exists()


def test_missing_browser_names_the_install_command(tmp_path):
    with LocalSite() as site:
        result = CliRunner().invoke(cli, ["scrape", "--category", "beach", "--out", str(tmp_path / "raw"),
                                          "--base-url", site.base_url, "--browser", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "apt-get install chromium chromium-driver" in result.output


@pytest.mark.browser
def test_browser_flags_and_dns_limited_to_allowed_hosts(tmp_path):
    from selenium.common.exceptions import WebDriverException

    from colorize.scraper.browser import chrome_options, chromium

    opts = chrome_options("/usr/bin/chromium", True, str(tmp_path), ("127.0.0.1", "*.example.org"), images=False)
    args = opts.arguments
    assert "--headless=new" in args and "--window-size=1920,1080" in args and f"--user-data-dir={tmp_path}" in args
    assert "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE *.example.org" in args
    assert "--blink-settings=imagesEnabled=false" in args and opts.binary_location == "/usr/bin/chromium"
    assert ("--no-sandbox" in args) == (os.geteuid() == 0)  # Chromium refuses to start as root without it
    with LocalSite() as site, chromium(allow_hosts=("127.0.0.1",)) as driver:
        port = site.base_url.rsplit(":", 1)[1]
        driver.get(f"http://127.0.0.1:{port}/robots.txt")
        assert "User-agent" in driver.page_source
        with pytest.raises(WebDriverException, match="ERR_NAME_NOT_RESOLVED"):
            driver.get(f"http://localhost:{port}/robots.txt")  # resolvable on any machine, but not allowed


def test_categories_file_and_query_defaults(tmp_path):
    from colorize.scraper.categories import plan_categories

    listing = tmp_path / "cats.txt"
    listing.write_text("# my categories\nbeach\n\nnew-york  # the city\nbeach\nsnow_field\n")
    assert [(c.name, c.query) for c in plan_categories(["forest"], listing, None)] == [
        ("forest", "forest"), ("beach", "beach"), ("new-york", "new york"), ("snow_field", "snow field")]
    assert [(c.name, c.query) for c in plan_categories(["beach"], None, " sandy beach ")] == [("beach", "sandy beach")]
    # An unreadable listing is a one-line usage error, not a traceback.
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfebeach\n")
    for bad in (tmp_path / "binary.txt", tmp_path / "absent.txt", tmp_path):
        with pytest.raises(UsageError, match="cannot read --categories-file"):
            plan_categories([], bad, None)


def test_a_download_that_raised_counts_as_failed(tmp_path):
    import concurrent.futures as cf
    import time

    from colorize.scraper.hosts import HostPolicy
    from colorize.scraper.skeleton import CategoryReport, ScrapeRun, write_record

    done, broke = cf.Future(), cf.Future()
    done.set_result(("downloaded", ""))
    broke.set_exception(OSError(28, "No space left on device"))
    report = CategoryReport("beach", "beach")
    run = ScrapeRun(tmp_path, [], "http://127.0.0.1", HostPolicy((), "http://127.0.0.1"), None, time.monotonic())
    run.reports, run.futures = [report], {done: (report, "a" * 11), broke: (report, "b" * 11)}
    result = write_record(run, {})
    assert report.downloaded == 1 and dict(report.failed) == {"error": 1}
    assert "1 failed (error 1)" in result.summary_line()
    record = json.loads((tmp_path / "scrape-run.json").read_text())
    assert record["failures"] == [{"category": "beach", "id": "b" * 11, "reason": "error"}]


def test_a_category_folder_linked_out_of_out_is_refused_before_anything_is_written(tmp_path):
    """scrape wrote photos and ATTRIBUTION.md through a symlinked OUT/beach into another folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "beach").symlink_to(elsewhere)
    with LocalSite() as site:
        result = CliRunner().invoke(cli, ["scrape", "--category", "beach", "--out", str(tmp_path / "raw"),
                                          "--base-url", site.base_url, "--browser", str(tmp_path / "nope")])
        hits = len(site.log)
    assert result.exit_code == 2 and "is a link to" in result.output and "refusing to write photos" in result.output
    assert not list(elsewhere.iterdir()) and hits == 0
    inside = tmp_path / "raw" / "store"
    inside.mkdir()
    (tmp_path / "raw" / "beach").unlink()
    (tmp_path / "raw" / "beach").symlink_to(inside)  # a link that stays inside OUT is the user's own layout
    with LocalSite() as site:
        result = CliRunner().invoke(cli, ["scrape", "--category", "beach", "--out", str(tmp_path / "raw"),
                                          "--base-url", site.base_url, "--browser", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "apt-get install chromium" in result.output
