"""Routed training pieces on real (tiny) shards: per-route weights, route assignment, the whole bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.dataset.shards import load_stats
from colorize.errors import ColorizeError
from colorize.models.routing.train import _histograms, assign_routes, route_weights


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Three gallery categories with distinct palettes, prepped to 32 px shards (no augmentation)."""
    from colorize.dataset.prep import run_prep
    from colorize.demo.scenes import build_scene_folder

    root = tmp_path_factory.mktemp("routed")
    build_scene_folder(root / "photos", per_category=14, categories=("beach", "forest", "sunset"), size=(48, 40))
    run_prep(root / "photos", root / "shards", size=32, bins=16, augment=1, split="0.6,0.2,0.2",
             workers=1, shard_size=32)
    return root / "shards"


def test_route_weights_reuse_the_stats_formula_on_the_shared_bins(shards):
    stats = load_stats(shards)
    hists = _histograms(shards, stats)
    # All train photos together: the route weights are the global weights (up to the 1-pixel prior).
    all_counts = hists["train"].bin_counts()
    np.testing.assert_allclose(all_counts / all_counts.sum(), stats.prior, atol=1e-6)
    w_all = route_weights(stats, all_counts)
    np.testing.assert_allclose(w_all, stats.weights, rtol=0.02)
    # One category: its own frequent colors weigh less, normalised on its own prior (Σ p·w = 1).
    rows = np.array([i for i, c in enumerate(hists["train"].categories) if c == "forest"])
    counts = hists["train"].bin_counts(rows)
    w = route_weights(stats, counts)
    p = (counts + 1) / (counts + 1).sum()
    assert w.shape == stats.weights.shape and abs(float((p * w).sum()) - 1) < 1e-3
    # Rare colors of this route weigh more than its common ones (rank correlation clearly negative).
    rank_w, rank_c = np.argsort(np.argsort(w)), np.argsort(np.argsort(counts))
    assert np.corrcoef(rank_w, rank_c)[0, 1] < -0.5
    assert not np.allclose(w, stats.weights, rtol=0.05)


def test_routes_by_category_and_by_profile(shards):
    hists = _histograms(shards, load_stats(shards))
    by_cat = assign_routes("category", hists, 3, seed=0)
    assert by_cat.routes == ["beach", "forest", "sunset"]
    for split, h in hists.items():
        assert [by_cat.routes[by_cat.photo_route[split][p]] for p in h.ids] == h.categories
    by_prof = assign_routes("profile", hists, 3, seed=0)
    assert by_prof.routes == ["profile-0", "profile-1", "profile-2"] and by_prof.profiles is not None
    assert set(by_prof.photo_route["test"]) == set(hists["test"].ids)
    # Same seed, same profiles; the gallery's palettes are distinct enough that profiles follow categories.
    again = assign_routes("profile", hists, 3, seed=0)
    assert again.photo_route == by_prof.photo_route
    pairs = {(c, by_prof.photo_route["train"][p]) for p, c in zip(hists["train"].ids, hists["train"].categories)}
    assert len({c for c, _ in pairs}) == 3 and len(pairs) <= 4
    with pytest.raises(ColorizeError, match="--profiles"):
        assign_routes("profile", hists, 10_000, seed=0)


TINY = dict(epochs=1, batch_size=8, lr=2e-3, width=4, workers=0, device="cpu", amp=False, router_size=16,
            router_width=4, router_epochs=3)


