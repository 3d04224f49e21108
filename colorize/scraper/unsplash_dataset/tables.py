"""Read an Unsplash Dataset release in place: the unzipped folder or the `.zip` itself, table by table.

The release format (unsplash/datasets: DOCS.md, how-to/psql): five tables, each sharded as
`<table>.tsv000, .tsv001, ...` (1.4.x) or `<table>.csv000, ...` (1.3.0), tab-separated whatever the name
says, CSV quoting (double quotes, doubled inside; a description may hold tabs, quotes and newlines),
booleans `t`/`f`, and **every shard starts with its own header row**. Newer releases add columns, so
columns are read by header name, never by position.

Why streaming: the Full release's keywords table has hundreds of millions of rows. Rows are yielded one
at a time from the csv module reading the zip member (or file) through a small buffer, so memory does
not depend on table size; nothing is unpacked or copied to disk. The sha256 of every table file is
computed while it is read, for the manifest's `source` record.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from colorize.errors import ColorizeError, UsageError
from colorize.io import open_regular
from colorize.progress import progress

TABLES = ("photos", "keywords", "collections", "conversions", "colors")
SHARD_RE = re.compile(r"^(?P<table>[a-z_]+)\.(?P<ext>tsv|csv)(?P<index>\d+)\Z")
DATASET_URL = "https://unsplash.com/data"
LITE_URL = "https://unsplash.com/data/lite/latest"
TERMS_URL = "https://github.com/unsplash/datasets/blob/master/TERMS.md"
GET_IT = (f"download the Unsplash Dataset Lite from {LITE_URL} (terms: {TERMS_URL}); the Full release is "
          f"on request at {DATASET_URL}")
_VERSION_RE = re.compile(r"(?<![\d.])(\d+\.\d+\.\d+)(?![\d.])")
_RELEASE_RE = re.compile(r"(?:^|[^a-z])(lite|full)(?:[^a-z]|$)", re.I)
_TEXT_CAP = 256 * 1024  # bytes of DOCS.md / CHANGELOG.md read for the release name and version
_BUFFER = 1 << 20
# Bounds on what one table may make us hold, checked as bytes arrive: a line (a keywords row is ~100
# bytes, a long description a few KB) and the columns of a header (the release has about 30). Without
# them a 1 MB zip holding a 1 GiB line peaked at 2.2 GB, and a 2M-column header at 514 MB. A field is
# bounded by the csv module's field_size_limit (128 KiB), which its error names.
MAX_LINE = 1 << 20
MAX_COLUMNS = 1024


class LineTooLong(Exception):
    """A table line longer than `MAX_LINE` bytes; raised while reading, before the line is held whole."""


@dataclass(frozen=True)
class Release:
    """What the files say about the release: `name` "lite"/"full"/"" and `version` "1.2.1"/"latest"/""."""

    name: str
    version: str
    read_from: tuple[str, ...]

    @property
    def title(self) -> str:
        return {"lite": "Lite", "full": "Full"}.get(self.name, "")

    def license(self) -> dict[str, str]:
        """The per-photo license record: the dataset's terms, not the Unsplash License of the website."""
        name = f"Unsplash Dataset ({self.title})" if self.title else "Unsplash Dataset"
        return {"name": name, "url": TERMS_URL}


