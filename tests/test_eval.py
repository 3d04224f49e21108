"""`colorize eval`: model vs gray baseline, overall and per category, eval.json + a shareable report.html."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli
from colorize.dataset.color import stored_to_rgb
from colorize.dataset.images import load_rgb
from colorize.dataset.prep import run_prep
from colorize.dataset.shards import list_shards, load_shard, load_stats
from colorize.models.evaluate.run import run_eval
from colorize.models.infer.arrays import colorize_rgb
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.net.bundle import INDEX
from colorize.models.net.checkpoint import save_checkpoint, untrained_payload, write_untrained_checkpoint
from colorize.models.net.metrics import CAST_WARNING_AB, colorfulness, psnr

TINTS = {"beach": (200, 180, 120), "forest": (40, 120, 50)}


def _photos(root, n=4, seed=0):
    rng = np.random.default_rng(seed)
    for cat, tint in TINTS.items():
        (root / cat).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            yy, xx = np.mgrid[0:40, 0:52]
            img = np.array(tint) + 40 * np.sin(xx / 5 + i)[..., None] + rng.normal(0, 10, (40, 52, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / cat / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    src = _photos(base / "src", n=6)
    run_prep(src, base / "shards", size=32, bins=8, augment=0, split="0.5,0,0.5", workers=1, shard_size=64)
    st = load_stats(base / "shards")
    model = write_untrained_checkpoint(base / "m.pt", st.centers, size=32, width=4, seed=2, prior=st.prior,
                                       ab_lut=st.ab_lut)
    return base, model


def test_shards_eval_table_gray_identities_report_and_determinism(data, tmp_path):
    base, model = data
    report = run_eval(model, shards=base / "shards", split="test", out=tmp_path / "a", device="cpu", gallery=3)
    result = json.loads((tmp_path / "a" / "eval.json").read_text())
    n_test = sum(e["count"] for e in list_shards(base / "shards", "test"))
    assert result["images"] == n_test == len(result["samples"])
    assert set(result["categories"]) == set(TINTS)
    assert sum(c["model"]["images"] for c in result["categories"].values()) == n_test
    for key in ("psnr", "ssim", "colorfulness", "delta_cf", "auc", "auc_rebalanced"):
        assert result["overall"]["model"][key] is not None and result["overall"]["gray"][key] is not None
    # gray baseline identities: no color, so ΔCF is exactly the truth's mean colorfulness (padding excluded)
    truth_cf = []
    for entry in list_shards(base / "shards", "test"):
        arrays = load_shard(base / "shards" / entry["name"])
        truth_cf += [colorfulness(stored_to_rgb(L, ab), m) for L, ab, m in zip(arrays["L"], arrays["ab"], arrays["mask"])]
    gray = result["overall"]["gray"]
    assert gray["colorfulness"] == 0.0
    assert gray["delta_cf"] == pytest.approx(np.mean(truth_cf), abs=1e-4)
    assert gray["colorfulness_truth"] == result["overall"]["model"]["colorfulness_truth"] == gray["delta_cf"]
    # the page: the table, and a gallery whose pictures are next to it, referenced relatively
    page = (tmp_path / "a" / "report.html").read_text()
    assert "gray baseline" in page and "forest" in page and "beach" in page
    srcs = re.findall(r"src='([^']+)'", page)
    assert len(srcs) == 3 * 4 + 1 and len(result["gallery"]) == 3
    assert srcs[0] == result["confidence"]["legend"] == "gallery/confidence-legend.png"  # the maps' key
    lo, hi = result["confidence"]["range"]
    assert 0.0 <= lo < hi <= 1.0 and f"{lo:.2f}" in page and f"{hi:.2f}" in page
    assert {s.split("-")[0] for s in srcs[1:]} == {"gallery/000", "gallery/001", "gallery/002"}
    assert {g["category"] for g in result["gallery"]} == set(TINTS)  # picked across categories
    for s in srcs:
        assert not s.startswith(("/", "http")) and (tmp_path / "a" / s).is_file()
    assert "<script" not in page and "http" not in page
    assert report.summary_line().startswith(f"eval on {n_test} image(s) at T=0.38: PSNR")
    # same inputs -> the same eval.json bytes (timings live in eval-run.json)
    run_eval(model, shards=base / "shards", split="test", out=tmp_path / "b", device="cpu", gallery=3)
    assert (tmp_path / "a" / "eval.json").read_bytes() == (tmp_path / "b" / "eval.json").read_bytes()
    assert json.loads((tmp_path / "a" / "eval-run.json").read_text())["counts"]["images"] == n_test


def test_the_cast_is_measured_per_category_and_a_large_one_is_warned(data, tmp_path, caplog):
    base, _ = data
    st = load_stats(base / "shards")
    payload = untrained_payload(st.centers, size=32, width=4, seed=2, prior=st.prior, ab_lut=st.ab_lut)
    yellow = int(np.argmax(st.centers[:, 1]))  # a model sure that everything is the most yellow bin
    payload["model"]["head.weight"].zero_()
    payload["model"]["head.bias"].fill_(-30.0)
    payload["model"]["head.bias"][yellow] = 30.0
    save_checkpoint(tmp_path / "sepia.pt", payload)
    with caplog.at_level(logging.WARNING):
        report = run_eval(tmp_path / "sepia.pt", shards=base / "shards", split="test", out=tmp_path / "e",
                          device="cpu", gallery=2)
    result = report.result
    model = result["overall"]["model"]
    assert model["ab_offset_b"] > CAST_WARNING_AB and model["ab_offset"] >= abs(model["ab_offset_b"])
    for cat in TINTS:
        assert result["categories"][cat]["model"]["ab_offset_b"] > 0
        assert result["categories"][cat]["gray"]["ab_offset_b"] < 0  # gray is off the other way: truth is warm
    assert "color cast: mean ab offset (+" in result["warnings"][0] and result["warnings"][0].startswith("the model has")
    # and per category, measured against a paler version of each category's true color: the warm beach
    # painted warmer still, the green forest painted yellow
    assert [w.split(" has a ")[0] for w in result["warnings"][1:]] == ["the model on 'beach'", "the model on 'forest'"]
    assert all("warm/sepia color cast" in w for w in result["warnings"][1:])
    assert any("color cast" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    page = (tmp_path / "e" / "report.html").read_text()
    assert "class='warn'" in page and "cast b" in page
    assert "mean ab offset (" in report.summary_line()


def test_image_folder_eval_matches_predict_and_skips_bad_files(data, tmp_path):
    base, model = data
    photos = _photos(tmp_path / "photos", n=2, seed=5)
    (photos / "forest" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    hostile = photos / "<img src=x onerror=alert(1)>"  # folder names are untrusted text
    hostile.mkdir()
    (photos / "beach" / "0.png").rename(hostile / "0.png")
    result = CliRunner().invoke(cli, ["-q", "eval", "--model", str(model), "--images", str(photos),
                                      "--out", str(tmp_path / "ev"), "--device", "cpu", "--temperature", "0.5"])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert out["images"] == 4 and [s["file"] for s in out["skipped"]] == ["forest/broken.jpg"]
    # the model's numbers are those of the photos `predict` would write
    col = load_colorizer(model, "cpu")
    values = [psnr(colorize_rgb(col, load_rgb(f), 0.5), load_rgb(f)) for f in sorted(photos.rglob("*.png"))]
    # (a batch of 16 vs one photo at a time: float sums may round a rare pixel the other way)
    assert out["overall"]["model"]["psnr"] == pytest.approx(np.mean(values), abs=1e-4)
    assert out["categories"]["beach"]["model"]["images"] == 1
    assert out["categories"]["<img src=x onerror=alert(1)>"]["model"]["images"] == 1
    page = (tmp_path / "ev" / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_usage_and_model_errors(data, tmp_path):
    base, model = data
    run = CliRunner().invoke
    both = run(cli, ["eval", "--model", str(model), "--shards", str(base / "shards"), "--images", str(base / "src")])
    assert both.exit_code == 2 and "exactly one" in both.stderr
    neither = run(cli, ["eval", "--model", str(model)])
    assert neither.exit_code == 2
    missing = run(cli, ["eval", "--model", str(tmp_path / "no.pt"), "--shards", str(base / "shards")])
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run(cli, ["eval", "--model", str(model), "--images", str(empty)])
    assert nothing.exit_code == 1 and "no images" in nothing.stderr


def test_eval_of_any_model_goes_through_the_one_evaluator(tmp_path, monkeypatch):
    """`colorize eval` calls one function for a checkpoint and a bundle alike; the CLI never asks which."""
    from colorize.models.routing import evaluate as routed

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / INDEX).write_text("{}")
    seen = {}
    monkeypatch.setattr(routed, "evaluate", lambda **kw: seen.update(kw) or "one evaluator")
    res = CliRunner().invoke(cli, ["eval", "--model", str(bundle), "--shards", str(tmp_path), "--gallery", "2",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and "one evaluator" in res.output
    assert Path(seen["model"]) == bundle and seen["gallery"] == 2 and seen["split"] == "test"
