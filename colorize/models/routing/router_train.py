"""Training the router (the network is `models.net.router`): class-balanced, augmented, best-on-val.

Kept apart from the network so prediction loads the router without its training machinery.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from colorize.models.net.router import RouterCNN, RouterConfig, predict_probs, prepare_l
from colorize.progress import progress

log = logging.getLogger(__name__)


@dataclass
class RouterTrainResult:
    model: RouterCNN
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_acc: float | None = None
    train_acc: float = 0.0
    seconds: float = 0.0


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip + a small random shift: cheap invariances a scene label has."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = max(1, x.shape[-1] // 16)
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def accuracy(model: RouterCNN, L_small: np.ndarray, labels: np.ndarray, device: torch.device,
             batch: int = 256) -> float:
    probs = predict_probs(model, L_small, device, batch)
    return float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights (mean 1 over present classes; 0 for absent ones).

    Categories are rarely balanced after scraping and profiles never are; without this a router can
    reach good accuracy by never predicting a small route at all.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return w


def train_router(L_small: np.ndarray, labels: np.ndarray, cfg: RouterConfig, *, epochs: int = 20,
                 batch_size: int = 64, lr: float = 2e-3, seed: int = 0, device: torch.device | None = None,
                 val: tuple[np.ndarray, np.ndarray] | None = None, max_seconds: float | None = None,
                 desc: str = "router") -> RouterTrainResult:
    """Train a router from scratch on uint8 L [N,S,S] (already `shrink_l`-ed) and int labels [N].

    Cross-entropy is weighted by inverse class frequency so a small category is not ignored; the
    learning rate follows a cosine decay; the weights of the epoch with the best validation accuracy
    (or the last epoch without a validation set) are kept. Every random draw comes from `seed`.
    """
    device = device or torch.device("cpu")
    labels = np.asarray(labels, dtype=np.int64)
    if len(L_small) != len(labels) or len(labels) == 0:
        raise ValueError("router training needs as many labels as images, and at least one")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = RouterCNN(cfg).to(device)
    class_w = torch.tensor(class_weights(labels, cfg.n_classes), dtype=torch.float32, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch),
                                                pct_start=0.2)
    use_amp = device.type == "cuda"
    X = torch.from_numpy(np.ascontiguousarray(L_small))
    Y = torch.from_numpy(labels)
    if device.type == "cuda":
        X, Y = X.pin_memory(), Y.pin_memory()
    result = RouterTrainResult(model)
    best_state, best_score = None, -1.0
    t0 = time.perf_counter()
    for epoch in progress(range(1, epochs + 1), desc=desc, unit="epoch"):
        model.train()
        perm = torch.randperm(len(Y), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2 and len(perm) > 1:  # BatchNorm needs 2+ samples
                continue
            x = _augment(prepare_l(X[idx], cfg.size), gen).to(device, non_blocking=True)
            y = Y[idx].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=class_w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < sched.total_steps:
                sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        row = {"epoch": epoch, "loss": round(loss_sum / len(Y), 5), "train_acc": round(correct / len(Y), 5)}
        score = row["train_acc"]
        if val is not None and len(val[1]):
            row["val_acc"] = round(accuracy(model, val[0], np.asarray(val[1]), device), 5)
            score = row["val_acc"]
        result.history.append(row)
        log.debug("router epoch %s", row)
        if val is None or score > best_score:  # without val, the last epoch wins
            best_score, result.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            log.info("router: stopping after epoch %d (time limit)", epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.train_acc = accuracy(model, L_small, labels, device)
    result.best_val_acc = best_score if val is not None else None
    result.seconds = time.perf_counter() - t0
    return result
