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
  lightness edges; near the hints, blended into the hints' own propagated colours;
- the network's own input (`coarse_spread`, on a coarse grid): the hints' colours over the whole photo.
Above `DIRECT_SIDE` pixels a side the direct solve grows fast (0.16 s at 128 px, 0.9 s at 256 px on one
core), so larger squares are solved on a grid coarser by an integer factor and the result, upsampled,
relaxed by `SMOOTHING_STEPS` sweeps of the full-resolution system (u_free <- W u): the coarse solve
carries a colour far, the sweeps put its edges back where the full-resolution lightness has them.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["DIRECT_SIDE", "HINT_SUPPORT_POWER", "KEEP_REACH", "SPREAD_SIDE", "Propagation", "coarse_spread", "keep_hints", "propagate"]

VARIANCE_SCALE = 0.6  # Levin et al.'s reference code: sigma^2 = 0.6 x the window's lightness variance
MIN_SIGMA2 = 2e-6  # and never below this (lightness in 0..1), so flat regions still spread colour
MIN_NEIGHBOUR_WEIGHT = 0.01  # the most similar neighbour keeps at least this much weight (their floor)
DIRECT_SIDE = 128  # squares up to this side are solved directly; larger ones coarse-to-fine
SMOOTHING_STEPS = 40  # full-resolution sweeps after the coarse solve
# How far `keep_hints` carries a hint's correction (and its colour), as a fraction of the square's side, and
# how its two estimates are weighed. Measured on bench_quality's held-out photos (one trained model, 18
# photos, PSNR at model size, 1 / 5 / 50 points): the correction alone, reach 0.25 (before): 21.71 / 23.47 /
# 26.09 dB; no fade: 21.12 / 23.40 / 26.25; the blend, reach 0.25 and g^0.25: 21.65 / 23.68 / 27.11; reach
# 0.5 and g^0.75 (these): 21.67 / 23.74 / 27.16, against propagation alone 21.14 / 23.54 / 27.13.
KEEP_REACH = 0.5
HINT_SUPPORT_POWER = 0.75
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


class _Graph:
    """The neighbour weights of one lightness map over its real area (`_affinities`, as a sparse matrix over
    the real pixels), and the coarse level's when solved coarse-to-fine: everything of a system that does
    not depend on which pixels are fixed. `keep_hints` and `propagate` keep theirs for the last photos
    (`_GRAPHS`): the editor recolours one photo with new hints on every click, the hints sweep one photo at
    seven counts; `coarse_spread`, a new photo every training sample, builds its own."""

    def __init__(self, L: np.ndarray, real: np.ndarray, direct_side: int | None) -> None:
        h, w = L.shape
        self.L, self.real = L, real
        self.inside = np.flatnonzero(real.ravel())
        rows, cols, weights = _affinities(L / 100.0, real)
        n = h * w
        self.W = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))[self.inside][:, self.inside]
        self.factor, self.coarse = 1, None
        if direct_side is not None and max(h, w) > direct_side:
            self.factor = math.ceil(max(h, w) / direct_side)
            Lc, wc = _block_mean(L, real, self.factor)
            self.coarse = _Graph(Lc, wc > 0, None)


class _GraphMemo:
    """The `_Graph`s of the last `ENTRIES` (lightness, real area, coarse side), found by their content."""

    ENTRIES = 2

    def __init__(self) -> None:
        self.items: OrderedDict[bytes, _Graph] = OrderedDict()

    def get(self, L: np.ndarray, real: np.ndarray, direct_side: int | None) -> _Graph:
        digest = hashlib.blake2b(digest_size=16)
        for part in (np.ascontiguousarray(L), np.ascontiguousarray(real)):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(part.tobytes())
        digest.update(str(direct_side).encode())
        key = digest.digest()
        if key not in self.items:
            self.items[key] = _Graph(L, real, direct_side)
            while len(self.items) > self.ENTRIES:
                self.items.popitem(last=False)
        self.items.move_to_end(key)
        return self.items[key]


_GRAPHS = _GraphMemo()


