"""The checkpoint file format: written atomically, read with `torch.load(weights_only=True)`, self-sufficient.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so loading one can never run code
(a pickled object is refused). It carries everything prediction needs — weights, config, bin centers,
lookup table, rebalancing weights — so a `.pt` file alone colorizes photos. `read_torch_file` is the one
safe `torch.load` of the package (checkpoints, the router of a bundle). The runtime object built from a
checkpoint is `models.infer.colorizer.Colorizer`.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorize.errors import ColorizeError
from colorize.io import atomic_write_bytes
from colorize.models.net.unet import ColorUNet

log = logging.getLogger(__name__)

CHECKPOINT_SCHEMA = "colorize.checkpoint/1"
# What `load_colorizer` needs; a training checkpoint also has optimizer, scheduler, rng, ...
REQUIRED_KEYS = ("model", "config", "centers")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise to memory, then write atomically: a kill mid-save never leaves a half checkpoint."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_torch_file(path: Path, map_location: str | torch.device = "cpu", what: str = "checkpoint",
                    fix: str = "retrain, or use the other checkpoint (last.pt / best.pt)") -> Any:
    """`torch.load(weights_only=True)`; a pickled, corrupt or non-torch file is a `ColorizeError` saying `fix`."""
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before being refused
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ColorizeError(f"refusing to load {path}: it contains pickled Python objects, not only tensors",
                            "only load files written by `colorize train`; never trust pickles") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ColorizeError(f"{what} {path} is corrupt or not a torch file ({type(exc).__name__})", fix) from exc


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; missing, pickled, corrupt or foreign files are a `ColorizeError`."""
    path = Path(path)
    if not path.is_file():
        raise ColorizeError(f"checkpoint not found: {path}",
                            "pass the .pt file written by `colorize train` (runs/NAME/best.pt)")
    payload = read_torch_file(path, map_location)
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise ColorizeError(f"{path} is not a colorize checkpoint (keys {', '.join(REQUIRED_KEYS)} missing)",
                            "pass a .pt file written by `colorize train`")
    return payload


def nearest_bin_lut(centers: torch.Tensor | np.ndarray) -> np.ndarray:
    """int16 [256,256]: for every int8 (a, b) the index of the nearest center (the stats.npz `ab_lut`)."""
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float32)
    grid = torch.arange(-128, 128, dtype=torch.float32)
    ab = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), dim=-1).reshape(-1, 2)
    return torch.cdist(ab, c).argmin(dim=1).reshape(256, 256).to(torch.int16).numpy()


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain module's weights, whether wrapped by DDP (`.module`) or torch.compile (`._orig_mod`)."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def untrained_payload(centers: torch.Tensor | np.ndarray, size: int = 64, width: int = 8, seed: int = 0,
                      weights: torch.Tensor | np.ndarray | None = None,
                      prior: torch.Tensor | np.ndarray | None = None,
                      ab_lut: torch.Tensor | np.ndarray | None = None) -> dict[str, Any]:
    """A valid checkpoint payload around a freshly initialised (seeded) ColorUNet.

    For tests and tools that need a checkpoint in a second (predict, eval, routing, turing) without
    training; the model is untrained, so its colors are noise, but every field is real.
    """
    centers_t = torch.as_tensor(np.asarray(centers), dtype=torch.float32)
    n = int(centers_t.shape[0])
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model = ColorUNet(n, width)
    torch.set_rng_state(gen_state)
    return {
        "schema": CHECKPOINT_SCHEMA,
        "model": model_state(model),
        "config": {"width": width, "size": size, "n_bins": n, "seed": seed, "untrained": True},
        "centers": centers_t,
        "ab_lut": torch.as_tensor(np.asarray(ab_lut) if ab_lut is not None else nearest_bin_lut(centers_t)),
        "weights": torch.as_tensor(np.asarray(weights), dtype=torch.float32) if weights is not None
        else torch.ones(n),
        "prior": torch.as_tensor(np.asarray(prior), dtype=torch.float32) if prior is not None
        else torch.full((n,), 1.0 / n),
        "epoch": 0,
        "step": 0,
    }


def write_untrained_checkpoint(path: str | os.PathLike, centers: torch.Tensor | np.ndarray,
                               size: int = 64, width: int = 8, seed: int = 0, **extra: Any) -> Path:
    """Write `untrained_payload(...)` to `path` atomically and return the path."""
    save_checkpoint(path, untrained_payload(centers, size=size, width=width, seed=seed, **extra))
    return Path(path)
