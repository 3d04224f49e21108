"""Color-bin maths: which ab colors become classes, how often they occur, and how much each one weighs.

Method (the class rebalancing of Zhang et al. 2016, "Colorful Image Colorization"): quantize ab on a
`grid`-unit grid, keep the `bins` most frequent cells of the *training* pixels, map every other cell to
its nearest kept bin, then
    p       = bin frequencies after that remapping,
    p_tilde = p smoothed by a Gaussian of `sigma` ab units over the 2-D ab plane (not along the bin index),
    w       ∝ ((1 - λ) p_tilde + λ / n)^-1, scaled so that Σ p·w = 1,
so rare saturated colors get larger loss weights and the model does not collapse to sepia.
Everything starts from a fine 256x256 histogram of int8 (a, b) pairs, so any grid can be derived from it.
The stats file (stats.npz) is read and written by `shards.py`; `colorize stats` is `stats.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    # Each (a, b) int8 pair read as one little-endian uint16 v = (a & 255) + 256*(b & 255): a single bincount
    # over the raw bytes, ~4x faster than building indices in int32. The index wanted, (a+128) + 256*(b+128),
    # is v ^ 0x8080, so the counts are permuted once (65536 entries) instead of offsetting every pixel.
    pairs = np.ascontiguousarray(ab).view("<u2")[..., 0]
    values = pairs[mask] if mask is not None else pairs.ravel()
    counts = np.bincount(values, minlength=65536)
    return counts[np.arange(65536) ^ 0x8080].astype(np.int64).reshape(256, 256).T.copy()


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
    lam: float  # λ and σ the weights were computed with (PrepParams holds the defaults)
    sigma: float

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
