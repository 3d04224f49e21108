"""Stable train/val/test splits from a hash of (seed, photo id).

Why a hash and not a shuffled list: a photo's split must not change when photos are added or removed,
otherwise a model's test photos leak into the next training set. Hashing each id on its own gives every
photo a fixed position in [0, 1) that only the seed changes; all variants of a photo share its split.
"""

from __future__ import annotations

import hashlib
import math

from colorize.errors import UsageError

SPLITS = ("train", "val", "test")


def parse_split(text: str | tuple[float, ...] | list[float]) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); three non-negative fractions that sum to 1."""
    if isinstance(text, str):
        try:
            parts = tuple(float(p) for p in text.split(","))
        except ValueError as exc:
            raise UsageError(f"--split {text!r} is not three numbers", "write it like 0.8,0.1,0.1") from exc
    else:
        parts = tuple(float(p) for p in text)
    if len(parts) != 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        raise UsageError(f"--split {text!r} needs three non-negative fractions (train,val,test)",
                         "write it like 0.8,0.1,0.1")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise UsageError(f"--split fractions sum to {sum(parts):g}, not 1", "write it like 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) determined only by `parts` (sha256, first 8 bytes)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(photo_id: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """The split of one photo; independent of every other photo."""
    u = unit_hash("split", seed, photo_id)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def order_key(photo_id: str, seed: int) -> str:
    """Sort key that spreads photos (and so categories) evenly over the shards of a split."""
    return hashlib.sha256(f"order:{seed}:{photo_id}".encode()).hexdigest()
