"""Write, read and verify shards and the shard manifest (`colorize.shards/1`, see docs/contracts.md).

Why a writer of our own: `np.savez` stamps the current time into every zip entry, so two identical runs
would give different bytes. `write_npz` writes the same uncompressed .npz layout (a zip of .npy files,
readable by `np.load`) with a fixed timestamp, atomically, so same inputs => same sha256.
Readers never unpickle (`allow_pickle=False`) and can check a shard against its recorded hash.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset import SPLITS
from colorize.dataset.bins import BinStats
from colorize.errors import ColorizeError
from colorize.io import atomic_open, read_json, sha256_file
from colorize.names import MANIFEST

log = logging.getLogger(__name__)

SCHEMA = "colorize.shards/1"
STATS_FILE = "stats.npz"
RUN_RECORD = "prep-run.json"
SHARD_RE = re.compile(rf"^({'|'.join(SPLITS)})-(\d{{5}})\.npz\Z")
#: The arrays every shard holds, in the order they are written.
SHARD_ARRAYS = ("L", "ab", "mask", "photo_id", "category", "variant")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def shard_name(split: str, index: int) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return f"{split}-{index:05d}.npz"


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> tuple[int, str]:
    """Write `arrays` as an uncompressed .npz with fixed zip metadata, atomically; return (bytes, sha256)."""
    path = Path(path)
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return path.stat().st_size, sha256_file(path)


def load_npz(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz, loaded without pickle; with `expected_sha256` the file is checked first."""
    path = Path(path)
    if not path.is_file():
        raise ColorizeError(f"{path} is missing", "rerun `colorize prep` to rebuild it")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ColorizeError(f"{path} does not match its recorded sha256 (corrupted or changed)",
                                "rerun `colorize prep` with the same options to rebuild it")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ColorizeError(f"{path} is not a readable .npz ({exc})",
                            "rerun `colorize prep` to rebuild it") from exc


def load_shard(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """A shard's arrays (`L`, `ab`, `mask`, `photo_id`, `category`, `variant`), shapes and dtypes checked."""
    arrays = load_npz(path, expected_sha256)
    missing = [k for k in SHARD_ARRAYS if k not in arrays]
    if missing:
        raise ColorizeError(f"{path} lacks arrays {missing}", "rebuild the shards with `colorize prep`")
    L, ab, mask = arrays["L"], arrays["ab"], arrays["mask"]
    n = L.shape[0]
    ok = (L.dtype == np.uint8 and L.ndim == 3 and L.shape[1] == L.shape[2]
          and ab.dtype == np.int8 and ab.shape == L.shape + (2,)
          and mask.dtype == np.bool_ and mask.shape == L.shape
          and all(arrays[k].shape == (n,) and arrays[k].dtype.kind == "U" for k in SHARD_ARRAYS[3:]))
    if not ok:
        raise ColorizeError(f"{path} has unexpected array shapes or dtypes", "rebuild the shards with `colorize prep`")
    return arrays


def read_manifest(shards_dir: str | os.PathLike) -> dict[str, Any]:
    """The shard manifest of `shards_dir` (schema checked)."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise ColorizeError(f"no shard manifest at {path}", f"run `colorize prep --out {shards_dir}` first")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        raise ColorizeError(f"{path} is not valid JSON ({exc})", "rerun `colorize prep` to rewrite it") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ColorizeError(f"{path} is not a {SCHEMA} manifest", "point at a folder written by `colorize prep`")
    return manifest


def list_shards(shards_dir: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """The manifest's shard entries (name, split, count, bytes, sha256), optionally of one split, by name."""
    entries = read_manifest(shards_dir)["shards"]
    for entry in entries:
        if not SHARD_RE.match(str(entry.get("name", ""))):
            raise ColorizeError(f"manifest lists an invalid shard name {entry.get('name')!r}",
                                "rebuild the shards with `colorize prep`")
    return sorted((e for e in entries if split is None or e["split"] == split), key=lambda e: e["name"])


# ------------------------------------------------------------------------------ the stats file
def save_stats(path: str | os.PathLike, stats: BinStats) -> tuple[int, str]:
    """Write stats.npz (deterministic bytes); returns (bytes, sha256)."""
    return write_npz(path, stats.arrays())


def stats_from_arrays(arrays: dict[str, np.ndarray], origin: str = "stats.npz") -> BinStats:
    try:
        stats = BinStats(
            centers=arrays["centers"].astype(np.float32), ab_lut=arrays["ab_lut"].astype(np.int16),
            prior=arrays["prior"].astype(np.float32), prior_smoothed=arrays["prior_smoothed"].astype(np.float32),
            weights=arrays["weights"].astype(np.float32), grid=int(arrays["grid"]),
            cell_counts=arrays["cell_counts"].astype(np.int64),
            lam=float(arrays["lambda"]), sigma=float(arrays["sigma"]),
        )
    except KeyError as exc:
        raise ColorizeError(f"{origin} lacks the array {exc}", "rerun `colorize prep` to rebuild it") from exc
    n = stats.n_bins
    if stats.ab_lut.shape != (256, 256) or stats.centers.shape != (n, 2) or int(stats.ab_lut.max()) >= n \
            or int(stats.ab_lut.min()) < 0 or any(a.shape != (n,) for a in (stats.prior, stats.weights)):
        raise ColorizeError(f"{origin} has inconsistent shapes", "rerun `colorize prep` to rebuild it")
    return stats


def load_stats(shards_dir: str | os.PathLike) -> BinStats:
    """The BinStats of a shard folder, checked against the sha256 in its manifest."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    info = manifest.get("stats") or {}
    path = shards_dir / STATS_FILE
    return stats_from_arrays(load_npz(path, info.get("sha256")), str(path))


@dataclass
class VerifyReport:
    """What `colorize prep --verify` checked."""

    shards_dir: Path
    checked: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        return f"verified {self.checked} files ({self.bytes / 1e6:.1f} MB) in {self.shards_dir}: all sha256 match"


def verify_shards(shards_dir: str | os.PathLike) -> VerifyReport:
    """Recompute the sha256 of every shard and stats.npz; a mismatch or missing file is a `ColorizeError`."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    report = VerifyReport(shards_dir)
    files = [(e["name"], e["sha256"], e.get("bytes")) for e in list_shards(shards_dir)]
    stats = manifest.get("stats") or {}
    if stats.get("file"):
        files.append((stats["file"], stats["sha256"], None))
    for name, expected, size in files:
        if "/" in name or "\\" in name or name.startswith("."):
            report.problems.append(f"{name}: invalid name")
            continue
        path = shards_dir / name
        if not path.is_file():
            report.problems.append(f"{name}: missing")
            continue
        actual_size = path.stat().st_size
        if size is not None and actual_size != size:
            report.problems.append(f"{name}: {actual_size} bytes, manifest says {size}")
            continue
        if sha256_file(path) != expected:
            report.problems.append(f"{name}: sha256 mismatch")
            continue
        report.checked += 1
        report.bytes += actual_size
    if report.problems:
        shown = "; ".join(report.problems[:5]) + (f"; and {len(report.problems) - 5} more"
                                                  if len(report.problems) > 5 else "")
        raise ColorizeError(f"{len(report.problems)} of {len(files)} files in {shards_dir} failed verification: {shown}",
                            "rerun `colorize prep` with the same options to rebuild them")
    return report
