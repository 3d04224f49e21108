"""`colorize turing` without a browser: pair preparation, the answer store and API, the tally, bad input.

The browser half (the real page in headless Chromium) is in test_turing_browser.py and reuses
`make_images` / `make_study` from here.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli
from colorize.errors import ColorizeError, UsageError
from colorize.turing import StudyServer, run_turing, tally_study, wilson_interval
from colorize.turing.pairs import Source, build_study, image_source, select
from colorize.turing.store import AnswerStore, cut_torn_tail
from colorize.turing.study import Condition, load_study
from colorize.turing.tally import newcombe_difference, tally_answers

CATEGORIES = ("beach", "forest")


# ------------------------------------------------------------------------------------------ helpers
def make_images(root: Path, per_category: int = 4, size: tuple[int, int] = (64, 48)) -> Path:
    """Small photo-like PNGs (smooth gradients + a colored disc) in category subfolders."""
    rng = np.random.default_rng(7)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for ci, cat in enumerate(CATEGORIES):
        (root / cat).mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            base = rng.uniform(40, 200, 3).astype(np.float32)
            slope = rng.uniform(-1.5, 1.5, 3).astype(np.float32)
            img = base + slope * (xx[..., None] + (ci + 1) * yy[..., None]) * 0.5
            cy, cx, r = rng.uniform(10, h - 10), rng.uniform(10, w - 10), rng.uniform(5, 12)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[disc] = rng.uniform(0, 255, 3)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / cat / f"photo{i}.png")
    return root


def tint(rgb: np.ndarray) -> np.ndarray:
    """A cheap, deterministic stand-in colorizer for page tests: gray plus a warm cast."""
    gray = rgb.mean(axis=2, keepdims=True)
    return np.clip(gray + np.array([18.0, 4.0, -14.0]), 0, 255).astype(np.uint8)


def make_study(root: Path, pairs: int = 4, practice: int = 2, seed: int = 0, two_conditions: bool = False,
               per_category: int = 5):
    """A study built by the real `build_study` from real images, with the cheap colorizer."""
    images = make_images(root / "images", per_category)
    conds = [Condition("A", "fake.pt", "0" * 64, 0.38)]
    fns = {"A": tint}
    if two_conditions:
        conds.append(Condition("B", "fake.pt", "0" * 64, 1.0))
        fns["B"] = lambda rgb: tint(rgb[..., ::-1].copy())
    return build_study(root / "study", image_source(images), conds, fns, practice, pairs, seed).study


def answer_all(store: AnswerStore, pid: str, choose, rt_ms=800.0) -> None:
    """Answer every pair of a participant: `choose(trial)` returns 'left' or 'right'."""
    while True:
        state = store.state(pid)
        if state["done"]:
            return
        trial = store.trials[state["trial"]["id"]]
        rt = rt_ms(trial) if callable(rt_ms) else rt_ms
        store.record(pid, state["position"], trial.id, choose(trial), rt)


def other(side: str) -> str:
    return "right" if side == "left" else "left"


def http(url: str, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            raw = res.read()
            return res.status, dict(res.headers), (json.loads(raw) if "json" in res.headers["Content-Type"] else {})
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


# ------------------------------------------------------------------------------------------ pairs
def test_pairs_same_size_same_quality_sides_recorded_and_reproducible(tmp_path):
    study = make_study(tmp_path / "a", pairs=6, practice=2)
    again = make_study(tmp_path / "b", pairs=6, practice=2)
    a, b = tmp_path / "a" / "study", tmp_path / "b" / "study"
    assert (a / "study.json").read_bytes() == (b / "study.json").read_bytes()
    assert [t.id for t in study.trials] == ["p000", "p001"] + [f"t{i:03d}" for i in range(6)]
    # Sides are balanced per phase and recorded; both categories get test pairs.
    assert sorted(t.real_side for t in study.test()) == ["left"] * 3 + ["right"] * 3
    assert {t.category for t in study.test()} == set(CATEGORIES)
    assert len({t.photo_id for t in study.trials}) == len(study.trials)  # no photo shown twice
    for t in study.trials:
        left = Image.open(a / "pairs" / t.image_name("left"))
        right = Image.open(a / "pairs" / t.image_name("right"))
        assert left.format == right.format == "JPEG"
        assert left.size == right.size == (t.width, t.height)
        assert left.quantization == right.quantization  # same encoder quality for real and colorized
        assert not left.info.get("exif") and not right.info.get("exif")
        assert (a / "pairs" / t.image_name("left")).read_bytes() == (b / "pairs" / t.image_name("left")).read_bytes()
        # The real side is the one whose colors match the source photo, the other is the tinted one.
        real = np.asarray(Image.open(a / "pairs" / t.image_name(t.real_side)), np.float32)
        fake = np.asarray(Image.open(a / "pairs" / t.image_name(other(t.real_side))), np.float32)
        fake_tint = fake[..., 0].mean() - fake[..., 2].mean()
        assert fake_tint > 20 and abs(fake_tint - (real[..., 0].mean() - real[..., 2].mean())) > 5
    assert [t.real_side for t in study.trials] == [t.real_side for t in again.trials]


def test_two_conditions_are_balanced_per_category(tmp_path):
    study = make_study(tmp_path, pairs=8, practice=0, two_conditions=True)
    for cat in CATEGORIES:
        conds = [t.condition for t in study.test() if t.category == cat]
        assert sorted(conds) == ["A"] * (len(conds) // 2) + ["B"] * (len(conds) // 2)
    assert [c.name for c in study.conditions] == ["A", "B"]


def test_select_round_robin_and_too_few_photos(tmp_path):
    from colorize.turing.pairs import Candidate

    cands = [Candidate(f"{c}{i}", c, lambda: None) for c in "xyz" for i in range(3)]
    practice, test = select(cands, 3, 100, np.random.default_rng(0))
    assert sorted(c.category for c in practice) == ["x", "y", "z"]  # one of each category first
    assert len(test) == 6
    with pytest.raises(ColorizeError, match="at least 2"):
        select(cands[:1], 1, 4, np.random.default_rng(0))


def test_rerun_reuses_study_and_refuses_to_replace_one_with_answers(tmp_path):
    study = make_study(tmp_path, pairs=2, practice=1)
    calls = []
    src = image_source(tmp_path / "images")
    cond = [Condition("A", "fake.pt", "0" * 64, 0.38)]
    res = build_study(tmp_path / "study", src, cond, {"A": lambda x: calls.append(1) or tint(x)}, 1, 2, 0)
    assert res.reused and not calls and res.study.study_id == study.study_id
    store = AnswerStore(tmp_path / "study", study, 100)
    pid = store.new_participant()
    store.record(pid, 0, store.order_for(pid)[0], "left", 500)
    with pytest.raises(ColorizeError, match="different study with answers"):
        build_study(tmp_path / "study", src, cond, {"A": tint}, 1, 2, seed=1)


def test_interrupted_preparation_resumes_where_it_stopped(tmp_path):
    make_images(tmp_path / "images", per_category=3)
    src = image_source(tmp_path / "images")
    cond = [Condition("A", "fake.pt", "0" * 64, 0.38)]
    calls: list[int] = []

    def dies_on_the_third(rgb):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return tint(rgb)

    with pytest.raises(KeyboardInterrupt):
        build_study(tmp_path / "study", src, cond, {"A": dies_on_the_third}, 1, 4, 0)
    assert not (tmp_path / "study" / "study.json").exists()
    assert (tmp_path / "study" / "pairs-journal.json").is_file()
    resumed = build_study(tmp_path / "study", src, cond, {"A": lambda x: calls.append(1) or tint(x)}, 1, 4, 0)
    assert resumed.colorized == 3 and len(calls) == 5  # 2 before the interruption + the 3 left
    assert not (tmp_path / "study" / "pairs-journal.json").exists()
    fresh = build_study(tmp_path / "fresh", src, cond, {"A": tint}, 1, 4, 0)
    assert (tmp_path / "study" / "study.json").read_bytes() == (tmp_path / "fresh" / "study.json").read_bytes()
    assert fresh.study.study_id == resumed.study.study_id


def test_prepare_with_a_real_checkpoint_and_shards(tmp_path):
    """End to end through run_turing: prep's shards + a (tiny, untrained) checkpoint -> a study."""
    from colorize.dataset.prep import run_prep
    from colorize.models.net.checkpoint import write_untrained_checkpoint

    make_images(tmp_path / "raw", per_category=5)
    run_prep(tmp_path / "raw", tmp_path / "shards", size=32, augment=0, split="0.2,0,0.8", bins=8,
             workers=1, shard_size=64)
    centers = np.array([(a, b) for a in (-20, 0, 20) for b in (-20, 0, 20)], np.float32)
    model = write_untrained_checkpoint(tmp_path / "m.pt", centers, size=32, width=4)
    report = run_turing(models=[str(model)], shards=str(tmp_path / "shards"), split="test", pairs=2, practice=1,
                        out=str(tmp_path / "study"), no_serve=True)
    assert "prepared 2 test + 1 practice" in report.summary_line()
    study = load_study(tmp_path / "study")
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert study.params["source"]["kind"] == "shards" and study.params["source"]["split"] == "test"
    assert sum(manifest["counts"]["test"].values()) >= 3
    for t in study.trials:
        left = Image.open(tmp_path / "study" / "pairs" / t.image_name("left"))
        assert left.size == (t.width, t.height) and max(left.size) == 32  # padding cropped, model size kept
    record = json.loads((tmp_path / "study" / "turing-run.json").read_text())
    assert record["command"] == "turing" and record["counts"]["colorized"] == 3
    # Same inputs and seed, another folder: byte-identical plan and images.
    run_turing(models=[str(model)], shards=str(tmp_path / "shards"), split="test", pairs=2, practice=1,
               out=str(tmp_path / "again"), no_serve=True)
    for rel in ["study.json", *(f"pairs/{t.image_name(s)}" for t in study.trials for s in ("left", "right"))]:
        assert (tmp_path / "study" / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    # The empty split is one clear error.
    with pytest.raises(ColorizeError, match="'val' split .* is empty"):
        run_turing(models=[str(model)], shards=str(tmp_path / "shards"), split="val", out=str(tmp_path / "s2"),
                   no_serve=True)


def test_cli_serves_until_ctrl_c_then_writes_the_tally(tmp_path):
    """The real command: prepare, then serve (prints the URL first), answer over HTTP, Ctrl-C, tally."""
    from colorize.models.net.checkpoint import write_untrained_checkpoint

    make_images(tmp_path / "images", per_category=2)
    centers = np.array([(a, b) for a in (-20, 20) for b in (-20, 20)], np.float32)
    model = write_untrained_checkpoint(tmp_path / "m.pt", centers, size=32, width=4)
    args = ["--model", str(model), "--images", str(tmp_path / "images"), "--pairs", "2", "--practice", "1",
            "--out", str(tmp_path / "study")]
    res = CliRunner().invoke(cli, ["turing", *args, "--no-serve"])
    assert res.exit_code == 0 and "prepared 2 test + 1 practice" in res.output, res.output
    # The serving run reuses the prepared study, so it needs neither torch nor the model's time.
    proc = subprocess.Popen([sys.executable, "-m", "colorize", "turing", *args, "--port", "0", "--view-ms", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "study running at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" at ", 1)[1].split()[0]
        status, _, created = http(url + "api/participants", {})
        trial = created["trial"]
        http(url + "api/answer", {"participant": created["participant"], "position": 0, "trial": trial["id"],
                                  "choice": "left", "rt_ms": 640})
        assert http(url + "api/study")[2]["view_ms"] == 500
        # The running tally: not for participants, only at the token URL printed for the experimenter.
        results_line = proc.stdout.readline()
        assert "experimenter only" in results_line, results_line
        results_url = results_line.rsplit(" ", 1)[1].strip()
        assert results_url.startswith(url + "results/") and len(results_url) > len(url + "results/") + 20
        assert http(url + "api/results")[0] == 404 and http(url + "results")[0] == 404
        token = results_url.rsplit("/", 1)[1]
        assert http(url + "api/results/" + token)[2]["answers"]["practice"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "0 test answers from 1 participant(s)" in out and "tally.json" in out
    tally = json.loads((tmp_path / "study" / "tally.json").read_text())
    assert tally["answers"]["practice"] == 1 and tally["participants_n"] == 1


# ---------------------------------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_error(tmp_path):
    make_images(tmp_path / "images", per_category=1)
    with pytest.raises(UsageError, match="--model is required"):
        run_turing(models=(), images=str(tmp_path / "images"), no_serve=True)
    with pytest.raises(ColorizeError, match="model .*nope.pt not found"):
        run_turing(models=[str(tmp_path / "nope.pt")], images=str(tmp_path / "images"), no_serve=True)
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(UsageError, match="exactly one of --shards"):
        run_turing(models=[str(tmp_path / "m.pt")], no_serve=True)
    with pytest.raises(UsageError, match="temperature"):
        run_turing(models=[str(tmp_path / "m.pt")], images=str(tmp_path / "images"), temperature="hot",
                   no_serve=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ColorizeError, match="no images in"):
        run_turing(models=[str(tmp_path / "m.pt")], images=str(tmp_path / "empty"), no_serve=True)
    with pytest.raises(ColorizeError, match="not a turing study folder"):
        run_turing(results_dir=str(tmp_path / "empty"))
    # Port in use: found before any colorizing, and by the server itself.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ColorizeError, match=f"port {port} on 127.0.0.1 is already in use"):
            run_turing(models=[str(tmp_path / "m.pt")], images=str(tmp_path / "images"), port=port)
        make_study(tmp_path / "s", pairs=1, practice=0)
        with pytest.raises(ColorizeError, match="already in use"):
            StudyServer(tmp_path / "s" / "study", port=port)


def test_cli_prints_one_line_errors_and_the_tally(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["turing", "--images", str(tmp_path)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "error: --model is required" in res.output
    study = make_study(tmp_path, pairs=2, practice=1)
    store = AnswerStore(tmp_path / "study", study, 1000)
    answer_all(store, store.new_participant(), lambda t: other(t.real_side))
    res = runner.invoke(cli, ["turing", "--results", str(tmp_path / "study")])
    assert res.exit_code == 0, res.output
    assert "2 test answers from 1 participant(s); fooled 100.0% [34.2, 100.0] (n=2)" in res.output
    assert json.loads((tmp_path / "study" / "tally.json").read_text())["overall"]["fooled"] == 2
    assert (tmp_path / "study" / "turing-tally-run.json").is_file()


# -------------------------------------------------------------------------------------------- tally
def test_wilson_interval_reference_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(32, 100) == pytest.approx((0.2367, 0.4166), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    d, lo, hi = newcombe_difference(32, 100, 50, 100)  # Newcombe (1998) method 10 style check
    assert d == pytest.approx(-0.18) and lo < -0.18 < hi and hi < 0  # a real difference excludes 0


def test_tally_of_scripted_answers(tmp_path):
    study = make_study(tmp_path, pairs=8, practice=2, two_conditions=True)
    store = AnswerStore(tmp_path / "study", study, 1000)
    fooled_ids = {t.id for t in study.test() if t.condition == "A"}  # careful: fooled only by condition A
    careful = store.new_participant("careful")
    answer_all(store, careful, lambda t: other(t.real_side) if t.id in fooled_ids else t.real_side)
    fast = store.new_participant("fast")  # always "left", 120 ms per answer: flagged
    answer_all(store, fast, lambda t: "left", rt_ms=120.0)
    partial = store.new_participant("partial")  # practice + 3 test answers, all correct, then left
    for _ in range(5):
        s = store.state(partial)
        store.record(partial, s["position"], s["trial"]["id"], store.trials[s["trial"]["id"]].real_side, 2000.0)

    tally = tally_study(tmp_path / "study")
    n_left_real = sum(t.real_side == "left" for t in study.test())  # the fast one is right exactly on these
    assert tally["answers"] == {"test": 8 + 8 + 3, "practice": 6, "skipped_invalid": 0, "unreadable_lines": 0}
    expected_fooled = len(fooled_ids) + (8 - n_left_real) + 0
    assert tally["overall"]["fooled"] == expected_fooled and tally["overall"]["n"] == 19
    assert tally["overall"]["ci95"] == pytest.approx(list(wilson_interval(expected_fooled, 19)), abs=1e-6)
    assert tally["participants_flagged"] == [fast]
    assert tally["overall_unflagged"]["n"] == 11 and tally["overall_unflagged"]["fooled"] == len(fooled_ids)
    assert tally["by_condition"]["A"]["fooled"] >= len(fooled_ids)
    rows = {r["participant"]: r for r in tally["participants"]}
    assert rows[careful]["rate"] == pytest.approx(len(fooled_ids) / 8) and rows[careful]["complete"]
    assert rows[fast]["flags"][0] == "too_fast" and rows[fast]["time"]["median_ms"] == 120.0
    assert rows[partial]["n"] == 3 and not rows[partial]["complete"] and rows[partial]["fooled"] == 0
    assert rows[careful]["practice_answers"] == 2
    per_cat = tally["by_category"]
    assert sum(v["n"] for v in per_cat.values()) == 19 and set(per_cat) == set(CATEGORIES)
    assert tally["time_per_answer"]["median_ms"] == 800.0
    assert tally["condition_difference"]["a"] == "A" and tally["condition_difference"]["diff"] > 0
    # Same answers, same bytes.
    assert json.dumps(tally, sort_keys=True) == json.dumps(tally_study(tmp_path / "study"), sort_keys=True)


def test_tally_skips_lines_that_do_not_match_the_plan(tmp_path):
    study = make_study(tmp_path, pairs=2, practice=0)
    store = AnswerStore(tmp_path / "study", study, 1000)
    pid = store.new_participant()
    answer_all(store, pid, lambda t: t.real_side)
    path = tmp_path / "study" / "answers" / f"{pid}.jsonl"
    lines = path.read_text().splitlines()
    forged = json.loads(lines[0])
    forged["real_side"] = other(forged["real_side"])  # claims the other side was real
    stale = json.loads(lines[0]) | {"study_id": "000000000000", "position": 7}  # from another study
    path.write_text("\n".join([*lines, json.dumps(forged), lines[1], json.dumps(stale), "{not json"]) + "\n")
    tally = tally_answers(study, [json.loads(x) for x in path.read_text().splitlines()[:-1]], unreadable=1)
    assert tally["overall"] == {"n": 2, "fooled": 0, "rate": 0.0, "ci95": [0.0, pytest.approx(0.65762, abs=1e-5)]}
    assert tally["answers"]["skipped_invalid"] == 3  # the forged line, the duplicate, the other study's
    assert tally_study(tmp_path / "study")["answers"]["unreadable_lines"] == 1


# ------------------------------------------------------------------------------------ store + server
def test_answers_are_appended_resumed_and_idempotent(tmp_path):
    study = make_study(tmp_path, pairs=3, practice=1)
    store = AnswerStore(tmp_path / "study", study, 500)
    pid = store.new_participant("p1")
    s = store.state(pid)
    assert s["position"] == 0 and s["trial"]["phase"] == "practice" and s["total"] == 4
    assert "real_side" not in json.dumps(s)  # the page never learns the truth before answering
    first = store.record(pid, 0, s["trial"]["id"], "left", 900.5)
    assert first["feedback"]["real_side"] == study.trials_by_id()[s["trial"]["id"]].real_side
    again = store.record(pid, 0, s["trial"]["id"], "right", 100)  # a resend after a reload
    assert again["duplicate"] and not again["recorded"]
    nxt = store.state(pid)["trial"]
    assert nxt["phase"] == "test" and nxt["number"] == 1 and nxt["of"] == 3
    second = store.record(pid, 1, nxt["id"], "right", 700)
    assert "feedback" not in second  # no feedback in the test
    from colorize.turing.store import ApiError

    with pytest.raises(ApiError):
        store.record(pid, 5, nxt["id"], "left", 1)  # not the current pair
    # A fresh store (server restart) resumes from the file, and a torn last line is cut off.
    path = tmp_path / "study" / "answers" / f"{pid}.jsonl"
    with open(path, "a") as fh:
        fh.write('{"schema": "colorize.turing-answer/1", "posi')
    fresh = AnswerStore(tmp_path / "study", study, 500)
    assert fresh.state(pid)["position"] == 2
    assert path.read_text().endswith("}\n") and len(path.read_text().splitlines()) == 2
    assert not cut_torn_tail(path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["position"] for x in lines] == [0, 1] and lines[0]["choice"] == "left" and lines[0]["rt_ms"] == 900.5
    # The per-participant test order is a shuffle from seed + id, stable across restarts.
    assert fresh.order_for(pid) == store.order_for(pid) == json.loads(
        (tmp_path / "study" / "participants" / f"{pid}.json").read_text())["order"]


def test_http_api_headers_and_path_checks(tmp_path):
    make_study(tmp_path, pairs=2, practice=1)
    with StudyServer(tmp_path / "study", port=0, view_ms=250) as server:
        base = server.url.rstrip("/")
        status, headers, info = http(base + "/api/study")
        assert status == 200 and info["view_ms"] == 250 and info["pairs"] == 2 and info["practice"] == 1
        status, headers, _ = http(base + "/")
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        for bad in ("/img/../study.json", "/img/t999-left.jpg", "/img/t000-top.jpg", "/img/%2e%2e%2fstudy.json",
                    "/api/participants/../../etc", "/static/../run.py", "/nothing"):
            assert http(base + bad)[0] == 404, bad
        status, _, created = http(base + "/api/participants", {"label": "x\u0000y"})
        assert status == 201 and created["position"] == 0
        pid, trial = created["participant"], created["trial"]
        assert http(base + "/api/answer", {"participant": pid})[0] == 400
        assert http(base + "/api/answer", {"participant": "0" * 12, "position": 0, "trial": trial["id"],
                                           "choice": "left", "rt_ms": 1})[0] == 404
        status, _, res = http(base + "/api/answer", {"participant": pid, "position": 0, "trial": trial["id"],
                                                     "choice": "up", "rt_ms": 5})
        assert status == 400
        status, _, res = http(base + "/api/answer", {"participant": pid, "position": 0, "trial": trial["id"],
                                                     "choice": "left", "rt_ms": 5})
        assert status == 200 and res["recorded"] and "feedback" in res
        img = urllib.request.urlopen(base + res["state"]["trial"]["images"][0], timeout=10)
        assert img.headers["Content-Type"] == "image/jpeg" and img.read(2) == b"\xff\xd8"
        assert http(server.results_url.replace("/results/", "/api/results/"))[2]["answers"]["practice"] == 1
        assert all(client == "127.0.0.1" for _, _, client in server.requests)
        rebound = urllib.request.Request(base + "/api/study", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(rebound, timeout=10)  # DNS rebinding onto the loopback study
    meta = json.loads((tmp_path / "study" / "participants" / f"{pid}.json").read_text())
    assert meta["label"] == "xy"


def test_concurrent_participants_lose_nothing(tmp_path):
    study = make_study(tmp_path, pairs=4, practice=1)
    store = AnswerStore(tmp_path / "study", study, 1000)
    pids = [store.new_participant() for _ in range(6)]
    errors: list[BaseException] = []

    def work(pid):
        try:
            answer_all(store, pid, lambda t: "left", rt_ms=600.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tally = tally_study(tmp_path / "study")
    assert tally["answers"]["test"] == 24 and tally["answers"]["skipped_invalid"] == 0
    assert tally["participants_n"] == 6 and all(r["complete"] for r in tally["participants"])


def test_source_fingerprint_changes_with_the_photos(tmp_path):
    make_images(tmp_path / "images", per_category=2)
    first = image_source(tmp_path / "images")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "images" / "beach" / "red.png")
    second = image_source(tmp_path / "images")
    assert isinstance(first, Source) and first.fingerprint != second.fingerprint
    assert len(second.candidates) == len(first.candidates) + 1


def test_conditions_from_models_and_temperatures(tmp_path):
    from colorize.models.infer.arrays import parse_temperatures
    from colorize.turing.run import make_conditions

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")

    def names(models, temps):
        return [(c.name, c.model, c.temperature) for c, _ in make_conditions(models, parse_temperatures(temps))]

    assert names([a], "0.38") == [("A", "a.pt", 0.38)]
    assert names([a], "0.38,1") == [("A", "a.pt", 0.38), ("B", "a.pt", 1.0)]
    assert names([a, b], "0.5") == [("A", "a.pt", 0.5), ("B", "b.pt", 0.5)]
    assert names([a, b], "0.2,0.9") == [("A", "a.pt", 0.2), ("B", "b.pt", 0.9)]
    for models, temps, msg in (([a, a], "0.38", "same model at the same temperature"),
                               ([a, b, a], "0.38", "at most two"), ([a], "0.1,0.2,0.3", "one or two"),
                               ([a], "0", "not a positive number"), ([a], "0.38,inf", "not a positive number")):
        with pytest.raises(UsageError, match=msg):
            make_conditions(models, parse_temperatures(temps))
    # The one temperature parser merges a repeated value: "0.38,0.38" is one condition, not two equal ones.
    assert names([a], "0.38,0.38") == [("A", "a.pt", 0.38)]
