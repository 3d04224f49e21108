"""The defaults of `colorize eval`, in one record read by the CLI and by `run_eval` (as prep has
`PrepParams` and train `TRAIN_DEFAULTS`). Plain Python: the CLI reads it without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

from colorize.dataset import MAX_SCAN_PIXELS
from colorize.models.net import DEFAULT_TEMPERATURE


@dataclass(frozen=True)
class EvalParams:
    """Every option of an eval run besides the model and the photos (--shards/--images)."""

    split: str = "test"
    temperature: float = DEFAULT_TEMPERATURE
    out: str = "eval"
    device: str = "auto"
    gallery: int = 12  # samples shown in the report
    max_pixels: int = MAX_SCAN_PIXELS  # refuse photos larger than this, read from the header
    hints_sweep: str | None = None  # "0,1,2,5,10,20,50": score the model with that many simulated hints (sweep.py)


EVAL_DEFAULTS = EvalParams()
