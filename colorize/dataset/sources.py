"""Where prep's photos come from: a scraped dataset's manifest.json, or plain category folders.

Both are untrusted: ids must look like ids, file paths must stay inside the dataset folder, and a
photo whose status is not "ok" or whose file is missing is listed with the reason instead of used.
A folder without a manifest gets one derived from its files (id = first 16 hex of the sha256), so its
hash identifies the input of a prep run just like a scraped manifest's does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from colorize.dataset.images import MAX_FILE_BYTES
from colorize.errors import ColorizeError
from colorize.imaging import IMAGE_EXTS
from colorize.io import dumps_json, not_regular_reason, read_json, sha256_bytes, sha256_file
from colorize.names import DATASET_SCHEMA, MANIFEST, reserved_reason

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class Photo:
    id: str
    category: str
    file: str  # POSIX path relative to the source folder (what the manifest and skip list show)
    sha256: str | None = None


def _safe_relpath(src: Path, rel: str) -> Path | None:
    """`src/rel` if `rel` is a plain relative path that stays inside `src` (ids and paths are untrusted)."""
    if not rel or rel.startswith(("/", "\\")) or "\\" in rel or any(p in ("", ".", "..") for p in rel.split("/")):
        return None
    path = src / rel
    try:
        path.resolve().relative_to(src.resolve())
    except ValueError:
        return None
    return path


def _file_problem(path: Path) -> tuple[str | None, os.stat_result | None]:
    """(why `path` cannot be read as a photo, its stat): missing, or a FIFO, socket, device or folder.

    Checked with stat before anything opens the file: opening a FIFO named x.jpg would block forever.
    """
    try:
        st = path.stat()
    except OSError as exc:
        return ("file is missing" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc.strerror or exc})"), None
    reason = not_regular_reason(st.st_mode)
    return reason, (None if reason else st)


def _hash_or_none(path: Path) -> str | None:
    """The file's sha256, or None when it cannot be read (no permission, swapped for a FIFO since stat)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def _category_problem(category: str) -> str | None:
    why = reserved_reason(category)
    return f"reserved category name ({why})" if why else None


MAX_HOSTS = 20


@dataclass
class Source:
    """What a prep run reads: the photos, what was skipped before decoding, and the input's identity."""

    photos: list[Photo]
    skipped: list[dict[str, str]]
    manifest_sha256: str  # of manifest.json, or of `derived_manifest` for a plain folder
    kind: str  # "manifest" or "folder"
    derived_manifest: str | None = None  # the manifest text derived from a plain folder
    # Where the photos came from, for the shard manifest's `source`: the dataset manifest's source kind and
    # the hosts of the photos used ({"kind": "folder"} for a plain folder). Predict reads it back
    # (models/infer/provenance.py) to say when a model has seen only the demo's local site.
    origin: dict[str, Any] = field(default_factory=lambda: {"kind": "folder"})


def discover(src: Path, exclude: Path | None = None) -> Source:
    """Read the source folder. `exclude` (the output folder, when it lies inside `src`) is never input."""
    if not src.is_dir():
        raise ColorizeError(f"source folder {src} does not exist", "scrape or fetch a dataset first, or pass --src")
    manifest_path = src / MANIFEST
    if manifest_path.is_file():
        photos, skipped, digest, origin = _from_manifest(src, manifest_path)
        return Source(photos, skipped, digest, "manifest", origin=origin)
    photos, skipped, derived = _from_folder(src, exclude)
    text = dumps_json(derived)
    return Source(photos, skipped, sha256_bytes(text.encode("utf-8")), "folder", text)


