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

from colorize.dataset import PrepParams
from colorize.dataset.hints import HINT_CHANNELS
from colorize.errors import ColorizeError
from colorize.io import atomic_write_bytes, open_regular
from colorize.models.net import DEFAULT_WIDTH
from colorize.models.net.unet import HINT_SPREADS, ColorUNet

log = logging.getLogger(__name__)

CHECKPOINT_SCHEMA = "colorize.checkpoint/1"
# What `load_colorizer` needs; a training checkpoint also has optimizer, scheduler, rng, ...
REQUIRED_KEYS = ("model", "config", "centers")
# Sanity bounds for a payload's numbers, checked before anything is allocated: far above anything
# `colorize train` writes (width 32, size <= 1024, a few hundred bins), far below what hurts a machine.
MAX_WIDTH = 1024
SIZE_RANGE = (8, 4096)
# What a config that leaves out `width` or `size` is read as (every `colorize train` writes both): the
# training defaults, so the validator here and the loader (models/infer/colorizer.py) build the same model.
CONFIG_FALLBACKS = {"width": DEFAULT_WIDTH, "size": PrepParams.size}
MAX_BINS = 256 * 256  # one bin per int8 (a, b) pair is already the finest possible
# What a torch archive may hold in all, checked from its zip directory before loading: a ColorUNet at
# MAX_WIDTH with its optimizer state stays under it; no file `colorize train` writes comes near it.
MAX_ARCHIVE_BYTES = 8 << 30


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise to memory, then write atomically: a kill mid-save never leaves a half checkpoint."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def check_torch_archive(path: Path, what: str = "checkpoint", max_bytes: int = MAX_ARCHIVE_BYTES) -> None:
    """Refuse a file that is not a plain `torch.save` archive before `torch.load` reads a byte of it.

    `torch.save` writes a zip whose members are all STORED (uncompressed) under one top folder, with a
    `data.pkl`. `torch.load` also inflates DEFLATED members, so a 1.5 MB file re-zipped around a 1 GiB
    zero tensor was inflated in full before any check ran; a text file went to the legacy pickle reader
    and came back as an IndexError traceback, or as "pickled Python objects" that were not there. So the
    archive's directory is read first (zipfile reads only the directory): members STORED, names inside
    one folder, and the total size under `max_bytes`.
    """
    fix = "pass a .pt file written by `colorize train` (runs/NAME/best.pt)"
    try:
        with open_regular(path) as fh, zipfile.ZipFile(fh) as archive:  # a FIFO would block ZipFile(path)
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise ColorizeError(f"{path} is not a colorize {what} (not a zip archive, as every torch.save file is)",
                            fix) from None
    except OSError as exc:
        raise ColorizeError(f"cannot read {what} {path} ({exc.strerror or exc})", fix) from None
    tops = {m.filename.split("/", 1)[0] for m in members}
    if len(tops) != 1 or not any(m.filename == f"{next(iter(tops))}/data.pkl" for m in members):
        raise ColorizeError(f"{path} is not a colorize {what} (a zip archive, but not one torch.save wrote)", fix)
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ColorizeError(f"refusing to load {path}: {len(packed)} of its members are compressed "
                            f"(first: {packed[0][:80]}); torch.save never compresses", fix)
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise ColorizeError(f"refusing to load {path}: its members hold {total} bytes, over the {max_bytes} cap",
                            fix)


def read_torch_file(path: Path, map_location: str | torch.device = "cpu", what: str = "checkpoint",
                    fix: str = "retrain, or use the other checkpoint (last.pt / best.pt)") -> Any:
    """`torch.load(weights_only=True)` of a checked archive (`check_torch_archive`); a pickled, corrupt or
    non-torch file is a `ColorizeError` saying `fix`."""
    check_torch_archive(Path(path), what)
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before being refused
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ColorizeError(f"refusing to load {path}: it contains pickled Python objects, not only tensors",
                            "only load files written by `colorize train`; never trust pickles") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError) as exc:
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


def _bad(what: str) -> ColorizeError:
    return ColorizeError(f"checkpoint payload: {what}", "the file is damaged, hostile or not from `colorize train`; "
                                                        "retrain or use another checkpoint")