class _HashingReader(io.RawIOBase):
    """A raw stream that feeds every byte it reads into a sha256 (so a table is hashed as it is parsed)."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], object] | None = None) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.on_read = on_read
        self.offset = 0
        self.run = 0  # bytes since the last line end: a line is refused past MAX_LINE (+ one read's worth)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha.update(data)
        end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        self.run = self.run + n if end < 0 else n - end - 1
        self.offset += n
        if self.run > MAX_LINE:
            raise LineTooLong(f"a line longer than {MAX_LINE} bytes (before byte {self.offset})")
        if self.on_read is not None:
            self.on_read(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class UnsplashDataset:
    """An Unsplash Dataset release (folder or zip, with or without a top folder); a context manager.

    `shards[table]` lists the table's files in shard order; `hashes` gets the sha256 of each file
    once `rows()` has read it to the end.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self._zip: zipfile.ZipFile | None = None
        self.hashes: dict[str, str] = {}
        if self.path.is_dir():
            names = self._folder_names()
        elif self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise UsageError(f"--dataset {self.path} is neither a folder nor a readable .zip ({exc})",
                                 f"give the Unsplash Dataset's .zip or its unzipped folder; {GET_IT}") from None
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            raise UsageError(f"--dataset {self.path} does not exist", f"give the .zip or the unzipped folder; {GET_IT}")
        self.root, self.shards = _find_tables(names, str(self.path))
        self.naming = sorted({PurePosixPath(s).suffix[1:4] for files in self.shards.values() for s in files})

    def __enter__(self) -> UnsplashDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def _folder_names(self) -> list[str]:
        """Files at the top of the folder and one level down (a folder unzipped with its top folder)."""
        names = []
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if entry.is_file():
                names.append(entry.name)
            elif entry.is_dir() and not entry.name.startswith("."):
                names += [f"{entry.name}/{e.name}" for e in os.scandir(entry.path) if e.is_file()]
        return names

    def _open(self, name: str) -> BinaryIO:
        """A member of the zip, or a file of the folder; a link that leads out of the folder is not followed
        (a table linked to /proc/self/environ was read, and its bytes shown in the error)."""
        if self._zip is not None:
            return self._zip.open(name)
        real = (self.path / name).resolve()
        if not real.is_relative_to(self.path.resolve()):
            raise OSError(errno.EXDEV, "a link that leads out of the release folder (not followed)", name)
        return open_regular(real)

    def _read_text(self, name: str) -> str:
        try:
            with self._open(name) as fh:
                return fh.read(_TEXT_CAP).decode("utf-8", "replace")
        except (OSError, KeyError, zipfile.BadZipFile):
            return ""

    def scan(self, table: str, required: Sequence[str], consume: Callable[[Iterator[list[str]], dict[str, int]], None]
             ) -> None:
        """Call `consume(csv_rows, column_index)` for each shard of `table`, after its header, shard by shard.

        The hot loop (millions of keyword rows) lives in `consume` itself, over the csv reader directly:
        no per-row layer in between. A row may be shorter than the header (read missing cells as absent).
        """
        if table not in self.shards:
            raise UsageError(f"{self.path} has no {table} table ({table}.tsv000 or {table}.csv000)",
                             f"give the whole Unsplash Dataset release; {GET_IT}")
        bar = progress(total=sum(self._size(n) for n in self.shards[table]), desc=table, unit="B", unit_scale=True)
        with bar:
            for name in self.shards[table]:
                self._scan_shard(name, required, consume, bar.update)

    def _size(self, name: str) -> int:
        return self._zip.getinfo(name).file_size if self._zip is not None else (self.path / name).stat().st_size

    def _scan_shard(self, name: str, required: Sequence[str],
                    consume: Callable[[Iterator[list[str]], dict[str, int]], None], on_read: Callable) -> None:
        """One shard: header, `consume`, then the sha256 of the whole file into `hashes`."""
        where = f"{self.path.name}:{name}"
        reader = None
        try:
            raw = _HashingReader(self._open(name), on_read)
            text = io.TextIOWrapper(io.BufferedReader(raw, _BUFFER), encoding="utf-8", newline="")
            reader = csv.reader(text, delimiter="\t", quotechar='"')
            with text:
                header = next(reader, None)
                if header is not None and len(header) > MAX_COLUMNS:
                    raise ColorizeError(f"{where}: its header has {len(header)} columns, over the {MAX_COLUMNS} cap",
                                        "this is not an Unsplash Dataset table, or the download is damaged")
                if header is not None:  # else an empty shard
                    index = {h.strip().lstrip("\ufeff").lower(): i for i, h in enumerate(header)}
                    missing = [c for c in required if c not in index]
                    if missing:
                        raise ColorizeError(f"{where} has no column {', '.join(missing)} "  # never its bytes
                                            f"(its header has {len(header)} other columns)",
                                            "this is not an Unsplash Dataset table, or the download is damaged")
                    consume(reader, index)
                while text.read(_BUFFER):  # to the end, so the hash covers the whole file
                    pass
        except LineTooLong as exc:
            raise ColorizeError(f"{where} has {exc}", "this is not an Unsplash Dataset table, or the download is "
                                "damaged; download it again") from None
        except csv.Error as exc:
            raise ColorizeError(f"{where}, line {reader.line_num if reader else 0}: {exc}",
                                "the table is damaged; download the dataset again") from None
        except UnicodeDecodeError:
            raise ColorizeError(f"{where} is not UTF-8 text", "the download is damaged; download it again") from None
        except OSError as exc:
            raise ColorizeError(f"cannot read {where}: {exc.strerror or type(exc).__name__}",
                                "give the release as it was downloaded (its files, not links to elsewhere)") from None
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ColorizeError(f"cannot read {where} ({type(exc).__name__}: {exc})",
                                "the download is damaged or incomplete; download it again") from None
        self.hashes[name] = raw.sha.hexdigest()

    def release(self) -> Release:
        """Release name and version from the file names, then CHANGELOG.md / DOCS.md / README.md if shipped."""
        name = version = ""
        found: list[str] = []
        labels = [(self.path.name, "path")] + ([(self.root.rstrip("/"), "top folder")] if self.root else [])
        for label, what in labels:
            stem = re.sub(r"\.zip$", "", label, flags=re.I)
            if not name and (m := _RELEASE_RE.search(stem)):
                name, found = m.group(1).lower(), found + [what]
            if not version and (m := _VERSION_RE.search(stem)):
                version, found = m.group(1), found + [what]
            if not version and re.search(r"(?:^|[^a-z])latest(?:[^a-z]|$)", stem, re.I):
                version, found = "latest", found + [what]
        for doc in ("CHANGELOG.md", "DOCS.md", "README.md"):
            text = self._read_text(self.root + doc) if (self.root + doc) in self._all_names() else ""
            if not text:
                continue
            if version in ("", "latest") and (m := re.search(r"^#+\s*v?(\d+\.\d+\.\d+)", text, re.M)):
                version, found = m.group(1), found + [doc]  # the newest release heads the changelog
            first_heading = next((ln for ln in text.splitlines() if ln.startswith("#")), "")
            if not name and (m := _RELEASE_RE.search(first_heading)):
                name, found = m.group(1).lower(), found + [doc]
        return Release(name, version, tuple(dict.fromkeys(found)))

    def _all_names(self) -> set[str]:
        if self._zip is not None:
            return set(self._zip.namelist())
        return set(self._folder_names())


