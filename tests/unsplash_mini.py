"""Test support: a miniature Unsplash Dataset release in the real format, its photos served by the local site.

It holds every case issue 12 names, with the outcome the selection rules give (categories beach =
"beach, sandy beach" and forest, --min-confidence 40, --limit 4):

beach  P0 100 (user-suggested; also "Forest " at 95: two categories, the best wins), P1 88.5 (" BEACH",
       empty AI 1), P2 70 ("sandy beach"; also forest 70: a tie goes to the first category), P4 60 (answers
       410: missing), then P5/P6 55 (same score: by photo_id; the first replaces P4); P3 scores 0
       (empty confidences), a premium photo scores 100, a hostile id scores 100, P11 has no photo row.
forest P7 99, P8 90 (description with tab, newline and quotes), P9 80 (unicode name), P10 50 (empty names,
       a username that cannot be a URL), P12 45.
Every table is split into shards that each start with a header, with an unknown extra column (last in
one release, first in the other) whose values hold tabs, quotes and newlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorize.scraper.unsplash_dataset.writer import write_release, zip_release

CATEGORIES_FILE = "# the miniature's categories\nbeach: beach, sandy beach\nforest  # named only\n"
HOSTILE_ID = "../../etc/x"


@dataclass
class Mini:
    """Ids of the miniature's photos (P0..P12 as in the module doc) and the premium one."""

    ids: list[str]
    premium: str
    rows: tuple[int, int] = (0, 0)  # (photo rows, keyword rows) written

    @property
    def beach(self) -> list[str]:
        """The beach photos a correct scrape keeps, in rank order (P4 missing, replaced)."""
        p = self.ids
        return [p[0], p[1], p[2], min(p[5], p[6])]

    @property
    def forest(self) -> list[str]:
        p = self.ids
        return [p[7], p[8], p[9], p[10]]


def _kw(pid: str, keyword: str, c1: object = "", c2: object = "", user: str = "f", **extra) -> dict:
    return {"photo_id": pid, "keyword": keyword, "ai_service_1_confidence": c1, "ai_service_2_confidence": c2,
            "suggested_by_user": user, **extra}


def tables(site) -> tuple[Mini, list[dict], list[dict]]:
    """(ids, photo rows, keyword rows) of the miniature, with image URLs on `site`."""
    cards = site.cards("mini")
    free = [c.photo for c in cards if c.kind == "free"][:13]
    premium = next(c.photo for c in cards if c.kind == "premium")
    ids = [p.id for p in free]
    p = ids
    photos = []
    for i, sp in enumerate([*free, premium]):
        first, last, user = sp.name.partition(" ")[0], sp.name.partition(" ")[2], sp.username
        if i == 9:
            first, last = "Zoë", "Ångström-Łukasz"
        if i == 10:
            first, last, user = "", "", "bad user/../x"
        row = {"photo_id": sp.id, "photo_url": f"https://unsplash.com/photos/{sp.id}",
               "photo_image_url": site.base_url + sp.image_path, "photo_width": sp.width, "photo_height": sp.height,
               "photo_description": sp.alt, "photographer_username": user, "photographer_first_name": first,
               "photographer_last_name": last, "ai_description": f"ai: {sp.alt}", "photo_featured": "t",
               "future_column": 'new\t"data"'}
        if i == 8:
            row["photo_description"] = 'A "quoted"\tforest\nover two lines'
        if i == 7:
            row["photo_description"] = ""  # falls back to ai_description
        if i != 11:  # P11 has keywords but no photo row
            photos.append(row)
    photos.append({"photo_id": HOSTILE_ID, "photo_image_url": site.base_url + free[0].image_path})
    keywords = [
        _kw(p[0], "beach", 20, 30, "t"), _kw(p[0], "Forest ", 95, 10),
        _kw(p[1], " BEACH", "", "88.5"), _kw(p[2], "sandy beach", 70, ""), _kw(p[2], "forest", "", 70),
        _kw(p[3], "beach", "", "", "f"), _kw(p[4], "beach", 60, 12), _kw(p[5], "beach", 55, ""),
        _kw(p[6], "beach", "", 55), _kw(premium.id, "beach", "", "", "t"), _kw(HOSTILE_ID, "beach", 100, 100),
        _kw(p[11], "beach", 45, ""), _kw(p[7], "forest", 99, ""), _kw(p[8], "forest", 90, 3),
        _kw(p[9], "forest", 80, ""), _kw(p[10], "forest", "", 50), _kw(p[12], "forest", 45, ""),
        _kw(p[12], "beach", 39.9, ""),  # below --min-confidence for beach: stays forest's
    ]
    for i, pid in enumerate(ids):  # keywords of no category, some with odd text
        keywords += [_kw(pid, "nature", 99, 99, "t"), _kw(pid, "sky\tline", 80, "", future_column="x\ny"),
                     _kw(pid, "plage ☀", 77, "")]
        keywords.append(_kw(pid, "beach house", 99, 99))  # another keyword, not "beach"
        if i % 2:
            keywords.append(_kw(pid, 'the "best"', 50, 50))
    # Interleave, so that matches and shards do not line up.
    keywords = keywords[::2] + keywords[1::2]
    return Mini(ids, premium.id, (len(photos), len(keywords))), photos, keywords


def write_mini(site, root: Path) -> tuple[Mini, dict[str, Path]]:
    """The miniature as a 1.4.x folder (.tsv, 3 shards), a 1.3.0 folder (.csv, 2 shards) and a zip of the
    1.4.x folder with a top folder, named like the real download."""
    mini, photos, keywords = tables(site)
    tsv = write_release(root / "lite-tsv", photos, keywords, "tsv", 3, extra_columns=("future_column",))
    csv = write_release(root / "lite-csv", photos, keywords, "csv", 2, leading_columns=("future_column",),
                        version="1.3.0")  # the unknown column first: only reading by header name works
    for folder, ext in ((tsv, "tsv"), (csv, "csv")):  # a blank line at the end of a shard is not a row
        for table in ("photos", "keywords"):
            with open(folder / f"{table}.{ext}001", "a", encoding="utf-8") as fh:
                fh.write("\n")
    zipped = zip_release(tsv, root / "unsplash-research-dataset-lite-1.4.1.zip",
                         top="unsplash-research-dataset-lite-1.4.1")
    return mini, {"tsv": tsv, "csv": csv, "zip": zipped}
