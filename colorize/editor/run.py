"""`colorize hints IMAGE --model M`: open the editor for one photo and serve it until Ctrl-C."""

from __future__ import annotations

import logging
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from colorize.dataset import MAX_SCAN_PIXELS
from colorize.models.infer.colorizer import Colorizer

from .engine import open_engine
from .server import EditorServer

log = logging.getLogger(__name__)


@dataclass
class EditorReport:
    """What one editor session did (the CLI prints `summary_line()`)."""

    image: Path
    hints: Path
    url: str
    saved: bool

    def summary_line(self) -> str:
        if self.saved:
            return f"hints: saved {self.hints} for {self.image}"
        return f"hints: nothing saved for {self.image} (the page's Save button writes {self.hints})"


def run_editor(image: str | Path, model: str | Path | Colorizer, out_dir: str | Path | None = None, port: int = 0,
               open: bool = False, device: str = "auto", max_pixels: int = MAX_SCAN_PIXELS) -> EditorServer:
    """Load the photo and the model, bind 127.0.0.1:`port` and start serving in the background.

    Returns the running server (`.url`, `.stop()`, `.serve_until_interrupted()`, `.engine`); an earlier
    hints file for the photo in `out_dir` (default: the photo's folder) is continued. `open` opens the page
    in the default browser.
    """
    engine = open_engine(image, model, out_dir, device, max_pixels)
    server = EditorServer(engine, "127.0.0.1", port).start()
    if open:
        webbrowser.open(server.url)
    return server


def hints_command(image: str, model: str, out: str | None = None, port: int = 0, open: bool = False,
                  device: str = "auto", max_pixels: int = MAX_SCAN_PIXELS) -> EditorReport:
    """The CLI's command: serve the editor until Ctrl-C, then say what was saved."""
    server = run_editor(image, model, out, port, open, device, max_pixels)
    engine = server.engine
    before = engine.hints_path.stat().st_mtime_ns if engine.hints_path.exists() else None
    print(f"hints: editing {image} at {server.url} (press Ctrl-C to stop)", flush=True)
    server.serve_until_interrupted()
    after = engine.hints_path.stat().st_mtime_ns if engine.hints_path.exists() else None
    return EditorReport(Path(image), engine.hints_path, server.url, saved=after is not None and after != before)
