"""The configuration and result of a training run (kept apart from the loop so both stay readable).

`TrainConfig` is the one source of training defaults: the CLI's `train` options read theirs from
`TRAIN_DEFAULTS`, and every caller builds a config by keyword. It is also the programmatic API: routing
builds one per specialist with `categories` / `photo_ids` and its own `weights` / `prior`. This module
imports no torch, so the CLI can read the defaults and `colorize --help` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorize.models.net import DEFAULT_TEMPERATURE, DEFAULT_WIDTH

if TYPE_CHECKING:
    import torch


@dataclass
class TrainConfig:
    """Everything a run depends on. The first block mirrors the CLI; the rest is for programmatic use."""

    shards: Path
    out: Path
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    width: int = DEFAULT_WIDTH
    temperature: float = DEFAULT_TEMPERATURE
    soft_targets: int = 0
    device: str = "auto"
    amp: bool = True
    compile_model: bool = False
    workers: int = 2
    seed: int = 0
    resume: bool = False
    max_minutes: float | None = None
    # Planned optimizer steps in all, instead of `epochs` x batches per epoch: warm-up and decay are laid over
    # exactly these steps (the run may end inside an epoch), so the result does not depend on the clock.
    steps: int | None = None
    # Data selection and statistics overrides (routing specialists).
    categories: list[str] | None = None
    photo_ids: list[str] | None = None
    weights: Sequence[float] | None = None
    prior: Sequence[float] | None = None
    # Optimisation details.
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    grad_clip: float = 5.0
    buffer: int = 2048  # shuffle window in samples (see dataset/loader.py)
    val_samples: int = 256
    grid_rows: int = 8
    compile_backend: str = "inductor"
    # Colour hints (dataset/hints.py): the model takes them, the loader simulates them, and this weighs the
    # L1 between painted and hinted ab at hinted pixels (models/net/loss.hint_loss) against the classification.
    hint_weight: float = 10.0
    # False trains the lightness-only net of before (no hint channels, no simulated hints, no hint loss):
    # an automatic-only model, and the plain classification problem (tests/test_train.py overfits it).
    hints: bool = True
    max_steps: int | None = None  # stop (saving last.pt) after this many optimizer steps in total
    # Called after each optimizer step with (step, loss tensor): tests, custom logging, early stopping.
    on_step: Callable[[int, torch.Tensor], None] | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """JSON/checkpoint-safe view (paths as strings, arrays as lists, no callables)."""
        out = {k: v for k, v in asdict(self).items() if k != "on_step"}
        for k in ("shards", "out"):
            out[k] = str(out[k])
        for k in ("weights", "prior", "categories", "photo_ids"):
            out[k] = None if out[k] is None else [x if isinstance(x, str) else float(x) for x in out[k]]
        return out


TRAIN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


class RunState(str, Enum):
    """How a training run stands when it returns (a str: run records and summaries write the value)."""

    DONE = "done"  # every planned step ran (so far: the loop goes on while DONE and steps are left)
    INTERRUPT = "interrupt"  # Ctrl-C / SIGTERM: last.pt saved
    TIME_BUDGET = "time budget"  # --max-minutes ran out
    MAX_STEPS = "max steps"  # --max-steps reached


@dataclass
class TrainResult:
    out: Path
    epochs_done: int
    steps: int
    best_val: float
    parameters: int
    stopped: RunState
    seconds: float
    images_per_s: float
    rank: int = 0

    def summary_line(self) -> str:
        if self.rank:
            return f"rank {self.rank}: {self.steps} steps done; rank 0 writes {self.out}"
        how = "" if self.stopped is RunState.DONE else f" (stopped: {self.stopped.value}; --resume continues)"
        best = f"best val loss {self.best_val:.4f}" if math.isfinite(self.best_val) else "no val loss"
        return (f"trained {self.epochs_done} epoch{'' if self.epochs_done == 1 else 's'} / {self.steps} steps of a {self.parameters / 1e6:.2f} M-param "
                f"ColorUNet in {self.seconds:.0f} s ({self.images_per_s:.1f} img/s), {best} -> {self.out}{how}")
