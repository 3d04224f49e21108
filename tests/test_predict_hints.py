"""`predict --hints`: one hints file for one photo or a folder matched by relative path, the record names each
file and its sha256, an empty file is the automatic result byte for byte, the API gives predict's pixels for a
path, a dict or a list of points, and an old checkpoint asked for hints says so in one line (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from editorkit import checkpoint, photo
from PIL import Image

import colorize
from colorize.cli import cli
from colorize.errors import UsageError
from colorize.io import sha256_file
from colorize.models.infer.hintfile import HintSpec, write_hints
from colorize.models.infer.predict import run_predict

SPECS = [HintSpec(60, 40, "#d02020", 15), HintSpec(180, 120, "#2040d0", 21)]


@pytest.fixture(scope="module")
def hint_model(tmp_path_factory):
    return checkpoint(tmp_path_factory.mktemp("hm") / "hints.pt", hints=True)


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_hints_file_colours_the_photo_as_the_api_does_and_the_record_names_it(tmp_path, hint_model):
    img = photo(tmp_path / "p.png")
    hints = tmp_path / "p.json"
    write_hints(hints, SPECS)
    run_predict(hint_model, [img], tmp_path / "auto", device="cpu")
    report = run_predict(hint_model, [img], tmp_path / "hinted", device="cpu", hints=hints)
    got, auto = _rgb(tmp_path / "hinted" / "p.color.png"), _rgb(tmp_path / "auto" / "p.color.png")
    assert not np.array_equal(got, auto)  # the hints reached the net
    model = colorize.load(hint_model, "cpu")
    for given in (hints, str(hints), json.loads(hints.read_text()), SPECS, [s.point() for s in SPECS]):
        assert np.array_equal(np.asarray(model.colorize(img, hints=given)), got)
    item = json.loads(report.record.read_text())["items"][0]
    assert item["hints"] == str(hints) and item["hints_sha256"] == sha256_file(hints)
    # A hinted patch is painted near the hint's colour (the red one: much more red than green or blue).
    patch = got[35:46, 55:66].astype(int)
    assert (patch[..., 0] - patch[..., 1:].max(-1)).mean() > 20, patch.mean((0, 1))


def test_an_empty_points_list_is_the_automatic_result_byte_for_byte(tmp_path, hint_model):
    img = photo(tmp_path / "p.png")
    write_hints(tmp_path / "p.json", [])
    run_predict(hint_model, [img], tmp_path / "auto", device="cpu")
    run_predict(hint_model, [img], tmp_path / "empty", device="cpu", hints=tmp_path / "p.json")
    assert (tmp_path / "empty" / "p.color.png").read_bytes() == (tmp_path / "auto" / "p.color.png").read_bytes()


def test_a_folder_of_hints_is_matched_by_relative_path_and_the_rest_is_automatic(tmp_path, hint_model):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "hints" / "sub").mkdir(parents=True)
    write_hints(tmp_path / "hints" / "sub" / "b.json", SPECS)
    write_hints(tmp_path / "hints" / "b.json", [HintSpec(5, 5, "#00ff00", 9)])  # not b's: another folder
    run_predict(hint_model, [tmp_path / "in"], tmp_path / "auto", device="cpu")
    report = run_predict(hint_model, [tmp_path / "in"], tmp_path / "out", device="cpu", hints=tmp_path / "hints")
    assert np.array_equal(_rgb(tmp_path / "out" / "a.color.png"), _rgb(tmp_path / "auto" / "a.color.png"))
    assert not np.array_equal(_rgb(tmp_path / "out" / "sub" / "b.color.png"),
                              _rgb(tmp_path / "auto" / "sub" / "b.color.png"))
    items = {i["input"]: i for i in json.loads(report.record.read_text())["items"]}
    assert "hints" not in items[str(tmp_path / "in" / "a.png")]
    b = items[str(tmp_path / "in" / "sub" / "b.png")]
    assert b["hints"] == str(tmp_path / "hints" / "sub" / "b.json")
    # Resume: changing b's hints redoes b only.
    write_hints(tmp_path / "hints" / "sub" / "b.json", SPECS[:1])
    again = run_predict(hint_model, [tmp_path / "in"], tmp_path / "out", device="cpu", hints=tmp_path / "hints")
    assert again.kept == 1 and again.images == 1


def test_an_old_checkpoint_with_hints_is_one_line_exit_2(tmp_path):
    model_path = checkpoint(tmp_path / "old.pt", hints=False)  # written as checkpoints before hints were
    img = photo(tmp_path / "p.png")
    write_hints(tmp_path / "p.json", SPECS)
    res = CliRunner().invoke(cli, ["predict", "--model", str(model_path), str(img), "--out", str(tmp_path / "o"),
                                   "--device", "cpu", "--hints", str(tmp_path / "p.json")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) <= 2 and "trained without colour hints" in res.output and "Traceback" not in res.output
    with pytest.raises(UsageError, match="trained without colour hints"):
        colorize.load(model_path, "cpu").colorize(img, hints=SPECS)


def test_one_hints_file_for_several_photos_and_a_bad_file_are_one_line_errors(tmp_path, hint_model):
    a, b = photo(tmp_path / "a.png"), photo(tmp_path / "b.png")
    write_hints(tmp_path / "a.json", SPECS)
    with pytest.raises(UsageError, match="one hints file"):
        run_predict(hint_model, [a, b], tmp_path / "o", device="cpu", hints=tmp_path / "a.json")
    (tmp_path / "a.json").write_text('{"points": [{"x": 999, "y": 1, "color": "#ff0000"}]}')
    res = CliRunner().invoke(cli, ["predict", "--model", str(hint_model), str(a), "--out", str(tmp_path / "o"),
                                   "--device", "cpu", "--hints", str(tmp_path / "a.json")])
    assert res.exit_code == 2 and "outside the image" in res.output and "Traceback" not in res.output


def test_a_bundle_takes_the_hints_to_the_routed_model_in_predict_the_api_and_the_editor(tmp_path):
    from test_routing_bundle import _bundle

    from colorize.dataset.scans import open_scan
    from colorize.editor.engine import open_engine

    root = _bundle(tmp_path, logits=(0.0, 2.0))  # the router says forest
    img = photo(tmp_path / "p.png")
    model = colorize.load(root, "cpu")
    got = np.asarray(model.colorize(img, hints=SPECS))
    scan = open_scan(img)
    scan.hints = tuple(s.point() for s in SPECS)
    want = model.engine.specialists["forest"].predict([scan], [0.38])[0].color(0)
    assert np.array_equal(got, want) and not np.array_equal(got, np.asarray(model.colorize(img)))
    engine = open_engine(img, root, tmp_path / "edit", device="cpu")
    hints, saved = engine.save(SPECS)
    report = run_predict(root, [img], tmp_path / "pred", device="cpu", hints=hints)
    assert np.array_equal(_rgb(saved), _rgb(tmp_path / "pred" / "p.color.png"))
    assert json.loads(report.record.read_text())["items"][0]["route"]["route"] == "forest"