class Propagation:
    """One photo's propagation system: lightness L [H,W] (CIELAB L*, 0..100), the pixels whose value is
    fixed, and the real area (padding takes no part and gets 0). Call it with values [H,W,C] (read at the
    fixed pixels only) to get every pixel's propagated values, float32 [H,W,C]. `decay` > 0 pulls free
    pixels weakly towards 0 ((1 + decay) u_r - sum_s w_rs u_s = 0), so values fade over about
    1/sqrt(decay) pixels instead of filling the photo."""

    def __init__(self, L: np.ndarray, fixed: np.ndarray, real: np.ndarray | None = None,
                 direct_side: int | None = None, decay: float = 0.0, graph: _Graph | None = None) -> None:
        h, w = L.shape
        self.real = np.ones((h, w), bool) if real is None else real.astype(bool)
        self.fixed = fixed.astype(bool) & self.real
        self.L = L.astype(np.float64) if graph is None else graph.L
        self.decay = float(decay)
        self.factor = 1
        self.coarse: Propagation | None = None
        if not self.fixed.any():  # nothing constrains the values: `__call__` gives zeros, no graph needed
            return
        self.graph = graph if graph is not None else _Graph(self.L, self.real, direct_side)
        self.factor = self.graph.factor
        self.inside = self.graph.inside
        if self.graph.coarse is not None:
            fc = _block_mean(self.L, self.fixed, self.factor)[1] > 0
            self.coarse = Propagation(self.graph.coarse.L, fc, self.graph.coarse.real,
                                      decay=self.decay * self.factor ** 2, graph=self.graph.coarse)
        self._build()

    def _build(self) -> None:
        free = ~self.fixed.ravel()[self.inside]
        W = sp.diags(free.astype(np.float64), format="csr") @ self.graph.W  # fixed rows are identity: u = value
        W.eliminate_zeros()
        if self.coarse is not None:
            self.W = W  # for the full-resolution sweeps
        else:
            diag = sp.diags(1.0 + self.decay * free, format="csc")
            # minimum degree on A + A^T: the grid's structure is symmetric; ~1.5x faster than COLAMD here
            self.lu = splu((diag - W).tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})

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
        denominator = 1.0 + self.decay * ~is_fixed[:, None]
        for _ in range(SMOOTHING_STEPS):  # Jacobi sweeps of (I - W) u = b: fixed rows of W are empty
            u = (self.W @ u + b) / denominator
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
    real = np.ones(L.shape, bool) if real is None else real.astype(bool)
    return Propagation(L, hinted, real, graph=_graph(L, real, hinted, None))(hint_ab)


def _graph(L: np.ndarray, real: np.ndarray, fixed: np.ndarray, direct_side: int | None) -> _Graph | None:
    """The memoised graph of a photo the caller will solve again with other fixed pixels (`_GRAPHS`)."""
    return _GRAPHS.get(L.astype(np.float64), real, direct_side) if (fixed & real).any() else None


def keep_hints(L: np.ndarray, abs_: Sequence[np.ndarray], hint_ab: np.ndarray, hinted: np.ndarray,
               real: np.ndarray, reach: float = KEEP_REACH) -> list[np.ndarray]:
    """Each predicted ab [H,W,2] with the hints kept exactly, from two estimates per pixel:
    - the network's: its ab plus the propagation of what it missed at the hinted pixels (hint ab - ab),
      fading with distance (a weak pull towards 0, `reach` x the square's side), so the prediction
      around a hint moves with it, up to lightness edges, and one hint does not shift the whole photo;
    - the hints' own: their colours propagated the same way, divided by their support g (1 propagated
      the same way from every hinted pixel: 1 on a hint, falling with distance and across edges).
    Blended with weight g ** HINT_SUPPORT_POWER: near hints their propagation, which on bench_quality
    beats the network's colours once there are a few hints, and far from any the network. One
    factorisation serves every map (`abs_`: one per temperature). Without a hinted pixel: `abs_` as given."""
    decay = 1.0 / (reach * max(L.shape)) ** 2
    real = real.astype(bool)
    system = Propagation(L, hinted, real, DIRECT_SIDE, decay=decay, graph=_graph(L, real, hinted, DIRECT_SIDE))
    ones = np.ones(hinted.shape + (1,), np.float32)
    spread = system(np.concatenate([hint_ab - ab for ab in abs_] + [hint_ab, ones], axis=-1))
    k = 2 * len(abs_)
    support = np.clip(spread[..., k + 2:k + 3], 0.0, 1.0)  # 0 outside the real area and without hints
    own = spread[..., k:k + 2] / np.maximum(support, 1e-6)
    weight = support ** HINT_SUPPORT_POWER
    return [(weight * own + (1.0 - weight) * (ab + spread[..., 2 * i:2 * i + 2])).astype(np.float32)
            for i, ab in enumerate(abs_)]


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
