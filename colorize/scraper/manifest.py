"""The shareable dataset manifest (`<out>/manifest.json`, schema `colorize.dataset/1`) and ATTRIBUTION.md.

It is merged across categories and runs and rewritten atomically every few seconds while downloads
run, so a kill loses at most the files in flight. Entries are keyed by (category, id); every entry of a
scrape manifest is a file that is present and verified (`status: "ok"`). `fetch` may also write
`missing` / `changed` / `failed` entries into its copy. Readers must trust nothing in it: ids and
categories are validated before they become paths.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from colorize import __version__
from colorize.errors import ColorizeError, UsageError
from colorize.io import atomic_write_text, dumps_json, read_json, utc_now
from colorize.names import DATASET_SCHEMA, MANIFEST
from colorize.scraper.cards import Photo
from colorize.scraper.urls import LICENSE, check_category, check_id, photo_file

log = logging.getLogger(__name__)

SCHEMA = DATASET_SCHEMA
MANIFEST_NAME = MANIFEST
STATUSES = ("ok", "missing", "changed", "failed")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
# A save costs time in proportion to the manifest; saving no more often than this many times its last
# cost keeps the periodic saves under 1/(1 + SAVE_COST_FACTOR) of a run, whatever the manifest's size.
SAVE_COST_FACTOR = 10.0


def photo_entry(photo: Photo, category: str, query: str, image_url: str, sha256: str, nbytes: int,
                width: int, height: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One manifest entry: the contract's fields, plus the source's own (`extra`: keyword, score, license)."""
    entry = {
        "id": photo.id, "category": category, "query": query, "rank": photo.rank, "slug": photo.slug,
        "page_url": photo.page_url, "image_url": image_url, "file": photo_file(category, photo.id),
        "sha256": sha256, "bytes": nbytes, "width": width, "height": height, "alt": photo.alt,
        "photographer": {"username": photo.photographer.username, "name": photo.photographer.name,
                         "url": photo.photographer.url},
        "license": dict(LICENSE), "scraped_at": utc_now(), "status": "ok",
    }
    entry.update(extra or {})
    return entry


def search_source(base_url: str) -> dict[str, Any]:
    """The manifest's `source` record for the web search scrape."""
    return {"kind": "unsplash-search", "base_url": base_url}


def check_source(manifest: Manifest, source: dict[str, Any]) -> None:
    """Refuse to add photos to a dataset folder that holds another source's (or another selection's) photos.

    A web scrape manifest from before the `source` record counts as `unsplash-search`. A dataset
    selection is kept whole: its manifest must be rebuildable from its release and options alone.
    """
    if not manifest.photos:
        return
    old = manifest.header.get("source") or {"kind": "unsplash-search"}
    if old.get("kind") != source["kind"]:
        raise ColorizeError(f"{manifest.path.parent} holds photos from {old.get('kind')}, not {source['kind']}",
                            "write to another --out folder (one source per dataset folder)")
    if source["kind"] == "unsplash-dataset" and any(old.get(k) != source.get(k) for k in ("tables", "options")):
        raise ColorizeError(f"{manifest.path.parent} holds another selection from the Unsplash Dataset "
                            "(other release files or options)", "write to another --out folder, or rerun with the "
                            "same release and options (they are in its manifest.json under \"source\")")


def validate_entry(entry: Any, where: str, categories: set[str] | None = None) -> dict[str, Any]:
    """Check the fields that become paths or URLs; raise ColorizeError naming the manifest.

    A sha256 must be 64 hex digits; it is stored lower-case, the form `hashlib` gives, so a photo whose
    manifest spells its hash in capitals is not taken for a changed one. `categories` caches the names
    already checked (a manifest of a million photos has a handful of categories).
    """
    if not isinstance(entry, dict):
        raise ColorizeError(f"{where}: a photo entry is not an object", "fix or delete the manifest")
    try:
        check_id(entry.get("id"))
        category = entry.get("category")
        if categories is None or category not in categories:
            check_category(category)
            if categories is not None:
                categories.add(category)
    except ColorizeError as exc:
        raise ColorizeError(f"{where}: {exc.what}", "the manifest is damaged or hostile; fix or delete it") from None
    if entry.get("status", "ok") not in STATUSES:
        raise ColorizeError(f"{where}: unknown status {str(entry.get('status'))[:20]!r}", "fix the manifest")
    sha = entry.get("sha256")
    if sha is not None:
        if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
            raise ColorizeError(f"{where}: entry {entry['id']} has an invalid sha256 (not 64 hex digits)",
                                "fix the manifest")
        entry["sha256"] = sha.lower()
    return entry


