"""A tiny, learnable shard folder written through the real shard writer (shared by the train tests).

Colors follow lightness (dark -> blue, mid -> green, bright -> orange), so a small net can learn them
in a few dozen steps; a few images are fully gray and some are padded (mask False on the right).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colorize.dataset.bins import ab_histogram, compute_bin_stats
from colorize.dataset.shards import SCHEMA, save_stats, shard_name, verify_shards, write_shard
from colorize.io import atomic_write_json

CATEGORIES = ("beach", "forest", "city")


def _sample(rng: np.random.Generator, size: int, gray: bool, padded: bool, jitter: int):
    yy, xx = np.mgrid[0:size, 0:size] / size
    fx, fy, phase = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6.3)]
    L = 50 + 45 * np.sin(fx * 6.3 * xx + phase) * np.cos(fy * 6.3 * yy)
    ab = np.zeros((size, size, 2), np.float32)
    if not gray:
        shift = rng.integers(-jitter, jitter + 1, 2)  # a little per-image variation so more than 3 bins are used
        ab[L < 35] = (10, -40) + shift
        ab[(L >= 35) & (L < 65)] = (-40, 30) - shift
        ab[L >= 65] = (40, 45) + shift
    mask = np.ones((size, size), bool)
    if padded:
        mask[:, size * 3 // 4:] = False
        L[~mask], ab[~mask] = 0, 0
    return (np.rint(L * 2.55).clip(0, 255).astype(np.uint8), np.rint(ab).astype(np.int8), mask)


def make_shards(root: Path, n_train: int = 24, n_val: int = 8, size: int = 64, per_shard: int = 5,
                bins: int = 8, seed: int = 0, jitter: int = 6) -> Path:
    """Write train/val shards, stats.npz and a manifest of the current format under `root`; return it."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries, counts, hist = [], {}, np.zeros((256, 256), np.int64)
    for split, total in (("train", n_train), ("val", n_val)):
        counts[split] = {}
        for index, start in enumerate(range(0, total, per_shard)):
            n = min(per_shard, total - start)
            samples = [_sample(rng, size, gray=(start + k) % 7 == 3, padded=(start + k) % 4 == 1, jitter=jitter)
                       for k in range(n)]
            cats = [CATEGORIES[(start + k) % len(CATEGORIES)] for k in range(n)]
            L, ab, mask = (np.stack([s[i] for s in samples]) for i in range(3))
            if split == "train":
                hist += ab_histogram(ab, mask)
            name = shard_name(split, index)
            nbytes, sha, content = write_shard(root / name, L, ab, mask,
                                               [f"{split}{start + k:09d}"[-11:] for k in range(n)], cats, ["orig"] * n)
            entries.append({"name": name, "split": split, "count": n, "stored": n, "bytes": nbytes, "sha256": sha,
                            "content_sha256": content})
            for c in cats:
                counts[split][c] = counts[split].get(c, 0) + 1
    stats = compute_bin_stats(hist, grid=10, bins=bins, lam=0.5, sigma=5.0)
    _, stats_sha = save_stats(root / "stats.npz", stats)
    atomic_write_json(root / "manifest.json", {
        "schema": SCHEMA, "tool_version": "test", "source_manifest_sha256": "0" * 64,
        "params": {"seed": seed, "size": size, "fit": "pad", "grid": 10, "bins": bins, "lambda": 0.5,
                   "sigma": 5.0, "augment": 0, "split": "0.8,0.1,0.1"},
        "shards": entries, "counts": counts, "categories": sorted(CATEGORIES), "skipped": [],
        "stats": {"file": "stats.npz", "sha256": stats_sha, "n_bins": stats.n_bins},
    })
    return root


def test_fixture_shards_follow_the_contract(tmp_path):
    root = make_shards(tmp_path / "shards")
    assert verify_shards(root).checked == 5 + 2 + 1
