"""Color-bin statistics: which ab colors become classes, how often they occur, and how much each one weighs.

Method (ColorUNet / Zhang et al., see shared notes): quantize ab on a `grid`-unit grid, keep the `bins`
most frequent cells of the *training* pixels, map every other cell to its nearest kept bin, then
    p       = bin frequencies after that remapping,
    p_tilde = p smoothed by a Gaussian of `sigma` ab units over the 2-D ab plane (not along the bin index),
    w       ∝ ((1 - λ) p_tilde + λ / n)^-1, scaled so that Σ p·w = 1,
so rare saturated colors get larger loss weights and the model does not collapse to sepia.
Everything starts from a fine 256x256 histogram of int8 (a, b) pairs, so any grid can be derived from it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorize.errors import ColorizeError

log = logging.getLogger(__name__)

AB_VALUES = np.arange(-128, 128, dtype=np.int64)


def grid_cells(grid: int) -> tuple[int, int]:
    """(k_min, G): cell k covers ab values [k*grid - grid//2, k*grid - grid//2 + grid); centers at k*grid,
    so gray (0, 0) is the center of a cell. Cells k_min..k_min+G-1 cover every int8 value."""
    if grid < 1:
        raise ValueError("grid must be >= 1")
    k_min = (-128 + grid // 2) // grid
    k_max = (127 + grid // 2) // grid
    return k_min, k_max - k_min + 1


def cell_index(values: np.ndarray, grid: int) -> np.ndarray:
    """Grid cell (0..G-1) of integer ab values."""
    k_min, _ = grid_cells(grid)
    return (np.asarray(values, dtype=np.int64) + grid // 2) // grid - k_min


def ab_histogram(ab: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Fine histogram [256, 256] int64 of int8 (a, b) pairs, counted where `mask` is True."""
    if ab.dtype != np.int8:
        raise TypeError(f"ab_histogram expects int8 ab, got {ab.dtype}")
    # Each (a, b) int8 pair, offset by 128, read as one little-endian uint16 = (a+128) + 256*(b+128):
    # a single bincount over the raw bytes, ~4x faster than building indices in int32.
    pairs = (np.ascontiguousarray(ab).view(np.uint8) ^ np.uint8(0x80)).view("<u2")[..., 0]
    values = pairs[mask] if mask is not None else pairs.ravel()
    return np.bincount(values, minlength=65536).astype(np.int64).reshape(256, 256).T.copy()


def fold_to_grid(fine: np.ndarray, grid: int) -> np.ndarray:
    """Fine [256, 256] histogram -> cell counts [G, G]."""
    _, n_cells = grid_cells(grid)
    onehot = np.zeros((n_cells, 256), dtype=np.int64)
    onehot[cell_index(AB_VALUES, grid), np.arange(256)] = 1
    return onehot @ fine.astype(np.int64) @ onehot.T


def gaussian_smooth_2d(plane: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array with zero padding (no scipy needed)."""
    if sigma_cells <= 0:
        return plane.astype(np.float64)
    radius = min(int(np.ceil(4 * sigma_cells)), max(plane.shape))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_cells) ** 2)
    kernel /= kernel.sum()
    out = plane.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        length = out.shape[axis]
        out = sum(k * np.take(padded, np.arange(i, i + length), axis=axis) for i, k in enumerate(kernel))
    return out


@dataclass
class BinStats:
    """The color classes and their statistics (stats.npz, see docs/contracts.md)."""

    centers: np.ndarray  # float32 [n, 2]: (a, b) of each bin, most frequent first
    ab_lut: np.ndarray  # int16 [256, 256]: ab_lut[a + 128, b + 128] -> bin index
    prior: np.ndarray  # float32 [n]
    prior_smoothed: np.ndarray  # float32 [n]
    weights: np.ndarray  # float32 [n], Σ prior·weights = 1
    grid: int
    cell_counts: np.ndarray  # int64 [G, G], training pixels per grid cell
    lam: float = 0.5
    sigma: float = 5.0

    @property
    def n_bins(self) -> int:
        return int(self.centers.shape[0])

    def bin_index(self, ab: np.ndarray) -> np.ndarray:
        """int8 ab [..., 2] -> int64 bin index [...] through the lookup table."""
        ab16 = ab.astype(np.int16) + 128
        return self.ab_lut[ab16[..., 0], ab16[..., 1]].astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        """What goes into stats.npz, in a fixed order."""
        return {
            "centers": self.centers.astype(np.float32), "ab_lut": self.ab_lut.astype(np.int16),
            "prior": self.prior.astype(np.float32), "prior_smoothed": self.prior_smoothed.astype(np.float32),
            "weights": self.weights.astype(np.float32), "grid": np.array(self.grid, dtype=np.int64),
            "cell_counts": self.cell_counts.astype(np.int64), "lambda": np.array(self.lam, dtype=np.float64),
            "sigma": np.array(self.sigma, dtype=np.float64),
        }

    def summary(self) -> dict:
        """The part of the statistics that goes into the shard manifest."""
        order = np.argsort(-self.weights, kind="stable")
        return {
            "n_bins": self.n_bins, "grid": self.grid, "lambda": self.lam, "sigma": self.sigma,
            "pixels": int(self.cell_counts.sum()),
            "occupied_cells": int((self.cell_counts > 0).sum()),
            "coverage_top_bin": round(float(self.prior.max()), 6),
            "weight_range": [round(float(self.weights.min()), 6), round(float(self.weights.max()), 6)],
            "heaviest_bins": [int(i) for i in order[:5]],
        }


def rebalance(centers: np.ndarray, bin_counts: np.ndarray, grid: int, lam: float,
              sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prior, smoothed prior, weights), float64 [n], for a given bin set from its pixel counts per bin.

    `centers` [n, 2] must be cell centers of the `grid` (as compute_bin_stats makes them); the prior is
    smoothed over the 2-D ab plane and w ∝ ((1 - λ) p_tilde + λ / n)^-1 is scaled so that Σ p·w = 1.
    A bin with no pixels keeps its class (prior 0); at least one pixel in all is needed.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError("lambda must be in [0, 1]")
    k_min, n_cells = grid_cells(grid)
    centers = np.asarray(centers, dtype=np.float64)
    cells = np.rint(centers / grid).astype(np.int64)
    if not np.array_equal(cells * grid, centers) or cells.min(initial=k_min) < k_min \
            or cells.max(initial=k_min) >= k_min + n_cells:
        raise ColorizeError("the bin centers do not lie on their own ab grid", "rebuild the shards with prep")
    ka, kb = (cells - k_min).T
    n = centers.shape[0]
    prior = np.asarray(bin_counts, dtype=np.float64).copy()
    if prior.shape != (n,):
        raise ValueError(f"expected {n} bin counts, got shape {prior.shape}")
    prior /= prior.sum()
    plane = np.zeros((n_cells, n_cells))
    plane[ka, kb] = prior
    smoothed = gaussian_smooth_2d(plane, sigma / grid)[ka, kb]
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1.0 - lam) * smoothed + lam / n)
    weights /= float((prior * weights).sum())
    return prior, smoothed, weights


def compute_bin_stats(fine_hist: np.ndarray, grid: int, bins: int, lam: float, sigma: float) -> BinStats:
    """Bins, lookup table, prior, smoothed prior and rebalancing weights from a fine ab histogram."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError("lambda must be in [0, 1]")
    k_min, n_cells = grid_cells(grid)
    cells = fold_to_grid(fine_hist, grid)
    counts = cells.ravel()
    occupied = int((counts > 0).sum())
    if occupied == 0:
        raise ColorizeError("no training pixels to compute color bins from",
                            "give prep more usable photos, or a larger train fraction in --split")
    n = min(bins, occupied)
    if n < bins:
        log.warning("only %d ab cells are occupied; using %d bins instead of %d", occupied, n, bins)
    # Most frequent first; ties broken by cell index so the order is deterministic.
    order = np.lexsort((np.arange(counts.size), -counts))[:n]
    ka, kb = np.divmod(order, n_cells)
    centers = np.stack([(ka + k_min) * grid, (kb + k_min) * grid], axis=1).astype(np.float64)

    # Every grid cell -> nearest kept bin (distance between cell centers; ties go to the more frequent bin).
    ga, gb = np.meshgrid(np.arange(n_cells), np.arange(n_cells), indexing="ij")
    d2 = (ga[..., None] - ka) ** 2 + (gb[..., None] - kb) ** 2
    cell_lut = np.argmin(d2, axis=-1)  # [G, G]
    ci = cell_index(AB_VALUES, grid)
    ab_lut = cell_lut[ci[:, None], ci[None, :]].astype(np.int16)

    bin_counts = np.bincount(cell_lut.ravel(), weights=counts.astype(np.float64), minlength=n)
    prior, smoothed, weights = rebalance(centers, bin_counts, grid, lam, sigma)
    return BinStats(centers.astype(np.float32), ab_lut, prior.astype(np.float32), smoothed.astype(np.float32),
                    weights.astype(np.float32), int(grid), cells.astype(np.int64), float(lam), float(sigma))


def save_stats(path: str | os.PathLike, stats: BinStats) -> tuple[int, str]:
    """Write stats.npz (deterministic bytes); returns (bytes, sha256)."""
    from colorize.dataset.shards import write_npz

    return write_npz(path, stats.arrays())


def stats_from_arrays(arrays: dict[str, np.ndarray], origin: str = "stats.npz") -> BinStats:
    try:
        stats = BinStats(
            centers=arrays["centers"].astype(np.float32), ab_lut=arrays["ab_lut"].astype(np.int16),
            prior=arrays["prior"].astype(np.float32), prior_smoothed=arrays["prior_smoothed"].astype(np.float32),
            weights=arrays["weights"].astype(np.float32), grid=int(arrays["grid"]),
            cell_counts=arrays["cell_counts"].astype(np.int64),
            lam=float(arrays["lambda"]) if "lambda" in arrays else 0.5,
            sigma=float(arrays["sigma"]) if "sigma" in arrays else 5.0,
        )
    except KeyError as exc:
        raise ColorizeError(f"{origin} lacks the array {exc}", "rerun `colorize prep` to rebuild it") from exc
    n = stats.n_bins
    if stats.ab_lut.shape != (256, 256) or stats.centers.shape != (n, 2) or int(stats.ab_lut.max()) >= n \
            or int(stats.ab_lut.min()) < 0 or any(a.shape != (n,) for a in (stats.prior, stats.weights)):
        raise ColorizeError(f"{origin} has inconsistent shapes", "rerun `colorize prep` to rebuild it")
    return stats


def load_stats(shards_dir: str | os.PathLike) -> BinStats:
    """The BinStats of a shard folder, checked against the sha256 in its manifest."""
    from colorize.dataset.shards import STATS_FILE, load_npz, read_manifest

    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    info = manifest.get("stats") or {}
    path = shards_dir / STATS_FILE
    return stats_from_arrays(load_npz(path, info.get("sha256")), str(path))


# --------------------------------------------------------------------------------- `colorize stats`
@dataclass
class StatsReport:
    out_dir: Path
    table: str
    pictures: list[Path]

    def summary_line(self) -> str:
        names = ", ".join(p.name for p in self.pictures)
        return f"{self.table}\nwrote {names} to {self.out_dir}"


def bin_table(stats: BinStats) -> str:
    """The printed table: one line per bin."""
    lines = [f"{'bin':>4} {'a':>6} {'b':>6} {'prior':>9} {'smoothed':>9} {'weight':>8}"]
    for i in range(stats.n_bins):
        a, b = stats.centers[i]
        lines.append(f"{i:>4} {a:>6.0f} {b:>6.0f} {stats.prior[i]:>9.5f} {stats.prior_smoothed[i]:>9.5f} "
                     f"{stats.weights[i]:>8.3f}")
    lines.append(f"{stats.n_bins} bins on a {stats.grid}-unit ab grid, λ={stats.lam:g}, σ={stats.sigma:g}, "
                 f"{int(stats.cell_counts.sum())} train pixels; Σ prior·weight = "
                 f"{float((stats.prior.astype(np.float64) * stats.weights).sum()):.6f}")
    return "\n".join(lines)


def category_histograms(shards_dir: str | os.PathLike, stats: BinStats) -> dict[str, np.ndarray]:
    """Per category, the bin frequencies of its unmasked train pixels (normalised to sum 1)."""
    from colorize.dataset.shards import list_shards, load_shard

    counts: dict[str, np.ndarray] = {}
    for entry in list_shards(shards_dir, "train"):
        arrays = load_shard(Path(shards_dir) / entry["name"], entry["sha256"])
        bins = stats.bin_index(arrays["ab"])
        for i, category in enumerate(arrays["category"].tolist()):
            hist = np.bincount(bins[i][arrays["mask"][i]], minlength=stats.n_bins)
            counts[category] = counts.get(category, 0) + hist
    return {c: h / max(1, h.sum()) for c, h in sorted(counts.items())}


def run_stats(shards_dir: str | os.PathLike, out_dir: str | os.PathLike) -> StatsReport:
    """Print the bin table and draw the bin pictures (colors, log frequency, weights, per category)."""
    from colorize.io import write_run_record

    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    bin_stats = load_stats(shards_dir)
    per_category = category_histograms(shards_dir, bin_stats)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = draw_pictures(bin_stats, per_category, out_dir)
    table = bin_table(bin_stats)
    written.append(_write_csv(bin_stats, per_category, out_dir / "bins.csv"))
    write_run_record(out_dir / "stats-run.json", "stats", params={"shards": str(shards_dir), "out": str(out_dir)},
                     counts={"bins": bin_stats.n_bins, "categories": len(per_category)},
                     pictures=[p.name for p in written])
    return StatsReport(out_dir, table, written)


# ------------------------------------------------------------------------------------------ pictures
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


def _ramp(values: np.ndarray) -> np.ndarray:
    """0..1 -> a viridis-like uint8 color ramp (readable, and fine for color-blind readers)."""
    x = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(int), len(_RAMP) - 2)
    t = (x - i)[..., None]
    return np.rint(_RAMP[i] * (1 - t) + _RAMP[i + 1] * t).astype(np.uint8)


def _bin_colors(stats: BinStats, lightness: float = 60.0) -> np.ndarray:
    from colorize.dataset.color import lab_to_rgb

    lab = np.concatenate([np.full((stats.n_bins, 1), lightness, np.float32), stats.centers], axis=1)
    return lab_to_rgb(lab)


def _ab_panel(cell_rgb: np.ndarray, title: str, kept: np.ndarray, cell_px: int = 12):
    """A G x G ab-plane picture (a down the rows, b across, like ColorUNet's figure 1) with a title."""
    from PIL import Image, ImageDraw

    n_cells = cell_rgb.shape[0]
    plane = np.repeat(np.repeat(cell_rgb, cell_px, 0), cell_px, 1)
    margin = 22
    img = Image.new("RGB", (plane.shape[1] + 2 * margin, plane.shape[0] + 2 * margin), (255, 255, 255))
    img.paste(Image.fromarray(plane), (margin, margin))
    draw = ImageDraw.Draw(img)
    for ka, kb in kept:  # outline the cells that are kept bins
        x, y = margin + kb * cell_px, margin + ka * cell_px
        draw.rectangle([x, y, x + cell_px - 1, y + cell_px - 1], outline=(0, 0, 0))
    draw.text((margin, 4), title, fill=(0, 0, 0))
    draw.text((margin, margin + n_cells * cell_px + 4), "b ->   (rows: a, top = -128)", fill=(0, 0, 0))
    return img


def draw_pictures(stats: BinStats, per_category: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
    """bins.png (bin colors | log10 frequency | weights over the ab grid) and categories.png."""
    from PIL import Image, ImageDraw

    k_min, n_cells = grid_cells(stats.grid)
    kept = np.rint(stats.centers / stats.grid).astype(int) - k_min  # grid cell of each bin
    centers_ab = (np.arange(n_cells) + k_min) * stats.grid
    cell_bin = stats.ab_lut[np.clip(centers_ab + 128, 0, 255)[:, None], np.clip(centers_ab + 128, 0, 255)[None, :]]
    colors = _bin_colors(stats)[cell_bin]
    logf = np.log10(stats.cell_counts.astype(np.float64) + 1)
    freq = _ramp(logf / max(logf.max(), 1e-9))
    freq[stats.cell_counts == 0] = 255
    w = stats.weights[cell_bin].astype(np.float64)
    weights = _ramp((w - w.min()) / max(w.max() - w.min(), 1e-9))
    panels = [_ab_panel(colors, "bin colors (L=60)", kept),
              _ab_panel(freq, "log10 pixel frequency", kept),
              _ab_panel(weights, f"weights {w.min():.2f}..{w.max():.2f}", kept)]
    sheet = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), (255, 255, 255))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width
    written = [_save_png(sheet, out_dir / "bins.png")]

    # Per-category bin histograms: one row of bars per category, each bar in its bin's color.
    bar_w, row_h, label_w = 10, 60, 110
    cats = list(per_category) or ["(no train samples)"]
    img = Image.new("RGB", (label_w + bar_w * stats.n_bins + 10, row_h * len(cats) + 20), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    bin_rgb = _bin_colors(stats)
    for r, cat in enumerate(cats):
        hist = per_category.get(cat, np.zeros(stats.n_bins))
        top = 10 + r * row_h
        draw.text((4, top + row_h // 2 - 6), cat[:16], fill=(0, 0, 0))
        peak = max(float(hist.max()), 1e-9)
        for i, v in enumerate(hist):
            h = int(round((row_h - 8) * float(v) / peak))
            x0 = label_w + i * bar_w
            if h > 0:
                draw.rectangle([x0, top + row_h - 4 - h, x0 + bar_w - 2, top + row_h - 4],
                               fill=tuple(int(c) for c in bin_rgb[i]))
        draw.line([label_w, top + row_h - 3, label_w + bar_w * stats.n_bins, top + row_h - 3], fill=(0, 0, 0))
    written.append(_save_png(img, out_dir / "categories.png"))
    return written


def _write_csv(stats: BinStats, per_category: dict[str, np.ndarray], path: Path) -> Path:
    """The bin table as CSV (one row per bin, one column per category's share) for spreadsheets and papers.

    Category names come from folder names and shared manifests, so they are written through
    `io.atomic_write_csv`: quoted when they hold a comma or quote, defused when they start like a formula.
    """
    from colorize.io import atomic_write_csv

    cats = list(per_category)
    rows: list[list[str | int | float]] = [["bin", "a", "b", "prior", "prior_smoothed", "weight", *cats]]
    for i in range(stats.n_bins):
        a, b = stats.centers[i]
        rows.append([i, float(a), float(b), float(stats.prior[i]), float(stats.prior_smoothed[i]),
                     float(stats.weights[i]), *(float(per_category[c][i]) for c in cats)])
    atomic_write_csv(path, rows)
    return path


def _save_png(img, path: Path) -> Path:
    from colorize.io import atomic_open

    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")
    return path
