"""Video colorization with temporal smoothing of the bin probabilities (ColorUNet), without flicker.

Colorizing frames one by one flickers: the net's choice between two plausible colors flips from frame
to frame. ColorUNet smooths the *probabilities* over time before decoding,
``p̂_t ∝ Σ_i e^(−α·i) p_(t−i)``. We compute it as a running sum, ``S_t = e^(−α)·S_(t−1) + p_t``
normalized by the running weight ``W_t = e^(−α)·W_(t−1) + 1``: one accumulator the size of one frame's
probabilities, O(1) work per frame, and no buffer of past frames (a buffer of K frames of 313-bin
probabilities at 256 px would be over 1 GB). Without a buffer the kernel cannot end abruptly at K, so the
window bounds its reach instead: frames older than K together weigh d^(K+1) of the sum, and the decay d is
lowered where needed so that this is at most 5 % (at α = 0.2, K = 20 it is already 1.5 %: exactly the
paper's kernel up to that tail; α = 0 gives a smooth average over about K frames). ``window 0`` turns
smoothing off. At a scene cut (the fitted lightness changes a lot) the sum restarts, so colors of one shot
never bleed into the next.

Frames are read with OpenCV, colorized in batches through the model, and written audio-free at the
input's size and frame rate (mp4v for .mp4/.mov, MJPG for .avi), to a temp file moved into place at the end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from colorize.errors import ColorizeError
from colorize.io import TMP_PREFIX
from colorize.models.infer.arrays import (
    Framing,
    ImagePrediction,
    RGBArray,
    model_probs,
    net_input,
    predictions,
)
from colorize.models.infer.params import PREDICT_DEFAULTS as PD
from colorize.models.net.colors import decode_ab, decode_maps
from colorize.progress import progress

log = logging.getLogger(__name__)

VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v"})
DEFAULT_FPS = 25.0
# Mean |ΔL| (uint8 units, fitted frame) above which two consecutive frames belong to different shots.
SCENE_CUT_L = 40.0
# Frames older than --window may together weigh at most this share of the smoothed probabilities.
TAIL_MAX = 0.05


def output_suffix(src: Path) -> str:
    """The container we write: .avi stays .avi (MJPG), .mov stays .mov, everything else becomes .mp4."""
    suffix = src.suffix.lower()
    return suffix if suffix in (".avi", ".mov") else ".mp4"


def _fourcc(suffix: str) -> int:
    return cv2.VideoWriter_fourcc(*("MJPG" if suffix == ".avi" else "mp4v"))


class RunningSmoother:
    """The exponentially decayed running sum of bin probabilities (see the module docstring)."""

    def __init__(self, alpha: float, window: int) -> None:
        self.enabled = window > 0
        self.decay = min(math.exp(-alpha), TAIL_MAX ** (1.0 / (window + 1))) if self.enabled else 0.0
        self.total: torch.Tensor | None = None
        self.weight = 0.0

    def reset(self) -> None:
        self.total, self.weight = None, 0.0

    def update(self, probs: torch.Tensor) -> torch.Tensor:
        """Add frame t's probabilities [n,S,S]; return the smoothed (normalized) distribution."""
        if not self.enabled:
            return probs
        if self.total is None:
            self.total, self.weight = probs.clone(), 1.0
        else:
            self.total.mul_(self.decay).add_(probs)
            self.weight = self.weight * self.decay + 1.0
        return self.total / self.weight


@dataclass
class VideoStats:
    """What happened to one video (goes into the predict record)."""

    frames: int
    fps: float
    width: int
    height: int
    flicker_raw: float | None  # mean |Δab| between consecutive frames, frame by frame
    flicker_smoothed: float | None  # the same after temporal smoothing
    scene_cuts: int


def _open(src: Path, max_pixels: int) -> cv2.VideoCapture:
    """The opened film, refused before any frame is decoded when its frames (from the container's header)
    are larger than `max_pixels`, as photos are (`dataset/scans.py`)."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        cap.release()
        raise ColorizeError(f"cannot open video {src}", "check the file plays; supported: .mp4 .avi .mov .mkv .m4v")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > max_pixels:
        cap.release()
        raise ColorizeError(f"{src}: frames of {w}x{h} = {w * h} pixels exceed --max-pixels {max_pixels}",
                            "raise --max-pixels if you trust the file, or scale the video down")
    return cap


def read_first_frame(src: Path, max_pixels: int = PD.max_pixels) -> np.ndarray:
    """The first frame as uint8 RGB (bundles route a whole video by it)."""
    cap = _open(src, max_pixels)
    try:
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise ColorizeError(f"{src}: no frame could be decoded", "check the file plays, or re-encode it")
    return np.ascontiguousarray(frame[..., ::-1])


def _read_batch(cap: cv2.VideoCapture, n: int, size: tuple[int, int] | None) -> list[np.ndarray]:
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok or frame is None:
            break
        if size is not None and (frame.shape[1], frame.shape[0]) != size:  # keep the writer's size
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(frame[..., ::-1]))
    return frames


class _Flicker:
    """Mean absolute ab change between consecutive frames (inside the unpadded area), across a video."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.total, self.pairs = 0.0, 0

    def add(self, ab: np.ndarray, new_shot: bool) -> None:
        if self.prev is not None and not new_shot:
            self.total += float(np.mean(np.abs(ab - self.prev)))
            self.pairs += 1
        self.prev = ab

    def value(self) -> float | None:
        return self.total / self.pairs if self.pairs else None


