"""`colorize scrape --dataset`: the Unsplash Dataset as a source, on a miniature release in the real format.

No browser: the dataset source never opens unsplash.com. The miniature's image URLs point at the local
site on 127.0.0.1, which answers 410 for one photo.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from unsplash_mini import CATEGORIES_FILE, HOSTILE_ID, write_mini

from colorize.cli import cli
from colorize.io import sha256_file
from colorize.scraper.categories import Category
from colorize.scraper.localsite.site import Faults, LocalSite
from colorize.scraper.unsplash_dataset.select import select
from colorize.scraper.unsplash_dataset.tables import UnsplashDataset

WIDTH = 64
CATS = [Category("beach", ("beach", "sandy beach")), Category("forest", ("forest",))]


def cli_args(command: str, site: LocalSite, *args: str) -> list[str]:
    """The one place these tests tell a command how to reach the local site on 127.0.0.1."""
    if command == "scrape":
        return [command, *args, "--base-url", site.base_url]  # the chosen --base-url host is allowed
    return [command, *args, "--allow-host", urlsplit(site.base_url).netloc]


def _invoke(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output  # never a traceback
    return result


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    with LocalSite(n_photos=30) as site:
        ids, paths = write_mini(site, root)
        site.faults = Faults(gone={ids.ids[4]})
        listing = root / "cats.txt"
        listing.write_text(CATEGORIES_FILE)
        yield site, ids, paths, listing


def _ranked(path: Path) -> tuple[dict, dict, dict, tuple[int, int]]:
    with UnsplashDataset(path) as ds:
        sel = select(ds, CATS, 40)
        hashes = dict(ds.hashes)
    ranked = {k: [(c.id, c.score, c.keyword) for c in v] for k, v in sel.ranked.items()}
    return ranked, sel.skipped, hashes, (sel.photo_rows, sel.keyword_rows)


def test_selection_is_the_same_from_both_namings_and_the_zip_and_follows_the_rules(mini):
    _, ids, paths, _ = mini
    p = ids.ids
    ranked, skipped, hashes, rows = _ranked(paths["tsv"])
    assert rows == ids.rows  # each shard's header is a header, and multi-line fields are one row
    assert [c[0] for c in ranked["beach"]] == [p[0], p[1], p[2], p[4], *sorted([p[5], p[6]])]
    assert [c[1] for c in ranked["beach"]] == [100.0, 88.5, 70.0, 60.0, 55.0, 55.0]
    assert ranked["beach"][2][2] == "sandy beach" and ranked["beach"][1][2] == "beach"
    assert [c[0] for c in ranked["forest"]] == [p[7], p[8], p[9], p[10], p[12]]
    assert dict(skipped["beach"]) == {"premium": 1, "bad_id": 1, "no_photo_row": 1} and not skipped["forest"]
    # every shard of the two tables read was hashed, each shard with its own header
    assert sorted(hashes) == sorted(f"{t}.tsv00{i}" for t in ("keywords", "photos") for i in range(3))
    assert hashes["keywords.tsv001"] == sha256_file(paths["tsv"] / "keywords.tsv001")
    for name in ("csv", "zip"):
        again = _ranked(paths[name])
        assert (again[0], again[1], again[3]) == (ranked, skipped, rows)
    with UnsplashDataset(paths["zip"]) as ds:
        assert (ds.root, ds.naming, ds.release().name, ds.release().version) == (
            "unsplash-research-dataset-lite-1.4.1/", ["tsv"], "lite", "1.4.1")
    with UnsplashDataset(paths["csv"]) as ds:
        assert (ds.naming, ds.release().version, ds.release().read_from) == (["csv"], "1.3.0", ("path", "CHANGELOG.md"))


def test_scrape_from_the_zip_then_the_folder_then_a_rerun_prep_and_fetch(mini, tmp_path):
    site, ids, paths, listing = mini
    out = tmp_path / "zip-raw"
    result = _invoke(cli_args("scrape", site, "--dataset", str(paths["zip"]), "--categories-file", str(listing),
                              "--min-confidence", "40", "--limit", "4", "--width", str(WIDTH), "--out", str(out)))
    assert result.exit_code == 0, result.output
    assert "8 photos in 2 categories (8 downloaded" in result.output and "missing 1" in result.output
    assert {p.stem for p in (out / "beach").glob("*.jpg")} == set(ids.beach)
    assert {p.stem for p in (out / "forest").glob("*.jpg")} == set(ids.forest)
    manifest = json.loads((out / "manifest.json").read_text())
    source = manifest["source"]
    assert source["kind"] == "unsplash-dataset" and source["release"]["name"] == "lite"
    assert source["release"]["version"] == "1.4.1" and source["file"] == paths["zip"].name
    assert source["tables"]["keywords.tsv002"] == sha256_file(paths["tsv"] / "keywords.tsv002")
    assert source["options"] == {"categories": [{"name": "beach", "keywords": ["beach", "sandy beach"]},
                                                {"name": "forest", "keywords": ["forest"]}],
                                 "min_confidence": 40.0, "limit": 4, "width": WIDTH}
    photos = {p["id"]: p for p in manifest["photos"]}
    beach = sorted((p for p in photos.values() if p["category"] == "beach"), key=lambda e: e["rank"])
    assert [e["id"] for e in beach] == ids.beach and [e["rank"] for e in beach] == [1, 2, 3, 5]
    p = ids.ids
    assert photos[p[0]]["keyword"] == "beach" and photos[p[0]]["score"] == 100.0
    assert photos[p[2]]["keyword"] == "sandy beach" and photos[p[2]]["query"] == "beach, sandy beach"
    assert photos[p[8]]["alt"] == 'A "quoted" forest over two lines'
    assert photos[p[7]]["alt"].startswith("ai: ")  # no description: the AI one
    assert photos[p[9]]["photographer"]["name"] == "Zoë Ångström-Łukasz"
    assert photos[p[10]]["photographer"] == {"username": "bad user/../x", "name": "bad user/../x", "url": ""}
    who = photos[p[1]]["photographer"]
    assert who["url"] == f"https://unsplash.com/@{who['username']}" and " " in who["name"]
    assert all(e["license"] == {"name": "Unsplash Dataset (Lite)",
                                "url": "https://github.com/unsplash/datasets/blob/master/TERMS.md"}
               for e in photos.values())
    assert all(e["image_url"].endswith(f"?fm=jpg&q=85&w={WIDTH}&fit=max&cs=srgb") for e in photos.values())
    record = json.loads((out / "scrape-run.json").read_text())
    assert record["counts"]["beach"]["failed"] == {"missing": 1}
    assert record["counts"]["beach"]["skipped"] == {"premium": 1, "bad_id": 1, "no_photo_row": 1}
    assert record["failures"] == [{"category": "beach", "id": p[4], "reason": "missing"}]
    assert "[Unsplash Dataset \\(Lite\\)](https://github.com/unsplash/datasets" in (out / "beach" / "ATTRIBUTION.md").read_text()
    assert site.image_hits(ids.premium) == 0 and site.image_hits(p[3]) == 0 and site.image_hits(p[12]) == 0
    assert not list(tmp_path.rglob(f"*{HOSTILE_ID[-1]}.jpg"))

    # The unzipped folder (1.3.0 naming) selects exactly what the zip did.
    folder_out = tmp_path / "folder-raw"
    result = _invoke(cli_args("scrape", site, "--dataset", str(paths["csv"]), "--categories-file", str(listing),
                              "--min-confidence", "40", "--limit", "4", "--width", str(WIDTH), "--out", str(folder_out)))
    assert result.exit_code == 0, result.output
    again = json.loads((folder_out / "manifest.json").read_text())["photos"]
    assert [(e["category"], e["id"], e["rank"], e["sha256"]) for e in again] == [
        (e["category"], e["id"], e["rank"], e["sha256"]) for e in manifest["photos"]]

    # A rerun keeps every verified file and downloads nothing, not even the photo it knows is gone.
    hits = {i: site.image_hits(i) for i in ids.beach + ids.forest + [p[4]]}
    assert hits[p[4]] >= 1 and manifest["missing"] == [f"beach/{p[4]}"]  # asked once per new folder
    result = _invoke(cli_args("scrape", site, "--dataset", str(paths["zip"]), "--categories-file", str(listing),
                              "--min-confidence", "40", "--limit", "4", "--width", str(WIDTH), "--out", str(out)))
    assert result.exit_code == 0 and "(0 downloaded, 8 already there" in result.output and "missing 1" in result.output
    assert hits == {i: site.image_hits(i) for i in ids.beach + ids.forest + [p[4]]}

    # prep and fetch work on it unchanged.
    shards = tmp_path / "shards"
    result = _invoke(["prep", "--src", str(out), "--out", str(shards), "--size", "32", "--bins", "8", "--augment", "0",
                      "--workers", "1", "--split", "0.5,0.25,0.25"])
    assert result.exit_code == 0, result.output
    assert sum(json.loads((shards / "manifest.json").read_text())["samples"].values()) == 8
    rebuilt = tmp_path / "rebuilt"
    result = _invoke(cli_args("fetch", site, str(out / "manifest.json"), "--out", str(rebuilt)))
    assert result.exit_code == 0, result.output
    assert "fetch: 8 ok (8 downloaded)" in result.output
    assert json.loads((rebuilt / "manifest.json").read_text())["source"] == source


def test_a_different_selection_or_source_is_refused_in_the_same_folder(mini, tmp_path):
    site, _, paths, _ = mini
    out = tmp_path / "raw"
    base = ["--dataset", str(paths["tsv"]), "--category", "forest", "--limit", "2", "--width", str(WIDTH), "--out", str(out)]
    assert _invoke(cli_args("scrape", site, *base)).exit_code == 0
    result = _invoke(cli_args("scrape", site, *base, "--min-confidence", "90"))
    assert result.exit_code == 1 and "holds another selection" in result.output
    result = _invoke(cli_args("scrape", site, "--category", "forest", "--out", str(out)))
    assert result.exit_code == 1 and "holds photos from unsplash-dataset, not unsplash-search" in result.output


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "absent.zip", "does not exist"),
    (lambda p: (p / "bad.zip").write_bytes(b"PK not a zip") and p / "bad.zip", "neither a folder nor a readable .zip"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no Unsplash Dataset tables"),
])
def test_a_wrong_dataset_path_is_a_one_line_usage_error(tmp_path, make, message):
    path = make(tmp_path)
    result = _invoke(["scrape", "--dataset", str(path), "--category", "beach", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and message in result.output and "unsplash.com/data" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_min_confidence_needs_dataset_and_a_damaged_table_is_one_line(mini, tmp_path):
    result = _invoke(["scrape", "--category", "beach", "--min-confidence", "10", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and "--min-confidence works with --dataset" in result.output
    _, _, paths, _ = mini
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(paths["zip"]) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(b"photo_id\tkeyword", b"id\tword") if "keywords" in info.filename else data)
    result = _invoke(["scrape", "--dataset", str(damaged), "--category", "beach", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1 and "has no column photo_id, keyword" in result.output


def test_categories_file_lines_and_query_keywords(tmp_path):
    from colorize.errors import UsageError
    from colorize.scraper.categories import plan_categories

    listing = tmp_path / "cats.txt"
    listing.write_text("# mine\nbeach: beach, Sandy Beach ,, \nnew-york\nforest:woods\nbeach: other\n")
    assert plan_categories(["sea"], listing) == [
        Category("sea", ("sea",)), Category("beach", ("beach", "Sandy Beach")), Category("new-york", ("new york",)),
        Category("forest", ("woods",))]
    assert [c.query for c in plan_categories([], listing)] == ["beach", "new york", "woods"]
    assert plan_categories(["dog"], None, "golden retriever, puppy") == [Category("dog", ("golden retriever", "puppy"))]
    listing.write_text("beach:\n")
    with pytest.raises(UsageError, match="line 1: category 'beach' has a ':' but no keywords"):
        plan_categories([], listing)


def test_demo_source_dataset_writes_the_gallery_as_a_release_and_scrapes_it(tmp_path):
    import dataclasses

    from colorize.demo import run as demo
    from colorize.demo.scenes import build_scene_folder

    plan = dataclasses.replace(demo.QUICK, categories=("beach", "forest"), per_category=6, image_size=(64, 48),
                               download_width=32)
    build_scene_folder(tmp_path / "gallery", plan.per_category, plan.categories, 0, plan.image_size)
    info = demo._scrape(plan, tmp_path / "gallery", "/nonexistent/chromium", "/nonexistent/driver", "dataset")(
        tmp_path / "raw")  # no browser is needed (or started) for the dataset source
    assert info["photos"] == 12
    release = tmp_path / demo.DATASET_DIR
    assert {"photos.tsv000", "photos.tsv001", "keywords.tsv000", "colors.tsv000", "DOCS.md"} <= {
        p.name for p in release.iterdir()}
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "unsplash-dataset" and manifest["source"]["release"]["version"] == "1.4.1"
    assert {p["category"] for p in manifest["photos"]} == {"beach", "forest"}
    record = json.loads((tmp_path / "raw" / "scrape-run.json").read_text())
    assert record["counts"]["beach"]["skipped"] == {"premium": 1}  # the site's Unsplash+ photo, never fetched
    assert CliRunner().invoke(cli, ["demo", "--help"]).output.count("--source [web|dataset]") == 1


def test_selection_memory_does_not_grow_with_the_keywords_table(tmp_path):
    """10x more keyword rows that match nothing must not raise the peak of Python allocations."""
    import tracemalloc

    from colorize.scraper.unsplash_dataset.writer import KEYWORD_COLUMNS, PHOTO_COLUMNS

    def release(folder: Path, noise_rows: int) -> Path:
        folder.mkdir()
        (folder / "photos.tsv000").write_text("\t".join(PHOTO_COLUMNS) + "\n" + "".join(
            f"p{i:010d}\t\thttps://images.unsplash.com/photo-1-{i}" + "\t" * (len(PHOTO_COLUMNS) - 3) + "\n"
            for i in range(50)))
        with open(folder / "keywords.tsv000", "w") as fh:
            fh.write("\t".join(KEYWORD_COLUMNS) + "\n")
            fh.writelines(f"p{i % 50:010d}\tbeach\t{i % 90}.5\t\tf\t\n" for i in range(50))
            fh.writelines(f"p{i % 50:010d}\tword {i}\t{i % 97}.25\t12\tf\t\n" for i in range(noise_rows))
        return folder

    peaks = []
    for n in (10_000, 100_000):
        path = release(tmp_path / f"r{n}", n)
        tracemalloc.start()
        with UnsplashDataset(path) as ds:
            sel = select(ds, [Category("beach", ("beach",))], 0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert sel.keyword_rows == n + 50 and len(sel.ranked["beach"]) == 50
    assert peaks[1] < peaks[0] + 256 * 1024, peaks


def _tiny_release(folder: Path) -> Path:
    """photos + keywords tables with one photo, tagged beach (the smallest release select reads)."""
    from colorize.scraper.unsplash_dataset.writer import KEYWORD_COLUMNS, PHOTO_COLUMNS

    folder.mkdir()
    (folder / "photos.tsv000").write_text("\t".join(PHOTO_COLUMNS) + "\nabcdefghijk\t\thttps://images.unsplash.com/"
                                          "photo-1-abc" + "\t" * (len(PHOTO_COLUMNS) - 3) + "\n")
    (folder / "keywords.tsv000").write_text("\t".join(KEYWORD_COLUMNS) + "\nabcdefghijk\tbeach\t90\t\tf\t\n")
    return folder


def _peak_of_select(path: Path) -> tuple[int, str]:
    """(peak bytes of Python allocations, error line) of selecting beach photos from `path`."""
    import tracemalloc

    from colorize.errors import ColorizeError

    tracemalloc.start()
    try:
        with UnsplashDataset(path) as ds:
            select(ds, [Category("beach", ("beach",))], 0)
        error = ""
    except ColorizeError as exc:
        error = exc.line()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, error


def test_a_huge_line_or_header_in_a_table_is_refused_before_it_is_held(tmp_path):
    """A 1 MB zip whose keywords table held one 1 GiB line peaked at 2.24 GB; a 2M-column header at 514 MB."""
    from colorize.scraper.unsplash_dataset.writer import KEYWORD_COLUMNS

    folder = _tiny_release(tmp_path / "release")
    huge = tmp_path / "huge.zip"
    with zipfile.ZipFile(huge, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(folder / "photos.tsv000", "photos.tsv000")
        with z.open("keywords.tsv000", "w", force_zip64=True) as fh:  # streamed: 64 MiB of 'a' in ~70 KB
            fh.write(("\t".join(KEYWORD_COLUMNS) + "\nabcdefghijk\t").encode())
            for _ in range(64):
                fh.write(b"a" * (1 << 20))
    assert huge.stat().st_size < 1 << 20
    peak, error = _peak_of_select(huge)
    assert "keywords.tsv000 has a line longer than" in error and peak < 16 << 20, (peak, error)

    wide = _tiny_release(tmp_path / "wide")
    (wide / "keywords.tsv000").write_text("\t".join(KEYWORD_COLUMNS) + "\t" + "\t".join(["c"] * 2_000_000) + "\n")
    peak, error = _peak_of_select(wide)
    assert "keywords.tsv000 has a line longer than" in error and peak < 16 << 20, (peak, error)
    (wide / "keywords.tsv000").write_text("\t".join(KEYWORD_COLUMNS) + "\t" + "\t".join(["c"] * 5000) + "\n")
    peak, error = _peak_of_select(wide)
    assert "its header has 5006 columns, over the 1024 cap" in error


def test_a_table_linked_out_of_the_release_is_not_followed_nor_echoed(tmp_path):
    folder = _tiny_release(tmp_path / "release")
    secret = tmp_path / "secret.txt"
    secret.write_text("photo_id\tTOKEN=hunter2\n")
    (folder / "keywords.tsv000").unlink()
    (folder / "keywords.tsv000").symlink_to(secret)
    result = _invoke(["scrape", "--dataset", str(folder), "--category", "beach", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1 and "keywords.tsv000" in result.output and "leads out of the release" in result.output
    assert "hunter2" not in result.output and "TOKEN" not in result.output
    (folder / "keywords.tsv000").unlink()
    secret.rename(folder / "keywords.tsv000")  # the same bytes inside the release: no column keyword
    result = _invoke(["scrape", "--dataset", str(folder), "--category", "beach", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1 and "has no column keyword" in result.output and "hunter2" not in result.output


def test_a_lite_id_with_a_trailing_newline_is_a_bad_id(tmp_path):
    from colorize.scraper.unsplash_dataset.writer import write_release

    photos = [{"photo_id": pid, "photo_image_url": f"https://images.unsplash.com/photo-1-{i}"}
              for i, pid in enumerate(("ph000000009\n", "ph000000010"))]
    keywords = [{"photo_id": p["photo_id"], "keyword": "beach", "ai_service_1_confidence": 90} for p in photos]
    folder = write_release(tmp_path / "release", photos, keywords)
    with UnsplashDataset(folder) as ds:
        sel = select(ds, [Category("beach", ("beach",))], 0)
    assert [c.id for c in sel.ranked["beach"]] == ["ph000000010"] and sel.skipped["beach"] == {"bad_id": 1}


def test_allow_host_alone_lets_the_dataset_source_use_a_mirror(mini, tmp_path):
    """Every photo failed as bad_url: a second host rule beside the policy accepted only Unsplash's hosts."""
    site, ids, paths, _ = mini
    mirror = urlsplit(site.base_url).netloc  # the release's image URLs are on 127.0.0.1:PORT
    args = ["scrape", "--dataset", str(paths["tsv"]), "--category", "forest", "--limit", "2", "--width", str(WIDTH),
            "--out", str(tmp_path / "raw")]
    result = _invoke([*args, "--allow-host", mirror])
    assert result.exit_code == 0 and "2 photos in 1 category (2 downloaded" in result.output, result.output
    got = {p.stem for p in (tmp_path / "raw" / "forest").glob("*.jpg")}
    assert len(got) == 2 and ids.ids[7] in got  # forest alone: P7 (99), then P0 (its 95 for "Forest ")
    result = _invoke([*args[:-1], str(tmp_path / "other")])  # without it, the one policy refuses the host
    assert result.exit_code == 1 and "forbidden_host 2" in result.output, result.output


def test_the_dataset_source_refuses_a_category_folder_linked_out_of_out(mini, tmp_path):
    site, _, paths, _ = mini
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "forest").symlink_to(elsewhere)
    result = _invoke(cli_args("scrape", site, "--dataset", str(paths["tsv"]), "--category", "forest", "--limit", "2",
                              "--width", str(WIDTH), "--out", str(tmp_path / "raw")))
    assert result.exit_code == 2 and "refusing to write photos through it" in result.output
    assert not list(elsewhere.iterdir())
