"""The shareable dataset manifest (`<out>/manifest.json`, schema `colorize.dataset/1`) and ATTRIBUTION.md.

It is merged across categories and runs and rewritten atomically every few seconds while downloads
run, so a kill loses at most the files in flight. Entries are keyed by (category, id); every entry of a
scrape manifest is a file that is present and verified (`status: "ok"`). `fetch` may also write
`missing` / `changed` / `failed` entries into its copy. Readers must trust nothing in it: ids and
categories are validated before they become paths.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from colorize import __version__
from colorize.errors import ColorizeError
from colorize.io import atomic_write_json, atomic_write_text, read_json, utc_now
from colorize.names import DATASET_SCHEMA, MANIFEST
from colorize.scraper.cards import Photo
from colorize.scraper.urls import LICENSE, check_category, check_id, photo_file

log = logging.getLogger(__name__)

SCHEMA = DATASET_SCHEMA
MANIFEST_NAME = MANIFEST
STATUSES = ("ok", "missing", "changed", "failed")


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


def validate_entry(entry: Any, where: str) -> dict[str, Any]:
    """Check the fields that become paths or URLs; raise ColorizeError naming the manifest."""
    if not isinstance(entry, dict):
        raise ColorizeError(f"{where}: a photo entry is not an object", "fix or delete the manifest")
    try:
        check_id(entry.get("id"))
        check_category(entry.get("category"))
    except ColorizeError as exc:
        raise ColorizeError(f"{where}: {exc.what}", "the manifest is damaged or hostile; fix or delete it") from None
    if entry.get("status", "ok") not in STATUSES:
        raise ColorizeError(f"{where}: unknown status {str(entry.get('status'))[:20]!r}", "fix the manifest")
    sha = entry.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise ColorizeError(f"{where}: entry {entry['id']} has an invalid sha256", "fix the manifest")
    return entry


class Manifest:
    """An in-memory manifest guarded by a lock, saved atomically (at most every `interval` seconds)."""

    def __init__(self, path: Path, header: dict[str, Any] | None = None,
                 photos: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.header: dict[str, Any] = header or {"created": utc_now()}
        self.photos: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in photos or []:
            self.photos[(entry["category"], entry["id"])] = entry
        self._lock = threading.RLock()
        self._last_save = 0.0
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
        photos = [validate_entry(e, str(path)) for e in data["photos"]]
        header = {k: v for k, v in data.items() if k not in ("photos", "schema")}
        return cls(path, header, photos)

    def get(self, category: str, pid: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.photos.get((category, pid))
            return dict(entry) if entry else None

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.photos[(entry["category"], entry["id"])] = entry
            self.dirty = True

    def remove(self, category: str, pid: str) -> None:
        with self._lock:
            if self.photos.pop((category, pid), None) is not None:
                self.dirty = True

    def entries(self, category: str | None = None) -> list[dict[str, Any]]:
        """Entries sorted by category, rank, id (a stable order: same content, same bytes)."""
        with self._lock:
            items = [dict(e) for e in self.photos.values() if category is None or e["category"] == category]
        return sorted(items, key=lambda e: (e["category"], e.get("rank") or 0, e["id"]))

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.header)
        doc.update(schema=SCHEMA, tool_version=__version__, photos=self.entries())
        doc.setdefault("created", utc_now())
        return doc

    def save(self) -> None:
        with self._lock:
            self.header["updated"] = utc_now()
            atomic_write_json(self.path, self.to_json())
            self._last_save = time.monotonic()
            self.dirty = False

    def maybe_save(self, interval: float = 2.0) -> bool:
        """Save if something changed and `interval` seconds have passed since the last save."""
        with self._lock:
            if self.dirty and time.monotonic() - self._last_save >= interval:
                self.save()
                return True
        return False


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