def _from_manifest(src: Path, path: Path) -> tuple[list[Photo], list[dict[str, str]], str, dict[str, Any]]:
    try:
        manifest = read_json(path)
        entries = manifest["photos"]
        assert isinstance(entries, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise ColorizeError(f"{path} is not a dataset manifest ({exc})", "re-run scrape, or remove it") from exc
    photos, skipped, seen = [], [], set()
    by_file: dict[tuple[int, int], str] = {}  # (device, inode) -> id: one file named twice
    by_sha: dict[str, str] = {}  # content -> id: the same photo under two ids leaks between splits
    hosts: set[str] = set()
    for entry in entries:
        rel = str(entry.get("file", "")) if isinstance(entry, dict) else ""
        pid = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        reason = _entry_problem(src, entry, pid, rel, seen)
        if reason is None:
            reason, st = _file_problem(src / rel)
        if reason is None:
            key = (st.st_dev, st.st_ino)
            sha = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
            if key in by_file:
                reason = f"same file as photo {by_file[key]}"
            elif (sha := sha or _hash_or_none(src / rel)) is None:
                reason = "cannot read the file"
            elif sha in by_sha:
                reason = f"same content (sha256) as photo {by_sha[sha]}"
            else:
                by_file[key] = by_sha[sha] = pid
        if reason:
            skipped.append({"file": rel or f"<{pid}>", "reason": reason})
            continue
        seen.add(pid)
        hosts.add(urlsplit(str(entry.get("image_url", ""))).netloc.lower()[:200])
        photos.append(Photo(pid, str(entry.get("category") or "uncategorized"), rel, entry.get("sha256")))
    source = manifest.get("source") if isinstance(manifest, dict) else None
    kind = source.get("kind") if isinstance(source, dict) else None
    hosts.discard("")  # a manifest is untrusted: at most MAX_HOSTS names recorded, and how many there were
    origin = {"kind": str(kind)[:100] if kind else "unsplash-search", "hosts": sorted(hosts)[:MAX_HOSTS],
              "n_hosts": len(hosts)}
    return sorted(photos, key=lambda p: p.id), skipped, sha256_file(path), origin


def _entry_problem(src: Path, entry: Any, pid: str, rel: str, seen: set[str]) -> str | None:
    """Why a manifest entry cannot be used, judged from the entry alone (its file is checked next)."""
    if not _ID_RE.match(pid):
        return f"invalid photo id {pid[:40]!r}"
    if _safe_relpath(src, rel) is None:
        return "file path escapes the dataset folder"
    if entry.get("status", "ok") != "ok":
        return f"status {entry.get('status')!r} in the manifest"
    if pid in seen:
        return f"duplicate photo id {pid}"
    return _category_problem(str(entry.get("category") or "uncategorized"))


def _from_folder(src: Path, exclude: Path | None = None) -> tuple[list[Photo], list[dict[str, str]], dict[str, Any]]:
    """Subfolders are categories; id = first 16 hex of the file's sha256 (duplicates kept once)."""
    photos, skipped, by_id = [], [], {}
    excluded = exclude.resolve() if exclude is not None else None
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or path.is_dir():
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        parts = rel.split("/")
        problem, st = _file_problem(path)
        if path.is_symlink() and _safe_relpath(src, rel) is None:
            skipped.append({"file": rel, "reason": "symlink points outside the dataset folder"})
        elif problem is not None:
            skipped.append({"file": rel, "reason": problem})
        elif path.suffix.lower() not in IMAGE_EXTS:
            skipped.append({"file": rel, "reason": f"not an image file extension ({path.suffix or 'none'})"})
        elif len(parts) != 2:
            skipped.append({"file": rel, "reason": "not directly inside a category folder"})
        elif (bad_category := _category_problem(parts[0])) is not None:
            skipped.append({"file": rel, "reason": bad_category})
        elif st.st_size > MAX_FILE_BYTES:
            skipped.append({"file": rel, "reason": f"file over the {MAX_FILE_BYTES} byte cap"})
        elif (digest := _hash_or_none(path)) is None:
            skipped.append({"file": rel, "reason": "cannot read the file"})
        else:
            pid = digest[:16]
            if pid in by_id:
                skipped.append({"file": rel, "reason": f"duplicate of {by_id[pid].file}"})
                continue
            by_id[pid] = Photo(pid, parts[0], rel, digest)
            photos.append(by_id[pid])
    derived = {"schema": DATASET_SCHEMA, "derived_from_folder": True,
               "photos": [{"id": p.id, "category": p.category, "file": p.file, "sha256": p.sha256, "status": "ok"}
                          for p in sorted(photos, key=lambda p: p.id)]}
    return sorted(photos, key=lambda p: p.id), skipped, derived
