"""Device and precision choices, made in one place so training and prediction agree."""

from __future__ import annotations

import contextlib

import torch

from colorize.errors import ColorizeError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an expected failure."""
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ColorizeError(f"unknown device {name!r}", "use auto, cpu or cuda") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ColorizeError("--device cuda was asked for but no CUDA GPU is visible",
                            "use --device auto or cpu, or check the driver with nvidia-smi")
    return device


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16 (needs a GradScaler); None = fp32.

    AMP is CUDA-only here: CPU autocast is slower than fp32 for this net on small cores and would make
    CPU runs (and tests) depend on bf16 rounding.
    """
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
