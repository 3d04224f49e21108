"""Where prep's photos come from: a scraped dataset's manifest.json, or plain category folders.

Both are untrusted: ids must look like ids, file paths must stay inside the dataset folder, and a
photo whose status is not "ok" or whose file is missing is listed with the reason instead of used.
A folder without a manifest gets one derived from its files (id = first 16 hex of the sha256), so its
hash identifies the input of a prep run just like a scraped manifest's does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize.dataset.images import MAX_FILE_BYTES
from colorize.errors import ColorizeError
from colorize.imaging import IMAGE_EXTS
from colorize.io import dumps_json, read_json, sha256_bytes, sha256_file

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


@dataclass
class Source:
    """What a prep run reads: the photos, what was skipped before decoding, and the input's identity."""

    photos: list[Photo]
    skipped: list[dict[str, str]]
    manifest_sha256: str  # of manifest.json, or of `derived_manifest` for a plain folder
    kind: str  # "manifest" or "folder"
    derived_manifest: str | None = None  # the manifest text derived from a plain folder


def discover(src: Path, exclude: Path | None = None) -> Source:
    """Read the source folder. `exclude` (the output folder, when it lies inside `src`) is never input."""
    if not src.is_dir():
        raise ColorizeError(f"source folder {src} does not exist", "scrape or fetch a dataset first, or pass --src")
    manifest_path = src / "manifest.json"
    if manifest_path.is_file():
        photos, skipped, digest = _from_manifest(src, manifest_path)
        return Source(photos, skipped, digest, "manifest")
    photos, skipped, derived = _from_folder(src, exclude)
    text = dumps_json(derived)
    return Source(photos, skipped, sha256_bytes(text.encode("utf-8")), "folder", text)


def _from_manifest(src: Path, path: Path) -> tuple[list[Photo], list[dict[str, str]], str]:
    try:
        manifest = read_json(path)
        entries = manifest["photos"]
        assert isinstance(entries, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise ColorizeError(f"{path} is not a dataset manifest ({exc})", "re-run scrape, or remove it") from exc
    photos, skipped, seen = [], [], set()
    for entry in entries:
        rel = str(entry.get("file", "")) if isinstance(entry, dict) else ""
        pid = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        reason = None
        if not _ID_RE.match(pid):
            reason = f"invalid photo id {pid[:40]!r}"
        elif _safe_relpath(src, rel) is None:
            reason = "file path escapes the dataset folder"
        elif entry.get("status", "ok") != "ok":
            reason = f"status {entry.get('status')!r} in the manifest"
        elif pid in seen:
            reason = f"duplicate photo id {pid}"
        elif not (src / rel).is_file():
            reason = "file is missing"
        if reason:
            skipped.append({"file": rel or f"<{pid}>", "reason": reason})
            continue
        seen.add(pid)
        photos.append(Photo(pid, str(entry.get("category") or "uncategorized"), rel, entry.get("sha256")))
    return sorted(photos, key=lambda p: p.id), skipped, sha256_file(path)


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
        if path.is_symlink() and _safe_relpath(src, rel) is None:
            skipped.append({"file": rel, "reason": "symlink points outside the dataset folder"})
        elif path.suffix.lower() not in IMAGE_EXTS:
            skipped.append({"file": rel, "reason": f"not an image file extension ({path.suffix or 'none'})"})
        elif len(parts) != 2:
            skipped.append({"file": rel, "reason": "not directly inside a category folder"})
        elif path.stat().st_size > MAX_FILE_BYTES:
            skipped.append({"file": rel, "reason": f"file over the {MAX_FILE_BYTES} byte cap"})
        else:
            digest = sha256_file(path)
            pid = digest[:16]
            if pid in by_id:
                skipped.append({"file": rel, "reason": f"duplicate of {by_id[pid].file}"})
                continue
            by_id[pid] = Photo(pid, parts[0], rel, digest)
            photos.append(by_id[pid])
    derived = {"schema": "colorize.dataset/1", "derived_from_folder": True,
               "photos": [{"id": p.id, "category": p.category, "file": p.file, "sha256": p.sha256, "status": "ok"}
                          for p in sorted(photos, key=lambda p: p.id)]}
    return sorted(photos, key=lambda p: p.id), skipped, derived
