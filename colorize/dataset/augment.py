"""Training-set augmentation as in ColorUNet: each train photo yields up to 7 samples.

Variants, in order (``--augment k`` keeps the first k; 0 or 1 = original only):
original, horizontal flip, noise at three levels, two random crops at scale 0.7 resized back.
Noise goes on L only (the network's input); the ab target stays the photo's true color.
Val and test photos are never augmented.

What is stored and what is made on the fly (shard format 2): only the variants that need the
full-resolution photo are stored (`STORED`: the original and the crops); flip and noise are derived from
the stored original when a sample is read, with integer arithmetic only, so every machine derives the
same bytes. Noise comes from a bank of `BANK_FIELDS` int8 fields per level, written once by prep (and
hashed in the manifest); a sample's field is picked by a hash of (seed, photo id, variant). Crop windows
come from sha256(seed, photo id, variant), so any shard can be rebuilt alone, on any worker.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from colorize.dataset import VARIANTS
from colorize.dataset.color import rgb_to_stored
from colorize.dataset.images import PAD_VALUE, fit_resized

#: The variants a shard stores pixels of; every other variant is derived from the stored "orig".
STORED = ("orig", "crop1", "crop2")
#: Standard deviation of the Gaussian noise on stored L (0..255 units) per level.
NOISE_SIGMA = {"noise1": 3.0, "noise2": 6.0, "noise3": 12.0}
#: Side of a random crop relative to the photo's side.
CROP_SCALE = 0.7
#: Noise fields per level in the bank, and the largest field side (bigger samples tile the field).
BANK_FIELDS = 64
BANK_SIDE = 256
# Images count as gray (and get zero loss) when no unmasked pixel has |a| or |b| above this.
GRAY_AB = 5

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # L uint8 [S,S], ab int8 [S,S,2], mask bool [S,S]
Box = tuple[int, int, int, int]  # (y0, x0, y1, x1): the real (unpadded) pixels of a sample


def stored_variant(variant: str) -> str:
    """The stored variant a sample's pixels come from ("orig" for flip and noise, else itself)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    return variant if variant in STORED else "orig"


