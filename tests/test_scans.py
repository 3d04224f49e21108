"""Scans and large photos: strip composition equals the whole-image path, 16-bit in gives 16-bit out with the
input's lightness, ICC and DPI carried, and the --max-pixels cap (a bomb is refused before decoding)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from imagedata import png_with_size
from PIL import Image, ImageCms

from colorize.cli import cli
from colorize.dataset import scans
from colorize.dataset.color import lightness16, rgb_to_lab
from colorize.dataset.images import load_rgb
from colorize.imaging import encode_image
from colorize.models.infer import strips
from colorize.models.infer.arrays import (
    Framing,
    RGBArray,
    model_probs,
    net_input,
    predict_sources,
)
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.infer.predict import run_predict
from colorize.models.infer.strips import Upsampler
from colorize.models.net.colors import decode_ab
from colorize.models.net.gamut import compose

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 100 * np.sin(xx / 17 + rng.uniform(0, 6)), 80 + 90 * np.cos(yy / 13),
                    60 + 60 * np.sin((xx + yy) / 23)], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _gray16(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth 16-bit gray scan with fine noise: every 16-bit level matters, an 8-bit copy loses them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 32768 + 30000 * np.sin(xx / 31) * np.cos(yy / 23) + rng.normal(0, 40, (h, w))
    return np.clip(v, 0, 65535).astype(np.uint16)


def _old_colors(col, rgb: np.ndarray, temps: list[float]) -> list[np.ndarray]:
    """Today's whole-image path, kept as the reference: full L, whole upsample, one compose."""
    L_full, framing = rgb_to_lab(rgb)[..., 0], Framing.of(rgb.shape[0], rgb.shape[1], col.size)
    probs = model_probs(col, net_input([RGBArray(rgb)], col.size))
    return [compose(L_full, framing.upsample(decode_ab(probs, col.centers, t)[0])) for t in temps]


