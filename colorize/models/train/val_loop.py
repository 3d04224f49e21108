"""Validation during training: loss and metrics on a fixed subset of the val split, and the sample grid.

The subset is the first `val_samples` samples in manifest order, so every epoch (and every run with the
same shards) is scored on the same images. Metrics use `models/net/metrics.py` conventions on 8-bit sRGB:
PSNR, Hasler-Süsstrunk colorfulness of the prediction (and of the truth, for reference), AuC of the ab
error and the mean ab offset (the cast). The prediction is what `colorize predict` gives on these photos
at the shard size, through the same array core (`net/colors.py`): probabilities averaged with the mirror
image's, annealed mean at the run's temperature (neutral where unsure), chroma fitted into the gamut at
constant L. So `best.pt` is picked on the colors users get. The loss is the unmirrored pass's, as trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from colorize.dataset.color import stored_to_rgb
from colorize.dataset.loader import ShardDataset, iterate
from colorize.models.net import metrics
from colorize.models.net.colors import compose_at_size, decode_ab, mirrored_probs
from colorize.models.net.loss import RebalancedLoss
from colorize.models.net.runtime import autocast
from colorize.models.net.unet import l_to_input
from colorize.models.train.plots import sample_grid


@dataclass
class ValResult:
    loss: float
    psnr: float | None
    colorfulness: float | None
    colorfulness_truth: float | None
    auc: float | None
    images: int
    ab_offset: tuple[float | None, float | None] = (None, None)
    grid: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def row(self) -> dict[str, float | int | None]:
        def r(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 6)

        return {"val_loss": r(self.loss), "val_psnr": r(self.psnr), "val_colorfulness": r(self.colorfulness),
                "val_colorfulness_truth": r(self.colorfulness_truth), "val_auc": r(self.auc),
                "val_ab_offset_a": r(self.ab_offset[0]), "val_ab_offset_b": r(self.ab_offset[1]),
                "val_images": self.images}


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, criterion: RebalancedLoss, centers: torch.Tensor,
             temperature: float, device: torch.device, amp: torch.dtype | None, grid_rows: int = 8) -> ValResult:
    """Run the (unwrapped) model over a `make_loader(ShardDataset(..., with_ab=True))` in eval mode.

    The model is put back in train mode afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = pixels = 0.0
    psnrs: list[float] = []
    cfs: list[float] = []
    cfs_truth: list[float] = []
    offsets: list[tuple[float, float]] = []
    hist = np.zeros(metrics.AUC_MAX_T + 2)
    grid: dict[str, list[np.ndarray]] = {"L": [], "pred": [], "true": []}
    dataset: ShardDataset = loader.dataset
    if not dataset.with_ab:
        raise ValueError("validate needs a ShardDataset made with with_ab=True")
    dataset.set_epoch(0)
    try:
        for batch in iterate(loader):
            L = batch["L"].to(device, non_blocking=True)
            bins = batch["bins"].to(device, non_blocking=True)
            mask = batch["mask"].to(device, non_blocking=True)
            colorful = batch["colorful"].to(device, non_blocking=True)
            with autocast(device, amp):
                x = l_to_input(L)
                logits = model(x)
                probs = mirrored_probs(model, x, logits)
            counted = float((mask & colorful.view(-1, 1, 1)).sum())
            loss_sum += float(criterion(logits, bins, mask, colorful)) * counted
            pixels += counted
            ab_pred = decode_ab(probs, centers, temperature)
            L_np, ab_np = batch["L"].numpy(), batch["ab"].numpy()
            mask_np, valid = batch["mask"].numpy(), batch["valid"].numpy()
            pred_rgb = compose_at_size(L_np, ab_pred)
            true_rgb = stored_to_rgb(L_np, ab_np)
            for i in np.flatnonzero(valid):
                m = mask_np[i]
                psnrs.append(metrics.psnr(pred_rgb[i], true_rgb[i], m))
                cfs.append(metrics.colorfulness(pred_rgb[i], m))
                cfs_truth.append(metrics.colorfulness(true_rgb[i], m))
                hist += metrics.auc_histogram(metrics.ab_error(pred_rgb[i], true_rgb[i]), None, m)
                offsets.append(metrics.ab_offset(pred_rgb[i], true_rgb[i], m))
                if len(grid["L"]) < grid_rows:
                    grid["L"].append(L_np[i])
                    grid["pred"].append(ab_pred[i])
                    grid["true"].append(ab_np[i])
    finally:
        model.train(was_training)

    def mean(values: list[float]) -> float | None:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else None

    auc = metrics.auc_from_histogram(hist)
    return ValResult(
        loss=loss_sum / pixels if pixels else float("nan"),
        psnr=mean(psnrs), colorfulness=mean(cfs), colorfulness_truth=mean(cfs_truth),
        auc=None if math.isnan(auc) else auc, images=len(psnrs),
        ab_offset=(mean([o[0] for o in offsets]), mean([o[1] for o in offsets])),
        grid={k: np.stack(v) for k, v in grid.items() if v},
    )


def write_sample_grid(path: Path, result: ValResult) -> bool:
    """gray | predicted | truth for the fixed val rows; False when there was nothing to show."""
    if not result.grid:
        return False
    sample_grid(path, result.grid["L"], result.grid["pred"], result.grid["true"])
    return True
