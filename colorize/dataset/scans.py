"""Photos at full resolution for predict and eval: 8- and 16-bit, one decoded copy, metadata kept.

`images.decode` serves prep and the network: any photo becomes 8-bit sRGB RGB. Colorizing a museum scan
needs more, and this module gives it:
- The header is read first (`open_scan`): size against `--max-pixels` before any pixel is decoded, bit
  depth, ICC profile and DPI, all without decoding.
- One full-resolution copy, never more: a gray photo stays gray (1 or 2 bytes per pixel, not an RGB copy),
  16-bit pixels stay 16-bit (OpenCV decodes them; Pillow has no 16-bit RGB mode), EXIF/TIFF orientation
  of 16-bit pixels is a numpy view. Columns are handed out strip by strip (`columns`).
- The network's small copy comes from the full decode exactly as before (8-bit results are kept byte for
  byte) except for JPEGs above `REDUCED_MIN_PIXELS`, which no earlier version accepted: those are decoded
  a second time, DCT-reduced (Pillow `draft`), which costs a fraction of a full decode.
"""

from __future__ import annotations

import io
import logging
import mmap
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps

from colorize.dataset import DEFAULT_MAX_PIXELS
from colorize.dataset.hints import HintPoint
from colorize.dataset.images import (
    MAX_FILE_BYTES,
    check_pixels,
    decode,
    decoding,
    fit,
    fit_image,
    srgb_transform,
    to_rgb,
    upright_size,
)
from colorize.errors import ColorizeError

log = logging.getLogger(__name__)

#: JPEGs above this many pixels (the cap of earlier versions) give the network a DCT-reduced copy.
REDUCED_MIN_PIXELS = DEFAULT_MAX_PIXELS
#: Bytes per pixel of the largest plain file a capped photo can be (16-bit RGBA, uncompressed).
_MAX_BYTES_PER_PIXEL = 8



