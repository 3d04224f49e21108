"""Model bundles: save, load with weights_only=True, route, fall back, refuse broken bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from colorize.errors import ColorizeError
from colorize.models.infer.arrays import as_sources, colorize_rgb
from colorize.models.infer.colorizer import load_bundle
from colorize.models.net.bundle import (
    GLOBAL,
    INDEX,
    choose_routes,
    is_bundle,
    read_index,
    write_bundle,
)
from colorize.models.net.checkpoint import untrained_payload
from colorize.models.net.router import RouterCNN, RouterConfig, router_payload
from colorize.models.routing.profiles import ColorProfiles, load_bundle_profiles

CENTERS = np.array([[0, 0], [40, 40], [-40, 30], [20, -50]], np.float32)
ROUTES = ["beach", "forest"]


def _biased_router(logits: list[float]) -> RouterCNN:
    """A router whose output ignores the image: softmax(logits). Lets a test pin the confidence."""
    model = RouterCNN(RouterConfig(n_classes=len(logits), size=16, width=4))
    lin = model.head[1]
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor(logits))
    return model.eval()


def _bundle(tmp_path, logits=(2.0, 0.0), kind="category", profiles=None):
    specialists = {r: untrained_payload(CENTERS, size=32, width=4, seed=10 + i) for i, r in enumerate(ROUTES)}
    return write_bundle(tmp_path / "bundle", kind, ROUTES, router_payload(_biased_router(list(logits)), ROUTES, []),
                        untrained_payload(CENTERS, size=32, width=4, seed=99), specialists,
                        profiles=profiles, input_info={"size": 32, "fit": "pad"},
                        info={"beach": {"photos": 3}})


def _photo(seed: int = 0, h: int = 40, w: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_choose_routes_falls_back_below_the_threshold():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    a, b = choose_routes(probs, ["x", "y", "z"], min_confidence=0.5)
    assert (a.route, a.fallback, a.confidence) == ("x", False, 0.7)
    assert (b.route, b.predicted, b.fallback) == (GLOBAL, "x", True)
    assert b.top3 == ["x", "y", "z"]
    # Threshold 0 never falls back; threshold 1 always does (unless the router is certain).
    assert all(not c.fallback for c in choose_routes(probs, ["x", "y", "z"], 0.0))
    assert all(c.fallback for c in choose_routes(probs, ["x", "y", "z"], 1.0))


def test_bundle_round_trip_and_routing(tmp_path):
    root = _bundle(tmp_path)
    assert is_bundle(root) and not is_bundle(tmp_path)
    index = json.loads((root / INDEX).read_text())
    assert index["routes"] == ROUTES and index["specialists"]["beach"]["photos"] == 3
    bundle = load_bundle(root, "cpu")
    assert bundle.routes == ROUTES and bundle.size == 32 and bundle.fit == "pad"
    # Each .pt is weights-only: plain torch.load with weights_only=True reads it.
    for name in ["router.pt", "global.pt", index["specialists"]["forest"]["file"]]:
        assert isinstance(torch.load(root / name, weights_only=True), dict)
    # The loaded specialists are the saved ones (different seeds -> different weights).
    a = bundle.specialists["beach"].model.state_dict()
    b = bundle.specialists["forest"].model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    probs = bundle.route_rgb(_photo())
    np.testing.assert_allclose(probs, torch.softmax(torch.tensor([2.0, 0.0]), 0).numpy(), atol=1e-6)


def test_bundle_picks_the_routed_specialist_or_the_global_model(tmp_path):
    bundle = load_bundle(_bundle(tmp_path, logits=(0.0, 2.0)), "cpu")  # forest with p = 0.88
    photo = _photo(1)
    bundle.min_confidence = 0.5
    col, info = bundle.pick(photo)
    assert col is bundle.specialists["forest"]
    out = colorize_rgb(col, photo, 0.38)
    assert info["route"] == "forest" and not info["fallback"] and abs(info["confidence"] - 0.8808) < 1e-3
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, colorize_rgb(bundle.specialists["forest"], photo, 0.38))
    bundle.min_confidence = 0.95
    col_fb, info_fb = bundle.pick(photo)
    assert col_fb is bundle.global_model
    out_fb = colorize_rgb(col_fb, photo, 0.38)
    assert info_fb["route"] == GLOBAL and info_fb["fallback"] and info_fb["router_route"] == "forest"
    np.testing.assert_array_equal(out_fb, colorize_rgb(bundle.global_model, photo, 0.38))
    assert not np.array_equal(out, out_fb)
    # A bundle is a model: `colorize_rgb(bundle, ...)` routes inside, and says which route it took.
    np.testing.assert_array_equal(colorize_rgb(bundle, photo, 0.38), out_fb)
    pred = bundle.predict(as_sources([photo, photo]), [0.38])
    assert [p.route["route"] for p in pred] == [GLOBAL, GLOBAL]
    bundle.min_confidence = 0.5
    np.testing.assert_array_equal(colorize_rgb(bundle, photo, 0.38), out)


def test_bundle_with_a_missing_specialist_is_refused(tmp_path):
    root = _bundle(tmp_path)
    index = json.loads((root / INDEX).read_text())
    (root / index["specialists"]["forest"]["file"]).unlink()
    with pytest.raises(ColorizeError, match="missing .*forest"):
        load_bundle(root, "cpu")
    # An index that lists a route without any specialist entry is refused before loading anything.
    del index["specialists"]["forest"]
    (root / INDEX).write_text(json.dumps(index))
    with pytest.raises(ColorizeError, match=r"no specialist for route\(s\) \['forest'\]"):
        read_index(root)


def test_tampered_unsafe_or_pickled_bundle_files_are_refused(tmp_path):
    root = _bundle(tmp_path)
    index = json.loads((root / INDEX).read_text())
    spec = root / index["specialists"]["beach"]["file"]
    spec.write_bytes(spec.read_bytes() + b"x")
    with pytest.raises(ColorizeError, match="sha256"):
        load_bundle(root, "cpu")
    # A path that leaves the folder is never opened.
    index["specialists"]["beach"]["file"] = "../outside.pt"
    (root / INDEX).write_text(json.dumps(index))
    with pytest.raises(ColorizeError, match="unsafe file"):
        load_bundle(root, "cpu")
    # A bad input description is a clear error too, not a crash inside the resize.
    root3 = _bundle(tmp_path / "three")
    index3 = json.loads((root3 / INDEX).read_text())
    index3["input"] = {"size": 32, "fit": "stretch"}
    (root3 / INDEX).write_text(json.dumps(index3))
    with pytest.raises(ColorizeError, match="invalid input"):
        load_bundle(root3, "cpu")
    # A router file with a pickled object is refused by weights_only loading.
    root2 = _bundle(tmp_path / "two")
    import argparse

    torch.save({"model": argparse.Namespace(x=1)}, root2 / "router.pt")  # any non-tensor Python object
    index2 = json.loads((root2 / INDEX).read_text())
    index2["router"]["sha256"] = ""  # skip the hash so the loader reaches torch.load
    (root2 / INDEX).write_text(json.dumps(index2))
    with pytest.raises(ColorizeError, match="pickled|not a router"):
        load_bundle(root2, "cpu")


def test_profile_bundle_carries_its_profiles(tmp_path):
    prof = ColorProfiles(np.eye(2, 4), np.eye(2, 4) / 1.0, [5, 3], seed=0, inertia=0.1, names=ROUTES)
    bundle = load_bundle(_bundle(tmp_path, kind="profile", profiles=prof.to_json()), "cpu")
    assert bundle.kind == "profile"
    loaded = load_bundle_profiles(bundle.path, bundle.index)
    assert loaded.names == ROUTES and loaded.sizes == [5, 3]
    # A profile bundle without its profiles file is refused at load time, like any missing bundle file.
    (bundle.path / "profiles.json").unlink()
    with pytest.raises(ColorizeError, match="missing profiles.json"):
        load_bundle(bundle.path, "cpu")


def test_not_a_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(ColorizeError, match="not a model bundle"):
        load_bundle(tmp_path, "cpu")
    (tmp_path / INDEX).write_text('{"schema": "other"}')
    with pytest.raises(ColorizeError, match="colorize.bundle/1"):
        load_bundle(tmp_path, "cpu")
