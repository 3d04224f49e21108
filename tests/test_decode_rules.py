"""The decode rules shared by prep (`images.decode`) and predict/eval (`scans.open_scan`): orientation and the cap.

- A TIFF's Orientation tag is applied once, the same for 8- and 16-bit pixels: OpenCV, which decodes the
  16-bit ones, applies it itself (and fails on 5-8), and Pillow reports a TIFF's size already upright.
- There is one pixel cap, the one the user sets: Pillow's own 178.9 MP limit no longer refuses a photo
  that `--max-pixels` allows.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize.dataset.images import decode
from colorize.dataset.scans import open_scan
from colorize.errors import ColorizeError

# What each EXIF/TIFF orientation asks a viewer to do with the stored pixels (TIFF 6.0, tag 274).
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1],
           8: lambda a: np.rot90(a, 1)}


def _set_tiff_tag(path: Path, tag: int, value: int) -> None:
    """Give a classic TIFF's first IFD a SHORT tag: a new, sorted IFD is appended and the header points at it."""
    with open(path, "r+b") as fh:
        head = fh.read(8)
        order = "<" if head[:2] == b"II" else ">"
        fh.seek(struct.unpack(order + "I", head[4:8])[0])
        n = struct.unpack(order + "H", fh.read(2))[0]
        raw, next_ifd = fh.read(12 * n), fh.read(4)
        entries = [raw[i:i + 12] for i in range(0, 12 * n, 12) if struct.unpack(order + "H", raw[i:i + 2])[0] != tag]
        entries.append(struct.pack(order + "HHIHH", tag, 3, 1, value, 0))
        entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])
        end = fh.seek(0, os.SEEK_END)
        at = end + (end & 1)
        fh.write(b"\0" * (at - end) + struct.pack(order + "H", len(entries)) + b"".join(entries) + next_ifd)
        fh.seek(4)
        fh.write(struct.pack(order + "I", at))


def _tiff(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    """Write RGB or gray pixels (8- or 16-bit) as a TIFF through OpenCV, then tag its orientation."""
    assert cv2.imwrite(str(path), pixels[..., ::-1].copy() if pixels.ndim == 3 else pixels)
    _set_tiff_tag(path, 274, orientation)
    return path


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_tiff_orientation_is_applied_once_like_the_8bit_path(tmp_path, orientation, channels):
    rng = np.random.default_rng(orientation)
    stored8 = rng.integers(0, 256, (5, 7, 3) if channels == 3 else (5, 7), dtype=np.uint8)
    truth = UPRIGHT[orientation](stored8)
    scan8 = open_scan(_tiff(tmp_path / "p8.tif", stored8, orientation))
    scan16 = open_scan(_tiff(tmp_path / "p16.tif", stored8.astype(np.uint16) * 257, orientation))
    assert scan16.depth == 16 and scan8.depth == 8
    for scan in (scan8, scan16):
        assert (scan.width, scan.height) == (truth.shape[1], truth.shape[0])
    assert np.array_equal(scan8.columns(0, scan8.width), truth)
    got16 = scan16.columns(0, scan16.width)
    assert got16.dtype == np.uint16 and np.array_equal(got16 // 257, truth)
    decoded = decode(tmp_path / "p8.tif")  # prep's decoder agrees, size included
    assert decoded.original_size == (truth.shape[1], truth.shape[0])
    assert np.array_equal(decoded.rgb, truth if channels == 3 else np.repeat(truth[..., None], 3, axis=2))


def _huge_1bit_png(path: Path, side: int) -> Path:
    """A side x side 1-bit gray PNG (all black): `side`² pixels in a few kilobytes, written with zlib."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + b"\0" * ((side + 7) // 8)  # filter byte 0, then the packed bits
    squeeze = zlib.compressobj(9)
    idat = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_the_users_pixel_cap_is_the_only_cap(tmp_path):
    png = _huge_1bit_png(tmp_path / "huge.png", 14_000)  # 196 MP: over Pillow's own 178.9 MP limit
    assert png.stat().st_size < 100_000
    scan = open_scan(png, max_pixels=400_000_000)  # the header is read, not refused by Pillow
    assert (scan.width, scan.height, scan.depth) == (14_000, 14_000, 8)
    # prep's decoder passes the cap too: the header check is followed by the next rule, not a Pillow refusal
    with pytest.raises(ColorizeError, match="smaller than 20000 px"):
        decode(png.read_bytes(), max_pixels=400_000_000, min_side=20_000)
    for refuse in (lambda: open_scan(png, max_pixels=100_000_000),
                   lambda: decode(png.read_bytes(), max_pixels=100_000_000)):
        with pytest.raises(ColorizeError, match=r"196000000 pixels is over the --max-pixels pixel cap of 100000000"):
            refuse()
