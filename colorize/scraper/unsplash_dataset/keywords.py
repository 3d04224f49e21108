"""`colorize scrape --dataset PATH --list-keywords`: which keywords a release holds, before choosing categories.

Why: a category matches keyword rows by their exact (trimmed, lower-cased) keyword (`select.py`), so a
user needs to see the release's own words and how many photos each would bring. One streaming pass over
the keywords table, the same reader as the selection (`UnsplashDataset.scan`); memory holds one counter
per distinct keyword (tens of thousands in the Lite release), never the rows.

Counts: `photos` is the keyword's rows (the table has one row per photo and keyword), `qualifying` the
rows that reach `--min-confidence` by the selection's own score (`select.row_score`), which is what a
`--category KEYWORD` would find before photos are split between categories.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.io import write_run_record
from colorize.scraper.unsplash_dataset.select import KEYWORD_COLUMNS, row_score
from colorize.scraper.unsplash_dataset.tables import UnsplashDataset, pick

DEFAULT_TOP = 40
RECORD_FILE = "keywords-run.json"


@dataclass
class KeywordTable:
    """The most common keywords of a release: (keyword, photos, qualifying), most photos first."""

    dataset: str
    min_confidence: float
    top: list[tuple[str, int, int]]
    rows: int
    distinct: int
    record: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """The printed table; the column header names the confidence the counts use."""
        shown = [(_shown(k), n, q) for k, n, q in self.top]
        width = max([len("keyword"), *(len(k) for k, _, _ in shown)])
        lines = [f"{'keyword':<{width}}  {'photos':>8}  {f'>= {self.min_confidence:g}':>8}"]
        lines += [f"{k:<{width}}  {n:>8}  {q:>8}" for k, n, q in shown]
        return "\n".join(lines)

    def summary_line(self) -> str:
        where = f"; record {self.record}" if self.record else ""
        return (f"{self.table()}\n{len(self.top)} most common of {self.distinct} keywords in {self.rows} keyword rows "
                f"of {self.dataset} (photos = rows; '>= {self.min_confidence:g}' = rows that reach "
                f"--min-confidence). Use one as --category NAME, or several as `NAME: kw, kw` in "
                f"--categories-file{where}")


def _shown(keyword: str) -> str:
    """A keyword as printed: the release's text is untrusted, so one with tabs or control characters (a
    terminal escape) is shown quoted and escaped."""
    return keyword if keyword.isprintable() else repr(keyword)


def count_keywords(dataset: UnsplashDataset, min_confidence: float) -> tuple[Counter, Counter, int]:
    """(rows per keyword, qualifying rows per keyword, rows) over the whole keywords table, streamed."""
    photos: Counter = Counter()
    qualifying: Counter = Counter()
    rows = [0]

    def consume(reader, index: dict[str, int]) -> None:
        i_kw, get = index["keyword"], pick(index, KEYWORD_COLUMNS)
        n = 0
        for row in reader:
            try:
                keyword = row[i_kw].strip().lower()
            except IndexError:
                continue  # a blank or truncated line is not a row
            if not keyword:
                continue
            n += 1
            photos[keyword] += 1
            _, _, conf1, conf2, by_user = get(row)
            if row_score(conf1, conf2, by_user) >= min_confidence:
                qualifying[keyword] += 1
        rows[0] += n

    dataset.scan("keywords", ("photo_id", "keyword"), consume)
    return photos, qualifying, rows[0]


def list_keywords(dataset: str | Path, out: str | Path, min_confidence: float, top: int = DEFAULT_TOP) -> KeywordTable:
    """The `top` keywords by photo count (ties by keyword), printed and written to OUT/keywords-run.json."""
    started = time.perf_counter()
    with UnsplashDataset(dataset) as ds:
        photos, qualifying, rows = count_keywords(ds, min_confidence)
        tables = dict(sorted(ds.hashes.items()))
    ranked = sorted(photos.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    result = KeywordTable(str(dataset), min_confidence, [(k, n, qualifying[k]) for k, n in ranked], rows, len(photos),
                          timings={"scan": time.perf_counter() - started})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.record = out / RECORD_FILE
    params: dict[str, Any] = {"dataset": str(dataset), "min_confidence": min_confidence, "top": top}
    write_run_record(result.record, "scrape --list-keywords", params,
                     counts={"keyword_rows": rows, "distinct_keywords": len(photos)}, timings=result.timings,
                     tables=tables, keywords=[{"keyword": k, "photos": n, "qualifying": q} for k, n, q in result.top])
    return result
