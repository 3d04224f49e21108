"""The photos an evaluation scores: one split of a shard folder, or a folder of color photos.

One loader serves `colorize eval`, the routed eval of a bundle and the Turing study, so all three score
the same photos and call them by the same names:
- shards: one sample per photo, its un-augmented variant. Augmented copies exist in the train split
  only; they are the same photo again and would count it several times.
- images: every photo file (`imaging.IMAGE_EXTS`) below the folder, sorted, hidden files and folders
  skipped; the first folder level is the category, files at the top are `ROOT_CATEGORY`.
Photos load lazily, one shard in memory at a time, so a large split is never read whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset import VARIANTS
from colorize.dataset.color import stored_to_rgb
from colorize.dataset.images import load_rgb
from colorize.dataset.shards import list_shards, load_shard
from colorize.errors import ColorizeError, UsageError
from colorize.imaging import IMAGE_EXTS

ROOT_CATEGORY = "(uncategorized)"
ORIGINAL = VARIANTS[0]  # the variant prep stores for every photo of every split


def check_one_source(shards: Any, images: Any) -> None:
    """Eval-type commands take exactly one of --shards DIR and --images DIR (a usage error otherwise)."""
    if (shards is None) == (images is None):
        raise UsageError("give exactly one of --shards DIR or --images DIR", "e.g. --shards data/shards --split test")


@dataclass(frozen=True)
class EvalPhoto:
    """One photo to score. `name` is what reports show: `photo_id/variant` (shards) or the relative path."""

    name: str
    photo_id: str
    category: str  # untrusted text, like the name
    shard: int = -1  # shards: index into EvalPhotos.entries, and the row in that shard
    row: int = -1
    path: Path | None = None  # images: the file


@dataclass
class EvalPhotos:
    kind: str  # "shards" | "images"
    root: Path
    split: str  # "" for an image folder
    photos: list[EvalPhoto]
    entries: list[dict[str, Any]] = field(default_factory=list)  # the split's shard entries
    _cache: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def shard_arrays(self, photo: EvalPhoto) -> dict[str, np.ndarray]:
        """The arrays of the shard holding `photo` (sha256-checked; the last shard read is kept)."""
        if photo.shard not in self._cache:
            self._cache.clear()
            entry = self.entries[photo.shard]
            self._cache[photo.shard] = load_shard(self.root / entry["name"], entry.get("sha256"))
        return self._cache[photo.shard]

    def stored(self, photo: EvalPhoto) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A shard photo as stored: uint8 L [S,S], int8 ab [S,S,2], bool mask [S,S]."""
        arrays = self.shard_arrays(photo)
        return arrays["L"][photo.row], arrays["ab"][photo.row], arrays["mask"][photo.row]

    def rgb(self, photo: EvalPhoto, **load_options: Any) -> np.ndarray:
        """uint8 RGB truth: a shard photo cropped to its real pixels (prep's padding dropped), or the file
        read with `load_rgb(path, **load_options)`. An unusable photo is a ColorizeError (skip it)."""
        if photo.path is not None:
            return load_rgb(photo.path, **load_options)
        L, ab, mask = self.stored(photo)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            raise ColorizeError(f"{photo.name}: empty mask", "rerun `colorize prep`")
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        return np.ascontiguousarray(stored_to_rgb(L[box], ab[box]))


def shard_photos(shards: Path, split: str) -> EvalPhotos:
    """One EvalPhoto per photo of `split` (its un-augmented variant), in shard order."""
    shards = Path(shards)
    entries = [e for e in list_shards(shards, split) if int(e.get("count", 0)) > 0]
    photos = []
    for si, entry in enumerate(entries):
        arrays = load_shard(shards / entry["name"], entry.get("sha256"))
        for row, (pid, cat, var) in enumerate(zip(arrays["photo_id"], arrays["category"], arrays["variant"])):
            if str(var) == ORIGINAL:
                photos.append(EvalPhoto(f"{pid}/{var}", str(pid), str(cat), shard=si, row=row))
    if not photos:
        raise ColorizeError(f"the {split!r} split of {shards} is empty",
                            "choose another --split, or rerun `colorize prep` with a non-zero fraction for it")
    return EvalPhotos("shards", shards, split, photos, entries)


def image_photos(images: Path) -> EvalPhotos:
    """Every photo file below `images`; the first folder level is the category."""
    images = Path(images)
    if not images.is_dir():
        raise ColorizeError(f"image folder {images} does not exist", "pass a folder of color photos to --images")
    photos = []
    for f in sorted(images.rglob("*")):
        rel = f.relative_to(images)
        if f.is_file() and f.suffix.lower() in IMAGE_EXTS and not any(p.startswith(".") for p in rel.parts):
            category = rel.parts[0] if len(rel.parts) > 1 else ROOT_CATEGORY
            photos.append(EvalPhoto(rel.as_posix(), rel.as_posix(), category, path=f))
    if not photos:
        raise ColorizeError(f"no images in {images}",
                            f"put color photos ({' '.join(sorted(IMAGE_EXTS))}) there, subfolders = categories")
    return EvalPhotos("images", images, "", photos)


def eval_photos(shards: Path | str | None, split: str, images: Path | str | None) -> EvalPhotos:
    """The photos of --shards DIR --split S, or of --images DIR (exactly one of them)."""
    check_one_source(shards, images)
    return shard_photos(Path(shards), split) if shards is not None else image_photos(Path(images))
