"""The hints file: a few colours a user placed on one photo, as JSON (read by predict, written by the editor).

    {"points": [{"x": 412, "y": 230, "color": "#3a6ea5", "size": 9}]}

- `x`, `y`: the patch centre in pixels of the photo as displayed (after EXIF orientation, origin top left,
  pixel centres at integers), any finite number with 0 <= x <= width - 1 and 0 <= y <= height - 1.
- `color`: sRGB `#rrggbb` (either case; the `#rgb` shorthand is refused so that one colour has one
  spelling, the one `<input type=color>` gives). Only its chroma is used (CIELAB a, b through
  `color.rgb_to_lab`): the photo keeps its own lightness.
- `size`: the square patch's side in photo pixels, an integer 1..`max_hint_size(width, height)`; optional,
  `default_hint_size(width, height)` when absent.
Nothing else is allowed (an unknown key is a typo that would otherwise be silently ignored), at most
`MAX_HINT_POINTS` points, at most `MAX_HINTS_FILE_BYTES` bytes. An empty `points` list is valid: it asks
for exactly the automatic colouring.

`HintSpec` keeps what the user wrote (the hex colour, for the editor to show and save again);
`HintSpec.point()` is the `hints.HintPoint` the network's planes are made from.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset.color import rgb_to_lab
from colorize.dataset.hints import HintPoint
from colorize.errors import UsageError
from colorize.io import atomic_write_text, dumps_json, read_regular_bytes

__all__ = ["MAX_HINTS_FILE_BYTES", "MAX_HINT_POINTS", "HintSpec", "default_hint_size", "hex_to_ab",
           "max_hint_size", "parse_hint_specs", "parse_hints", "read_hint_specs", "read_hints", "write_hints"]

MAX_HINT_POINTS = 256  # Zhang et al. 2017 measure up to 50 points; hundreds more would be painting, not hints
MAX_HINTS_FILE_BYTES = 256 * 1024  # 256 points pretty-printed take about 25 KB
# A default patch about 1/64 of the long side: 4 model pixels at the 256 px training square, inside the
# 1-9 px range training simulates (Zhang 2017's), and big enough to see and grab in the editor.
DEFAULT_SIZE_FRACTION = 1 / 64
HEX_RE = re.compile(r"#[0-9a-fA-F]{6}")
TOP_KEYS = frozenset({"points"})
POINT_KEYS = frozenset({"x", "y", "color", "size"})
FIX = "see the hints file format in the README (`colorize hints` writes valid files)"


def default_hint_size(width: int, height: int) -> int:
    """The patch side used when a point gives none: 1/64 of the photo's long side, at least 1 pixel."""
    return max(1, round(max(width, height) * DEFAULT_SIZE_FRACTION))


def max_hint_size(width: int, height: int) -> int:
    """The largest patch side allowed: the photo's long side (a larger square is no longer a point)."""
    return max(1, width, height)


@dataclass(frozen=True)
class HintSpec:
    """One point as saved: centre (x, y) in photo pixels, `color` "#rrggbb" (lower case), side `size`."""

    x: float
    y: float
    color: str
    size: int

    def point(self) -> HintPoint:
        a, b = hex_to_ab(self.color)
        return HintPoint(x=self.x, y=self.y, a=a, b=b, size=self.size)

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "color": self.color, "size": self.size}


def hex_to_ab(color: str) -> tuple[float, float]:
    """"#rrggbb" -> its CIELAB (a, b) (D65, through `color.rgb_to_lab`, the conversion of training)."""
    rgb = np.array([[int(color[i:i + 2], 16) for i in (1, 3, 5)]], np.uint8)
    lab = rgb_to_lab(rgb)[0]
    return float(lab[1]), float(lab[2])


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:
        raise UsageError(f"hints: the key {dup!r} appears twice in one object", FIX)
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise UsageError(f"hints: {name} is not a JSON number", FIX)


def _coordinate(value: Any, key: str, limit: int, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"hints: {where} {key} must be a number, got {json.dumps(value)[:40]}", FIX)
    if not math.isfinite(value):
        raise UsageError(f"hints: {where} {key} is not finite", FIX)
    if not 0 <= value <= limit - 1:
        axis = "width" if key == "x" else "height"
        raise UsageError(f"hints: {where} is outside the image ({key} = {value:g}, the {axis} is {limit} px: "
                         f"0 <= {key} <= {limit - 1})", "place points on the photo the file is for")
    return value


