"""Decoding (every mode, EXIF, caps, hostile bytes), the DCT-reduced fast path's quality, and fit + mask."""

from __future__ import annotations

import numpy as np
import pytest
from imagedata import (
    SRGB_BLUE,
    SRGB_GREEN,
    SRGB_RED,
    exif_rotated_jpeg,
    hostile_files,
    jpeg_bytes,
    photo_like,
    png_with_size,
    rgb_icc_profile,
)
from PIL import Image

from colorize.dataset.images import BACKGROUND, PAD_VALUE, decode, fit, load_rgb
from colorize.errors import ColorizeError

HOSTILE = hostile_files()


@pytest.mark.parametrize("name", sorted(n for n, (_, reason) in HOSTILE.items() if reason))
def test_unusable_input_is_one_clear_error(name, tmp_path):
    data, reason = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ColorizeError) as err:
        decode(path, min_side=32)
    assert reason in str(err.value)
    assert name in err.value.what


@pytest.mark.parametrize("name", sorted(n for n, (_, reason) in HOSTILE.items() if not reason))
def test_every_mode_becomes_8bit_rgb(name):
    rgb = load_rgb(HOSTILE[name][0])
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[:2] == ((120, 80) if name == "rotated.jpg" else (80, 120))
    assert 20 < rgb.mean() < 235  # not blown out to white/black (the 16-bit and CMYK traps)


def test_mode_conversions_keep_the_right_colors():
    photo = photo_like(120, 80, seed=7)
    gray16 = load_rgb(HOSTILE["gray16.png"][0])
    assert np.array_equal(gray16[..., 0], photo[..., 0])  # 16-bit scaled back exactly, not clipped
    assert np.array_equal(gray16[..., 0], gray16[..., 2])
    gray = load_rgb(HOSTILE["gray.jpg"][0])
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    cmyk = load_rgb(HOSTILE["cmyk.jpg"][0]).astype(int)
    assert np.abs(cmyk - photo).mean() < 8  # CMYK JPEG converted to RGB, not inverted or channel-swapped
    gif = load_rgb(HOSTILE["palette.gif"][0]).astype(int)
    assert np.abs(gif - photo).mean() < 10


def test_alpha_is_composited_on_the_fixed_background():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (200, 20, 40)
    rgba[:, :10, 3] = 0
    rgba[:, 10:20, 3] = 255
    rgba[:, 20:, 3] = 128
    img = Image.fromarray(rgba, "RGBA")
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    rgb = load_rgb(buf.getvalue()).astype(int)
    assert tuple(rgb[0, 0]) == BACKGROUND
    assert tuple(rgb[0, 15]) == (200, 20, 40)
    expected = np.rint((np.array([200, 20, 40]) * 128 + np.array(BACKGROUND) * 127) / 255)
    assert np.abs(rgb[0, 30] - expected).max() <= 1


def test_embedded_color_profiles_are_converted_to_srgb():
    import io

    def tagged(icc: bytes | None, fmt: str) -> np.ndarray:
        buf = io.BytesIO()
        Image.new("RGB", (40, 40), (200, 50, 30)).save(buf, fmt, **({"icc_profile": icc} if icc else {}))
        return load_rgb(buf.getvalue())[0, 0].astype(int)

    swapped = rgb_icc_profile("swapped primaries", SRGB_BLUE, SRGB_GREEN, SRGB_RED)
    for fmt in ("PNG", "JPEG"):
        r, g, b = tagged(swapped, fmt)  # "red" in a space whose red primary is sRGB blue
        assert b > 180 and r < 60, (fmt, r, g, b)
    srgb = rgb_icc_profile("sRGB IEC61966-2.1", SRGB_RED, SRGB_GREEN, SRGB_BLUE)
    assert tagged(srgb, "PNG").tolist() == [200, 50, 30]  # sRGB-tagged: left as is
    assert tagged(b"garbage, not a profile", "PNG").tolist() == [200, 50, 30]  # unusable profile: ignored


def test_exif_orientation_is_applied():
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:8, :8] = (255, 0, 0)  # red marker at the stored top-left
    rgb = load_rgb(exif_rotated_jpeg(photo, 6))  # 6 = rotate 90° clockwise to display
    assert rgb.shape == (60, 40, 3)
    assert rgb[2, -3, 0] > 200 and rgb[2, -3, 1] < 60  # the marker is now top-right
    assert decode(exif_rotated_jpeg(photo, 6)).original_size == (40, 60)


def test_reduced_decode_of_a_rotated_photo_stays_upright_and_2x():
    stored = photo_like(600, 400, seed=5)  # landscape as stored, EXIF says "rotate 90°": portrait on screen
    decoded = decode(exif_rotated_jpeg(stored, 6), reduce_to=64, fit="crop")
    h, w = decoded.rgb.shape[:2]
    assert decoded.original_size == (400, 600) and h > w
    assert min(h, w) >= 128 and w < 400  # reduced (by 2) but the short side kept >= 2x the target


def test_pixel_cap_is_checked_before_decoding():
    bomb = png_with_size(9000, 6000)
    with pytest.raises(ColorizeError, match="pixel cap"):
        load_rgb(bomb)
    with pytest.raises(ColorizeError, match="pixel cap"):
        load_rgb(jpeg_bytes(photo_like(100, 100)), max_pixels=99 * 100)


@pytest.mark.parametrize("size,mode", [(128, "pad"), (256, "pad"), (128, "crop")])
def test_dct_reduced_decode_matches_full_size_lanczos(size, mode):
    """The fast path (JPEG draft >= 2x target, then Lanczos) stays within 1/255 mean of a full-size Lanczos."""
    data = jpeg_bytes(photo_like(1080, 720, seed=3), quality=90)
    reduced = decode(data, reduce_to=size, fit=mode).rgb
    full = load_rgb(data)
    assert full.shape == (720, 1080, 3)
    assert reduced.shape[1] < 1080  # the reduction really happened ...
    key = max(reduced.shape[:2]) if mode == "pad" else min(reduced.shape[:2])
    assert key >= 2 * size  # ... but never below 2x the target
    fast, fast_mask = fit(reduced, size, mode)
    ref, ref_mask = fit(full, size, mode)
    assert np.array_equal(fast_mask, ref_mask)
    diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16))[ref_mask].mean()
    assert diff <= 1.0, f"mean abs difference {diff:.3f} > 1.0"


def test_fit_pad_masks_landscape_and_portrait():
    land = np.full((50, 100, 3), 200, np.uint8)
    out, mask = fit(land, 64, "pad")
    assert out.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.dtype == bool
    assert mask[16:48].all() and not mask[:16].any() and not mask[48:].any()
    assert (out[~mask] == PAD_VALUE).all() and (np.abs(out[mask].astype(int) - 200) <= 1).all()

    portrait = np.full((100, 50, 3), 90, np.uint8)
    out, mask = fit(portrait, 64, "pad")
    assert mask[:, 16:48].all() and not mask[:, :16].any() and not mask[:, 48:].any()
    assert (out[~mask] == PAD_VALUE).all()


def test_fit_crop_takes_the_center_and_masks_nothing():
    img = np.zeros((60, 120, 3), np.uint8)
    img[:, :30] = (255, 0, 0)  # left quarter: cropped away
    img[:, 30:90] = (0, 255, 0)  # center square
    out, mask = fit(img, 32, "crop")
    assert out.shape == (32, 32, 3) and mask.all()
    assert out[:, 2:-2, 1].min() > 240 and out[:, 2:-2, 0].max() < 15
