"""The router: a compact CNN that looks at the L channel alone and says which specialist should color it.

Multi-model colorizers put a pretrained classifier (VGG19) in front of their per-category colorizers; no pretrained weights exist
offline here, so the router is trained from scratch. It is kept small on purpose (four conv blocks and
a global pool, ~0.1-0.4 M parameters): it sees L at a fixed small size (`RouterConfig.size`, 64 px by
default) because a route is a global property of the photo (scene, palette), not of fine detail, and
a small input keeps both training and routing cheap next to the colorizers themselves.

This module is the network and its payload; its training loop is `models.routing.router_train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RouterConfig:
    n_classes: int
    size: int = 64  # side of the L image the router sees
    width: int = 16  # channels of the first block; doubles per block


class RouterCNN(nn.Module):
    """Four (conv-BN-ReLU x2, max-pool) blocks, global average + max pool, dropout, linear."""

    def __init__(self, cfg: RouterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = [1, cfg.width, cfg.width * 2, cfg.width * 4, cfg.width * 8]
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(chans[-1] * 2, cfg.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [B,1,size,size] from `prepare_l` -> logits [B, n_classes]."""
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


def prepare_l(L_u8: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """uint8 L [B,H,W] (any H, W) -> float [B,1,size,size] in [-1, 1], area-resized (keeps global tone)."""
    t = torch.as_tensor(L_u8)
    if t.ndim == 2:
        t = t[None]
    x = t.to(torch.float32).unsqueeze(1) * (2.0 / 255.0) - 1.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def shrink_l(L_u8: np.ndarray, size: int) -> np.ndarray:
    """uint8 L [N,H,W] -> uint8 [N,size,size]: what the router stores in memory while training.

    Storing the shrunk images (not the full-size shards) keeps a 100k-photo training set in a few
    hundred MB.
    """
    with torch.no_grad():
        x = prepare_l(L_u8, size)
    return np.clip(np.rint((x[:, 0].numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


@torch.no_grad()
def predict_probs(model: RouterCNN, L_u8: np.ndarray | torch.Tensor, device: torch.device,
                  batch: int = 256) -> np.ndarray:
    """Softmax route probabilities [N, n_classes] (float64 numpy) for uint8 L [N,H,W]."""
    model.eval()
    out = []
    for i in range(0, len(L_u8), batch):
        x = prepare_l(L_u8[i:i + batch], model.cfg.size).to(device)
        out.append(torch.softmax(model(x).float(), dim=1).cpu().double().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_classes))


def router_payload(model: RouterCNN, routes: list[str], history: list[dict]) -> dict:
    """What router.pt holds: tensors, numbers and strings only (loadable with weights_only=True)."""
    return {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": asdict(model.cfg), "routes": list(routes), "history": history}


def router_from_payload(payload: dict, device: torch.device) -> tuple[RouterCNN, list[str]]:
    cfg = RouterConfig(**{k: int(v) for k, v in payload["config"].items()})
    model = RouterCNN(cfg)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), [str(r) for r in payload["routes"]]
