"""Decode any photo safely to 8-bit sRGB RGB, and fit it into the square the model sees.

Why this module is careful:
- Photos come from the web: files can be truncated, empty, not images at all, or decompression bombs
  (a tiny file claiming 50 000 x 50 000 pixels). The size is checked from the header *before* any pixel
  is decoded, and every decoder failure becomes one `ColorizeError` line instead of a traceback.
- Cameras store rotation in EXIF; ignoring it trains the model on sideways photos.
- CMYK, palette, 16-bit, gray and transparent images all become the same 8-bit RGB, with alpha
  composited on one fixed background so the same file always gives the same pixels.
- Speed: a JPEG can be decoded at 1/2, 1/4 or 1/8 scale inside the DCT (Pillow `draft`), which is
  several times cheaper than a full decode. We never reduce below 2x the target, so the final Lanczos
  pass still does the real downsampling and quality stays within 1/255 of a full-size Lanczos.

Other decoders of the package (`scans.py`, full resolution for predict and eval) build on the public
steps here: `decoding` (the pixel cap and the one set of decoder-error messages), `check_pixels`,
`upright_size`, `to_rgb` and `srgb_transform`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from colorize.dataset import DEFAULT_MAX_PIXELS, FIT_MODES
from colorize.errors import ColorizeError
from colorize.resample import lanczos

log = logging.getLogger(__name__)

#: Largest file we read into memory (bytes); a bigger "photo" is not a photo.
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Transparent pixels are composited on this color (white, like a browser shows them).
BACKGROUND = (255, 255, 255)
#: Value of padded pixels in `fit(..., "pad")`; they are masked out of every loss and statistic.
PAD_VALUE = 0

_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class Decoded:
    """A decoded photo: RGB pixels (possibly DCT-reduced) and the size the file declares (after EXIF)."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    original_size: tuple[int, int]  # (width, height) of the full-resolution, upright photo


def _name(src: str | os.PathLike | bytes) -> str:
    return "<bytes>" if isinstance(src, (bytes, bytearray, memoryview)) else str(src)


def _read_bytes(src: str | os.PathLike | bytes) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    path = Path(src)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ColorizeError(f"{path}: file is {size} bytes, over the {MAX_FILE_BYTES} byte cap",
                                "use a smaller image")
        return path.read_bytes()
    except OSError as exc:
        raise ColorizeError(f"cannot read {path}: {exc.strerror or exc}", "check the path and permissions") from exc