def check_category_folders(out: Path, categories: list[str]) -> None:
    """Refuse to write photos through `out/<category>` when it is a link that leads out of `out`.

    Files are written atomically (a link *to a file* is replaced, never followed), but a category folder
    that is a symlink would put photos and ATTRIBUTION.md in another folder; fetch refuses that too.
    """
    root = Path(out).resolve()
    for category in categories:
        folder = Path(out) / check_category(category)
        if folder.is_symlink() and not folder.resolve().is_relative_to(root):
            raise UsageError(f"{folder} is a link to {str(folder.resolve())[:120]}, outside {out}; refusing to "
                             "write photos through it", "remove the link, or give another --out")


def _unique(photos: list[dict[str, Any]], where: str) -> dict[tuple[str, str], dict[str, Any]]:
    """{(category, id): entry}; a photo listed twice with two hashes is refused (which one is the photo?)."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in photos:
        key = (entry["category"], entry["id"])
        seen = by_key.setdefault(key, entry)
        if seen is not entry and seen.get("sha256") != entry.get("sha256"):
            raise ColorizeError(f"{where}: photo {key[0]}/{key[1]} is listed twice with different sha256 "
                                f"({str(seen.get('sha256'))[:12]}... and {str(entry.get('sha256'))[:12]}...)",
                                "the manifest is damaged or was merged by hand; keep one of the two entries")
    return by_key


class Manifest:
    """An in-memory manifest guarded by a lock, saved atomically (at most every `interval` seconds)."""

    def __init__(self, path: Path, header: dict[str, Any] | None = None,
                 photos: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.header: dict[str, Any] = header or {"created": utc_now()}
        self.photos: dict[tuple[str, str], dict[str, Any]] = _unique(photos or [], str(self.path))
        self._lock = threading.RLock()
        self._last_save = 0.0
        self._save_seconds = 0.0
        self._encoded: dict[tuple[str, str], str] = {}  # entry JSON as `save` writes it; dropped when it changes
        self.dirty = False

    @classmethod
    def load(cls, path: Path, missing_ok: bool = True) -> Manifest:
        """Read and validate a manifest; a missing file gives an empty one when `missing_ok`."""
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(path)
            raise ColorizeError(f"manifest not found: {path}", "give the path of a manifest.json")
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise ColorizeError(f"cannot read manifest {path}: {exc}", "fix or delete the file") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("photos"), list):
            raise ColorizeError(f"{path} is not a {SCHEMA} manifest", "give a manifest written by colorize scrape")
        seen: set[str] = set()
        photos = [validate_entry(e, str(path), seen) for e in data["photos"]]
        header = {k: v for k, v in data.items() if k not in ("photos", "schema")}
        return cls(path, header, photos)

    def get(self, category: str, pid: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.photos.get((category, pid))
            return dict(entry) if entry else None

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            key = (entry["category"], entry["id"])
            self.photos[key] = entry
            self._encoded.pop(key, None)
            self.dirty = True

    def remove(self, category: str, pid: str) -> None:
        with self._lock:
            if self.photos.pop((category, pid), None) is not None:
                self._encoded.pop((category, pid), None)
                self.dirty = True

    def mark_missing(self, category: str, pid: str) -> None:
        """Record that a photo answered 404/410, in the header's `missing` list ("category/id", sorted)."""
        with self._lock:
            gone = set(self.known_missing())
            gone.add(photo_file(category, pid)[: -len(".jpg")])
            self.header["missing"] = sorted(gone)
            self.dirty = True

    def known_missing(self) -> frozenset[str]:
        """The "category/id" of photos an earlier run found gone (ignoring anything malformed there)."""
        with self._lock:
            listed = self.header.get("missing")
            return frozenset(m for m in listed if isinstance(m, str)) if isinstance(listed, list) else frozenset()

    def entries(self, category: str | None = None) -> list[dict[str, Any]]:
        """Entries sorted by category, rank, id (a stable order: same content, same bytes)."""
        with self._lock:
            items = [dict(e) for e in self.photos.values() if category is None or e["category"] == category]
        return sorted(items, key=_order)

    def by_category(self) -> dict[str, list[dict[str, Any]]]:
        """{category: its entries in `entries` order}, in one pass (not one pass per category)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for entry in self.entries():
            out.setdefault(entry["category"], []).append(entry)
        return out

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.header)
        doc.update(schema=SCHEMA, tool_version=__version__, photos=self.entries())
        doc.setdefault("created", utc_now())
        return doc

    def to_text(self) -> str:
        """`io.dumps_json(self.to_json())`, byte for byte, without encoding every entry again on every save.

        The indented encoder is pure Python (slow); a manifest of 33k photos took seconds per save, and
        saves every few seconds made `fetch` superlinear. Each entry is encoded once (until it changes)
        at its depth in the document: JSON strings hold no raw newline, so re-indenting is a replace.
        """
        with self._lock:
            keys = sorted(self.photos, key=lambda k: _order(self.photos[k]))
            parts = []
            for key in keys:
                text = self._encoded.get(key)
                if text is None:
                    text = self._encoded[key] = dumps_json(self.photos[key]).rstrip("\n").replace("\n", "\n    ")
                parts.append(text)
            doc = dict(self.header)
            marker = f"photos-{secrets.token_hex(16)}"
            doc.update(schema=SCHEMA, tool_version=__version__, photos=marker)
            doc.setdefault("created", utc_now())
        photos = "[\n    " + ",\n    ".join(parts) + "\n  ]" if parts else "[]"
        return dumps_json(doc).replace(json.dumps(marker), photos, 1)

    def save(self) -> None:
        with self._lock:
            started = time.monotonic()
            self.header["updated"] = utc_now()
            atomic_write_text(self.path, self.to_text())
            self._last_save = time.monotonic()
            self._save_seconds = self._last_save - started
            self.dirty = False

    def maybe_save(self, interval: float = 2.0) -> bool:
        """Save if something changed and `interval` seconds (or `SAVE_COST_FACTOR` times the last save's
        cost, if more) have passed since the last save."""
        with self._lock:
            wait = max(interval, SAVE_COST_FACTOR * self._save_seconds)
            if self.dirty and time.monotonic() - self._last_save >= wait:
                self.save()
                return True
        return False


def _order(entry: dict[str, Any]) -> tuple:
    return entry["category"], entry.get("rank") or 0, entry["id"]


def _md(text: str) -> str:
    """Escape Markdown link syntax in untrusted text (names, alt)."""
    out = " ".join(str(text).split())
    for ch in "\\[]()*_`<>|":
        out = out.replace(ch, "\\" + ch)
    return out


def _link(url: object) -> str:
    """An http(s) URL made safe inside a Markdown link target, or "" for anything else."""
    url = str(url or "")
    if not url.startswith(("http://", "https://")):
        return ""
    for ch, code in ((" ", "%20"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E"), ("\n", ""), ("\r", "")):
        url = url.replace(ch, code)
    return url


def write_attribution(out: Path, category: str, entries: list[dict[str, Any]]) -> Path:
    """`<out>/<category>/ATTRIBUTION.md`: "Photo by <name> on Unsplash", with links, one line per photo."""
    terms = (entries[0].get("license") if entries else None) or LICENSE  # the dataset's terms, or the site's
    lines = [f"# Attribution: {_md(category)}", "",
             f"Photos from Unsplash under the [{_md(terms.get('name', ''))}]({_link(terms.get('url'))}), listed as the "
             "Unsplash guidelines ask. For personal research use within Unsplash's terms.", ""]
    for e in entries:
        who = e.get("photographer") or {}
        name = _md(who.get("name") or who.get("username") or "an Unsplash photographer")
        person = f"[{name}]({_link(who.get('url'))})" if _link(who.get("url")) else name
        page = _link(e.get("page_url")) or "https://unsplash.com"
        lines.append(f"- `{e['id']}.jpg`: Photo by {person} on [Unsplash]({page})")
    path = Path(out) / check_category(category) / "ATTRIBUTION.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
