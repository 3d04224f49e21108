"""`colorize predict` on images: full resolution, the input's own L, temperatures, confidence, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import VIVID_CENTERS as CENTERS
from PIL import Image

from colorize.cli import cli
from colorize.dataset.color import lab_to_rgb, rgb_to_lab
from colorize.dataset.images import load_rgb
from colorize.models.infer.arrays import colorize_rgb, parse_temperatures
from colorize.models.infer.pictures import (
    LEGEND_HEIGHT,
    colormap_image,
    confidence_image,
    legend_image,
    stretch_range,
    stretched_image,
)
from colorize.models.infer.predict import run_predict
from colorize.models.net.gamut import compose
from colorize.models.net.metrics import colorfulness


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like color image (gradients + a few blobs), not noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 100 * np.sin(xx / 7 + rng.uniform(0, 6)), 80 + 90 * np.cos(yy / 5),
                    60 + 60 * np.sin((xx + yy) / 9)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _max_l_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(rgb_to_lab(out)[..., 0] - rgb_to_lab(ref)[..., 0]).max())


def test_output_keeps_size_and_l_for_odd_exif_gray_and_rgba_inputs(tmp_path, model_path, vivid):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_photo(37, 53)).save(src / "odd.png")
    rotated = Image.fromarray(_photo(24, 40, 1))
    exif = rotated.getexif()
    exif[0x0112] = 6  # stored 40 wide, shown 24 wide after a 90° turn
    rotated.save(src / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(_photo(30, 45, 2)[..., 0], "L").save(src / "gray.jpg", quality=95)
    rgba = np.dstack([_photo(33, 21, 3), np.full((33, 21), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")

    report = run_predict(model_path, [src], tmp_path / "out", device="cpu")
    assert (report.images, report.failed) == (4, 0)
    expected = {"odd.color.png": (37, 53), "rotated.color.jpg": (40, 24), "gray.color.jpg": (30, 45),
                "alpha.color.png": (33, 21)}
    for name, (h, w) in expected.items():
        out = load_rgb(tmp_path / "out" / name)
        assert out.shape == (h, w, 3), name
        original = load_rgb(src / name.replace(".color", ""))
        if name.endswith(".png"):  # lossless: L equal up to 8-bit rounding
            assert _max_l_error(out, original) <= 1.0, name
        else:  # JPEG output adds its own small error on top
            assert np.abs(rgb_to_lab(out)[..., 0] - rgb_to_lab(original)[..., 0]).mean() < 1.0, name
    record = json.loads((tmp_path / "out" / "predict-run.json").read_text())
    assert record["counts"]["images"] == 4 and all(i["status"] == "ok" for i in record["items"])

    # The saturated model's raw colors leave the sRGB gamut; the chroma fit keeps L where a clip would not.
    photo = _photo(37, 53)
    colored = colorize_rgb(vivid, photo, 0.2)
    assert colored.shape == photo.shape and colorfulness(colored) > 20
    assert _max_l_error(colored, photo) <= 1.0
    L = rgb_to_lab(photo)[..., 0]
    wild = np.zeros(photo.shape[:2] + (2,), np.float32) + np.float32([90.0, -90.0])
    clipped = lab_to_rgb(np.dstack([L, wild]))
    assert _max_l_error(clipped, photo) > 5.0  # what a plain per-channel clip would have done
    assert _max_l_error(compose(L, wild), photo) <= 1.0


def test_lower_temperature_gives_more_colorful_results(vivid):
    photo = _photo(40, 40, 4)
    cf = [colorfulness(colorize_rgb(vivid, photo, t)) for t in (0.1, 0.38, 1.0)]
    assert cf[0] > cf[1] > cf[2], cf
    # and the result does not depend on the input's size: the same photo at 2x gives the same colors
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)
    small_cf, big_cf = colorfulness(colorize_rgb(vivid, photo, 0.38)), colorfulness(colorize_rgb(vivid, big, 0.38))
    assert abs(small_cf - big_cf) < 0.1 * small_cf


def test_temperature_strip_confidence_map_and_folders(tmp_path, model_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(_photo(20, 30)).save(src / "sub" / "a.png")
    Image.fromarray(_photo(20, 30)).save(src / "a.tif")  # same stem as a.png elsewhere: no clash
    Image.fromarray(_photo(20, 30)).save(src / "a.png")
    (src / "notes.txt").write_text("not a photo")
    out = src / "colorized"  # --out inside the input folder: a rerun must not eat its own outputs
    report = run_predict(model_path, [src], out, temperature="0.2,0.38,1.0", confidence=True, device="cpu")
    assert (report.images, report.failed, report.ignored) == (3, 0, 1)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert "sub/a.strip.png" in names and "sub/a.t0.38.color.png" in names and "a_tif.t1.color.png" in names
    assert len([n for n in names if n.endswith(".color.png")]) == 9
    strip = load_rgb(out / "sub" / "a.strip.png")
    assert strip.shape[1] >= 4 * 30  # gray input + three temperatures side by side
    conf = load_rgb(out / "a.confidence.png")
    assert conf.shape[1] == 30 and conf.shape[0] > 20 + LEGEND_HEIGHT  # the labelled map at the photo's size + legend


def test_confidence_maps_are_stretched_to_their_real_range_with_a_legend():
    values = np.linspace(0.3, 0.5, 200, dtype=np.float32).reshape(10, 20)
    lo, hi = stretch_range(values)
    assert 0.3 <= lo < 0.31 and 0.49 < hi <= 0.5  # its own range, not 0..1
    img = stretched_image(values, lo, hi)
    assert tuple(img[0, 0]) == tuple(colormap_image(np.zeros((1, 1)))[0, 0])  # darkest color used...
    assert tuple(img[-1, -1]) == tuple(colormap_image(np.ones((1, 1)))[0, 0])  # ...and the brightest
    flat = stretch_range(np.full((4, 4), 0.7, np.float32))
    assert flat[0] < 0.7 < flat[1]  # an all-equal map still gets a range to show it in
    legend = legend_image(lo, hi, width=160)
    assert legend.shape == (LEGEND_HEIGHT, 160, 3)
    panel = confidence_image(values)
    assert panel.shape[1] == 20 and panel.shape[0] > 10 + LEGEND_HEIGHT


def test_parse_temperatures():
    assert parse_temperatures("0.2, 0.38,1.0") == [0.2, 0.38, 1.0]
    assert parse_temperatures(0.5) == [0.5]
    for bad in ("", "0", "-1", "warm", "nan"):
        with pytest.raises(Exception, match="temperature"):
            parse_temperatures(bad)


def _cli(*args):
    return CliRunner().invoke(cli, ["-q", "predict", *map(str, args)])


def test_bad_inputs_are_one_line_errors_and_good_ones_still_run(tmp_path, model_path):
    good = tmp_path / "good.png"
    Image.fromarray(_photo(20, 24)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    result = _cli("--model", model_path, "--device", "cpu", "--out", out, good, corrupt, video, tmp_path / "gone.png")
    assert result.exit_code == 1
    assert (out / "good.color.png").is_file()
    assert "3 input(s) FAILED" in result.output
    # Each failure's reason is on the terminal too, one line each (the record has the same lines).
    lines = result.output.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("colorized "))
    shown = [line.strip() for line in lines[summary + 1:]]
    assert len(shown) == 3 and all(any(e in line for line in shown) for e in
                                   [i["error"] for i in json.loads((out / "predict-run.json").read_text())["items"]
                                    if i["status"] == "failed"])
    assert any("gone.png: no such file" in line for line in shown)
    record = json.loads((out / "predict-run.json").read_text())
    failed = {i["input"].rsplit("/", 1)[-1]: i["error"] for i in record["items"] if i["status"] == "failed"}
    assert set(failed) == {"corrupt.jpg", "broken.mp4", "gone.png"}
    assert all("\n" not in e for e in failed.values())

    result = _cli("--model", tmp_path / "missing.pt", "--out", out, good)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0 and "checkpoint not found" in result.stderr

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {"x": object.__new__(_Evil)}, "centers": torch.zeros(2, 2)}, evil)
    result = _cli("--model", evil, "--out", out, good)
    assert result.exit_code == 1 and "pickled" in result.stderr and "Traceback" not in result.output


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_never_overwrites_an_input(tmp_path, model_path):
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(_photo(16, 16)).save(d / "a.png")
    Image.fromarray(_photo(16, 16, 5)).save(d / "a.color.png")  # where a.png's output would go
    before = (d / "a.color.png").read_bytes()
    report = run_predict(model_path, [d / "a.png", d / "a.color.png"], d, device="cpu")
    assert report.failed == 1 and report.images == 1
    assert (d / "a.color.png").read_bytes() == before
    assert (d / "a.color.color.png").is_file()


def test_a_bundle_routes_each_photo_and_records_the_route(tmp_path):
    from colorize.models.net.bundle import write_bundle
    from colorize.models.net.checkpoint import untrained_payload
    from colorize.models.net.router import RouterCNN, RouterConfig, router_payload

    router = RouterCNN(RouterConfig(n_classes=2, size=16, width=4))
    with torch.no_grad():  # a router that always says "forest" with probability 0.73
        router.head[1].weight.zero_()
        router.head[1].bias.copy_(torch.tensor([0.0, 1.0]))
    routes = ["beach", "forest"]
    bundle = write_bundle(tmp_path / "bundle", "category", routes, router_payload(router.eval(), routes, []),
                          untrained_payload(CENTERS, size=32, width=4, seed=9),
                          {r: untrained_payload(CENTERS, size=32, width=4, seed=i) for i, r in enumerate(routes)},
                          input_info={"size": 32, "fit": "pad"})
    Image.fromarray(_photo(20, 28)).save(tmp_path / "p.png")
    for threshold, route in ((0.5, "forest"), (0.9, "global")):
        out = tmp_path / f"out{threshold}"
        report = run_predict(bundle, [tmp_path / "p.png"], out, device="cpu", min_confidence=threshold,
                             confidence=True)
        assert (report.images, report.failed) == (1, 0)
        item = json.loads((out / "predict-run.json").read_text())["items"][0]
        assert item["route"]["route"] == route and item["route"]["fallback"] == (route == "global")
        assert item["route"]["confidence"] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-5)
        assert load_rgb(out / "p.color.png").shape == (20, 28, 3) and (out / "p.confidence.png").is_file()


def test_rerun_keeps_finished_work_and_redoes_what_changed(tmp_path, model_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_photo(18, 22, i)).save(src / f"p{i}.png")
    out = src / "out"  # inside the input folder: a rerun must not pick up its own outputs
    first = run_predict(model_path, [src], out, device="cpu")
    assert (first.images, first.kept) == (3, 0)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = run_predict(model_path, [src], out, device="cpu")
    assert (again.images, again.kept, again.failed) == (0, 3, 0) and "kept" in again.summary_line()
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    # a changed photo, a deleted output, and then other options: only what is affected is redone
    Image.fromarray(_photo(18, 22, 7)).save(src / "p0.png")
    (out / "p1.color.png").unlink()
    third = run_predict(model_path, [src], out, device="cpu")
    assert (third.images, third.kept) == (2, 1)
    fourth = run_predict(model_path, [src], out, temperature="0.5", device="cpu")
    assert (fourth.images, fourth.kept) == (3, 0)
    record = json.loads((out / "predict-run.json").read_text())
    assert record["fingerprint"]["temperatures"] == [0.5] and len(record["items"]) == 3


def test_the_colorizer_averages_a_photo_and_its_mirror_image(vivid):
    """Flip averaging: the probabilities are the mean of the net on the photo and (mirrored back) on its
    mirror image, so mirroring the input mirrors the output exactly — which the bare net does not do."""
    from colorize.models.net.annealed import softmax_probs
    from colorize.models.net.unet import l_to_input

    L = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (2, 32, 32), dtype=np.uint8))
    probs = vivid.probs(L)
    assert torch.allclose(vivid.probs(L.flip(-1)), probs.flip(-1), atol=1e-6)
    with torch.no_grad():
        plain, mirrored = (softmax_probs(vivid.model(l_to_input(x))) for x in (L, L.flip(-1)))
    assert not torch.allclose(mirrored.flip(-1), plain, atol=1e-3)  # the net alone is not mirror-symmetric
    assert torch.allclose(probs, (plain + mirrored.flip(-1)) / 2, atol=1e-6)


def test_failure_reasons_are_capped_on_the_terminal(tmp_path):
    from colorize.models.infer.predict import FAILURES_SHOWN, PredictReport

    items = [{"input": f"p{i}.png", "status": "failed", "error": f"p{i}.png: cannot decode — remove it"}
             for i in range(FAILURES_SHOWN + 3)]
    line = PredictReport(tmp_path, tmp_path / "predict-run.json", failed=len(items), items=items).summary_line()
    lines = line.splitlines()
    assert len(lines) == 1 + FAILURES_SHOWN + 1 and lines[1].strip() == "p0.png: cannot decode — remove it"
    assert "3 more" in lines[-1] and "predict-run.json" in lines[-1]
