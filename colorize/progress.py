"""Progress bars and logging set up once for every command.

tqdm bars appear only when stdout is a terminal and `-q` was not given, so logs and CI output stay clean.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

_QUIET = False


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Set the log level and whether progress bars may show (called once by the CLI)."""
    global _QUIET
    _QUIET = quiet
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger("colorize")
    for handler in [h for h in logger.handlers if getattr(h, "_colorize", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._colorize = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def bars_enabled() -> bool:
    return not _QUIET and sys.stdout.isatty()


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar that hides itself when output is not a terminal or with `-q`."""
    kwargs.setdefault("disable", not bars_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