def _spec(item: Any, i: int, width: int, height: int) -> HintSpec:
    where = f"point {i + 1}"
    if not isinstance(item, dict):
        raise UsageError(f"hints: {where} must be an object with x, y, color and size", FIX)
    unknown = sorted(set(item) - POINT_KEYS)
    if unknown:
        raise UsageError(f"hints: {where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: color, size, x, y", FIX)
    missing = [k for k in ("x", "y", "color") if k not in item]
    if missing:
        raise UsageError(f"hints: {where} lacks {', '.join(missing)}", FIX)
    x = _coordinate(item["x"], "x", width, where)
    y = _coordinate(item["y"], "y", height, where)
    color = item["color"]
    if not isinstance(color, str) or not HEX_RE.fullmatch(color):
        raise UsageError(f"hints: {where} color {json.dumps(color)[:40]} is not an sRGB hex colour",
                         'write it as "#rrggbb", e.g. "#3a6ea5" (the #rgb shorthand is not accepted)')
    size = item.get("size", default_hint_size(width, height))
    top = max_hint_size(width, height)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= top:
        raise UsageError(f"hints: {where} size {json.dumps(size)[:40]} is not a whole number of pixels "
                         f"from 1 to {top}", "give the patch side in photo pixels, or leave size out")
    return HintSpec(x, y, color.lower(), size)


def parse_hint_specs(obj: Any, width: int, height: int) -> list[HintSpec]:
    """A decoded hints document -> the points as written, checked against a `width` x `height` photo."""
    if not isinstance(obj, dict):
        raise UsageError("hints: the file must hold a JSON object {\"points\": [...]}", FIX)
    unknown = sorted(set(obj) - TOP_KEYS)
    if unknown:
        raise UsageError(f"hints: unknown key(s) {', '.join(map(repr, unknown))} at the top; only \"points\"", FIX)
    points = obj.get("points")
    if not isinstance(points, list):
        raise UsageError("hints: \"points\" must be a list (it may be empty)", FIX)
    if len(points) > MAX_HINT_POINTS:
        raise UsageError(f"hints: {len(points)} points, more than the {MAX_HINT_POINTS} allowed",
                         "keep the few colours you are sure of")
    return [_spec(item, i, width, height) for i, item in enumerate(points)]


def parse_hints(obj: Any, width: int, height: int) -> list[HintPoint]:
    """A decoded hints document -> the points the network's hint planes are made from."""
    return [s.point() for s in parse_hint_specs(obj, width, height)]


def loads_hints_document(data: bytes, name: str) -> Any:
    """Bytes -> the decoded JSON (duplicate keys, NaN/Infinity and non-UTF-8 refused), one line per problem."""
    if len(data) > MAX_HINTS_FILE_BYTES:
        raise UsageError(f"hints: {name} is over {MAX_HINTS_FILE_BYTES} bytes", "a hints file holds a few points")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise UsageError(f"hints: {name} is not UTF-8 text", FIX) from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"hints: {name} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                         FIX) from exc


def read_hint_specs(path: str | Path, width: int, height: int) -> list[HintSpec]:
    """The points of a hints file as written (for the editor to continue them)."""
    try:
        data = read_regular_bytes(path, MAX_HINTS_FILE_BYTES)
    except OSError as exc:
        raise UsageError(f"hints: cannot read {path}: {exc.strerror or exc}",
                         f"pass a JSON file of at most {MAX_HINTS_FILE_BYTES} bytes") from exc
    try:
        return parse_hint_specs(loads_hints_document(data, str(path)), width, height)
    except UsageError as exc:
        if str(path) in exc.what:
            raise
        raise UsageError(exc.what.replace("hints:", f"hints {path}:", 1), exc.fix) from exc


def read_hints(path: str | Path, width: int, height: int) -> list[HintPoint]:
    """A hints file for a `width` x `height` photo -> its points (bounded read; a FIFO or folder is refused)."""
    return [s.point() for s in read_hint_specs(path, width, height)]


def write_hints(path: str | Path, specs: Sequence[HintSpec]) -> None:
    """Write a hints file atomically, keys sorted (the same points give the same bytes)."""
    if len(specs) > MAX_HINT_POINTS:
        raise UsageError(f"hints: {len(specs)} points, more than the {MAX_HINT_POINTS} allowed",
                         "keep the few colours you are sure of")
    atomic_write_text(path, dumps_json({"points": [s.to_json() for s in specs]}))
