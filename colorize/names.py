"""The names of the files colorize writes, its dataset schema, and which category names may sit beside them.

`MANIFEST` (the manifest of a dataset folder and of a shard folder) and `DATASET_SCHEMA` (the schema of a
dataset manifest) are spelled here once; every stage reads them from this module. The rest of the module
is the one rule for category names, used everywhere:

A category becomes a folder (`<dataset>/<category>/`, `<gallery>/<category>/`) beside the files the
tools write themselves (manifest.json, fetch-run.json, stats/, ATTRIBUTION.md, ...). A category named
like one of them would make a photo folder collide with a record, or a record land inside a photo
folder, so such names are refused by scrape (`--category`), fetch (the manifest's categories), prep
(the source's categories) and anything else that takes category names.

The rule, compared case-insensitively (macOS and Windows folders are): no name starting with '.'
(hidden files, our temp files and journals); none of the names in `RESERVED_NAMES`; no name ending in
one of `RESERVED_SUFFIXES` (the kinds of file we write: a category is a word, never a file name); and
none of the device names Windows reserves (a dataset is shared and may be unpacked there).
"""

from __future__ import annotations

#: The manifest of a dataset folder (scrape, fetch) and of a shard folder (prep).
MANIFEST = "manifest.json"
#: The schema of a dataset manifest: written by scrape and fetch, and by prep for a folder without one.
DATASET_SCHEMA = "colorize.dataset/1"

# Files and folders the stages write into their output folders (the dataset folder above all).
# (`stats` is the default output folder of `colorize stats`; the rest are files.)
RESERVED_NAMES = frozenset({
    MANIFEST, "fetch-run.json", "scrape-run.json", "prep-run.json", "stats-run.json",
    "source-manifest.json", "attribution.md", "stats", "stats.npz", "bins.csv", "gallery.json",
})
RESERVED_SUFFIXES = (".json", ".jsonl", ".md", ".npz", ".csv", ".pt", ".png", ".tmp", ".lock")
WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                             *(f"lpt{i}" for i in range(10))})


def reserved_reason(name: str) -> str | None:
    """Why `name` cannot be a category (it clashes with our own files), or None when it is free."""
    folded = name.casefold()
    if folded.startswith("."):
        return "names starting with '.' are hidden files and our temp files"
    if folded in RESERVED_NAMES:
        return f"{name!r} is the name of one of colorize's own files or folders"
    if folded.endswith(RESERVED_SUFFIXES):
        return f"{name!r} ends like one of colorize's own files ({', '.join(RESERVED_SUFFIXES)})"
    if folded.split(".")[0] in WINDOWS_DEVICES:
        return f"{name!r} is a device name on Windows"
    return None
