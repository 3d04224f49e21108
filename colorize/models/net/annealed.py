"""From bin probabilities to colors: annealed-mean decoding and the confidence map.

Shared by training (sample grids, val metrics) and prediction so both decode the same way.
Annealed mean (Zhang et al.): q ∝ p^(1/T); T -> 0 gives the mode (vivid, blotchy), T = 1 the mean
(smooth, desaturated); T = 0.38 is the usual compromise.
"""

from __future__ import annotations

import torch

# log(0) guard: probabilities below this are treated as this (exp(-27.6) is far below fp32 noise).
_MIN_PROB = 1e-12


def softmax_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits [B,n,H,W] (any float dtype) -> float32 probabilities over dim 1."""
    return torch.softmax(logits.float(), dim=1)


def annealed_mean(probs: torch.Tensor, centers: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities [B,n,H,W] and bin centers [n,2] -> ab [B,2,H,W] (float32).

    q = softmax(log p / T) is p^(1/T) renormalised, computed in log space so small T cannot overflow.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if probs.shape[1] != centers.shape[0]:
        raise ValueError(f"probs have {probs.shape[1]} bins but there are {centers.shape[0]} centers")
    probs = probs.float()
    if temperature == 1.0:
        q = probs
    else:
        q = torch.softmax(probs.clamp_min(_MIN_PROB).log() / temperature, dim=1)
    return torch.einsum("bnhw,nc->bchw", q, centers.to(device=q.device, dtype=torch.float32))


def confidence(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel confidence (ColorUNet): (top probability [B,H,W], top / second probability [B,H,W]).

    A ratio near 1 means two colors compete (e.g. a car that could be red or blue); a high top
    probability with a high ratio means the net is sure.
    """
    top2 = probs.float().topk(2, dim=1).values
    top = top2[:, 0]
    ratio = top / top2[:, 1].clamp_min(_MIN_PROB)
    return top, ratio
