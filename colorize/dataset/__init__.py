"""Stage 2: photos -> reproducible, sharded training data (and the loader that reads it back).

This package module holds the stage's defaults and bounds and the photo size caps: the one source for the
CLI, prep and the decoders.

Plain Python on purpose (no numpy, no Pillow): `colorize --help` shows these defaults and ranges, and
`colorize prep`'s options are built from `PREP_BOUNDS`, the same table `check_prep_params` applies to a
Python caller (the demo, a notebook), so a range is written once.
"""

from __future__ import annotations

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
