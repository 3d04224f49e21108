"""colorize: scrape photos, prepare reproducible shards, train a compact colorizer, apply it.

From Python: `model = colorize.load("run/best.pt")`, then `model.colorize(image)` (`models/infer/api.py`).
Importing this package loads nothing heavy; torch and the model load at `load()`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(path: Any, device: str | None = None) -> Any:
    """A checkpoint (.pt) or a bundle folder, ready to color photos: a `colorize.models.infer.api.Model`.

    Imported by name at call time: every module of the package imports `__version__` from here, so a
    static import of the inference stage would make the root depend on it (and the layer contracts in
    pyproject.toml would see core depending on inference). Only users call `load`; no module of ours does.
    """
    return importlib.import_module("colorize.models.infer.api").load(path, device)
