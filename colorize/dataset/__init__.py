"""Stage 2: photos -> reproducible, sharded training data (and the loader that reads it back).

This package module holds the stage's defaults and bounds and the photo size caps: the one source for the
CLI, prep and the decoders.

Plain Python on purpose (no numpy, no Pillow): `colorize --help` shows these defaults and ranges, and
`colorize prep`'s options are built from `PREP_BOUNDS`, the same table `check_prep_params` applies to a
Python caller (the demo, a notebook), so a range is written once.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

from colorize.errors import UsageError

#: Largest image (width x height, before any reduction) prep agrees to decode: 8K x 5K web photos.
DEFAULT_MAX_PIXELS = 40_000_000
#: The default `--max-pixels` of predict and eval: museum and flatbed scans run to 150 MP, so twice that.
MAX_SCAN_PIXELS = 300_000_000
#: How a photo becomes the model's square: letterboxed (padding masked out) or center-cropped.
FIT_MODES = ("pad", "crop")
#: Training-set variants, in order (`--augment k` keeps the first k); see dataset/augment.py.
VARIANTS = ("orig", "flip", "noise1", "noise2", "noise3", "crop1", "crop2")
#: Where prep's shard tasks run (`--engine`): local processes, or a dask cluster (dataset/engines.py).
ENGINES = ("local", "dask")
#: Photos with a shorter side are skipped by prep: too small to teach color.
MIN_SIDE = 32


def variants_for(split: str, augment: int) -> tuple[str, ...]:
    """Which variants a photo of `split` produces (val and test photos are never augmented)."""
    if split != "train" or augment <= 1:
        return VARIANTS[:1]
    return VARIANTS[: min(augment, len(VARIANTS))]


@dataclass(frozen=True)
class PrepParams:
    """Everything that decides the output bytes (and nothing that does not, like --workers).

    `lam` (λ, the rebalancing mix with uniform) and `sigma` (σ, the prior's smoothing in ab units) are the
    two numbers of Zhang et al. 2016's class rebalancing; 0.8 instead of their 0.5 was measured better on
    small data (benchmarks/bench_quality.py).
    """

    size: int = 256
    fit: str = "pad"
    grid: int = 10
    bins: int = 32
    lam: float = 0.8
    sigma: float = 5.0
    augment: int = 7
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    shard_size: int = 1024
    max_pixels: int = DEFAULT_MAX_PIXELS

    def manifest_params(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lam")
        d["split"] = list(self.split)
        d["min_side"] = MIN_SIDE
        d["variants"] = list(variants_for("train", self.augment))
        return d


#: Inclusive (low, high) bounds of each numeric prep parameter; None = unbounded above.
PREP_BOUNDS: dict[str, tuple[float, float | None]] = {
    "size": (32, 1024), "grid": (1, 64), "bins": (2, 1024), "lam": (0.0, 1.0), "sigma": (0.0, None),
    "augment": (0, len(VARIANTS)), "shard_size": (1, None), "max_pixels": (1, None),
}
#: The option that sets each parameter, where its name differs.
PREP_OPTIONS = {"lam": "--lambda", "shard_size": "--shard-size", "max_pixels": "--max-pixels"}


def option_name(field: str) -> str:
    return PREP_OPTIONS.get(field, f"--{field.replace('_', '-')}")


def check_prep_params(p: PrepParams) -> None:
    """Every rule of `PREP_BOUNDS` and `FIT_MODES` at once, as one `UsageError` line."""
    problems = [] if p.fit in FIT_MODES else [f"--fit must be one of {', '.join(FIT_MODES)}"]
    for field, (lo, hi) in PREP_BOUNDS.items():
        value = getattr(p, field)
        if not (lo <= value and (hi is None or value <= hi)):
            problems.append(f"{option_name(field)} must be " + (f"in {lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"))
    if problems:
        raise UsageError("; ".join(problems), "see `colorize prep --help`")


# Splits. Stable train/val/test splits from a hash of (seed, photo id).
#
# Why a hash and not a shuffled list: a photo's split must not change when photos are added or removed,
# otherwise a model's test photos leak into the next training set. Hashing each id on its own gives every
# photo a fixed position in [0, 1) that only the seed changes; all variants of a photo share its split.

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
