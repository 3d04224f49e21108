"""Categories and their keywords: the one parser for `--category`, `--query` and `--categories-file`.

Both sources read categories the same way, so one file works for both: a line is `name` or
`name: keyword, keyword` (`#` starts a comment). The web scrape searches for a category's first
keyword; the Unsplash Dataset source matches any of them against its keywords table. A category
without keywords uses its name, with `-` and `_` read as spaces (`new-york` -> `new york`), which is
what the search box and the dataset's keywords both spell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorize.errors import UsageError
from colorize.scraper.urls import check_category


@dataclass(frozen=True)
class Category:
    """A folder name and the keywords that select its photos (the first one is the web search text)."""

    name: str
    keywords: tuple[str, ...]

    @property
    def query(self) -> str:
        return self.keywords[0]


def default_keyword(name: str) -> str:
    """The keyword a bare category name stands for: `-`/`_` become spaces, whitespace collapsed."""
    return " ".join(name.replace("-", " ").replace("_", " ").split())


def split_keywords(text: str) -> tuple[str, ...]:
    """`"a, b ,, c"` -> ("a", "b", "c"): comma-separated, trimmed, empty ones and repeats dropped."""
    return tuple(dict.fromkeys(k for k in (" ".join(part.split()) for part in text.split(",")) if k))


def parse_line(line: str) -> Category | None:
    """One categories-file line (`name` or `name: kw, kw`), None for a blank or comment-only line."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    name, sep, rest = line.partition(":")
    name = name.strip()
    keywords = split_keywords(rest) if sep else ()
    if sep and not keywords:
        raise UsageError(f"category {name!r} has a ':' but no keywords",
                         "write `name` alone, or `name: keyword, keyword`")
    return Category(check_category(name), keywords or (default_keyword(name),))


def read_categories_file(path: str | Path) -> list[Category]:
    """Every category of a categories file, in file order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --categories-file {path} ({type(exc).__name__})",
                         "give a UTF-8 text file with one category per line") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            category = parse_line(line)
        except UsageError as exc:
            raise UsageError(f"{path}, line {number}: {exc.what}", exc.fix) from None
        if category is not None:
            out.append(category)
    return out


def plan_categories(categories: tuple[str, ...] | list[str] = (), categories_file: str | Path | None = None,
                    query: str | None = None) -> list[Category]:
    """The categories of a run, in the order given (options first, then the file); repeats keep the first."""
    planned = [Category(check_category(n), (default_keyword(n),)) for n in categories or ()]
    if categories_file:
        planned += read_categories_file(categories_file)
    unique: dict[str, Category] = {}
    for category in planned:
        unique.setdefault(category.name, category)
    if not unique:
        raise UsageError("no category given", "pass --category NAME (repeatable) or --categories-file FILE")
    if query is not None:
        if len(unique) != 1:
            raise UsageError("--query works with a single category", "scrape one category at a time with --query")
        keywords = split_keywords(query)
        if not keywords:
            raise UsageError("--query is empty", "give the search text, e.g. --query 'sandy beach'")
        return [Category(next(iter(unique)), keywords)]
    return list(unique.values())
