"""Image files at the edges of the package: which suffixes count as photos, and how pictures are written.

One list of photo suffixes serves every stage that looks for photos in a folder (prep's sources, predict,
eval, the Turing study), so a file is a photo everywhere or nowhere. GIF is on it: prep always took
GIFs, and `dataset.images.load_rgb` decodes palette images to RGB like any other photo.

One encoder writes every PNG and JPEG the tool makes (predictions, reports, demo scenes, study pairs);
callers choose only quality and chroma subsampling, so the same pixels give the same bytes everywhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from colorize.io import atomic_write_bytes

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
JPEG_SUFFIXES = (".jpg", ".jpeg")


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 95, subsampling: int = 0) -> bytes:
    """uint8 RGB -> JPEG bytes for a .jpg/.jpeg suffix, else PNG bytes.

    JPEG defaults to quality 95 without chroma subsampling: color is the point of this tool.
    """
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if suffix.lower() in JPEG_SUFFIXES:
        img.save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    else:
        img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write `rgb` atomically as PNG or JPEG, chosen by the path's suffix."""
    atomic_write_bytes(path, encode_image(rgb, Path(path).suffix, quality))
