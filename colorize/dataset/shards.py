"""Write, read and verify shards and the shard manifest (`colorize.shards/2`, see docs/contracts.md).

Why a writer of our own: `np.savez` stamps the current time into every zip entry, so two identical runs
would give different bytes. `write_npz` writes the same uncompressed .npz layout (a zip of .npy files,
readable by `np.load`) with a fixed timestamp, atomically, so same inputs => same sha256.
Readers never unpickle (`allow_pickle=False`) and can check a shard against its recorded hash.

Format 2 stores only what cannot be recomputed (augment.STORED: the original and the crops), 3 bytes a
pixel (L, a, b) compressed per sample with lz4 (~1.6x on photos, and it decodes at several GB/s), a pad
box instead of a mask plane, and prep's `colorful` flag; a table (`sample_row`, `sample_variant`) lists
the samples in training order, each naming the stored row it is derived from. Compressed bytes may change
with the lz4 version, so the manifest records a sha256 of the decoded content beside each file's sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lz4.block
import numpy as np

from colorize.dataset import SPLITS
from colorize.dataset.augment import BANK_FIELDS, NOISE_SIGMA, Box, box_mask, is_colorful, mask_box
from colorize.dataset.bins import BinStats
from colorize.errors import ColorizeError
from colorize.io import atomic_open, read_json, sha256_file
from colorize.names import MANIFEST

log = logging.getLogger(__name__)

SCHEMA = "colorize.shards/2"
#: Manifests of earlier formats: readers name the fix (re-run prep) instead of misreading them.
OLD_SCHEMAS = ("colorize.shards/1",)
STATS_FILE = "stats.npz"
NOISE_FILE = "noise.npz"
RUN_RECORD = "prep-run.json"
SHARD_RE = re.compile(rf"^({'|'.join(SPLITS)})-(\d{{5}})\.npz\Z")
#: The arrays every shard holds, in the order they are written.
SHARD_ARRAYS = ("side", "pixels", "offsets", "box", "colorful", "photo_id", "category", "variant",
                "sample_row", "sample_variant")
#: The codec of `pixels` (pinned in pyproject.toml; the decoded content is what the content sha256 covers).
#: lz4's fast mode: on real photos at 256 px (the 44 of bench_quality, default --augment 7) 336 KB a photo
#: against 305 KB at HC level 2 (10% more, still under 1/5 of format 1's 1,835 KB), for 0.35 ms a stored
#: row instead of 2.8 ms: HC was prep's largest step after decode and resize (benchmarks/bench_prep.py).
#: Any lz4 block decodes the same way and as fast, so readers do not care which mode wrote it.
CODEC = {"name": "lz4.block", "mode": "fast", "acceleration": 1}
MAX_SIDE = 4096
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


# ------------------------------------------------------------------------------------- shard files
@dataclass
class ShardFile:
    """One shard as stored: per-sample compressed pixels, decoded a row at a time by `pixels_of`."""

    path: Path
    side: int
    pixels: np.ndarray  # uint8 [total]: the lz4 blocks of every stored row, back to back
    offsets: np.ndarray  # int64 [n+1]: row r is pixels[offsets[r]:offsets[r+1]]
    box: np.ndarray  # int16 [n, 4]: (y0, x0, y1, x1) of the real pixels
    colorful: np.ndarray  # bool [n]
    photo_id: np.ndarray
    category: np.ndarray
    variant: np.ndarray  # the stored variant of each row (augment.STORED)
    sample_row: np.ndarray  # int32 [count]: the stored row each sample is made from
    sample_variant: np.ndarray  # [count]: the variant each sample is

    @property
    def stored(self) -> int:
        return int(self.box.shape[0])

    @property
    def count(self) -> int:
        return int(self.sample_row.shape[0])

    def box_of(self, row: int) -> Box:
        y0, x0, y1, x1 = (int(v) for v in self.box[row])
        return y0, x0, y1, x1

    def pixels_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Stored row `row` decoded: L uint8 [S,S] and ab int8 [S,S,2] (read-only views of one buffer)."""
        s = self.side
        block = self.pixels[int(self.offsets[row]):int(self.offsets[row + 1])]
        try:
            raw = lz4.block.decompress(block.tobytes(), uncompressed_size=3 * s * s)
        except lz4.block.LZ4BlockError as exc:
            raise ColorizeError(f"{self.path} has a corrupt sample (row {row}: {exc})",
                                "rerun `colorize prep` to rebuild it") from exc
        if len(raw) != 3 * s * s:
            raise ColorizeError(f"{self.path} has a short sample (row {row})", "rerun `colorize prep` to rebuild it")
        flat = np.frombuffer(raw, np.uint8)
        return flat[:s * s].reshape(s, s), flat[s * s:].view(np.int8).reshape(s, s, 2)

    def decoded(self) -> dict[str, np.ndarray]:
        """Every stored row decoded, as `load_shard` returns them."""
        n, s = self.stored, self.side
        L, ab, mask = np.empty((n, s, s), np.uint8), np.empty((n, s, s, 2), np.int8), np.empty((n, s, s), bool)
        for r in range(n):
            L[r], ab[r] = self.pixels_of(r)
            box_mask(self.box_of(r), s, mask[r])
        return {"L": L, "ab": ab, "mask": mask, "box": self.box, "colorful": self.colorful,
                "photo_id": self.photo_id, "category": self.category, "variant": self.variant,
                "sample_row": self.sample_row, "sample_variant": self.sample_variant}


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a shard's decoded content (as `load_shard` returns it): the same whatever codec version."""
    h = hashlib.sha256()
    for key in ("L", "ab", "box", "colorful", "photo_id", "category", "variant", "sample_row", "sample_variant"):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{value.dtype.str}:{value.shape}\n".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def write_shard(path: str | os.PathLike, L: np.ndarray, ab: np.ndarray, mask: np.ndarray, photo_id: list[str],
                category: list[str], variant: list[str], sample_row: np.ndarray | None = None,
                sample_variant: list[str] | None = None) -> tuple[int, str, str]:
    """Write stored rows (L [n,S,S] uint8, ab [n,S,S,2] int8, rectangular masks) and the sample table
    (default: one sample per row, its own variant); return (bytes, file sha256, content sha256)."""
    n, s = L.shape[0], L.shape[1]
    boxes = np.array([mask_box(m) for m in mask], np.int16).reshape(n, 4)
    colorful = np.array([is_colorful(ab[r], tuple(boxes[r])) for r in range(n)], bool)
    blocks = [lz4.block.compress(L[r].tobytes() + ab[r].tobytes(), mode=CODEC["mode"],
                                 acceleration=CODEC["acceleration"], store_size=False) for r in range(n)]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks], dtype=np.int64)]).astype(np.int64)
    rows = np.arange(n, dtype=np.int32) if sample_row is None else np.asarray(sample_row, np.int32)
    arrays = {"side": np.int32(s), "pixels": np.frombuffer(b"".join(blocks), np.uint8), "offsets": offsets,
              "box": boxes, "colorful": colorful, "photo_id": _str_array(photo_id),
              "category": _str_array(category), "variant": _str_array(variant), "sample_row": rows,
              "sample_variant": _str_array(list(variant) if sample_variant is None else sample_variant)}
    nbytes, digest = write_npz(path, arrays)
    return nbytes, digest, content_sha256({**arrays, "L": L, "ab": ab})