def upright_size(img: Image.Image) -> tuple[int, int]:
    """Width and height after EXIF orientation (5-8 swap the axes), from the header.

    Pillow reports a TIFF's size already upright (and turns its pixels upright in `load`), so a TIFF's
    stored size is taken from its ImageWidth/ImageLength tags: swapping `img.size` again would turn it back.
    """
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not make a good photo unusable
        orientation = 1
    w, h = img.size
    if img.format == "TIFF":
        w, h = img.tag_v2.get(256, w), img.tag_v2.get(257, h)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def draft_request(width: int, height: int, size: int, fit: str) -> tuple[int, int]:
    """The smallest (w, h) a reduced decode may return so that `fit(..., size, fit)` still downsamples >= 2x.

    pad scales the long side to `size`, crop the short side; either way the side that decides the scale must
    stay >= 2*size. Pillow's `draft` picks the largest DCT scale keeping both sides >= the request.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    target = 2 * size
    key = max(width, height) if fit == "pad" else min(width, height)
    if key <= target:
        return width, height
    scale = target / key
    return max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; ICC-tagged non-sRGB images are converted to sRGB."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit gray (PNG) arrives as I;16 or I: scale 0..65535 to 0..255 instead of clipping to white.
        arr = np.asarray(img, dtype=np.uint32 if mode == "I" else None).astype(np.uint32)
        img = Image.fromarray(((np.minimum(arr, 65535) + 128) // 257).astype(np.uint8), "L")
        mode = "L"
    elif mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float32)), 0, 255).astype(np.uint8)
        img, mode = Image.fromarray(arr, "L"), "L"

    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info) \
        or (mode in ("L", "RGB") and "transparency" in img.info)
    icc = img.info.get("icc_profile")
    if icc and mode in ("RGB", "RGBA", "CMYK"):
        img = _icc_to_srgb(img, icc)
        mode = img.mode
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[..., 3:4]
        bg = np.array(BACKGROUND, dtype=np.uint16)
        rgb = (rgba[..., :3] * alpha + bg * (255 - alpha) + 127) // 255
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ColorizeError(f"unsupported color mode {mode}", "convert the image to RGB first") from exc
    return img


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """Apply an embedded non-sRGB ICC profile (Adobe RGB, wide-gamut, CMYK press profiles); sRGB ones and
    unusable ones are left alone (the pixels are then read as sRGB, which is what browsers do)."""
    base = "RGB" if img.mode == "RGBA" else img.mode
    transform = srgb_transform(bytes(icc), base)
    if transform is None:
        return img
    out = ImageCms.applyTransform(img.convert(base) if img.mode != base else img, transform)
    if img.mode == "RGBA":
        out.putalpha(img.getchannel("A"))
    return out


@functools.lru_cache(maxsize=16)
def srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from the profile `icc` to sRGB; None when it is sRGB already or unusable (the pixels
    are then read as sRGB, as browsers do). Building one costs milliseconds and photos from one camera
    share one profile, so it is cached.
    NOCACHE makes the transform safe to share between threads (dask workers may run several)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return None
        return ImageCms.buildTransform(profile, _SRGB, mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.debug("ignoring unusable ICC profile: %s", exc)
        return None


def decode(
    src: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = None,
    fit: str = "pad",
    min_side: int = 1,
) -> Decoded:
    """Decode `src` (a path or bytes) to uint8 RGB, upright, capped, optionally DCT-reduced for `reduce_to`.

    Raises `ColorizeError` for anything that is not a usable photo (the message says why).
    """
    img, original_size = decode_image(src, max_pixels, reduce_to, fit, min_side)
    with decoding(_name(src), max_pixels):
        rgb = np.asarray(img, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ColorizeError(f"{_name(src)}: decoded to an unexpected shape {rgb.shape}", "convert it to RGB first")
    return Decoded(np.ascontiguousarray(rgb), original_size)


def decode_image(
    src: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = None,
    fit: str = "pad",
    min_side: int = 1,
) -> tuple[Image.Image, tuple[int, int]]:
    """`decode`'s steps up to the Pillow "RGB" image, and the size the file declares (after EXIF)."""
    name = _name(src)
    data = _read_bytes(src)
    if not data:
        raise ColorizeError(f"{name}: empty file (0 bytes)", "re-download or remove it")
    with decoding(name, max_pixels):
        img = Image.open(io.BytesIO(data))
        width, height = upright_size(img)
        check_pixels(name, width, height, max_pixels)
        if min(width, height) < min_side:
            raise ColorizeError(f"{name}: {width}x{height} is smaller than {min_side} px", "use a larger photo")
        if reduce_to is not None and img.format == "JPEG":
            # draft works in stored (pre-EXIF) orientation; the request is symmetric under a 90° swap
            # only if we swap it too.
            rw, rh = draft_request(width, height, reduce_to, fit)
            if (width, height) != img.size:
                rw, rh = rh, rw
            img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (rw, rh))
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: an upright photo is not copied
        img = to_rgb(img)
    if img.mode != "RGB" or img.width == 0 or img.height == 0:
        raise ColorizeError(f"{name}: decoded to an unexpected {img.mode} {img.size} image", "convert it to RGB first")
    return img, (width, height)