def _int_in(cfg: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(f"config {key} must be an integer in {lo}..{hi}, got {str(value)[:40]!r}")
    return value


def hint_channels_of(cfg: dict[str, Any]) -> int:
    """The payload config's `hint_channels`: HINT_CHANNELS for a model trained with hints, 0 for one
    written before hints existed (the field is absent there, so absent means 0)."""
    value = cfg.get("hint_channels", 0)
    if isinstance(value, bool) or value not in (0, HINT_CHANNELS):
        raise _bad(f"config hint_channels must be 0 or {HINT_CHANNELS}, got {str(value)[:40]!r}")
    return int(value)


def hint_spread_of(cfg: dict[str, Any]) -> str:
    """The payload config's `hint_spread` (`unet.HINT_SPREADS`); absent in checkpoints written before it
    existed, which were trained with the gaussian spread."""
    value = cfg.get("hint_spread", HINT_SPREADS[-1])
    if value not in HINT_SPREADS:
        raise _bad(f"config hint_spread must be one of {', '.join(HINT_SPREADS)}, got {str(value)[:40]!r}")
    return str(value)


def _check_vector(payload: dict[str, Any], key: str, n: int) -> None:
    value = payload.get(key)
    if value is None:
        return
    if not isinstance(value, torch.Tensor) or value.shape != (n,) or not value.is_floating_point() \
            or not torch.isfinite(value).all():
        raise _bad(f"{key} must be a finite float tensor of shape [{n}], got {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def validate_payload(payload: object) -> None:
    """Check a loaded payload's types, shapes and sizes before any model is built from it.

    A checkpoint is a file from elsewhere: `weights_only=True` keeps code out, but not nonsense. Without
    this a `centers` list gives an AttributeError deep inside, and `config.width = 3000` makes the model
    constructor allocate 1.3 GB before the weights are found not to fit. Every problem is one
    ColorizeError line. The model's expected weight shapes are taken from a ColorUNet built on the
    "meta" device (shapes only, no memory), so lying about width or bins is caught without allocating.
    """
    if not isinstance(payload, dict):
        raise _bad(f"expected a dict, got {_describe(payload)}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise _bad(f"keys {', '.join(missing)} missing")
    cfg, centers, weights = payload["config"], payload["centers"], payload["model"]
    if not isinstance(cfg, dict):
        raise _bad(f"config must be a dict, got {_describe(cfg)}")
    width = _int_in(cfg, "width", CONFIG_FALLBACKS["width"], 1, MAX_WIDTH)
    _int_in(cfg, "size", CONFIG_FALLBACKS["size"], *SIZE_RANGE)
    hint_channels = hint_channels_of(cfg)
    hint_spread_of(cfg)
    if not isinstance(centers, torch.Tensor) or centers.ndim != 2 or centers.shape[1] != 2 \
            or not 2 <= centers.shape[0] <= MAX_BINS:
        raise _bad(f"centers must be a tensor of shape [n, 2] with 2 <= n <= {MAX_BINS}, got {_describe(centers)}")
    if centers.is_complex() or centers.dtype == torch.bool or not torch.isfinite(centers.float()).all():
        raise _bad("centers must be finite real numbers")
    n = int(centers.shape[0])
    if "n_bins" in cfg and cfg["n_bins"] != n:
        raise _bad(f"config n_bins {str(cfg['n_bins'])[:20]} differs from the {n} centers")
    _check_vector(payload, "weights", n)
    _check_vector(payload, "prior", n)
    lut = payload.get("ab_lut")
    if lut is not None and (not isinstance(lut, torch.Tensor) or lut.shape != (256, 256)
                            or lut.is_floating_point() or lut.is_complex() or lut.dtype == torch.bool
                            or int(lut.min()) < 0 or int(lut.max()) >= n):
        raise _bad(f"ab_lut must be integer bin indices [256, 256] in 0..{n - 1}, got {_describe(lut)}")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise _bad(f"model must be a dict of named tensors, got {_describe(weights)}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ColorUNet(n, width, hint_channels).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise _bad(f"model weights do not fit a ColorUNet of width {width} with {n} bins and {hint_channels} "
                   f"hint channels (first: {wrong[0]})")


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
                      ab_lut: torch.Tensor | np.ndarray | None = None,
                      hint_channels: int = HINT_CHANNELS, hint_spread: str = HINT_SPREADS[0]) -> dict[str, Any]:
    """A valid checkpoint payload around a freshly initialised (seeded) ColorUNet.

    For tests and tools that need a checkpoint in a second (predict, eval, routing, turing) without
    training; the model is untrained, so its colors are noise, but every field is real.
    `hint_channels=0` writes the format of checkpoints from before hints (no config field, L-only net).
    """
    centers_t = torch.as_tensor(np.asarray(centers), dtype=torch.float32)
    n = int(centers_t.shape[0])
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model = ColorUNet(n, width, hint_channels, hint_spread)
    torch.set_rng_state(gen_state)
    config: dict[str, Any] = {"width": width, "size": size, "n_bins": n, "seed": seed, "untrained": True}
    if hint_channels:
        config["hint_channels"] = hint_channels
        config["hint_spread"] = hint_spread
    return {
        "schema": CHECKPOINT_SCHEMA,
        "model": model_state(model),
        "config": config,
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