def variant_rng(seed: int, photo_id: str, variant: str) -> np.random.Generator:
    digest = hashlib.sha256(f"augment:{seed}:{photo_id}:{variant}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def random_crop_box(width: int, height: int, rng: np.random.Generator, scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """A (x0, y0, x1, y1) window of `scale` x each side at a random position."""
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    x0 = int(rng.integers(0, width - cw + 1))
    y0 = int(rng.integers(0, height - ch + 1))
    return x0, y0, x0 + cw, y0 + ch


def stored_samples(photo: np.ndarray | Image.Image, size: int, fit_mode: str, variants: Sequence[str], seed: int,
                   photo_id: str) -> dict[str, Sample]:
    """The stored variants (`STORED` names only) of one decoded photo (uint8 RGB [H, W, 3] or a Pillow
    "RGB" image), in storage encoding."""
    rgb = np.asarray(photo) if isinstance(photo, Image.Image) else photo
    height, width = rgb.shape[:2]
    out: dict[str, Sample] = {}
    for variant in variants:
        if variant == "orig":
            part = rgb
        elif variant in STORED:
            x0, y0, x1, y1 = random_crop_box(width, height, variant_rng(seed, photo_id, variant))
            part = rgb[y0:y1, x0:x1]  # a view: the resampler reads its rows
        else:
            raise ValueError(f"{variant!r} is not a stored variant (stored: {', '.join(STORED)})")
        out[variant] = _stored_sample(part, size, fit_mode)
    return out


def _stored_sample(img: np.ndarray, size: int, fit_mode: str) -> Sample:
    """`fit` then `rgb_to_stored`, with only the real pixels converted: a padded pixel's encoding is the
    constant of PAD_VALUE, so the result is the very bytes of converting the whole padded square."""
    resized, (x, y) = fit_resized(img, size, fit_mode)
    h, w = resized.shape[:2]
    L_real, ab_real = rgb_to_stored(resized)
    mask = np.zeros((size, size), bool)
    mask[y:y + h, x:x + w] = True
    if (w, h) == (size, size):
        return L_real, ab_real, mask
    pad_L, pad_ab = _pad_encoding()
    L = np.full((size, size), pad_L, np.uint8)
    ab = np.zeros((size, size, 2), np.int8)
    if pad_ab.any():
        ab[...] = pad_ab
    L[y:y + h, x:x + w] = L_real
    ab[y:y + h, x:x + w] = ab_real
    return L, ab, mask


@functools.lru_cache(maxsize=1)
def _pad_encoding() -> tuple[np.ndarray, np.ndarray]:
    """The stored (L, ab) of a padded pixel (PAD_VALUE in every channel)."""
    L, ab = rgb_to_stored(np.full((1, 1, 3), PAD_VALUE, np.uint8))
    return L[0, 0], ab[0, 0]


# ------------------------------------------------------------------------------ derived on the fly
def mask_box(mask: np.ndarray) -> Box:
    """The rectangle of True pixels of a `fit` mask (pad and crop masks are always one rectangle)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    if int(mask.sum()) != (box[2] - box[0]) * (box[3] - box[1]):
        raise ValueError("mask is not one rectangle")
    return box


def box_mask(box: Box, size: int, out: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros((size, size), bool) if out is None else out
    mask[...] = False
    mask[box[0]:box[2], box[1]:box[3]] = True
    return mask


def is_colorful(ab: np.ndarray, box: Box) -> bool:
    """Any real pixel with |a| or |b| above GRAY_AB (gray photos get zero loss); flip and noise keep it."""
    region = ab[box[0]:box[2], box[1]:box[3]]
    return bool(((region > GRAY_AB) | (region < -GRAY_AB)).any())


def noise_bank(seed: int, size: int) -> np.ndarray:
    """int8 [levels, BANK_FIELDS, side, side]: rounded Gaussian fields at each NOISE_SIGMA level.

    Written once by prep and hashed in the manifest, so readers never redo float maths (whose last bits
    could differ between machines); side = min(size, BANK_SIDE) bounds it at 12.6 MB.
    """
    side = min(size, BANK_SIDE)
    digest = hashlib.sha256(f"noise-bank:{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
    fields = [np.clip(np.rint(rng.standard_normal((BANK_FIELDS, side, side), dtype=np.float32) * np.float32(s)),
                      -127, 127).astype(np.int8) for s in NOISE_SIGMA.values()]
    return np.stack(fields)


def bank_pick(seed: int, photo_id: str, variant: str) -> int:
    """Which field of its level a noisy sample uses: a pure function of (seed, photo, variant)."""
    digest = hashlib.sha256(f"noise:{seed}:{photo_id}:{variant}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BANK_FIELDS


def derive(variant: str, L: np.ndarray, ab: np.ndarray, box: Box, bank: np.ndarray | None, pick: int) -> tuple[
        np.ndarray, np.ndarray, Box]:
    """A sample of `variant` from its stored pixels (L [S,S], ab [S,S,2], box); may return views."""
    if variant in STORED:
        return L, ab, box
    size = L.shape[0]
    if variant == "flip":
        return L[:, ::-1], ab[:, ::-1], (box[0], size - box[3], box[2], size - box[1])
    if variant not in NOISE_SIGMA or bank is None:
        raise ValueError(f"cannot derive {variant!r}" + (" without a noise bank" if bank is None else ""))
    field = bank[list(NOISE_SIGMA).index(variant), pick]
    y0, x0, y1, x1 = box
    if size > field.shape[0]:  # bigger than the bank's side: tile the field
        reps = -(-size // field.shape[0])
        field = np.tile(field, (reps, reps))
    noisy = L.copy()
    region = L[y0:y1, x0:x1].astype(np.int16) + field[y0:y1, x0:x1]
    noisy[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)  # padding stays as it was
    return noisy, ab, box
