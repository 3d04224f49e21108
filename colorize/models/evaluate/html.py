"""The HTML both report pages (eval of one model, eval of a bundle) are built from.

One way to format a number (a dash for missing or NaN), one way to escape text and one table shape,
so the two pages cannot drift apart; each page keeps only its own layout and CSS.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

MISSING = "–"

# A cell is HTML text, or (HTML text, CSS class).
Cell = str | tuple[str, str]


def fmt(value: Any, pattern: str = "{:.2f}") -> str:
    """A value as HTML text: a float formatted by `pattern`, anything else escaped as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return pattern.format(value)
    return html.escape(str(value))


def esc(text: Any) -> str:
    """Any value as escaped HTML text (names, paths and categories are untrusted)."""
    return html.escape(str(text))


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], row_classes: Sequence[str] | None = None) -> str:
    """A table: plain-text header cells, HTML body cells (see `Cell`), optional class per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="{c[1]}">{c[0]}</td>' if isinstance(c, tuple) else f"<td>{c}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, css: str, body: str) -> str:
    """A self-contained page: inline CSS, no scripts, images referenced relatively."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">\n'
            f"<title>{esc(title)}</title><style>{css}</style></head>\n<body>{body}</body></html>\n")