def test_category_bundle_end_to_end_train_predict_eval(shards, tmp_path):
    import json

    from colorize.models.evaluate.run import run_eval
    from colorize.models.infer.arrays import colorize_rgb
    from colorize.models.infer.colorizer import load_bundle
    from colorize.models.net.bundle import is_bundle
    from colorize.models.routing.evaluate import evaluate
    from colorize.models.routing.train import train_routed

    out = tmp_path / "bundle"
    report = train_routed("category", 4, shards=shards, out=out, seed=0, **TINY)
    assert report.routes == ["beach", "forest", "sunset"] and not report.incomplete
    assert "3 category specialists" in report.summary_line()
    assert is_bundle(out)
    index = json.loads((out / "bundle.json").read_text())
    assert index["input"] == {"size": 32, "fit": "pad"}
    assert set(index["specialists"]) == {"beach", "forest", "sunset"}
    # Each specialist was trained on its own photos with its own weights (recorded in its config).
    bundle = load_bundle(out, "cpu")
    cfg_forest = bundle.specialists["forest"].config
    assert cfg_forest["categories"] == ["forest"] and cfg_forest["weights"] != cfg_forest.get("prior")
    assert bundle.global_model.config["categories"] is None
    assert not torch.equal(bundle.specialists["forest"].weights, bundle.global_model.weights)
    # Slim files: what prediction needs, not the optimizer state.
    raw = torch.load(out / index["specialists"]["beach"]["file"], weights_only=True)
    assert "optimizer" not in raw and "model" in raw
    routes_json = json.loads((out / "routes.json").read_text())
    assert set(routes_json["photo_route"]) == {"train", "val", "test"}

    rgb = np.random.default_rng(0).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    bundle.min_confidence = 0.0  # always trust the router
    col, info = bundle.pick(rgb)
    colored = colorize_rgb(col, rgb, 0.38)
    assert colored.shape == rgb.shape and info["route"] in bundle.routes and not info["fallback"]

    # Rerunning without --resume refuses; with --resume everything is already done: same bundle bytes.
    with pytest.raises(ColorizeError, match="--resume"):
        train_routed("category", 4, shards=shards, out=out, seed=0, **TINY)
    before = (out / "bundle.json").read_bytes()
    train_routed("category", 4, shards=shards, out=out, seed=0, resume=True, **TINY)
    assert (out / "bundle.json").read_bytes() == before

    # Interrupted (each model stops after one step): no index, so not a bundle; --resume finishes it, and
    # the result is byte-identical to the uninterrupted bundle written elsewhere (same data, same seed).
    out2 = tmp_path / "interrupted"
    partial = train_routed("category", 4, shards=shards, out=out2, seed=0, max_steps=1, **TINY)
    assert partial.incomplete == ["global", "beach", "forest", "sunset"] and "--resume" in partial.summary_line()
    assert not is_bundle(out2)
    train_routed("category", 4, shards=shards, out=out2, seed=0, resume=True, **TINY)
    assert (out2 / "bundle.json").read_bytes() == before

    ev = tmp_path / "eval"
    rep = evaluate(out, shards, "test", None, 0.38, ev, "cpu", 2)
    whole = json.loads((ev / "eval.json").read_text())
    result = whole["routing"]
    n = rep.result["images"]
    assert n == sum(result["per_route"][r]["photos"] for r in bundle.routes) > 0
    assert (ev / "report.html").is_file() and (ev / "routing.html").is_file() and (ev / "eval-run.json").is_file()
    assert (ev / "gallery" / "route-000-routed.png").is_file() and (ev / "gallery" / "000-pred.png").is_file()
    assert "routed" in rep.summary_line() and "routing.html" in rep.summary_line()
    # One evaluator: the bundle's eval.json has every key of a checkpoint's eval.json (plus "routing"), and
    # its global row is exactly `eval` of the global checkpoint on the same photos; its model row is routed.
    alone = run_eval(out / bundle.index["global"]["file"], shards, "test", None, 0.38, tmp_path / "g", "cpu", 2)
    assert set(whole) == set(alone.result) | {"routing"}
    assert {"tool_version", "model_sha256", "warnings", "skipped", "data"} <= set(whole) and "source" not in whole
    assert abs(result["overall"]["global"]["psnr"] - alone.result["overall"]["model"]["psnr"]) < 0.01
    assert result["overall"]["global"]["auc_rebalanced"] == pytest.approx(
        alone.result["overall"]["model"]["auc_rebalanced"], abs=1e-4)
    assert whole["overall"]["model"]["psnr"] == pytest.approx(result["overall"]["routed"]["psnr"], abs=1e-4)
    # Internal consistency: threshold 1.0 is the global model, the oracle is the matrix diagonal.
    sweep = {s["min_confidence"]: s for s in result["threshold_sweep"]}
    assert sweep[1.0]["fallback_rate"] == 1.0
    assert sweep[1.0]["psnr"] == pytest.approx(result["overall"]["global"]["psnr"])
    for r in bundle.routes:
        assert result["per_route"][r]["oracle"]["psnr"] == pytest.approx(result["wrong_route"]["matrix"][r][r]["psnr"])
    router = result["router"]
    assert sum(map(sum, router["confusion"])) == router["photos"] == n
    assert 0 <= router["top3_error"] <= router["per_route"]["beach"]["top3_error"] + 1
    assert len(result["photos"]) == n and {"route", "confidence", "fallback"} <= set(result["photos"][0])
    html = (ev / "routing.html").read_text()
    assert "What a wrong route costs" in html and "top-3 error" in html


