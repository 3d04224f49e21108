"""`colorize hints`: a local page to place a few colours on a photo and let the model colour the rest.

`engine.py` holds the photo and the model (previews, suggestions, saving), `server.py` serves the page
(static/) over a small JSON API, `run.py` wires them for the CLI. The hints file format is
`colorize.models.infer.hintfile`.
"""

from __future__ import annotations

from .engine import Engine, ModelEngine, colour_with_hints, open_engine
from .run import EditorReport, hints_command, run_editor
from .server import EditorServer

__all__ = ["EditorReport", "EditorServer", "Engine", "ModelEngine", "colour_with_hints", "hints_command",
           "open_engine", "run_editor"]