def _str_array(values: list[str] | np.ndarray) -> np.ndarray:
    return np.array(values, dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def read_shard(path: str | os.PathLike, expected_sha256: str | None = None) -> ShardFile:
    """A shard file, its arrays' shapes, dtypes and bounds checked (the pixels decode lazily)."""
    arrays = load_npz(path, expected_sha256)
    missing = [k for k in SHARD_ARRAYS if k not in arrays]
    if missing:
        raise ColorizeError(f"{path} lacks arrays {missing} (an older shard format?)",
                            "rebuild the shards with `colorize prep`")
    side, off, box, rows = arrays["side"], arrays["offsets"], arrays["box"], arrays["sample_row"]
    n = box.shape[0] if box.ndim == 2 else -1
    ok = (side.shape == () and side.dtype.kind == "i" and 1 <= int(side) <= MAX_SIDE
          and arrays["pixels"].dtype == np.uint8 and arrays["pixels"].ndim == 1
          and off.dtype == np.int64 and off.shape == (n + 1,) and box.dtype == np.int16 and box.shape == (n, 4)
          and arrays["colorful"].dtype == np.bool_ and arrays["colorful"].shape == (n,)
          and all(arrays[k].shape == (n,) and arrays[k].dtype.kind == "U" for k in ("photo_id", "category", "variant"))
          and rows.dtype == np.int32 and rows.ndim == 1
          and arrays["sample_variant"].shape == rows.shape and arrays["sample_variant"].dtype.kind == "U")
    if ok:
        s = int(side)
        ok = (int(off[0]) == 0 and bool((np.diff(off) >= 0).all()) and int(off[-1]) == arrays["pixels"].size
              and bool(((box[:, :2] >= 0) & (box[:, 2:] <= s) & (box[:, 2:] > box[:, :2])).all())
              and bool(((rows >= 0) & (rows < n)).all()))
    if not ok:
        raise ColorizeError(f"{path} has unexpected array shapes, dtypes or bounds",
                            "rebuild the shards with `colorize prep`")
    return ShardFile(Path(path), int(side), arrays["pixels"], off, box, arrays["colorful"], arrays["photo_id"],
                     arrays["category"], arrays["variant"], rows, arrays["sample_variant"])


def load_shard(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """A shard's stored rows decoded: `L` [n,S,S] uint8, `ab` [n,S,S,2] int8, `mask` [n,S,S] bool, `box`,
    `colorful`, `photo_id`, `category`, `variant` (per stored row) and the sample table `sample_row`,
    `sample_variant` (flip and noise samples are made from their rows by `augment.derive`)."""
    return read_shard(path, expected_sha256).decoded()


def sample_weights(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """How many samples each stored row stands for (the original counts for its flip and noise too)."""
    return np.bincount(arrays["sample_row"], minlength=len(arrays["photo_id"])).astype(np.int64)


def save_noise_bank(path: str | os.PathLike, bank: np.ndarray) -> tuple[int, str]:
    return write_npz(path, {"fields": bank})


def load_noise_bank(shards_dir: str | os.PathLike) -> np.ndarray | None:
    """The noise bank of a shard folder (sha256 checked), or None when its prep made no noisy samples."""
    info = read_manifest(shards_dir).get("noise")
    if not info:
        return None
    path = Path(shards_dir) / NOISE_FILE
    fields = load_npz(path, info.get("sha256")).get("fields")
    if fields is None or fields.dtype != np.int8 or fields.ndim != 4 or fields.shape[2] != fields.shape[3] \
            or fields.shape[:2] != (len(NOISE_SIGMA), BANK_FIELDS):
        raise ColorizeError(f"{path} is not a noise bank", "rerun `colorize prep` to rebuild it")
    return fields


def read_manifest(shards_dir: str | os.PathLike) -> dict[str, Any]:
    """The shard manifest of `shards_dir` (schema checked)."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise ColorizeError(f"no shard manifest at {path}", f"run `colorize prep --out {shards_dir}` first")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        raise ColorizeError(f"{path} is not valid JSON ({exc})", "rerun `colorize prep` to rewrite it") from exc
    if isinstance(manifest, dict) and manifest.get("schema") in OLD_SCHEMAS:
        raise ColorizeError(f"{path} is in the old shard format {manifest['schema']}",
                            f"re-run `colorize prep --out {shards_dir}` to rewrite it as {SCHEMA}")
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
    """Recompute the sha256 of every shard, stats.npz and the noise bank, and of every shard's decoded
    content; a mismatch or missing file is a `ColorizeError`."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    report = VerifyReport(shards_dir)
    files = [(e["name"], e["sha256"], e.get("bytes"), e.get("content_sha256")) for e in list_shards(shards_dir)]
    for key, default in (("stats", STATS_FILE), ("noise", NOISE_FILE)):
        info = manifest.get(key) or {}
        if info.get("file"):
            files.append((default, info["sha256"], info.get("bytes"), None))
    for name, expected, size, content in files:
        problem = _verify_one(shards_dir / name, expected, size, content)
        if problem:
            report.problems.append(f"{name}: {problem}")
            continue
        report.checked += 1
        report.bytes += (shards_dir / name).stat().st_size
    if report.problems:
        shown = "; ".join(report.problems[:5]) + (f"; and {len(report.problems) - 5} more"
                                                  if len(report.problems) > 5 else "")
        raise ColorizeError(f"{len(report.problems)} of {len(files)} files in {shards_dir} failed verification: {shown}",
                            "rerun `colorize prep` with the same options to rebuild them")
    return report


def _verify_one(path: Path, expected: str, size: int | None, content: str | None) -> str | None:
    """What is wrong with one listed file, or None."""
    if "/" in path.name or "\\" in path.name or path.name.startswith("."):
        return "invalid name"
    if not path.is_file():
        return "missing"
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"{actual_size} bytes, manifest says {size}"
    if sha256_file(path) != expected:
        return "sha256 mismatch"
    if content is not None:
        try:
            if content_sha256(load_shard(path)) != content:
                return "decoded content sha256 mismatch"
        except ColorizeError as exc:
            return f"cannot decode ({exc.what})"
    return None