def check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    """The decompression-bomb guard, from the header's size before any pixel is decoded. The message
    names the option that raises the cap (predict, eval and prep all take --max-pixels)."""
    if width * height > max_pixels:
        raise ColorizeError(f"{name}: {width}x{height} = {width * height} pixels is over the --max-pixels "
                            f"pixel cap of {max_pixels}",
                            f"raise it (e.g. --max-pixels {width * height}) if you trust the file, or downscale it")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def allow_pixels(max_pixels: int) -> None:
    """Make Pillow's own bomb limit no lower than the user's cap, so that there is one cap: `--max-pixels`.

    Pillow refuses images over 2 x `Image.MAX_IMAGE_PIXELS` (178.9 MP by default) in `Image.open` itself,
    which `--max-pixels 400000000` could not raise. `check_pixels` is the guard at the user's cap, from
    the header, before any pixel is decoded; Pillow's limit stays as a second guard at that same cap
    (for frames a header does not declare). It is a process-wide setting, so it is only ever raised:
    another thread may be decoding under a larger cap.
    """
    need = -(-max_pixels // 2)  # Pillow errors above twice its limit
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < need:
        Image.MAX_IMAGE_PIXELS = need


@contextlib.contextmanager
def decoding(name: str, max_pixels: int, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Decode under the user's pixel cap (`allow_pixels`); every decoder failure -> one `ColorizeError`
    line naming the file. The one home of the decoder messages (prep's `decode`, the scans of predict and
    eval); `also` adds a decoder's own error type (OpenCV's `cv2.error`)."""
    allow_pixels(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_pixels is the guard
            yield
    except ColorizeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ColorizeError(f"{name}: over the --max-pixels pixel cap ({_reason(exc)})",
                            "downscale the image or raise --max-pixels") from exc
    except UnidentifiedImageError as exc:
        raise ColorizeError(f"{name}: not an image (unknown or unsupported format)",
                            "re-download or remove it") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, MemoryError, *also) as exc:
        raise ColorizeError(f"{name}: cannot decode ({_reason(exc)})", "re-download or remove it") from exc


def load_rgb(
    path_or_bytes: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = None,
    fit: str = "pad",
) -> np.ndarray:
    """A photo as uint8 sRGB RGB [H, W, 3], EXIF-upright; with `reduce_to`, JPEGs are DCT-reduced to no
    less than 2x what `fit(rgb, reduce_to, fit)` needs (full resolution otherwise)."""
    return decode(path_or_bytes, max_pixels=max_pixels, reduce_to=reduce_to, fit=fit).rgb


def fit_geometry(width: int, height: int, size: int, mode: str) -> tuple[tuple[float, float, float, float],
                                                                          tuple[int, int], tuple[int, int]]:
    """Where `fit` samples the source and where it puts the result.

    Returns (source box (x0, y0, x1, y1), resized (w, h), paste offset (x, y)) in the output square.
    """
    if mode == "pad":
        scale = size / max(width, height)
        w = max(1, min(size, round(width * scale)))
        h = max(1, min(size, round(height * scale)))
        return (0.0, 0.0, float(width), float(height)), (w, h), ((size - w) // 2, (size - h) // 2)
    if mode == "crop":
        side = min(width, height)
        x0 = (width - side) / 2
        y0 = (height - side) / 2
        return (x0, y0, x0 + side, y0 + side), (size, size), (0, 0)
    raise ValueError(f"fit mode must be one of {FIT_MODES}, got {mode!r}")


def fit(rgb: np.ndarray, size: int, mode: str = "pad") -> tuple[np.ndarray, np.ndarray]:
    """Resize uint8 RGB into a `size` x `size` square with Lanczos.

    pad: long side to `size`, centered, the rest filled with PAD_VALUE; crop: short side to `size`, center crop.
    Returns (rgb uint8 [size, size, 3], mask bool [size, size]) where mask marks real (not padded) pixels.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError(f"fit expects uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    return fit_image(rgb, size, mode)


def fit_image(img: Image.Image | np.ndarray, size: int, mode: str = "pad") -> tuple[np.ndarray, np.ndarray]:
    """`fit` of uint8 RGB or of a Pillow "RGB" or "L" image (a gray one comes back as RGB (g, g, g), the
    very pixels `fit` gives for its RGB conversion): a full-resolution scan is fitted a few rows at a time,
    never copied whole."""
    resized, (x, y) = fit_resized(img, size, mode)
    h, w = resized.shape[:2]
    if (w, h) == (size, size):
        return np.ascontiguousarray(resized), np.ones((size, size), dtype=bool)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    out[y:y + h, x:x + w] = resized
    mask = np.zeros((size, size), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return out, mask


def fit_resized(img: Image.Image | np.ndarray, size: int, mode: str = "pad") -> tuple[np.ndarray, tuple[int, int]]:
    """The real pixels of `fit_image` before padding (uint8 [h, w, 3]) and their offset (x, y) in the square:
    prep converts only these to Lab (a padded pixel's encoding is a constant)."""
    width, height, channels, rows = _source_rows(img)
    box, (w, h), offset = fit_geometry(width, height, size, mode)
    if (w, h) == (width, height) and box == (0.0, 0.0, float(width), float(height)):
        resized = rows(0, height)
    else:  # Pillow's LANCZOS to the bit, in less time (resample.py)
        resized = lanczos(rows, width, height, channels, (w, h), box)
    if resized.ndim == 2:
        resized = np.repeat(resized[..., None], 3, axis=2)
    return resized, offset


def _source_rows(img: Image.Image | np.ndarray) -> tuple[int, int, int, Callable[[int, int], np.ndarray]]:
    """(width, height, channels (0 for gray), rows(y0, y1) -> uint8 rows) of an array or a Pillow image;
    a Pillow image is converted a band of rows at a time (all of it in one go when all are asked for)."""
    if isinstance(img, np.ndarray):
        def view(a: int, b: int) -> np.ndarray:
            return img[a:b]
        return img.shape[1], img.shape[0], img.shape[2] if img.ndim == 3 else 0, view
    width, height = img.size

    def band(a: int, b: int) -> np.ndarray:
        return np.asarray(img if (a, b) == (0, height) else img.crop((0, a, width, b)))
    return width, height, 0 if img.mode == "L" else 3, band
