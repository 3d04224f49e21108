"""Benchmark `scrape --dataset` selection on a generated release with 3 million real-shaped keyword rows.

The aim (issue 12): selection in <= 10 s and <= 300 MB peak RSS on one core, because memory must not
grow with the keywords table (Full has hundreds of millions of rows). The release is generated like
Lite: ~25,000 photos with the 31 photo columns, ~120 keyword rows per photo drawn from a Zipf-shaped
vocabulary of 20,000 keywords, AI confidences printed as long floats (some empty), user suggestions,
the 1.4.x columns, two shards each with its header, zipped like the real download. The baseline is the
first thing one writes: `csv.DictReader` each shard into a list, then filter the rows. Both run in this
process, ours first (peak RSS only grows, so ours is measured before the baseline inflates it).

    .venv/bin/python benchmarks/bench_dataset.py [--rows 3000000] [--photos 25000]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import resource
import tempfile
import time
import zipfile
from pathlib import Path

from colorize.scraper.categories import Category
from colorize.scraper.unsplash_dataset.select import select
from colorize.scraper.unsplash_dataset.tables import UnsplashDataset
from colorize.scraper.unsplash_dataset.writer import KEYWORD_COLUMNS, PHOTO_COLUMNS

CATEGORIES = [Category("beach", ("beach", "sandy beach", "shore")), Category("forest", ("forest", "woods")),
              Category("mountain", ("mountain", "mountain range")), Category("sunset", ("sunset", "dusk")),
              Category("snow", ("snow",))]
WORDS = ("beach sand shore sea ocean wave forest woods tree pine mountain range peak snow ice sunset dusk sky "
         "cloud grass field flower city street building night light water lake river rock desert").split()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    words = [w for w in WORDS] + [" ".join(p) for p in zip(WORDS, WORDS[1:])]
    while len(words) < n:
        words.append(" ".join(rng.choice(WORDS) + rng.choice(("", "s", "y", "ing")) for _ in range(rng.randint(1, 2)))
                     + f" {len(words)}")
    return words[:n]


def generate(folder: Path, rows: int, photos: int, seed: int = 0) -> Path:
    """Write the release as a zip (stored: the tables are read through zipfile's inflater otherwise too)."""
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ids = ["".join(rng.choice(alphabet) for _ in range(11)) for _ in range(photos)]
    vocab = _vocabulary(rng, 20_000)
    weights = [1 / (i + 1) for i in range(len(vocab))]
    path = folder / "unsplash-research-dataset-lite-1.4.1.zip"
    kw_columns = (*KEYWORD_COLUMNS, "suggested_by_ai_service_3", "confirmed_by_ai_service_3")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        per_shard = -(-rows // 2)
        for shard in range(2):
            with zf.open(f"keywords.tsv{shard:03d}", "w") as raw, io.TextIOWrapper(raw, "utf-8", newline="") as fh:
                writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
                writer.writerow(kw_columns)
                n = min(per_shard, rows - shard * per_shard)
                for start in range(0, n, 100_000):
                    chunk = min(100_000, n - start)
                    words = rng.choices(vocab, weights, k=chunk)
                    for i, word in enumerate(words):
                        pid = ids[(start + i + shard * per_shard) // max(1, rows // photos) % photos]
                        user = rng.random() < 0.08
                        c1 = "" if user or rng.random() < 0.3 else f"{rng.uniform(10, 100):.13f}"
                        c2 = "" if user or rng.random() < 0.5 else f"{rng.uniform(10, 100):.13f}"
                        writer.writerow((pid, word, c1, c2, "t" if user else "f", "" if not user else "search",
                                         "f", "" if rng.random() < 0.5 else "t"))
        with zf.open("photos.tsv000", "w") as raw, io.TextIOWrapper(raw, "utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(PHOTO_COLUMNS)
            for pid in ids:
                row = {"photo_id": pid, "photo_url": f"https://unsplash.com/photos/{pid}",
                       "photo_image_url": f"https://images.unsplash.com/photo-{rng.randrange(10**12, 10**13)}-"
                                          f"{rng.getrandbits(48):012x}",
                       "photo_description": f'A "{rng.choice(WORDS)}"\tat {rng.choice(WORDS)}\nsecond line',
                       "photographer_username": f"user{rng.randrange(10**6)}", "photographer_first_name": "Zoë",
                       "photo_width": 6000, "photo_height": 4000, "blur_hash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj"}
                writer.writerow([row.get(c, "") for c in PHOTO_COLUMNS])
    return path


def ours(path: Path) -> tuple[float, float, dict[str, int]]:
    t0, c0 = time.perf_counter(), time.process_time()
    with UnsplashDataset(path) as ds:
        selection = select(ds, CATEGORIES, 40)
    return time.perf_counter() - t0, time.process_time() - c0, {k: len(v) for k, v in selection.ranked.items()}


def naive(path: Path) -> tuple[float, float, dict[str, int]]:
    """Load each table into a list of dicts, then filter, score and rank (same rules, simplest code)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with zipfile.ZipFile(path) as zf:
        def load(name: str) -> list[dict]:
            with zf.open(name) as raw, io.TextIOWrapper(raw, "utf-8", newline="") as fh:
                return list(csv.DictReader(fh, delimiter="\t"))
        keywords = load("keywords.tsv000") + load("keywords.tsv001")
        photos = {r["photo_id"]: r for r in load("photos.tsv000")}
    best: dict[tuple[int, str], float] = {}
    for r in keywords:
        for ci, cat in enumerate(CATEGORIES):
            if r["keyword"].strip().lower() in cat.keywords:
                score = 100.0 if r["suggested_by_user"] == "t" else max(
                    float(r["ai_service_1_confidence"] or 0), float(r["ai_service_2_confidence"] or 0))
                best[(ci, r["photo_id"])] = max(best.get((ci, r["photo_id"]), 0.0), score)
    top: dict[str, tuple[float, int]] = {}
    for (ci, pid), score in best.items():
        if score >= 40 and (pid not in top or score > top[pid][0] or (score == top[pid][0] and ci < top[pid][1])):
            top[pid] = (score, ci)
    counts = {c.name: sum(1 for pid, (_, ci) in top.items() if ci == i and pid in photos)
              for i, c in enumerate(CATEGORIES)}
    return time.perf_counter() - t0, time.process_time() - c0, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3_000_000, help="keyword rows")
    ap.add_argument("--photos", type=int, default=25_000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the aim says
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = generate(Path(tmp), args.rows, args.photos)
        gen_s = time.perf_counter() - t0
        before = peak_rss_mb()
        load = os.getloadavg()[0]
        ours_s, ours_cpu, ours_counts = ours(path)
        ours_rss = peak_rss_mb()
        naive_s, naive_cpu, naive_counts = naive(path)
        naive_rss = peak_rss_mb()
        size_mb = path.stat().st_size / 1e6
    assert ours_counts == naive_counts, (ours_counts, naive_counts)  # the same photos qualify
    print(f"{args.rows:,} keyword rows and {args.photos:,} photos ({size_mb:.0f} MB zip, made in "
          f"{gen_s:.1f} s), load average {load:.1f} on {os.cpu_count()} cores: selection {ours_s:.2f} s wall / "
          f"{ours_cpu:.2f} s CPU ({args.rows / ours_cpu / 1e6:.2f} M rows per CPU-second), process peak RSS "
          f"{ours_rss:.0f} MB (before it {before:.0f} MB); naive {naive_s:.2f} s wall / {naive_cpu:.2f} s CPU, "
          f"peak RSS {naive_rss:.0f} MB; {sum(ours_counts.values()):,} photos qualify")
    print(f"dataset selection: {naive_cpu / ours_cpu:.1f}x the naive csv.DictReader-into-a-list baseline in CPU "
          f"time, {naive_rss / ours_rss:.1f}x less peak memory ({ours_cpu:.1f} s CPU, {ours_s:.1f} s wall / "
          f"{ours_rss:.0f} MB vs {naive_cpu:.1f} s CPU / {naive_rss:.0f} MB; aim <= 10 s / <= 300 MB on one core)")


if __name__ == "__main__":
    main()
