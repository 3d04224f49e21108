"""The local Unsplash-like site serves what the scraper tests rely on (no browser needed here)."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from colorize.scraper.cards import bot_wall, parse_page
from colorize.scraper.localsite.site import Faults, LocalSite, stable_id


@pytest.fixture
def site():
    with LocalSite(n_photos=30) as s:
        yield s


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        im.load()
        return im.size


def test_first_page_has_twenty_cards_and_load_more_then_grid_pages(site):
    html = requests.get(f"{site.base_url}/s/photos/beach?license=free", timeout=10).text
    assert "Load more" in html
    _, cards = parse_page(html, site.base_url)
    assert len(cards) == 20
    page2 = requests.get(f"{site.base_url}/_grid?query=beach&page=2", timeout=10)
    _, more = parse_page(page2.text, site.base_url)
    assert len(more) == min(20, len(site.cards("beach")) - 20)
    last = requests.get(f"{site.base_url}/_grid?query=beach&page=9", timeout=10)
    assert last.headers["X-Last-Page"] == "1" and not last.text.strip()


def test_images_come_at_the_requested_width_and_hits_are_counted(site):
    photo = site.cards("beach")[0].photo
    url = site.base_url + photo.image_path
    small = requests.get(url, params={"w": 120, "fm": "jpg"}, timeout=10)
    assert small.headers["Content-Type"] == "image/jpeg"
    assert _jpeg_size(small.content)[0] == 120
    huge = requests.get(url, params={"w": 99999}, timeout=10)
    assert _jpeg_size(huge.content)[0] == photo.width  # fit=max never upscales
    assert site.image_hits(photo.id) == 2
    assert requests.get(url, params={"w": 120}, timeout=10).content == small.content  # deterministic


def test_gallery_folders_become_categories_with_stable_ids(tmp_path):
    for cat, colors in {"beach": [(10, 120, 200), (200, 180, 90)], "city": [(90, 90, 90)]}.items():
        (tmp_path / cat).mkdir()
        for i, color in enumerate(colors):
            Image.new("RGB", (300, 200), color).save(tmp_path / cat / f"img{i}.png")
    (tmp_path / "beach" / "notes.txt").write_text("not an image")
    with LocalSite(gallery=tmp_path) as site:
        assert site.categories() == ["beach", "city"]
        ids = site.expected_ids("beach", 10)
        assert ids == [stable_id((tmp_path / "beach" / f"img{i}.png").read_bytes()) for i in range(2)]
        assert site.expected_ids("nothing", 5) == []
        photo = site.photo_by_id(ids[1])
        data = requests.get(site.base_url + photo.image_path, params={"w": 150}, timeout=10).content
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (150, 100)
            r, g, b = im.convert("RGB").getpixel((75, 50))
            assert abs(r - 200) < 8 and abs(g - 180) < 8 and abs(b - 90) < 8  # the gallery's own picture
    with LocalSite(gallery=tmp_path) as again:
        assert again.expected_ids("beach", 10) == ids  # stable across runs


def test_faults_answer_as_configured(site):
    photos = [c.photo for c in site.cards("beach") if c.kind == "free"][:4]
    url = [site.base_url + p.image_path + "?w=64" for p in photos]
    site.faults = Faults(rate_limit=1, retry_after_s=1, missing={photos[1].id}, gone={photos[2].id},
                         wrong_type={photos[3].id})
    first = requests.get(url[0], timeout=10)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert requests.get(url[0], timeout=10).status_code == 200
    assert requests.get(url[1], timeout=10).status_code == 404
    assert requests.get(url[2], timeout=10).status_code == 410
    assert requests.get(url[3], timeout=10).headers["Content-Type"].startswith("text/html")
    site.faults = Faults(burst_503=2, truncate={photos[0].id: 1})
    assert [requests.get(url[0], timeout=10).status_code for _ in range(2)] == [503, 503]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url[0], timeout=10)
    assert _jpeg_size(requests.get(url[0], timeout=10).content)[0] == 64


def test_page_faults_robots_and_bot_wall(site):
    robots = requests.get(site.base_url + "/robots.txt", timeout=10).text
    assert "Allow: /s/photos/" in robots
    site.faults = Faults(robots_disallow=True, wall="anubis-challenge")
    assert "Disallow: /s/" in requests.get(site.base_url + "/robots.txt", timeout=10).text
    assert bot_wall(requests.get(site.base_url + "/s/photos/beach", timeout=10).text) == "anubis-challenge"
    for wall, status in (("anubis-deny", 403), ("cloudflare-challenge", 403)):
        site.faults = Faults(wall=wall)
        page = requests.get(site.base_url + "/s/photos/beach", timeout=10)
        assert page.status_code == status and bot_wall(page.text) == wall
    site.faults = Faults(page_status=403)
    assert requests.get(site.base_url + "/s/photos/beach", timeout=10).status_code == 403
