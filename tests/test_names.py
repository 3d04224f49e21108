"""Reserved category names: one rule (colorize.names), refused by scrape, fetch and prep alike."""

from __future__ import annotations

import json

import pytest

from colorize.errors import ColorizeError, UsageError
from colorize.names import reserved_reason
from colorize.scraper.manifest import Manifest
from colorize.scraper.urls import check_category

RESERVED = ["manifest.json", "Manifest.JSON", "fetch-run.json", "scrape-run.json", "stats", "source-manifest.json",
            "ATTRIBUTION.md", "notes.md", "x.npz", "bins.csv", "nul", "COM1", "con.txt"]


@pytest.mark.parametrize("name", RESERVED)
def test_names_of_our_own_files_are_reserved(name):
    assert reserved_reason(name) is not None
    with pytest.raises(UsageError, match="reserved category name") as err:
        check_category(name)  # scrape --category
    assert err.value.exit_code == 2


@pytest.mark.parametrize("name", [".hidden", ".tmp-x"])
def test_hidden_names_are_reserved(name):
    assert "'.'" in reserved_reason(name)


@pytest.mark.parametrize("name", ["beach", "new-york", "st.louis", "stats2", "json", "color", "a_b"])
def test_ordinary_names_are_free(name):
    assert reserved_reason(name) is None and check_category(name) == name


def test_fetch_refuses_a_manifest_naming_a_reserved_category(tmp_path):
    """A shared manifest whose category would put photos in a folder named manifest.json."""
    entry = {"id": "abcdefghijk", "category": "fetch-run.json", "file": "fetch-run.json/abcdefghijk.jpg",
             "status": "ok", "image_url": "https://images.unsplash.com/photo-1-a"}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": "colorize.dataset/1", "photos": [entry]}))
    with pytest.raises(ColorizeError, match="reserved category name 'fetch-run.json'"):
        Manifest.load(path, missing_ok=False)
