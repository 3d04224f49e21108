"""Color profiles: groups of photos that share a palette, found by k-means over per-image bin histograms.

The seed papers (003, 004) cluster their training photos by "which color buckets appear together" and
train one colorizer per cluster, so that a warm autumn palette is not averaged with a blue seascape.
Here each photo is a histogram over the shard set's ab bins (padding masked out); k-means runs on the
square roots of those histograms (the Hellinger embedding), because plain Euclidean distance on raw
frequencies is dominated by the one or two biggest bins (sky, gray) and ignores the accent colors that
make a palette recognisable.

Everything is deterministic for a seed: k-means++ seeding and restarts draw from one
`numpy.random.default_rng(seed)`, ties go to the lowest index, and the profiles are finally renumbered by
size (largest first) so the same data always gives the same profile numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize.dataset.color import lab_to_rgb
from colorize.errors import ColorizeError
from colorize.io import read_json
from colorize.models.net.bundle import checked_file

log = logging.getLogger(__name__)

# Lightness used to paint a bin's swatch in the palette picture: mid-bright so hues read clearly.
SWATCH_L = 65.0


def bin_histograms(ab: np.ndarray, mask: np.ndarray | None, ab_lut: np.ndarray, n_bins: int,
                   chunk: int = 32) -> np.ndarray:
    """Per-image bin frequencies: ab int8 [N,S,S,2] (+ mask [N,S,S]) -> float64 [N, n_bins], rows sum to 1.

    An image with no unmasked pixel gets an all-zero row (the caller decides what to do with it).
    Images are processed `chunk` at a time with one bincount each (image i's bins offset by i * n_bins),
    which keeps the index arrays small for 1024-sample shards of 256 px.
    """
    ab = np.asarray(ab)
    if ab.ndim != 4 or ab.shape[-1] != 2 or ab.dtype != np.int8:
        raise ValueError(f"ab must be int8 [N,S,S,2], got {ab.dtype} {ab.shape}")
    n = ab.shape[0]
    lut = np.ascontiguousarray(ab_lut).ravel()
    out = np.zeros((n, n_bins))
    for s in range(0, n, chunk):
        a = ab[s:s + chunk].view(np.uint8) ^ np.uint8(0x80)  # int8 v -> v + 128, without a wider copy
        k = a.shape[0]
        bins = lut[(a[..., 0].astype(np.intp) << 8) | a[..., 1]].astype(np.intp)
        bins += (np.arange(k, dtype=np.intp) * n_bins)[:, None, None]
        picked = bins.ravel() if mask is None else bins[np.asarray(mask[s:s + chunk], dtype=bool)]
        counts = np.bincount(picked, minlength=k * n_bins).reshape(k, n_bins).astype(np.float64)
        totals = counts.sum(axis=1, keepdims=True)
        out[s:s + k] = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return out


def embed(hist: np.ndarray) -> np.ndarray:
    """The space k-means works in: sqrt of frequencies (Euclidean distance there = Hellinger distance)."""
    return np.sqrt(np.clip(np.asarray(hist, dtype=np.float64), 0.0, None))


@dataclass
class KMeansResult:
    centers: np.ndarray  # [k, d] in the embedded space
    labels: np.ndarray  # [N] int64
    inertia: float
    n_iter: int


def _sq_dists(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [N, k], computed without the N x k x d intermediate."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next center drawn with probability proportional to squared distance."""
    centers = [x[rng.integers(len(x))]]
    closest = _sq_dists(x, centers[0][None])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # all points identical to a chosen center: pick any remaining point
            idx = int(rng.integers(len(x)))
        else:
            idx = int(np.searchsorted(np.cumsum(closest), rng.random() * total, side="right"))
            idx = min(idx, len(x) - 1)
        centers.append(x[idx])
        closest = np.minimum(closest, _sq_dists(x, x[idx][None])[:, 0])
    return np.stack(centers)


def _lloyd(x: np.ndarray, centers: np.ndarray, max_iter: int, tol: float) -> KMeansResult:
    labels = np.full(len(x), -1, dtype=np.int64)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        d = _sq_dists(x, centers)
        new_labels = d.argmin(1)
        counts = np.bincount(new_labels, minlength=len(centers))
        new_centers = np.zeros_like(centers)
        np.add.at(new_centers, new_labels, x)
        for j in np.flatnonzero(counts == 0):
            # An empty cluster takes the point worst served by its current center.
            far = int(d[np.arange(len(x)), new_labels].argmax())
            new_centers[j] = x[far]
            counts[j] = 1
            new_labels[far] = j
        new_centers /= counts[:, None]
        shift = float(np.abs(new_centers - centers).max())
        centers = new_centers
        if np.array_equal(new_labels, labels) or shift <= tol:
            labels = new_labels
            break
        labels = new_labels
    d = _sq_dists(x, centers)
    labels = d.argmin(1)
    inertia = float(d[np.arange(len(x)), labels].sum())
    return KMeansResult(centers, labels, inertia, n_iter)


def kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 8, max_iter: int = 100, tol: float = 1e-7) -> KMeansResult:
    """Seeded k-means (k-means++ init, best of `n_init` restarts); clusters renumbered largest first."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ColorizeError("k-means got no photos to cluster", "check that the train split has photos")
    if k < 1 or k > len(x):
        raise ColorizeError(f"cannot form {k} color profiles from {len(x)} photos",
                            f"use --profiles between 2 and {len(x)}, or add photos")
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(max(1, n_init)):
        res = _lloyd(x, _kmeans_pp(x, k, rng), max_iter, tol)
        if best is None or res.inertia < best.inertia - 1e-12:
            best = res
    assert best is not None
    # Canonical numbering: biggest cluster first, ties by the center's coordinates.
    sizes = np.bincount(best.labels, minlength=k)
    order = sorted(range(k), key=lambda j: (-int(sizes[j]), tuple(np.round(best.centers[j], 12))))
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return KMeansResult(best.centers[order], remap[best.labels], best.inertia, best.n_iter)


@dataclass
class ColorProfiles:
    """k color profiles over a fixed bin set: what the router predicts in `--route profile` mode."""

    centers: np.ndarray  # [k, n_bins] in the embedded (sqrt) space
    mean_hist: np.ndarray  # [k, n_bins] average frequencies of each profile's photos (the palette)
    sizes: list[int]  # photos per profile (train split)
    seed: int
    inertia: float
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.names:
            self.names = [f"profile-{i}" for i in range(len(self.centers))]

    @property
    def k(self) -> int:
        return len(self.centers)

    def assign(self, hist: np.ndarray) -> np.ndarray:
        """Nearest profile for each histogram row [N, n_bins] -> int64 [N]."""
        hist = np.atleast_2d(hist)
        if hist.shape[1] != self.centers.shape[1]:
            raise ColorizeError(f"histograms have {hist.shape[1]} bins but the profiles were fit on "
                                f"{self.centers.shape[1]}", "use shards prepared with the same --bins")
        return _sq_dists(embed(hist), self.centers).argmin(1)

    def to_json(self) -> dict:
        return {"k": self.k, "names": self.names, "sizes": self.sizes, "seed": self.seed,
                "inertia": round(self.inertia, 6), "space": "sqrt-frequency (Hellinger)",
                "centers": np.round(self.centers, 8).tolist(), "mean_hist": np.round(self.mean_hist, 8).tolist()}

    @classmethod
    def from_json(cls, obj: dict) -> ColorProfiles:
        try:
            centers = np.asarray(obj["centers"], dtype=np.float64)
            mean_hist = np.asarray(obj["mean_hist"], dtype=np.float64)
            if centers.ndim != 2 or centers.shape != mean_hist.shape:
                raise ValueError("centers and mean_hist must be the same [k, n_bins] shape")
            return cls(centers, mean_hist, [int(s) for s in obj["sizes"]], int(obj["seed"]),
                       float(obj["inertia"]), [str(n) for n in obj["names"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise ColorizeError(f"the color profiles are malformed ({exc})", "retrain the bundle") from exc


def load_bundle_profiles(root: Path, index: dict[str, Any]) -> ColorProfiles:
    """The profiles of a `--route profile` bundle (file checked against the index like every bundle file)."""
    try:
        return ColorProfiles.from_json(read_json(checked_file(root, index.get("profiles"), "the profiles")))
    except (OSError, ValueError) as exc:
        raise ColorizeError(f"the profiles of {root} are unreadable ({exc})", "retrain the bundle") from exc


def fit_profiles(hist: np.ndarray, k: int, seed: int, n_init: int = 8) -> tuple[ColorProfiles, np.ndarray]:
    """k-means over per-photo histograms [N, n_bins] -> (profiles, label of each photo)."""
    hist = np.asarray(hist, dtype=np.float64)
    res = kmeans(embed(hist), k, seed=seed, n_init=n_init)
    sizes = np.bincount(res.labels, minlength=k)
    mean_hist = np.zeros((k, hist.shape[1]))
    np.add.at(mean_hist, res.labels, hist)
    mean_hist /= np.maximum(sizes, 1)[:, None]
    log.info("color profiles: k=%d sizes=%s inertia=%.4f", k, sizes.tolist(), res.inertia)
    return ColorProfiles(res.centers, mean_hist, sizes.tolist(), seed, res.inertia), res.labels


def palette_image(profiles: ColorProfiles, bin_centers: np.ndarray, width: int = 640, row: int = 56,
                  top: int = 16):
    """A Pillow picture of each profile's palette: its `top` bins as swatches as wide as their share."""
    from PIL import Image, ImageDraw

    label_w = 150
    img = Image.new("RGB", (label_w + width, row * profiles.k + 8), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    lab = np.zeros((len(bin_centers), 3), np.float32)
    lab[:, 0] = SWATCH_L
    lab[:, 1:] = bin_centers
    swatch_rgb = lab_to_rgb(lab)
    for p in range(profiles.k):
        y0 = 4 + p * row
        draw.text((6, y0 + row // 2 - 12), profiles.names[p], fill=(0, 0, 0))
        draw.text((6, y0 + row // 2 + 2), f"{profiles.sizes[p]} photos", fill=(90, 90, 90))
        freq = profiles.mean_hist[p]
        order = [int(i) for i in np.argsort(-freq, kind="stable")[:top] if freq[i] > 0]
        total = float(sum(freq[i] for i in order)) or 1.0
        x = float(label_w)
        for i in order:
            x1 = x + width * float(freq[i]) / total
            draw.rectangle([int(round(x)), y0, max(int(round(x1)) - 1, int(round(x))), y0 + row - 8],
                           fill=tuple(int(c) for c in swatch_rgb[i]))
            x = x1
    return img


@dataclass
class PhotoHistograms:
    """One bin histogram per photo id (sorted ids), with its category and its unmasked pixel count."""

    ids: list[str]
    categories: list[str]
    hist: np.ndarray  # float64 [N, n_bins], rows sum to 1 (0 for a photo without pixels)
    pixels: np.ndarray  # float64 [N]: unmasked pixels per sample, averaged over the photo's variants

    def bin_counts(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Pixel counts per bin summed over `rows` (all photos by default): a route's color frequencies."""
        h, px = (self.hist, self.pixels) if rows is None else (self.hist[rows], self.pixels[rows])
        return (h * px[:, None]).sum(0)


def collect_histograms(shard_iter: Iterable[dict], ab_lut: np.ndarray, n_bins: int,
                       variant: str | None = None) -> PhotoHistograms:
    """Histogram every photo in `shard_iter` (dicts as `load_shard` returns), one row per photo id.

    Augmented variants of one photo share its id; they are averaged so a photo counts once. With
    `variant`, only samples of that variant name are used.
    """
    sums: dict[str, np.ndarray] = {}
    pixels: dict[str, float] = {}
    counts: dict[str, int] = {}
    category: dict[str, str] = {}
    for shard in shard_iter:
        keep = np.ones(len(shard["photo_id"]), bool)
        if variant is not None and "variant" in shard:
            keep = shard["variant"] == variant
        if not keep.any():
            continue
        mask = shard.get("mask")
        mask = np.ones(shard["ab"].shape[:3], bool) if mask is None else mask
        hist = bin_histograms(shard["ab"][keep], mask[keep], ab_lut, n_bins)
        npix = mask[keep].reshape(int(keep.sum()), -1).sum(1)
        for pid, cat, h, npx in zip(shard["photo_id"][keep], shard["category"][keep], hist, npix):
            pid = str(pid)
            if pid in sums:
                sums[pid] += h
                pixels[pid] += float(npx)
                counts[pid] += 1
            else:
                sums[pid], pixels[pid], counts[pid], category[pid] = h.copy(), float(npx), 1, str(cat)
    ids = sorted(sums)
    if not ids:
        return PhotoHistograms([], [], np.zeros((0, n_bins)), np.zeros(0))
    return PhotoHistograms(ids, [category[i] for i in ids], np.stack([sums[i] / counts[i] for i in ids]),
                           np.array([pixels[i] / counts[i] for i in ids]))
