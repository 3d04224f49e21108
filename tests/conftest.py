"""Shared test fixtures. Tests make what they need in temporary folders; nothing is downloaded."""

from __future__ import annotations

import os

# Keep torch/numpy to the 2 cores CI has, and tests deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("COLORIZE_TEST", "1")
