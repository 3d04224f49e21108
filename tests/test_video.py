"""Video: temporal smoothing as a running sum lowers flicker; frames, size and rate survive; scene cuts reset."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from colorize.errors import ColorizeError
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.infer.predict import run_predict
from colorize.models.infer.video import RunningSmoother, colorize_video


@pytest.fixture(scope="module")
def vivid(model_path):
    """A decisive head: per-pixel choices flip with small input noise, which is exactly what flickers."""
    col = load_colorizer(model_path, "cpu")
    with torch.no_grad():
        col.model.head.weight.mul_(40.0)
    return col


def _write_clip(path, frames, fps=10.0, fourcc="mp4v"):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _noisy_scene(n=14, h=48, w=64, seed=0, level=110):
    """A slowly panning scene with per-frame sensor noise (what makes frame-by-frame colors flicker)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for t in range(n):
        base = level + 60 * np.sin((xx + t) / 6) * np.cos(yy / 5)
        gray = np.clip(base + rng.normal(0, 12, (h, w)), 0, 255).astype(np.uint8)
        frames.append(np.dstack([gray] * 3))
    return frames


def _read_back(path):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fps


def test_running_sum_equals_the_decayed_sum_and_window_zero_is_off():
    rng = np.random.default_rng(0)
    ps = [torch.from_numpy(rng.dirichlet(np.ones(5), size=(3, 3)).transpose(2, 0, 1).astype(np.float32))
          for _ in range(6)]
    alpha = 0.3
    sm = RunningSmoother(alpha, window=20)
    for t, p in enumerate(ps):
        got = sm.update(p)
        weights = [math.exp(-alpha * i) for i in range(t + 1)]
        expected = sum(w * ps[t - i] for i, w in enumerate(weights)) / sum(weights)
        assert torch.allclose(got, expected, atol=1e-6)
        assert torch.allclose(got.sum(0), torch.ones(3, 3), atol=1e-5)  # still a distribution
    sm.reset()
    assert torch.equal(sm.update(ps[0]), ps[0])
    off = RunningSmoother(alpha, window=0)
    assert off.update(ps[3]) is ps[3]


@pytest.mark.parametrize("alpha,window", [(0.0, 4), (0.2, 20), (0.05, 10)])
def test_the_window_bounds_how_far_back_the_running_sum_reaches(alpha, window):
    old, new = torch.tensor([1.0, 0.0]).view(2, 1, 1), torch.tensor([0.0, 1.0]).view(2, 1, 1)
    sm = RunningSmoother(alpha, window)
    for _ in range(200):  # a long first shot ...
        sm.update(old)
    for _ in range(window + 1):  # ... then the window's worth of frames of something else
        out = sm.update(new)
    assert float(out[0]) <= 0.05 + 1e-6  # the first shot now weighs at most 5 %
    assert sm.decay == pytest.approx(min(math.exp(-alpha), 0.05 ** (1 / (window + 1))))
    if alpha == 0.2:  # the paper's setting: the decay is exactly e^-alpha
        assert sm.decay == pytest.approx(math.exp(-0.2))


def test_smoothing_lowers_flicker_and_keeps_frames_size_and_rate(tmp_path, vivid):
    clip = _write_clip(tmp_path / "clip.mp4", _noisy_scene())
    out = tmp_path / "clip.color.mp4"
    stats = colorize_video(vivid, clip, [out], [0.38], batch=4, alpha=0.2, window=20)
    assert stats.flicker_smoothed < 0.8 * stats.flicker_raw, stats
    frames, fps = _read_back(out)
    assert len(frames) == stats.frames == 14
    assert frames[0].shape == (48, 64, 3) and fps == pytest.approx(10.0)
    assert stats.scene_cuts == 0
    assert not list(tmp_path.glob(".tmp-*"))
    # window 0: no smoothing, so the smoothed flicker is the raw one
    plain = colorize_video(vivid, clip, [tmp_path / "plain.mp4"], [0.38], batch=5, window=0)
    assert plain.flicker_smoothed == pytest.approx(plain.flicker_raw)
    assert plain.flicker_raw == pytest.approx(stats.flicker_raw, rel=1e-4)  # batching changes nothing


def test_predict_cli_path_for_video_with_cut_and_avi(tmp_path, model_path):
    frames = _noisy_scene(6, level=50) + _noisy_scene(6, level=200, seed=1)  # a hard cut after frame 6
    clip = _write_clip(tmp_path / "cut.avi", frames, fps=12.0, fourcc="MJPG")
    report = run_predict(model_path, [clip], tmp_path / "out", temperature="0.38,1", device="cpu", batch=4)
    assert (report.videos, report.failed) == (1, 0)
    record = json.loads((tmp_path / "out" / "predict-run.json").read_text())
    item = record["items"][0]
    assert item["scene_cuts"] == 1 and item["frames"] == 12 and item["width"] == 64 and item["height"] == 48
    for name in ("cut.t0.38.color.avi", "cut.t1.color.avi"):
        back, fps = _read_back(tmp_path / "out" / name)
        assert len(back) == 12 and back[0].shape == (48, 64, 3) and fps == pytest.approx(12.0)
    assert "flicker" in report.summary_line()


def test_unreadable_video_is_a_clear_error(tmp_path, vivid):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"definitely not a video")
    with pytest.raises(ColorizeError, match="bad.mp4"):
        colorize_video(vivid, bad, [tmp_path / "o.mp4"], [0.38])
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".tmp-*"))


def test_a_video_over_max_pixels_is_refused_before_frames_are_decoded(tmp_path, model_path):
    """A 4000x4000 MJPG film with --max-pixels 100000: one line, from the header, no frame decoded."""
    import subprocess
    import sys

    clip = _write_clip(tmp_path / "huge.avi", [np.full((4000, 4000, 3), 90, np.uint8)] * 2, fourcc="MJPG")
    code = f"""
import resource, sys
from colorize.models.infer.predict import run_predict
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rep = run_predict({str(model_path)!r}, [{str(clip)!r}], {str(tmp_path / "out")!r}, device="cpu", max_pixels=100000)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(rep.summary_line())
print("GROWN_KB", grown)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 input(s) FAILED" in done.stdout and "4000x4000" in done.stdout and "--max-pixels" in done.stdout
    grown_kb = int(done.stdout.split("GROWN_KB")[1])
    assert grown_kb < 48_000 / 1.5  # one decoded 4000x4000 RGB frame alone is 48 MB (plus its BGR copy)
    with pytest.raises(ColorizeError, match="max-pixels"):
        colorize_video(load_colorizer(model_path, "cpu"), clip, [tmp_path / "o.avi"], [0.38], max_pixels=100000)
