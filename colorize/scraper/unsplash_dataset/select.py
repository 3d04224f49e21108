"""Which photos of an Unsplash Dataset release go into which category folder, in which order.

The rules, all deterministic, so the same files and options give the same photos in the same
order:
- a keyword row matches a category when its keyword, trimmed and lower-cased, equals one of the
  category's keywords; its score is 100 when `suggested_by_user` is true, else the larger of the two AI
  confidences (empty = 0); a photo's score in a category is its best matching row; it qualifies at
  `score >= min_confidence`;
- a photo that qualifies for several categories goes to the one where it scores highest (a tie goes to
  the category given first), so no id is in two folders;
- within a category: score descending, then photo_id;
- premium photos (`premium_photo-` path, `plus.` host) are never requested: skipped, reason premium.

Memory holds only the photos that match some category keyword (one score and keyword per category),
never the keywords table: the two passes (keywords, then photos) stream their tables.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from colorize.scraper.categories import Category
from colorize.scraper.unsplash_dataset.tables import UnsplashDataset, pick
from colorize.scraper.urls import ID_RE, USERNAME_RE, is_http, is_premium

log = logging.getLogger(__name__)

KEYWORD_COLUMNS = ("photo_id", "keyword", "ai_service_1_confidence", "ai_service_2_confidence", "suggested_by_user")
PHOTO_COLUMNS = ("photo_id", "photo_url", "photo_image_url", "photo_width", "photo_height", "photo_description",
                 "ai_description", "photographer_username", "photographer_first_name", "photographer_last_name")
TRUE = frozenset({"t", "true", "1", "y", "yes"})
PAGE_URL = "https://unsplash.com/photos/{id}"
PROFILE_URL = "https://unsplash.com/@{username}"


@dataclass(frozen=True)
class Candidate:
    """A photo chosen for a category, with what the manifest records about it."""

    id: str
    category: str
    keyword: str
    score: float
    rank: int
    image_url: str
    page_url: str
    alt: str
    width: int | None
    height: int | None
    photographer: dict[str, str]


@dataclass
class Selection:
    """Ranked candidates per category (more than `--limit`: the next ones replace missing photos)."""

    categories: list[Category]
    ranked: dict[str, list[Candidate]]
    skipped: dict[str, Counter]
    keyword_rows: int = 0
    matched_rows: int = 0
    photo_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _confidence(text: str) -> float:
    """An AI confidence 0..100; empty or unreadable counts as 0."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def row_score(conf1: str, conf2: str, by_user: str) -> float:
    """A keyword row's score: 100 when suggested by a user, else the larger AI confidence (empty = 0)."""
    if by_user == "t" or (by_user and by_user.strip().lower() in TRUE):
        return 100.0
    # empty confidences are common: no call for them
    return max(_confidence(conf1) if conf1 else 0.0, _confidence(conf2) if conf2 else 0.0)


def score_keywords(dataset: UnsplashDataset, categories: list[Category]) -> tuple[dict[str, list], int, int]:
    """{photo_id: [(score, -keyword position, keyword) or None per category]} for matching photos only."""
    lookup: dict[str, list[tuple[int, int]]] = {}
    for ci, category in enumerate(categories):
        for ki, keyword in enumerate(category.keywords):
            lookup.setdefault(keyword.strip().lower(), []).append((ci, ki))
    n = len(categories)
    best: dict[str, list] = {}
    counts = [0, 0]  # rows, matched rows

    def consume(reader, index: dict[str, int]) -> None:
        i_kw = index["keyword"]
        get = pick(index, KEYWORD_COLUMNS)
        rows = matched = 0
        for row in reader:  # the hot loop: one dict look-up per row that matches nothing
            try:
                keyword = row[i_kw].strip().lower()
            except IndexError:
                continue  # a blank or truncated line is not a row
            rows += 1
            hits = lookup.get(keyword)
            if hits is None:
                continue
            matched += 1
            pid, _, conf1, conf2, by_user = get(row)
            score = row_score(conf1, conf2, by_user)
            scores = best.get(pid)
            if scores is None:
                scores = best[pid] = [None] * n
            for ci, ki in hits:
                if scores[ci] is None or (score, -ki) > scores[ci][:2]:
                    scores[ci] = (score, -ki, keyword)
        counts[0] += rows
        counts[1] += matched

    dataset.scan("keywords", ("photo_id", "keyword"), consume)
    return best, counts[0], counts[1]