@dataclass
class _Shots:
    """Per film: the running smoother, scene cuts (which restart it) and both flicker measures."""

    smoother: RunningSmoother
    raw: _Flicker
    smoothed: _Flicker
    prev_L: np.ndarray | None = None
    cuts: int = 0

    def frame(self, colorizer: Any, source: RGBArray, L_small: np.ndarray, probs: torch.Tensor,
              temperatures: Sequence[float]) -> ImagePrediction:
        """One frame's prediction from its probabilities smoothed over the shot so far."""
        f = Framing.of(source.height, source.width, colorizer.size)
        L_now = L_small[f.y:f.y + f.h, f.x:f.x + f.w].astype(np.float32)
        new_shot = self.prev_L is not None and float(np.mean(np.abs(L_now - self.prev_L))) > SCENE_CUT_L
        self.prev_L = L_now
        if new_shot:
            self.cuts += 1
            self.smoother.reset()
        smoothed = self.smoother.update(probs)[None]
        raw_ab = decode_ab(probs[None], colorizer.centers, temperatures[0])[0]
        self.raw.add(raw_ab[f.y:f.y + f.h, f.x:f.x + f.w], new_shot)
        pred = predictions(colorizer, [source], decode_maps(smoothed, colorizer.centers, temperatures))[0]
        self.smoothed.add(pred.ab_maps[0][f.y:f.y + f.h, f.x:f.x + f.w], new_shot)
        return pred


def _writers(outputs: Sequence[Path], temps: Sequence[Path], fps: float, size: tuple[int, int]) -> list[cv2.VideoWriter]:
    writers = []
    for out, tmp in zip(outputs, temps):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(tmp), _fourcc(Path(out).suffix), fps, size)
        if not writer.isOpened():
            for w in writers:
                w.release()
            raise ColorizeError(f"cannot write video {out} with this OpenCV build", "write .mp4 or .avi output")
        writers.append(writer)
    return writers


def colorize_video(colorizer: Any, src: Path, outputs: Sequence[Path], temperatures: Sequence[float],
                   batch: int = PD.batch, alpha: float = PD.alpha, window: int = PD.window,
                   max_pixels: int = PD.max_pixels) -> VideoStats:
    """Colorize `src` into one video per temperature (`outputs[i]` at `temperatures[i]`): each frame through
    the one coloring path (`arrays`: mirror, decoding, gamut fit, strips), its probabilities smoothed."""
    cap = _open(src, max_pixels)
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        log.warning("%s: no usable frame rate in the file; writing %.0f fps", src, DEFAULT_FPS)
        fps = DEFAULT_FPS
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    temps = [Path(p).with_name(f"{TMP_PREFIX}{Path(p).name}.{os.getpid()}{Path(p).suffix}") for p in outputs]
    writers: list[cv2.VideoWriter] = []
    shots = _Shots(RunningSmoother(alpha, window), _Flicker(), _Flicker())
    frames, size = 0, None
    bar = progress(total=total, desc=f"video {src.name}", unit="frame")
    try:
        while chunk := _read_batch(cap, batch, size):
            if size is None:
                size = (chunk[0].shape[1], chunk[0].shape[0])
                writers = _writers(outputs, temps, fps, size)
            sources = [RGBArray(rgb) for rgb in chunk]
            L_small = net_input(sources, colorizer.size)
            probs = model_probs(colorizer, L_small)
            for i, source in enumerate(sources):
                pred = shots.frame(colorizer, source, L_small[i], probs[i], temperatures)
                for k, writer in enumerate(writers):
                    writer.write(np.ascontiguousarray(pred.color(k)[..., ::-1]))
                frames += 1
                bar.update(1)
        if frames == 0:
            raise ColorizeError(f"{src}: no frame could be decoded", "check the file plays, or re-encode it")
        for writer in writers:
            writer.release()
        for out, tmp in zip(outputs, temps):
            os.replace(tmp, out)
    finally:
        bar.close()
        cap.release()
        for writer in writers:
            writer.release()
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    assert size is not None
    return VideoStats(frames, float(fps), size[0], size[1], shots.raw.value(), shots.smoothed.value(), shots.cuts)