def pick(index: dict[str, int], columns: Sequence[str]) -> Callable[[list[str]], tuple[str, ...]]:
    """A row -> tuple of `columns` getter (a column the shard lacks, or a short row, reads "")."""
    picks = [index.get(c, -1) for c in columns]

    def padded(row: list[str]) -> tuple[str, ...]:
        n = len(row)
        return tuple(row[i] if 0 <= i < n else "" for i in picks)

    if -1 in picks or len(picks) < 2:
        return padded
    fast = itemgetter(*picks)

    def get(row: list[str]) -> tuple[str, ...]:
        try:
            return fast(row)
        except IndexError:  # a short row
            return padded(row)

    return get


def _find_tables(names: list[str], where: str) -> tuple[str, dict[str, list[str]]]:
    """(root prefix, {table: shard names in shard order}) of the one folder that holds the tables."""
    by_root: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for name in names:
        path = PurePosixPath(name)
        m = SHARD_RE.match(path.name)
        if not m or m.group("table") not in TABLES or any(p.startswith(("__MACOSX", ".")) for p in path.parts):
            continue
        root = "" if str(path.parent) == "." else f"{path.parent}/"
        by_root.setdefault(root, {}).setdefault(m.group("table"), []).append((int(m.group("index")), name))
    roots = [r for r, tables in by_root.items() if "keywords" in tables and "photos" in tables]
    if not roots:
        raise UsageError(f"no Unsplash Dataset tables (photos.tsv000, keywords.tsv000...) in {where}",
                         f"give the Unsplash Dataset's .zip or its unzipped folder; {GET_IT}")
    if len(roots) > 1:
        raise UsageError(f"{where} holds more than one dataset ({', '.join(sorted(r or './' for r in roots))})",
                         "give the folder or zip of one release")
    tables = by_root[roots[0]]
    return roots[0], {t: [n for _, n in sorted(files)] for t, files in tables.items()}
