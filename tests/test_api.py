"""The Python API: `colorize.load(path)` -> `model.colorize(image)` equals what `colorize predict` writes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import colorize
from colorize.models.infer.predict import run_predict


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 100 * np.sin(xx / 7 + rng.uniform(0, 6)), 80 + 90 * np.cos(yy / 5),
                    60 + 60 * np.sin((xx + yy) / 9)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_colorize_equals_predict_for_a_path_a_pil_image_and_an_array(tmp_path, model_path):
    rgb = _photo(37, 53)
    src = tmp_path / "photo.png"
    Image.fromarray(rgb).save(src)
    run_predict(model_path, [src], tmp_path / "out", temperature="0.3", device="cpu")
    written = np.asarray(Image.open(tmp_path / "out" / "photo.color.png").convert("RGB"))

    model = colorize.load(model_path, device="cpu")
    for image in (src, str(src), Image.open(src), rgb):
        got = model.colorize(image, temperature=0.3)
        assert isinstance(got, Image.Image) and got.mode == "RGB" and got.size == (53, 37)
        np.testing.assert_array_equal(np.asarray(got), written)
    assert not np.array_equal(np.asarray(model.colorize(rgb, temperature=1.0)), written)  # T is used
    np.testing.assert_array_equal(np.asarray(model(rgb, temperature=0.3)), written)

    conf = model.confidence(rgb)
    assert conf.shape == (37, 53) and conf.dtype == np.float32 and 0.0 <= conf.min() <= conf.max() <= 1.0
    # The map predict records as mean_confidence is the same one.
    assert abs(float(model.predict(rgb, 0.38).mean_confidence()) - float(
        model.predict(src, 0.38).mean_confidence())) < 1e-6


def test_a_bundle_loads_as_a_model_and_routes_inside(tmp_path):
    from test_routing_bundle import _bundle

    root = _bundle(tmp_path, logits=(0.0, 2.0))  # the router says forest, p = 0.88
    model = colorize.load(root, device="cpu")
    rgb = _photo(30, 40, 1)
    forest = model.engine.specialists["forest"].predict
    routed = model.predict(rgb, 0.38)
    assert routed.route["route"] == "forest"
    from colorize.models.infer.arrays import as_sources

    np.testing.assert_array_equal(np.asarray(model.colorize(rgb)), forest(as_sources([rgb]), [0.38])[0].color(0))


def test_bad_images_are_refused_clearly(model_path, tmp_path):
    model = colorize.load(model_path, device="cpu")
    with pytest.raises(TypeError, match="uint8"):
        model.colorize(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(colorize_errors().ColorizeError):
        model.colorize(tmp_path / "nope.png")


def colorize_errors():
    from colorize import errors

    return errors


def test_import_colorize_stays_light():
    """torch, numpy, PIL and cv2 load at `load()`, not at `import colorize`."""
    code = ("import sys, colorize; heavy = [m for m in ('torch', 'numpy', 'PIL', 'cv2') if m in sys.modules]; "
            "print(heavy); assert callable(colorize.load)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
