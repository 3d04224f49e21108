"""A human "real or colorized?" study served as a small local web page (`colorize turing`).

`run_turing(...)` prepares pairs (pairs.py), serves the page and records answers (server.py), and
tallies fooled rates with confidence intervals (tally.py). The study folder layout is in study.py.
"""

from __future__ import annotations

from .run import TuringReport, run_turing, tally_command
from .server import StudyServer
from .tally import tally_study, wilson_interval

__all__ = ["StudyServer", "TuringReport", "run_turing", "tally_command", "tally_study", "wilson_interval"]
