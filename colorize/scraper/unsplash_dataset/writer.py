"""Write a miniature Unsplash Dataset release in the real format (for the demo and the tests).

Why: `scrape --dataset` must be proven on the format as released, not on a simplified copy, and the
demo must run offline. So this writes what the release ships (unsplash/datasets DOCS.md and psql
how-to): tab-separated tables with CSV quoting (csv module, `QUOTE_MINIMAL`: a field holding a tab,
quote or newline is quoted, quotes doubled), `t`/`f` booleans, shards `<table>.tsv000...` (1.4.x) or
`.csv000...` (1.3.0) each with its own header, DOCS.md and CHANGELOG.md; optionally zipped, with or
without a top folder. The photos can be served by the local Unsplash-like site (`site_release`).
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from colorize.io import atomic_write_bytes, atomic_write_text

PHOTO_COLUMNS = (
    "photo_id", "photo_url", "photo_image_url", "photo_submitted_at", "photo_featured", "photo_width",
    "photo_height", "photo_aspect_ratio", "photo_description", "photographer_username", "photographer_first_name",
    "photographer_last_name", "exif_camera_make", "exif_camera_model", "exif_iso", "exif_aperture_value",
    "exif_focal_length", "exif_exposure_time", "photo_location_name", "photo_location_latitude",
    "photo_location_longitude", "photo_location_country", "photo_location_city", "stats_views", "stats_downloads",
    "ai_description", "ai_primary_landmark_name", "ai_primary_landmark_latitude", "ai_primary_landmark_longitude",
    "ai_primary_landmark_confidence", "blur_hash")
KEYWORD_COLUMNS = ("photo_id", "keyword", "ai_service_1_confidence", "ai_service_2_confidence", "suggested_by_user",
                   "user_suggestion_source")
OTHER_TABLES = {
    "collections": ("photo_id", "collection_id", "collection_title", "photo_collected_at"),
    "conversions": ("converted_at", "conversion_type", "keyword", "photo_id", "anonymous_user_id", "conversion_country"),
    "colors": ("photo_id", "hex", "red", "green", "blue", "keyword", "ai_coverage", "ai_score"),
}
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed member times: the same release gives the same zip bytes


def table_text(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """One shard: its header row, then the rows (a missing field is empty, as psql writes NULL)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", quotechar='"', lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return buf.getvalue()


def write_table(folder: Path, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, object]],
                naming: str = "tsv", shards: int = 1) -> list[Path]:
    """`<table>.<naming>000...`: the rows split into `shards` consecutive shards, each with the header."""
    shards = max(1, shards)
    per = -(-len(rows) // shards) if rows else 0
    paths = []
    for i in range(shards):
        path = Path(folder) / f"{table}.{naming}{i:03d}"
        atomic_write_text(path, table_text(columns, rows[i * per:(i + 1) * per] if per else []))
        paths.append(path)
    return paths


def write_release(folder: str | os.PathLike, photos: Sequence[Mapping[str, object]],
                  keywords: Sequence[Mapping[str, object]], naming: str = "tsv", shards: int = 1,
                  extra_columns: Sequence[str] = (), version: str = "1.4.1", leading_columns: Sequence[str] = ()
                  ) -> Path:
    """A release folder: the five tables (photos and keywords sharded), DOCS.md and CHANGELOG.md.

    `extra_columns` / `leading_columns` add columns a newer release might have, after or before the
    known ones (readers must go by header name)."""
    folder = Path(folder)
    write_table(folder, "photos", (*leading_columns, *PHOTO_COLUMNS, *extra_columns), photos, naming, shards)
    kw_columns = (*leading_columns, *KEYWORD_COLUMNS, "suggested_by_ai_service_3", "confirmed_by_ai_service_3",
                  *extra_columns)
    write_table(folder, "keywords", kw_columns, keywords, naming, shards)
    for table, columns in OTHER_TABLES.items():
        write_table(folder, table, columns, [], naming, 1)
    atomic_write_text(folder / "DOCS.md", "# Unsplash Dataset Documentation\n\nThe Unsplash Dataset is composed "
                      "of multiple TSV files (a miniature written by colorize).\n")
    atomic_write_text(folder / "CHANGELOG.md", f"# CHANGELOG.md\n\n## {version} (2026-01-01)\n\n- miniature\n")
    return folder


def zip_release(folder: str | os.PathLike, zip_path: str | os.PathLike, top: str = "") -> Path:
    """Zip a release folder (deflated, fixed times), its files under `top/` when given."""
    folder, zip_path = Path(folder), Path(zip_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(zipfile.ZipInfo(f"{top}/", ZIP_DATE), b"")
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            info = zipfile.ZipInfo(f"{top}/{path.name}" if top else path.name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    atomic_write_bytes(zip_path, buf.getvalue())
    return zip_path


def site_release(site, categories: Sequence[str], folder: str | os.PathLike, naming: str = "tsv",
                 shards: int = 2) -> Path:
    """The local site's photos of `categories` as a release whose image URLs point at the site.

    Every free photo gets its category as a keyword (AI confidence 90-99), a shared keyword ("nature",
    never a category) and, every third photo, the category confirmed by a user; the site's Unsplash+
    photos are listed too (premium, so the scrape must skip them).
    """
    photos, keywords = [], []
    for category in categories:
        for n, card in enumerate(c for c in site.cards(category) if c.kind in ("free", "premium")):
            p = card.photo
            first, _, last = p.name.partition(" ")
            photos.append({"photo_id": p.id, "photo_url": f"{site.base_url}/photos/{p.id}",
                           "photo_image_url": site.base_url + p.image_path, "photo_width": p.width,
                           "photo_height": p.height, "photo_description": p.alt, "photographer_username": p.username,
                           "photographer_first_name": first, "photographer_last_name": last,
                           "photo_featured": "t" if n % 5 == 0 else "f", "ai_description": p.alt})
            keywords.append({"photo_id": p.id, "keyword": category, "ai_service_1_confidence": 90 + n % 10,
                             "ai_service_2_confidence": "", "suggested_by_user": "t" if n % 3 == 0 else "f"})
            keywords.append({"photo_id": p.id, "keyword": "nature", "ai_service_1_confidence": 80,
                             "ai_service_2_confidence": 70, "suggested_by_user": "f"})
    return write_release(folder, photos, keywords, naming, shards)
