"""Colour propagation by optimisation (Levin, Lischinski and Weiss, "Colorization using Optimization", 2004):
the classical baseline of the hints sweep (`sweep.py`), so the sweep shows what the network adds.

Neighbours of similar lightness get similar colour: every free pixel's chroma is the weighted mean of its
3x3 neighbours', w_rs ∝ exp(-(Y_r - Y_s)^2 / (2 σ_r^2)) with σ_r^2 the lightness variance around r (the
paper's affinity, with its floors), and hinted pixels keep the hint's chroma. That is one sparse linear
system per chroma channel (I - W) u = b over the photo's real pixels, solved directly by scipy's SuperLU
(the matrix is the same for a and b: factorised once). Without a single hint nothing constrains the
colour and the answer is gray (ab = 0), which is where the sweep's 0-point row starts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["propagate"]

VARIANCE_SCALE = 0.6  # Levin et al.'s reference code: sigma^2 = 0.6 x the window's lightness variance
MIN_SIGMA2 = 2e-6  # and never below this (lightness in 0..1), so flat regions still spread colour
MIN_NEIGHBOUR_WEIGHT = 0.01  # the most similar neighbour keeps at least this much weight (their floor)


def _affinities(Y: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and normalised weight of every (pixel, 3x3 neighbour) pair inside the real area."""
    h, w = Y.shape
    index = np.arange(h * w).reshape(h, w)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pad_y = np.pad(Y, 1, mode="edge")
    pad_i = np.pad(index, 1, mode="constant", constant_values=-1)
    pad_r = np.pad(real, 1, mode="constant", constant_values=False)
    neigh_y = np.stack([pad_y[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
    neigh_i = np.stack([pad_i[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
    valid = np.stack([pad_r[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets]) & real[None]
    window = np.concatenate([neigh_y, Y[None]])
    weight_in = np.concatenate([valid, real[None]]).astype(np.float64)
    count = np.maximum(weight_in.sum(0), 1)
    mean = (window * weight_in).sum(0) / count
    var = ((window - mean) ** 2 * weight_in).sum(0) / count
    diff2 = np.where(valid, (neigh_y - Y[None]) ** 2, np.inf)
    nearest = np.min(diff2, axis=0)
    sigma2 = np.maximum(VARIANCE_SCALE * var, -np.where(np.isfinite(nearest), nearest, 0) / np.log(
        MIN_NEIGHBOUR_WEIGHT))
    sigma2 = np.maximum(sigma2, MIN_SIGMA2)
    weights = np.where(valid, np.exp(-diff2 / sigma2[None]), 0.0)
    weights /= np.maximum(weights.sum(0, keepdims=True), 1e-300)
    rows = np.broadcast_to(index, neigh_i.shape)[valid]
    return rows, neigh_i[valid], weights[valid]


def propagate(L: np.ndarray, hint_ab: np.ndarray, hinted: np.ndarray, real: np.ndarray | None = None) -> np.ndarray:
    """Lightness L [H,W] (CIELAB L*, 0..100) + hint chroma [H,W,2] where `hinted` [H,W] is true -> ab
    float32 [H,W,2] everywhere, the hints kept exactly. `real` marks the photo's pixels (padding outside
    it gets 0 and takes no part). No hinted pixel: gray."""
    h, w = L.shape
    real = np.ones((h, w), bool) if real is None else real.astype(bool)
    fixed = hinted.astype(bool) & real
    out = np.zeros((h, w, 2), np.float32)
    if not fixed.any():
        return out
    rows, cols, weights = _affinities(L.astype(np.float64) / 100.0, real)
    free = (real & ~fixed).ravel()
    keep = free[rows]  # fixed pixels' rows are identity rows: u = hint
    n = h * w
    diag = sp.identity(n, format="csr")
    W = sp.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n))
    A = (diag - W).tocsc()
    inside = np.flatnonzero(real.ravel())
    A = A[inside][:, inside]
    lu = splu(A.tocsc())
    for c in range(2):
        b = np.where(fixed, hint_ab[..., c], 0.0).ravel()[inside]
        out.reshape(n, 2)[inside, c] = lu.solve(b)
    return out