@dataclass
class Scan:
    """A photo file's header facts, and (after `load`) its pixels at full resolution."""

    path: Path
    width: int  # upright
    height: int
    depth: int  # 8 or 16 bits per channel
    format: str  # Pillow's format name: "JPEG", "PNG", "TIFF", ...
    orientation: int
    icc: bytes | None = None
    dpi: tuple[float, float] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    _pixels: np.ndarray | None = field(default=None, repr=False)  # 16-bit: gray [H,W] or BGR(A) [H,W,C]
    _image: Image.Image | None = field(default=None, repr=False)  # 8-bit: "L" or "RGB"
    _fitted: dict[tuple[int, str], np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # colour hints in this photo's pixels (a hints file's points), turned into the net's hint planes by
    # `models.infer.arrays.net_input`; none = the automatic colouring
    hints: tuple[HintPoint, ...] = ()

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def output_suffix(self) -> str:
        """16-bit: the same container (.tif/.tiff or .png); 8-bit: .jpg for JPEG input, else .png (as always)."""
        suffix = self.path.suffix.lower()
        if self.depth == 16:
            return suffix if suffix in (".tif", ".tiff") else ".png"
        return ".jpg" if self.format == "JPEG" else ".png"

    def output_icc(self) -> bytes | None:
        """The input's ICC profile when it describes the colorized output's pixels, else None.

        An RGB profile is carried when the pixels were used as they are: always for 16 bits, and for 8 bits
        when the decoder did not convert them (an sRGB profile). A converted 8-bit photo (Adobe RGB, CMYK) is
        written as plain sRGB; a gray profile cannot describe an RGB file. Either way nothing is mislabelled.
        """
        if not self.icc:
            return None
        try:
            space = ImageCms.ImageCmsProfile(io.BytesIO(self.icc)).profile.xcolor_space.strip()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            return None
        if space != "RGB":
            return None
        return self.icc if self.depth == 16 or srgb_transform(self.icc, "RGB") is None else None

    def load(self) -> Scan:
        """Decode the full-resolution pixels (once)."""
        with self._lock:  # strips are composed on several threads: the first one decodes, once
            if self._pixels is None and self._image is None:
                with decoding(str(self.path), self.max_pixels, also=(cv2.error,)):
                    if self.depth == 16:
                        self._pixels = _read16(self.path, self.orientation)
                    else:
                        self._image = _read8(self.path, self.max_pixels)
        return self

    def release(self) -> None:
        """Drop the decoded pixels (the header facts stay)."""
        self._pixels, self._image = None, None

    def columns(self, x0: int, x1: int) -> np.ndarray:
        """Columns x0..x1 of every row: uint8 gray/RGB or uint16 gray/RGB (alpha composited on white)."""
        self.load()
        if self._image is not None:
            return np.asarray(self._image.crop((x0, 0, x1, self.height)))
        block = self._pixels[:, x0:x1]
        if block.ndim == 3:
            rgb = block[..., 2::-1]  # OpenCV's BGR(A) -> RGB
            if block.shape[2] == 4:  # on white, like 8-bit transparency
                alpha = block[..., 3:].astype(np.float32) / 65535.0
                rgb = np.rint(rgb * alpha + 65535.0 * (1.0 - alpha)).astype(np.uint16)
            block = rgb
        return np.ascontiguousarray(block)

    def fitted(self, size: int, mode: str = "pad") -> np.ndarray:
        """The uint8 RGB copy the network (or a router) sees: `images.fit` of the 8-bit photo."""
        key = (size, mode)
        if key not in self._fitted:
            if self.format == "JPEG" and self.pixels > REDUCED_MIN_PIXELS and self._image is None:
                rgb = decode(self.path, max_pixels=self.max_pixels, reduce_to=size, fit=mode).rgb
                self._fitted[key] = fit(rgb, size, mode)[0]
            elif self.depth == 16:
                self._fitted[key] = fit_image(self._eight_bit(), size, mode)[0]
            else:
                self._fitted[key] = fit_image(self.load()._image, size, mode)[0]
        return self._fitted[key]

    def _eight_bit(self) -> np.ndarray:
        """16-bit -> 8-bit gray or RGB, (v + 128) // 257 like `images.decode`, built strip by strip."""
        self.load()
        first = self.columns(0, 1)
        out = np.empty((self.height, self.width) + first.shape[2:], np.uint8)
        step = max(1, (1 << 22) // self.height)
        for x0 in range(0, self.width, step):
            block = self.columns(x0, min(self.width, x0 + step)).astype(np.uint32)
            out[:, x0:x0 + step] = (block + 128) // 257
        return out


def _bit_depth(img: Image.Image, head: bytes) -> int:
    """16 for 16-bit PNG/TIFF (gray or RGB), else 8, from the header alone."""
    if img.format == "PNG" and head[12:16] == b"IHDR":
        return 16 if head[24] == 16 else 8
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        fmt = img.tag_v2.get(339, 1)  # SampleFormat: 1 = unsigned integer
        fmt = fmt[0] if isinstance(fmt, tuple) else fmt
        return 16 if max(bits) == 16 and fmt == 1 else 8
    return 8


def _dpi(img: Image.Image) -> tuple[float, float] | None:
    """The resolution the file states. Pillow reports 72 dpi for a JPEG whose JFIF header gives only an
    aspect ratio (unit 0) and no EXIF resolution: that is no statement, and is not carried."""
    if img.format == "JPEG" and img.info.get("jfif_unit") not in (1, 2) and 0x011A not in img.getexif():
        return None
    dpi = img.info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def open_scan(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Scan:
    """Read a photo's header: size (checked against `max_pixels` before any decoding), depth, ICC, DPI."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError as exc:
        raise ColorizeError(f"cannot read {path}: {exc.strerror or exc}", "check the path and permissions") from exc
    if size == 0:
        raise ColorizeError(f"{path}: empty file (0 bytes)", "re-download or remove it")
    if size > MAX_FILE_BYTES + _MAX_BYTES_PER_PIXEL * max_pixels:
        raise ColorizeError(f"{path}: file is {size} bytes, too large for a photo under the --max-pixels cap "
                            f"of {max_pixels}", "raise --max-pixels or use a smaller image")
    with decoding(str(path), max_pixels, also=(cv2.error,)):
        with Image.open(path) as img:
            width, height = upright_size(img)
            check_pixels(str(path), width, height, max_pixels)
            try:
                orientation = int(img.getexif().get(0x0112, 1))
            except Exception:  # a broken EXIF block must not make a good photo unusable
                orientation = 1
            icc = img.info.get("icc_profile") or None
            return Scan(path, width, height, _bit_depth(img, head), img.format or "", orientation,
                        bytes(icc) if icc else None, _dpi(img), max_pixels)


def _read8(path: Path, max_pixels: int) -> Image.Image:
    """8-bit pixels as `images.decode` gives them (upright, sRGB, alpha on white), but a plain gray photo
    stays a 1-byte "L" image instead of a 4-byte RGB one."""
    img = Image.open(path)  # under `decoding` (Scan.load): the cap, and the decoder messages
    check_pixels(str(path), *upright_size(img), max_pixels)
    img.load()
    ImageOps.exif_transpose(img, in_place=True)  # in place: otherwise Pillow returns a full copy even when upright
    if img.mode == "L" and "transparency" not in img.info:
        return img
    return to_rgb(img)


def _decode_stored_tiff(path: Path) -> np.ndarray | None:
    """OpenCV's decode of the file with the Orientation tag of its first IFD read as 1 (stored pixel order).

    A copy-on-write map: the file is never written, and its pages are the page cache's, not a copy in
    memory. Classic TIFF (12-byte entries) and BigTIFF (20-byte entries) are both read; a file that is
    not a TIFF is decoded as it is.
    """
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY) as mm:
        if mm[:4] not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # not a TIFF: nothing to neutralise
            return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        order = "<" if mm[:2] == b"II" else ">"
        big = mm[2:4] in (b"+\0", b"\0+")
        count_fmt, entry, value_at = ("Q", 20, 12) if big else ("H", 12, 8)
        try:
            ifd = struct.unpack(order + ("Q" if big else "I"), mm[8:16] if big else mm[4:8])[0]
            n_size = struct.calcsize(count_fmt)
            n = struct.unpack(order + count_fmt, mm[ifd:ifd + n_size])[0]
        except struct.error as exc:
            raise ValueError(f"a damaged TIFF header ({exc})") from exc
        for at in range(ifd + n_size, min(ifd + n_size + entry * n, len(mm) - entry + 1), entry):
            if struct.unpack(order + "H", mm[at:at + 2])[0] == _ORIENTATION_TAG:
                mm[at + value_at:at + value_at + 2] = struct.pack(order + "H", 1)
        buffer = np.frombuffer(mm, np.uint8)
        try:
            return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        finally:
            del buffer  # the map can only close once no array points into it


_ORIENTATION_TAG = 0x0112
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: a.swapaxes(0, 1)[:, ::-1],
           7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: a.swapaxes(0, 1)[::-1]}


def _read16(path: Path, orientation: int) -> np.ndarray:
    """16-bit pixels through OpenCV (gray, BGR or BGRA), made upright by a view (no second copy).

    OpenCV applies a TIFF's Orientation tag itself under IMREAD_UNCHANGED (and fails on 5-8, which swap
    the axes), so it is shown the file with the tag read as 1 (`_decode_stored_tiff`) and the view here is the
    one rotation, as `images.decode`'s `exif_transpose` is for 8-bit photos.
    """
    if orientation != 1:
        pixels = _decode_stored_tiff(path)
    else:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim not in (2, 3):
        raise ColorizeError(f"{path}: cannot decode its 16-bit pixels", "re-save it as a 16-bit TIFF or PNG")
    if pixels.ndim == 3 and pixels.shape[2] not in (3, 4):
        pixels = pixels[..., 0] if pixels.shape[2] < 3 else pixels[..., :3]
    return _ORIENT.get(orientation, lambda a: a)(pixels)