def test_profile_bundle_records_profiles_and_evaluates_on_an_image_folder(shards, tmp_path):
    import json

    from PIL import Image

    from colorize.models.infer.colorizer import load_bundle
    from colorize.models.routing.evaluate import evaluate
    from colorize.models.routing.train import train_routed

    out = tmp_path / "prof"
    report = train_routed("profile", 2, shards=shards, out=out, seed=3, **TINY)
    assert report.routes == ["profile-0", "profile-1"]
    # Each photo's profile is recorded (all splits), with the profiles and their palette picture.
    routes = json.loads((out / "routes.json").read_text())
    assert set(routes["photo_route"]["train"].values()) == {"profile-0", "profile-1"}
    prof = json.loads((out / "profiles.json").read_text())
    assert prof["k"] == 2 and prof["seed"] == 3 and sum(prof["sizes"]) == len(routes["photo_route"]["train"])
    assert Image.open(out / "profiles.png").size[1] > 2 * 40
    bundle = load_bundle(out, "cpu")
    # A profile specialist is trained on exactly its profile's train (+ val) photos.
    ids = set(bundle.specialists["profile-1"].config["photo_ids"])
    assert ids == {p for s in ("train", "val") for p, r in routes["photo_route"][s].items() if r == "profile-1"}

    # Eval on a folder of color photos (subfolders = categories): per-category table for profile bundles.
    photos = tmp_path / "photos"
    from colorize.demo.scenes import build_scene_folder

    build_scene_folder(photos, per_category=2, categories=("beach", "forest"), size=(40, 40), seed=5)
    rep = evaluate(out, None, "test", photos, 0.38, tmp_path / "ev", "cpu", 0)
    whole = json.loads((tmp_path / "ev" / "eval.json").read_text())
    result = whole["routing"]
    assert rep.result["images"] == 4 and set(result["per_category"]) == {"beach", "forest"}
    assert result["router"]["photos"] == 4  # every photo has a true profile (its nearest palette)
    assert whole["data"]["images"] == str(photos)


def test_cli_route_errors_are_one_line(shards, tmp_path):
    from click.testing import CliRunner

    from colorize.cli import cli

    # Shards with one category cannot be routed by category: one clear line, exit 1.
    one = tmp_path / "one"
    from colorize.dataset.prep import run_prep
    from colorize.demo.scenes import build_scene_folder

    build_scene_folder(tmp_path / "p", per_category=4, categories=("snow",), size=(40, 32))
    run_prep(tmp_path / "p", one, size=32, bins=8, augment=1, split="0.5,0.25,0.25", workers=1)
    res = CliRunner().invoke(cli, ["train", "--shards", str(one), "--out", str(tmp_path / "b"), "--route", "category"])
    assert res.exit_code == 1 and "needs 2+ categories" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["train", "--shards", str(shards), "--out", str(tmp_path / "b2"),
                                   "--route", "profile", "--profiles", "500"])
    assert res.exit_code == 1 and "--profiles" in res.output
