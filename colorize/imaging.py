"""Image files at the edges of the package: which suffixes count as photos, and how pictures are written.

One list of photo suffixes serves every stage that looks for photos in a folder (prep's sources, predict,
eval, the Turing study), so a file is a photo everywhere or nowhere. GIF is on it: prep always took
GIFs, and `dataset.images.load_rgb` decodes palette images to RGB like any other photo.

One encoder writes every 8-bit PNG and JPEG the tool makes (predictions, reports, demo scenes, study
pairs); callers choose only quality and chroma subsampling, so the same pixels give the same bytes
everywhere. A colorized scan may also carry its input's ICC profile and DPI (Pillow writes both).

16-bit output (`write_image16`, colorized 16-bit scans) goes through OpenCV, because Pillow has no 16-bit
RGB mode. OpenCV 5 writes a PNG's ICC profile and a TIFF's DPI itself; the two it cannot write are added
to its file afterwards with the standard library: a PNG `pHYs` chunk (DPI) and a TIFF ICC tag (34675).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from PIL import Image

from colorize.errors import ColorizeError
from colorize.io import TMP_PREFIX, atomic_open, atomic_path

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
JPEG_SUFFIXES = (".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
_ICC_TAG, _UNDEFINED = 34675, 7  # TIFF: the ICC profile tag and its field type


def _save(img: Image.Image, fh: IO[bytes], suffix: str, quality: int, subsampling: int,
          icc: bytes | None = None, dpi: tuple[float, float] | None = None, compress_level: int = 6) -> None:
    extra: dict = {}
    if icc:
        extra["icc_profile"] = icc
    if dpi:
        extra["dpi"] = dpi
    if suffix.lower() in JPEG_SUFFIXES:
        img.save(fh, format="JPEG", quality=quality, subsampling=subsampling, **extra)
    else:
        img.save(fh, format="PNG", compress_level=compress_level, **extra)


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 95, subsampling: int = 0,
                 compress_level: int = 6) -> bytes:
    """uint8 RGB -> JPEG bytes for a .jpg/.jpeg suffix, else PNG bytes (zlib `compress_level` 0-9: the
    editor's previews take 1, about 3x faster than 6 for a few % more bytes on localhost).

    JPEG defaults to quality 95 without chroma subsampling: color is the point of this tool.
    """
    buf = io.BytesIO()
    _save(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), buf, suffix, quality, subsampling,
          compress_level=compress_level)
    return buf.getvalue()


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95, icc: bytes | None = None,
                dpi: tuple[float, float] | None = None) -> None:
    """Write uint8 `rgb` atomically as PNG or JPEG, chosen by the path's suffix (the bytes `encode_image`
    gives), optionally with an ICC profile and DPI. Encoded straight into the file: a 100 MP picture is
    never held twice as encoded bytes."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    with atomic_open(path, "wb") as fh:
        _save(img, fh, Path(path).suffix, quality, 0, icc, dpi)


def write_image16(path: str | os.PathLike, rgb: np.ndarray, icc: bytes | None = None,
                  dpi: tuple[float, float] | None = None) -> None:
    """Write uint16 RGB [H, W, 3] atomically as a 16-bit TIFF (.tif/.tiff: LZW with horizontal predictor)
    or 16-bit PNG (.png), with the ICC profile and DPI when given.

    Pass a reversed view of a BGR buffer (`bgr[..., ::-1]`) and nothing is copied on the way to OpenCV.
    """
    if rgb.dtype != np.uint16 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError(f"write_image16 expects uint16 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    tiff = Path(path).suffix.lower() in TIFF_SUFFIXES
    if not tiff and Path(path).suffix.lower() != ".png":
        raise ValueError(f"16-bit pictures are written as .png, .tif or .tiff, not {path}")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    with atomic_path(path) as tmp:
        if tiff:
            params = [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_LZW,
                      cv2.IMWRITE_TIFF_PREDICTOR, cv2.IMWRITE_TIFF_PREDICTOR_HORIZONTAL]
            if dpi:
                params += [cv2.IMWRITE_TIFF_RESUNIT, cv2.IMWRITE_TIFF_RESOLUTION_UNIT_INCH,
                           cv2.IMWRITE_TIFF_XDPI, round(dpi[0]), cv2.IMWRITE_TIFF_YDPI, round(dpi[1])]
            ok = cv2.imwrite(str(tmp), bgr, params)
            if ok and icc:
                _tiff_add_icc(tmp, icc)
        else:
            meta = ([cv2.IMAGE_METADATA_ICCP], [np.frombuffer(icc, np.uint8)]) if icc else ([], [])
            ok = cv2.imwriteWithMetadata(str(tmp), bgr, *meta, [cv2.IMWRITE_PNG_COMPRESSION, 6])
            if ok and dpi:
                _png_add_phys(tmp, dpi)
        if not ok:
            raise ColorizeError(f"OpenCV could not write {path}", "check free disk space and permissions")


def _png_add_phys(path: Path, dpi: tuple[float, float]) -> None:
    """Insert a pHYs chunk (pixels per metre) right after IHDR, where the PNG spec wants it (before IDAT)."""
    data = struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)
    chunk = struct.pack(">I", len(data)) + b"pHYs" + data + struct.pack(">I", zlib.crc32(b"pHYs" + data))
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            head = src.read(8 + 25)  # signature + IHDR (length, type, 13 bytes, CRC)
            if head[12:16] != b"IHDR":
                raise OSError(f"{path}: not a PNG written by OpenCV")
            dst.write(head + chunk)
            shutil.copyfileobj(src, dst, 1 << 22)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _tiff_add_icc(path: Path, icc: bytes) -> None:
    """Add the ICC tag to a classic TIFF's first IFD: the profile and a new, sorted copy of the IFD are
    appended, and the header is pointed at it (the old IFD stays as a few unused bytes)."""
    with open(path, "r+b") as fh:
        head = fh.read(8)
        order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(order + "H", head[2:4])[0] != 42:  # BigTIFF (> 4 GB): leave it without the profile
            log.warning("%s: BigTIFF, the ICC profile is not carried", path)
            return
        fh.seek(struct.unpack(order + "I", head[4:8])[0])
        n = struct.unpack(order + "H", fh.read(2))[0]
        raw = fh.read(12 * n)
        next_ifd = fh.read(4)
        entries = [raw[i:i + 12] for i in range(0, 12 * n, 12)]
        entries = [e for e in entries if struct.unpack(order + "H", e[:2])[0] != _ICC_TAG]
        end = fh.seek(0, os.SEEK_END)
        icc_at = end + (end & 1)  # TIFF offsets are word aligned
        fh.write(b"\0" * (icc_at - end) + icc)
        ifd_at = icc_at + len(icc) + ((icc_at + len(icc)) & 1)
        fh.write(b"\0" * (ifd_at - icc_at - len(icc)))
        entries.append(struct.pack(order + "HHII", _ICC_TAG, _UNDEFINED, len(icc), icc_at))
        entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])
        fh.write(struct.pack(order + "H", len(entries)) + b"".join(entries) + next_ifd)
        fh.seek(4)
        fh.write(struct.pack(order + "I", ifd_at))