def assign(best: dict[str, list], min_confidence: float) -> dict[int, list[tuple[float, str, str]]]:
    """{category index: [(score, photo_id, keyword)]}: each qualifying photo in its best category only."""
    chosen: dict[int, list[tuple[float, str, str]]] = {}
    for pid, scores in best.items():
        top = None
        for ci, value in enumerate(scores):  # strictly better only: a tie stays with the earlier category
            if value is not None and value[0] >= min_confidence and (top is None or value[0] > scores[top][0]):
                top = ci
        if top is not None:
            chosen.setdefault(top, []).append((scores[top][0], pid, scores[top][2]))
    return chosen


def _photographer(username: str, first: str, last: str) -> dict[str, str]:
    username = username.strip()
    name = " ".join(f"{first} {last}".split()) or username
    url = PROFILE_URL.format(username=username) if USERNAME_RE.fullmatch(username) else ""
    return {"username": username, "name": name, "url": url}


def _size(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def select(dataset: UnsplashDataset, categories: list[Category], min_confidence: float) -> Selection:
    """Score the keywords table, assign photos to categories, read their photo rows, rank them."""
    started = time.perf_counter()
    best, rows, matched = score_keywords(dataset, categories)
    chosen = assign(best, min_confidence)
    del best
    scored = time.perf_counter()
    wanted = {pid for picks in chosen.values() for _, pid, _ in picks}
    info: dict[str, tuple[str, ...]] = {}
    photo_rows = [0]

    def consume(reader, index: dict[str, int]) -> None:
        i_id, get = index["photo_id"], pick(index, PHOTO_COLUMNS)
        for row in reader:
            if len(row) <= i_id:
                continue  # a blank or truncated line is not a row
            photo_rows[0] += 1
            if row[i_id] in wanted and row[i_id] not in info:  # a repeated id: the first row counts
                info[row[i_id]] = get(row)

    dataset.scan("photos", ("photo_id", "photo_image_url"), consume)
    ranked: dict[str, list[Candidate]] = {}
    skipped: dict[str, Counter] = {}
    for ci, category in enumerate(categories):
        skips: Counter = Counter()
        out: list[Candidate] = []
        for score, pid, keyword in sorted(chosen.get(ci, []), key=lambda t: (-t[0], t[1])):
            row = info.get(pid)
            image = row[2].strip() if row is not None else ""
            reason = ("bad_id" if not ID_RE.fullmatch(pid) else "no_photo_row" if row is None
                      else "bad_url" if not is_http(image) else "premium" if is_premium(image) else "")
            if reason:
                skips[reason] += 1
                continue
            _, page, _, width, height, description, ai_description, username, first, last = row
            out.append(Candidate(
                id=pid, category=category.name, keyword=keyword, score=score, rank=len(out) + 1,
                image_url=image, page_url=page.strip() if is_http(page.strip()) else PAGE_URL.format(id=pid),
                alt=" ".join((description.strip() or ai_description.strip()).split()),
                width=_size(width), height=_size(height), photographer=_photographer(username, first, last)))
        ranked[category.name], skipped[category.name] = out, skips
    return Selection(categories, ranked, skipped, rows, matched, photo_rows[0],
                     {"keywords": scored - started, "photos": time.perf_counter() - scored})


def selection_options(categories: list[Category], min_confidence: float, limit: int, width: int) -> dict[str, Any]:
    """Every option that decides which photos are chosen and which bytes are fetched (the `source` record)."""
    return {"categories": [{"name": c.name, "keywords": list(c.keywords)} for c in categories],
            "min_confidence": min_confidence, "limit": limit, "width": width}
