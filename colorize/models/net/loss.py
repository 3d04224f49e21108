"""Rebalanced, masked cross-entropy over ab bins, with optional soft targets.

Why rebalanced: most pixels are near-gray, so plain cross-entropy learns to predict sepia. Each pixel's
loss is multiplied by w(target bin) from the shard statistics (Σ prior·w = 1, so the average scale stays
that of plain cross-entropy) and by the mask (padding and fully gray images count for nothing).
Soft targets (Zhang et al.): instead of one-hot, a Gaussian (σ = 5 ab units) over the K bins nearest the
target bin's center, which tells the net that a near miss is better than a far one.

Colour hints (`hint_loss`): the classification alone teaches the net that a hint is informative, but not
that the painted colour must *be* the hint's; Zhang et al. 2017 add a regression term for that. Here it is an
L1 between the hint's ab and the colour we actually paint there (`annealed.decode`, differentiable), over
the hinted pixels only, so the automatic case (no hints) is trained by the classification alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize.dataset.hints import HINT_AB_SCALE
from colorize.models.net.annealed import decode

# The soft targets' Gaussian width in ab units (Zhang et al. 2016's soft encoding). Not prep's σ, which
# smooths the class prior (PrepParams.sigma), although both are 5.
SOFT_TARGET_SIGMA = 5.0


def soft_target_table(centers: torch.Tensor, k: int, sigma: float = SOFT_TARGET_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """For every bin: its k nearest bins [n,k] (itself first) and their normalised Gaussian weights [n,k]."""
    centers = centers.float()
    k = min(k, centers.shape[0])
    dist = torch.cdist(centers, centers)
    d, idx = dist.topk(k, dim=1, largest=False)
    g = torch.exp(-(d**2) / (2 * sigma**2))
    return idx, g / g.sum(dim=1, keepdim=True)


class RebalancedLoss(nn.Module):
    """`loss(logits [B,n,H,W], bins [B,H,W], mask [B,H,W], colorful [B] | None) -> scalar`.

    The mean is over counted pixels (mask & colorful), so a batch of padding or gray images gives 0.
    """

    def __init__(self, weights: torch.Tensor, centers: torch.Tensor | None = None, soft_k: int = 0,
                 sigma: float = SOFT_TARGET_SIGMA) -> None:
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32).clone())
        self.soft_k = int(soft_k) if soft_k and soft_k > 1 else 0
        if self.soft_k:
            if centers is None:
                raise ValueError("soft targets need the bin centers")
            idx, g = soft_target_table(torch.as_tensor(centers), self.soft_k, sigma)
            self.register_buffer("nb_idx", idx)
            self.register_buffer("nb_weight", g)

    def per_pixel(self, logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Unweighted cross-entropy per pixel [B,H,W] (float32 whatever the autocast dtype)."""
        logits = logits.float()
        bins = bins.long()
        if not self.soft_k:
            return F.cross_entropy(logits, bins, reduction="none")
        logp = F.log_softmax(logits, dim=1)
        nb = self.nb_idx[bins].permute(0, 3, 1, 2)  # [B,K,H,W]
        target = self.nb_weight[bins].permute(0, 3, 1, 2)
        return -(target * logp.gather(1, nb)).sum(dim=1)

    def forward(self, logits: torch.Tensor, bins: torch.Tensor, mask: torch.Tensor,
                colorful: torch.Tensor | None = None) -> torch.Tensor:
        counted = mask.bool()
        if colorful is not None:
            counted = counted & colorful.bool().view(-1, 1, 1)
        weight = self.weights[bins.long()] * counted
        return (self.per_pixel(logits, bins) * weight).sum() / counted.sum().clamp_min(1)


def hint_loss(logits: torch.Tensor, hints: torch.Tensor, centers: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean |decoded ab - hint ab| / HINT_AB_SCALE over the hinted pixels (0 when there are none).

    `hints` are the planes [B,3,H,W] of `dataset.hints` (a/110, b/110, mask); only the hinted pixels'
    logits are decoded, so the cost stays a small fraction of the classification's.
    """
    where = hints[:, 2] > 0.5
    if not bool(where.any()):
        return logits.new_zeros((), dtype=torch.float32)
    picked = logits.float().permute(0, 2, 3, 1)[where]  # [N, n_bins]
    probs = torch.softmax(picked, dim=1).T.reshape(1, -1, picked.shape[0], 1)
    ab = decode(probs, centers, temperature)[0, :, :, 0].T  # [N, 2]
    target = hints[:, :2].permute(0, 2, 3, 1)[where].float() * HINT_AB_SCALE
    return (ab - target).abs().mean() / HINT_AB_SCALE