@pytest.mark.parametrize("shape", [(301, 517), (40, 1000), (700, 90), (20, 28)])
def test_strip_composition_equals_whole_image(vivid, shape, monkeypatch):
    rgb = _photo(*shape, seed=shape[0])
    monkeypatch.setattr(strips, "STRIP_PIXELS", 64 * shape[0])  # one ALIGN-wide strip at a time: many strips
    assert len(strips.strip_edges(shape[1], shape[0], strips.STRIP_PIXELS)) == -(-shape[1] // 64)
    pred = predict_sources(vivid, [RGBArray(rgb)], [0.2, 1.0])[0]
    for i, old in enumerate(_old_colors(vivid, rgb, [0.2, 1.0])):
        np.testing.assert_array_equal(pred.color(i), old)
    f = pred.framing  # a 2-D map (the confidence) comes out the same too
    up = Upsampler(f, pred.chroma_conf, cv2.INTER_LINEAR)
    np.testing.assert_array_equal(np.concatenate([up.columns(a, b)[..., 0] for a, b in strips.strip_edges(
        f.width, f.height, 64 * shape[0])], axis=1), f.upsample(pred.chroma_conf, cv2.INTER_LINEAR))


def test_predict_8bit_files_are_byte_for_byte_the_old_path(tmp_path, model_path, monkeypatch):
    """JPEG (EXIF-rotated), gray JPEG (kept 1 byte a pixel), RGBA PNG, sRGB-tagged PNG with DPI."""
    monkeypatch.setattr(strips, "STRIP_PIXELS", 64 * 64)
    src = tmp_path / "in"
    src.mkdir()
    rot = Image.fromarray(_photo(150, 260, 1))
    exif = rot.getexif()
    exif[0x0112] = 6
    rot.save(src / "rot.jpg", exif=exif, quality=92)
    Image.fromarray(_photo(170, 230, 2)[..., 1], "L").save(src / "gray.jpg", quality=92)
    Image.fromarray(np.dstack([_photo(120, 333, 3), np.full((120, 333), 180, np.uint8)]), "RGBA").save(src / "a.png")
    Image.fromarray(_photo(99, 201, 4)).save(src / "tagged.png", icc_profile=SRGB_ICC, dpi=(300, 300))
    run_predict(model_path, [src], tmp_path / "out", device="cpu", temperature="0.3", batch=1)  # as the reference
    col = load_colorizer(model_path, "cpu")
    for name, out in [("rot.jpg", "rot.color.jpg"), ("gray.jpg", "gray.color.jpg"), ("a.png", "a.color.png")]:
        old = _old_colors(col, load_rgb(src / name), [0.3])[0]
        assert (tmp_path / "out" / out).read_bytes() == encode_image(old, out[-4:]), name
    tagged = Image.open(tmp_path / "out" / "tagged.color.png")
    assert tagged.info.get("icc_profile") == SRGB_ICC and tagged.info.get("dpi") == pytest.approx((300, 300), abs=0.01)
    np.testing.assert_array_equal(np.asarray(tagged), _old_colors(col, load_rgb(src / "tagged.png"), [0.3])[0])


def _l_error16(out16: np.ndarray, gray16: np.ndarray) -> float:
    return float(np.abs(lightness16(out16) - lightness16(gray16)).max())


def test_16bit_gray_tiff_gives_16bit_tiff_with_the_inputs_lightness(tmp_path, model_path, vivid):
    gray = _gray16(180, 260)
    src = tmp_path / "scan.tif"
    assert cv2.imwrite(str(src), gray, [cv2.IMWRITE_TIFF_XDPI, 1200, cv2.IMWRITE_TIFF_YDPI, 1200,
                                        cv2.IMWRITE_TIFF_RESUNIT, 2])
    colored = predict_sources(vivid, [scans.open_scan(src)], [0.2])[0].color(0)
    assert colored.dtype == np.uint16 and colored.shape == (180, 260, 3)
    assert float(np.ptp(colored.astype(np.int64), axis=2).mean()) > 500  # really colored, not gray
    assert _l_error16(colored, gray) < 0.01  # an 8-bit output is off by up to ~0.2 L
    eight = ((colored.astype(np.uint32) + 128) // 257 * 257).astype(np.uint16)
    assert _l_error16(eight, gray) > 0.05  # ... which this test would catch

    report = run_predict(model_path, [src], tmp_path / "out", device="cpu")
    assert (report.images, report.failed) == (1, 0)
    out = tmp_path / "out" / "scan.color.tif"
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (180, 260, 3)
    assert _l_error16(back[..., ::-1], gray) < 0.01
    assert Image.open(out).info.get("dpi") == (1200, 1200)
    item = json.loads((tmp_path / "out" / "predict-run.json").read_text())["items"][0]
    assert (item["bits"], item["width"], item["height"]) == (16, 260, 180)


def test_16bit_rgb_png_gives_16bit_png_with_icc_and_dpi(tmp_path, model_path, vivid):
    gray = _gray16(90, 140, 1)
    rgb16 = np.dstack([gray, np.clip(gray.astype(np.int64) - 3000, 0, 65535), gray // 2]).astype(np.uint16)
    src = tmp_path / "print.png"
    assert cv2.imwriteWithMetadata(str(src), rgb16[..., ::-1], [cv2.IMAGE_METADATA_ICCP],
                                   [np.frombuffer(SRGB_ICC, np.uint8)], [])
    scan = scans.open_scan(src)
    assert (scan.depth, scan.output_suffix, scan.output_icc()) == (16, ".png", SRGB_ICC)
    colored = predict_sources(vivid, [scan], [0.2])[0].color(0)
    assert _l_error16(colored, rgb16) < 0.01
    rgba = tmp_path / "rgba.png"  # an opaque alpha channel changes nothing
    assert cv2.imwrite(str(rgba), np.dstack([rgb16[..., ::-1], np.full(gray.shape, 65535, np.uint16)]))
    np.testing.assert_array_equal(predict_sources(vivid, [scans.open_scan(rgba)], [0.2])[0].color(0), colored)

    run_predict(model_path, [src], tmp_path / "out", device="cpu", temperature="0.2,1.0")
    out = tmp_path / "out" / "print.t0.2.color.png"
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (90, 140, 3)
    assert _l_error16(back[..., ::-1], rgb16) < 0.01
    assert Image.open(out).info.get("icc_profile") == SRGB_ICC
    assert load_rgb(tmp_path / "out" / "print.strip.png").shape[0] <= 90 + 64  # an 8-bit picture to look at


def test_cap_names_the_option_and_a_bomb_is_refused_before_decoding(tmp_path, model_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_photo(60, 80)).save(src / "photo.png")
    (src / "bomb.png").write_bytes(png_with_size(40000, 40000))  # 1.6 G pixels, over the 300 MP default

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(scans, "_read8", no_decoding)
    monkeypatch.setattr(scans, "_read16", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(Exception, match="--max-pixels"):
        scans.open_scan(src / "bomb.png").load()
    result = CliRunner().invoke(cli, ["predict", "--model", str(model_path), str(src / "bomb.png"),
                                      "--out", str(tmp_path / "o1"), "--device", "cpu"])
    assert result.exit_code == 1
    record = json.loads((tmp_path / "o1" / "predict-run.json").read_text())
    assert "--max-pixels" in record["items"][0]["error"] and "1600000000" in record["items"][0]["error"]
    monkeypatch.undo()

    result = CliRunner().invoke(cli, ["predict", "--model", str(model_path), str(src / "photo.png"),
                                      "--out", str(tmp_path / "o2"), "--device", "cpu", "--max-pixels", "4000"])
    assert result.exit_code == 1
    error = json.loads((tmp_path / "o2" / "predict-run.json").read_text())["items"][0]["error"]
    assert "--max-pixels" in error and "4800" in error
    result = CliRunner().invoke(cli, ["predict", "--model", str(model_path), str(src / "photo.png"),
                                      "--out", str(tmp_path / "o3"), "--device", "cpu", "--max-pixels", "4800"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_20_megapixel_16bit_scan_in_strips(tmp_path, model_path):
    """Default strip size, many strips, a progress-bar-sized photo: size, depth and lightness hold."""
    h, w = 4000, 5000
    gray = _gray16(h, w, 2)
    src = tmp_path / "big.tif"
    assert cv2.imwrite(str(src), gray)
    del gray
    report = run_predict(model_path, [src], tmp_path / "out", device="cpu")
    assert (report.images, report.failed) == (1, 0)
    back = cv2.imread(str(tmp_path / "out" / "big.color.tif"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (h, w, 3)
    rows = slice(0, h, 97)
    assert _l_error16(back[rows, :, ::-1], _gray16(h, w, 2)[rows]) < 0.01
    assert len(strips.strip_edges(w, h)) > 16
    assert Framing.of(h, w, 32).w == 32


def test_a_large_photo_shows_a_progress_bar_per_temperature(model_path, tmp_path, monkeypatch):
    bars = []

    def recording(*args, **kwargs):
        bars.append(kwargs)
        return _Bar()

    class _Bar:
        def update(self, n):
            bars[-1]["done"] = bars[-1].get("done", 0) + n

        def close(self):
            pass

    monkeypatch.setattr(strips, "progress", recording)
    monkeypatch.setattr(strips, "BAR_MIN_PIXELS", 100 * 300)  # "large" for this test
    monkeypatch.setattr(strips, "STRIP_PIXELS", 64 * 100)
    Image.fromarray(_photo(100, 300)).save(tmp_path / "wide.png")
    Image.fromarray(_photo(50, 60)).save(tmp_path / "small.png")
    run_predict(model_path, [tmp_path / "wide.png", tmp_path / "small.png"], tmp_path / "out", device="cpu",
                temperature="0.2,1.0")
    assert [(b["desc"], b["total"], b["done"]) for b in bars] == [("wide.png T=0.2", 5, 5), ("wide.png T=1", 5, 5)]


def test_eval_cap_names_the_option(model_path, tmp_path):
    from colorize.models.evaluate.run import run_eval

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_photo(40, 50)).save(photos / "small.png")
    Image.fromarray(_photo(80, 100)).save(photos / "large.png")
    result = run_eval(model_path, images=photos, out=tmp_path / "eval", device="cpu", max_pixels=4000).result
    assert result["images"] == 1
    assert "--max-pixels" in result["skipped"][0]["reason"] and "8000" in result["skipped"][0]["reason"]
