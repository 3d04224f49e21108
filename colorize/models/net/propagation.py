"""Colour propagation by optimisation (Levin, Lischinski and Weiss, "Colorization using Optimization", 2004).

Neighbours of similar lightness get similar colour: every free pixel's chroma is the weighted mean of its
3x3 neighbours', w_rs ∝ exp(-(Y_r - Y_s)^2 / (2 σ_r^2)) with σ_r^2 the lightness variance around r (the
paper's affinity, with its floors), and fixed pixels keep their value. That is one sparse linear system
(I - W) u = b over the photo's real pixels, the same matrix for every channel, solved directly by scipy's
SuperLU (`Propagation`: factorised once, applied to any number of planes). Two uses:
- the hints sweep's classical baseline (`evaluate/sweep.py`, `propagate`): the hint colours themselves
  spread; without a single hint nothing constrains the colour and the answer is gray (ab = 0);
- the last step of colouring with hints (`keep_hints`, called by `infer/arrays.py`): what the network
  missed at the hinted pixels (hint ab - its ab) is spread the same way, fading with distance, and
  added, so every hint is kept exactly and the network's colours around it move with it, stopping at
  lightness edges;
- the network's own input (`coarse_spread`, on a coarse grid): the hints' colours over the whole photo.
Above `DIRECT_SIDE` pixels a side the direct solve grows fast (0.16 s at 128 px, 0.9 s at 256 px on one
core), so larger squares are solved on a grid coarser by an integer factor and the result, upsampled,
relaxed by `SMOOTHING_STEPS` sweeps of the full-resolution system (u_free <- W u): the coarse solve
carries a colour far, the sweeps put its edges back where the full-resolution lightness has them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["DIRECT_SIDE", "KEEP_REACH", "SPREAD_SIDE", "Propagation", "coarse_spread", "keep_hints", "propagate"]

VARIANCE_SCALE = 0.6  # Levin et al.'s reference code: sigma^2 = 0.6 x the window's lightness variance
MIN_SIGMA2 = 2e-6  # and never below this (lightness in 0..1), so flat regions still spread colour
MIN_NEIGHBOUR_WEIGHT = 0.01  # the most similar neighbour keeps at least this much weight (their floor)
DIRECT_SIDE = 128  # squares up to this side are solved directly; larger ones coarse-to-fine
SMOOTHING_STEPS = 40  # full-resolution sweeps after the coarse solve
# How far `keep_hints` carries a hint's correction, as a fraction of the square's side. On bench_quality's
# held-out photos (one trained model, 18 photos): no fade 21.07 / 26.03 dB at 1 / 50 points, this 21.64 /
# 25.85, a tenth of it 21.63 / 25.42: one hint no longer shifts the whole photo by the net's miss there.
KEEP_REACH = 0.25
SPREAD_SIDE = 32  # the grid of `coarse_spread`, the network's input feature (about 2 ms a sample)


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


def _block_mean(plane: np.ndarray, weight: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(weighted mean, weight sum) of `plane` [H,W(,C)] over k x k blocks (edges padded with weight 0)."""
    h, w = weight.shape
    H, W = math.ceil(h / k) * k, math.ceil(w / k) * k
    wt = np.zeros((H, W), np.float64)
    wt[:h, :w] = weight
    val = np.zeros((H, W) + plane.shape[2:], np.float64)
    val[:h, :w] = plane
    wsum = wt.reshape(H // k, k, W // k, k).sum(axis=(1, 3))
    wt = wt.reshape(wt.shape + (1,) * (plane.ndim - 2))
    vsum = (val * wt).reshape((H // k, k, W // k, k) + plane.shape[2:]).sum(axis=(1, 3))
    denom = np.maximum(wsum, 1e-12).reshape(wsum.shape + (1,) * (plane.ndim - 2))
    return vsum / denom, wsum


class Propagation:
    """One photo's propagation system: lightness L [H,W] (CIELAB L*, 0..100), the pixels whose value is
    fixed, and the real area (padding takes no part and gets 0). Call it with values [H,W,C] (read at the
    fixed pixels only) to get every pixel's propagated values, float32 [H,W,C]. `decay` > 0 pulls free
    pixels weakly towards 0 ((1 + decay) u_r - sum_s w_rs u_s = 0), so values fade over about
    1/sqrt(decay) pixels instead of filling the photo."""

    def __init__(self, L: np.ndarray, fixed: np.ndarray, real: np.ndarray | None = None,
                 direct_side: int | None = None, decay: float = 0.0) -> None:
        h, w = L.shape
        self.real = np.ones((h, w), bool) if real is None else real.astype(bool)
        self.fixed = fixed.astype(bool) & self.real
        self.L = L.astype(np.float64)
        self.decay = float(decay)
        self.coarse: Propagation | None = None
        self.factor = 1
        if direct_side is not None and max(h, w) > direct_side:
            self.factor = math.ceil(max(h, w) / direct_side)
            Lc, wc = _block_mean(self.L, self.real, self.factor)
            fc = _block_mean(self.L, self.fixed, self.factor)[1] > 0
            self.coarse = Propagation(Lc, fc, wc > 0, decay=self.decay * self.factor ** 2)
        self.inside = np.flatnonzero(self.real.ravel())
        self._build()

    def _build(self) -> None:
        h, w = self.L.shape
        n = h * w
        if not self.fixed.any():
            return
        rows, cols, weights = _affinities(self.L / 100.0, self.real)
        keep = (self.real & ~self.fixed).ravel()[rows]  # fixed pixels' rows are identity rows: u = value
        W = sp.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n))[self.inside][:, self.inside]
        if self.coarse is not None:
            self.W = W.tocsr()  # for the full-resolution sweeps
        else:
            free = ~self.fixed.ravel()[self.inside]
            diag = sp.diags(1.0 + self.decay * free, format="csc")
            self.lu = splu((diag - W).tocsc())

    def __call__(self, values: np.ndarray) -> np.ndarray:
        h, w = self.L.shape
        c = values.shape[2]
        out = np.zeros((h * w, c), np.float32)
        if not self.fixed.any():
            return out.reshape(h, w, c)
        b = np.where(self.fixed[..., None], values, 0.0).reshape(h * w, c)[self.inside].astype(np.float64)
        if self.coarse is None:
            out[self.inside] = self.lu.solve(b)
            return out.reshape(h, w, c)
        u = self._coarse_guess(values)[self.inside]
        is_fixed = self.fixed.ravel()[self.inside]
        u[is_fixed] = b[is_fixed]
        for _ in range(SMOOTHING_STEPS):  # Jacobi sweeps of (I - W) u = b: fixed rows of W are empty
            u = (self.W @ u + b) / (1.0 + self.decay * ~is_fixed[:, None])
        out[self.inside] = u
        return out.reshape(h, w, c)

    def _coarse_guess(self, values: np.ndarray) -> np.ndarray:
        """The coarse system's solution, upsampled bilinearly to this size: [H*W, C] float64."""
        h, w = self.L.shape
        vc, _ = _block_mean(np.where(self.fixed[..., None], values, 0.0), self.fixed, self.factor)
        uc = self.coarse(vc.astype(np.float32)) if self.coarse is not None else vc
        k = self.factor
        big = cv2.resize(uc, (uc.shape[1] * k, uc.shape[0] * k), interpolation=cv2.INTER_LINEAR)
        return big.reshape(uc.shape[0] * k, uc.shape[1] * k, -1)[:h, :w].reshape(h * w, -1).astype(np.float64)


def propagate(L: np.ndarray, hint_ab: np.ndarray, hinted: np.ndarray, real: np.ndarray | None = None) -> np.ndarray:
    """Lightness L [H,W] (CIELAB L*, 0..100) + hint chroma [H,W,2] where `hinted` [H,W] is true -> ab
    float32 [H,W,2] everywhere, the hints kept exactly (a direct solve at any size: the sweep's baseline).
    `real` marks the photo's pixels (padding outside it gets 0 and takes no part). No hinted pixel: gray."""
    return Propagation(L, hinted, real)(hint_ab)


def keep_hints(L: np.ndarray, abs_: Sequence[np.ndarray], hint_ab: np.ndarray, hinted: np.ndarray,
               real: np.ndarray, reach: float = KEEP_REACH) -> list[np.ndarray]:
    """Each predicted ab [H,W,2] plus the propagation of what it missed at the hinted pixels (hint ab - ab),
    fading with distance: the hints kept exactly, the prediction around them moved with them, up to
    lightness edges. The fade (a weak pull of the correction towards 0, reach x the square's side) keeps
    one hint from shifting the whole photo by the network's miss there. One factorisation serves every
    map (`abs_`: one per temperature). Without a hinted pixel: `abs_` as given."""
    decay = 1.0 / (reach * max(L.shape)) ** 2
    system = Propagation(L, hinted, real, DIRECT_SIDE, decay=decay)
    misses = system(np.concatenate([hint_ab - ab for ab in abs_], axis=-1))
    return [(ab + misses[..., 2 * k:2 * k + 2]).astype(np.float32) for k, ab in enumerate(abs_)]


def coarse_spread(L: np.ndarray, hint_ab: np.ndarray, hinted: np.ndarray, side: int = SPREAD_SIDE) -> np.ndarray:
    """The hints' colours spread over the whole square by the direct solve on a grid of at most `side`
    pixels a side (block means of L, of the hints), upsampled bilinearly: float32 [H,W,2], zeros without a
    hint. A few milliseconds, so the network gets it as an input feature in every training step
    (`unet.hint_features`): the edge-aware guess of a colour far from any hint that a compact net cannot
    learn to carry across the photo by itself."""
    h, w = L.shape
    fixed = hinted.astype(bool)
    if not fixed.any():
        return np.zeros((h, w, 2), np.float32)
    k = max(1, math.ceil(max(h, w) / side))
    Lc, _ = _block_mean(L.astype(np.float64), np.ones((h, w)), k)
    vc, wc = _block_mean(np.where(fixed[..., None], hint_ab, 0.0), fixed, k)
    uc = Propagation(Lc, wc > 0)(vc.astype(np.float32))
    if k == 1:
        return uc[:h, :w]
    big = cv2.resize(uc, (uc.shape[1] * k, uc.shape[0] * k), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(big.reshape(uc.shape[0] * k, uc.shape[1] * k, 2)[:h, :w], dtype=np.float32)
