"""Training-set augmentation as in ColorUNet: each train photo yields up to 7 samples.

Variants, in order (``--augment k`` keeps the first k; 0 or 1 = original only):
original, horizontal flip, noise at three levels, two random crops at scale 0.7 resized back.
Noise goes on L only (the network's input); the ab target stays the photo's true color.
Each variant's randomness comes from sha256(seed, photo id, variant) so any shard can be rebuilt alone,
on any worker, with the same bytes. Val and test photos are never augmented.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from colorize.dataset.color import rgb_to_stored
from colorize.dataset.images import fit

#: Standard deviation of the Gaussian noise on stored L (0..255 units) per level.
NOISE_SIGMA = {"noise1": 3.0, "noise2": 6.0, "noise3": 12.0}
#: Side of a random crop relative to the photo's side.
CROP_SCALE = 0.7

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # L uint8 [S,S], ab int8 [S,S,2], mask bool [S,S]


def variant_rng(seed: int, photo_id: str, variant: str) -> np.random.Generator:
    digest = hashlib.sha256(f"augment:{seed}:{photo_id}:{variant}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def random_crop_box(width: int, height: int, rng: np.random.Generator, scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """A (x0, y0, x1, y1) window of `scale` x each side at a random position."""
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    x0 = int(rng.integers(0, width - cw + 1))
    y0 = int(rng.integers(0, height - ch + 1))
    return x0, y0, x0 + cw, y0 + ch


def add_noise(L: np.ndarray, mask: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """L + rounded Gaussian noise on real pixels only (padding stays as it was)."""
    noise = np.rint(rng.standard_normal(L.shape, dtype=np.float32) * np.float32(sigma)).astype(np.int16)
    noisy = np.clip(L.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return np.where(mask, noisy, L)


def make_samples(rgb: np.ndarray, size: int, fit_mode: str, variants: Sequence[str], seed: int,
                 photo_id: str) -> dict[str, Sample]:
    """The requested variants of one decoded photo, in storage encoding."""
    out: dict[str, Sample] = {}
    square, mask = fit(rgb, size, fit_mode)
    L, ab = rgb_to_stored(square)
    for variant in variants:
        if variant == "orig":
            out[variant] = (L, ab, mask)
        elif variant == "flip":
            out[variant] = (np.ascontiguousarray(L[:, ::-1]), np.ascontiguousarray(ab[:, ::-1]),
                            np.ascontiguousarray(mask[:, ::-1]))
        elif variant in NOISE_SIGMA:
            rng = variant_rng(seed, photo_id, variant)
            out[variant] = (add_noise(L, mask, NOISE_SIGMA[variant], rng), ab, mask)
        elif variant.startswith("crop"):
            rng = variant_rng(seed, photo_id, variant)
            x0, y0, x1, y1 = random_crop_box(rgb.shape[1], rgb.shape[0], rng)
            crop_rgb, crop_mask = fit(np.ascontiguousarray(rgb[y0:y1, x0:x1]), size, fit_mode)
            crop_L, crop_ab = rgb_to_stored(crop_rgb)
            out[variant] = (crop_L, crop_ab, crop_mask)
        else:
            raise ValueError(f"unknown variant {variant!r}")
    return out
