"""Generators for the image tests (no tests here): photo-like JPEGs, datasets and a hostile input set.

Everything is made on the fly in tmp folders from fixed seeds; nothing is downloaded or committed.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB with what photos have: smooth color gradients, a few hard edges, texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    base = np.stack([
        0.5 + 0.4 * np.sin(2 * np.pi * (x * rng.uniform(0.5, 2) + rng.uniform())),
        0.5 + 0.4 * np.cos(2 * np.pi * (y * rng.uniform(0.5, 2) + rng.uniform())),
        0.5 + 0.4 * np.sin(2 * np.pi * ((x + y) * rng.uniform(0.3, 1.5))),
    ], axis=-1)
    for _ in range(4):  # hard-edged shapes in a random color
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.25)
        inside = (x - cx) ** 2 + ((y - cy) * height / width) ** 2 < r * r
        base[inside] = rng.uniform(0, 1, 3)
    texture = rng.normal(0, 0.03, (height // 4 + 1, width // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:height, :width]
    img = base + texture + rng.normal(0, 0.01, base.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, **save_kwargs)
    return buf.getvalue()


def make_dataset(root: Path, n_per_category: int = 4, categories=("beach", "forest", "city"),
                 size=(96, 64), seed: int = 0) -> Path:
    """A folder of category subfolders with photo-like JPEGs, portrait and landscape mixed."""
    i = 0
    for c, category in enumerate(categories):
        folder = root / category
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_category):
            w, h = size if k % 2 == 0 else size[::-1]
            (folder / f"photo{k}.jpg").write_bytes(jpeg_bytes(photo_like(w, h, seed * 1000 + c * 100 + k)))
            i += 1
    return root


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb as far as any decoder knows."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # after the PNG signature: length(4) type(4) data(13) crc(4)
    data[ihdr + 8:ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4:ihdr + 8 + 13])) & 0xFFFFFFFF
    data[ihdr + 21:ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(rgb, exif=exif.tobytes())


def hostile_files() -> dict[str, tuple[bytes, str | None]]:
    """name -> (file bytes, expected skip-reason fragment, or None if the file must be usable)."""
    photo = photo_like(120, 80, seed=7)
    good = jpeg_bytes(photo)
    files: dict[str, tuple[bytes, str | None]] = {
        "truncated.jpg": (good[: len(good) // 2], "truncated"),
        "zero.jpg": (b"", "empty"),
        "text.jpg": (b"this is not an image, just text named .jpg\n" * 5, "not an image"),
        "tiny.png": (_save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), "smaller than 32"),
        "bomb.png": (png_with_size(40000, 40000), "pixel cap"),
        "bomb2.png": (png_with_size(9000, 6000), "pixel cap"),
        "cmyk.jpg": (_save(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=92), None),
        "gray16.png": (_save(Image.fromarray(photo[..., 0].astype(np.uint16) * 257), "PNG"), None),
        "rgba.png": (_save(Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)]), "RGBA"),
                           "PNG"), None),
        "palette.gif": (_save(Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE), "GIF"), None),
        "rotated.jpg": (exif_rotated_jpeg(photo, 6), None),
        "gray.jpg": (_save(Image.fromarray(photo).convert("L"), "JPEG", quality=90), None),
    }
    return files


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def rgb_icc_profile(description: str, red_xyz, green_xyz, blue_xyz, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 matrix/TRC RGB display profile (to test that non-sRGB photos get converted)."""
    def xyz(values) -> bytes:
        return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in values)

    text = description.encode("ascii") + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0\0" + b"\0" + b"\0" * 67
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(round(gamma * 256))) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"rXYZ", xyz(red_xyz)),
            (b"gXYZ", xyz(green_xyz)), (b"bXYZ", xyz(blue_xyz)), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


#: sRGB's primaries (D50-adapted, as ICC stores them).
SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
