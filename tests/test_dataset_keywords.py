"""`colorize scrape --dataset PATH --list-keywords`: the release's keywords with photo counts, streamed.

On the miniature release (tests/unsplash_mini.py): its keyword rows, counted by the selection's rules
(trimmed, lower-cased; a row's score as `select.row_score` gives it), in the tsv folder and the zip.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from unsplash_mini import tables, write_mini

from colorize.cli import cli
from colorize.scraper.localsite.site import LocalSite
from colorize.scraper.unsplash_dataset.keywords import RECORD_FILE, count_keywords
from colorize.scraper.unsplash_dataset.tables import UnsplashDataset


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    with LocalSite(n_photos=30) as site:
        ids, paths = write_mini(site, root)
        _, _, keyword_rows = tables(site)
    return ids, paths, keyword_rows


def _expected(keyword_rows: list[dict], min_confidence: float) -> list[tuple[str, int, int]]:
    """The counts worked out from the rows the miniature was written from (not from the reader)."""
    photos, qualifying = Counter(), Counter()
    for row in keyword_rows:
        k = row["keyword"].strip().lower()
        photos[k] += 1
        score = 100.0 if row["suggested_by_user"] == "t" else max(
            float(row["ai_service_1_confidence"] or 0), float(row["ai_service_2_confidence"] or 0))
        qualifying[k] += score >= min_confidence
    return [(k, n, qualifying[k]) for k, n in sorted(photos.items(), key=lambda kv: (-kv[1], kv[0]))]


@pytest.mark.parametrize("which", ["tsv", "zip"])
def test_list_keywords_prints_the_table_and_writes_the_record(mini, tmp_path, which):
    _, paths, keyword_rows = mini
    out = tmp_path / "raw"
    result = CliRunner().invoke(cli, ["scrape", "--dataset", str(paths[which]), "--list-keywords", "6",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = _expected(keyword_rows, 50)
    lines = result.output.splitlines()
    assert lines[0].split() == ["keyword", "photos", ">=", "50"]
    shown = [line.rsplit(None, 2) for line in lines[1:7]]
    assert [(k, int(n), int(q)) for k, n, q in shown] == [
        (k if k.isprintable() else repr(k), n, q) for k, n, q in expected[:6]]
    assert ("beach", 10, 7) in expected[:6] and ("forest", 7, 6) in expected[:6]  # " BEACH" and "Forest " count
    assert f"6 most common of {len(expected)} keywords in {len(keyword_rows)} keyword rows" in result.output
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["command"] == "scrape --list-keywords" and record["params"]["min_confidence"] == 50
    assert [(r["keyword"], r["photos"], r["qualifying"]) for r in record["keywords"]] == expected[:6]
    assert record["counts"] == {"keyword_rows": len(keyword_rows), "distinct_keywords": len(expected)}
    assert len(record["tables"]) >= 2  # every keywords shard, with its sha256
    assert not (out / "manifest.json").exists()  # listing downloads nothing


def test_min_confidence_changes_only_the_qualifying_column(mini, tmp_path):
    _, paths, keyword_rows = mini
    with UnsplashDataset(paths["tsv"]) as ds:
        photos, qualifying, rows = count_keywords(ds, 90)
    assert rows == len(keyword_rows)
    assert sorted((k, photos[k], qualifying[k]) for k in photos) == sorted(_expected(keyword_rows, 90))
    assert qualifying["beach"] == 3  # user-suggested P0 and the premium and hostile rows at 100; P1 is 88.5


def test_list_keywords_needs_a_release_and_a_keyword_is_shown_escaped(mini, tmp_path):
    result = CliRunner().invoke(cli, ["scrape", "--list-keywords", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and "add --dataset PATH" in result.output
    _, paths, _ = mini
    result = CliRunner().invoke(cli, ["scrape", "--dataset", str(paths["csv"]), "--list-keywords",
                                      "--out", str(tmp_path / "raw")])
    assert result.exit_code == 0 and "'sky\\tline'" in result.output and "\t" not in result.output


def test_scrape_dataset_help_is_help_not_a_path(tmp_path):
    result = CliRunner().invoke(cli, ["scrape", "--dataset", "--help"])
    assert result.exit_code == 0 and "scrape [OPTIONS]" in result.output and "--list-keywords" in result.output
    result = CliRunner().invoke(cli, ["scrape", "--dataset", "--category", "beach"])
    assert result.exit_code == 2 and "--dataset needs a path, got the option --category" in result.output
    assert "Traceback" not in result.output and "no category given" not in result.output


def test_counting_memory_does_not_grow_with_the_rows(tmp_path):
    """10x more keyword rows over the same words must not raise the peak of Python allocations."""
    import tracemalloc

    from colorize.scraper.unsplash_dataset.writer import KEYWORD_COLUMNS, PHOTO_COLUMNS

    def release(folder: Path, rows: int) -> Path:
        folder.mkdir()
        (folder / "photos.tsv000").write_text("\t".join(PHOTO_COLUMNS) + "\n")
        with open(folder / "keywords.tsv000", "w") as fh:
            fh.write("\t".join(KEYWORD_COLUMNS) + "\n")
            fh.writelines(f"p{i:010d}\tword {i % 300}\t{i % 97}.25\t12\tf\t\n" for i in range(rows))
        return folder

    peaks = []
    for n in (10_000, 100_000):
        path = release(tmp_path / f"r{n}", n)
        tracemalloc.start()
        with UnsplashDataset(path) as ds:
            photos, _, rows = count_keywords(ds, 50)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert rows == n and len(photos) == 300
    assert peaks[1] < peaks[0] + 256 * 1024, peaks
