"""Benchmark `colorize predict` against the obvious alternatives, in one process, on one thread.

1. Photos: our path (the net sees the photo fitted to its 256 px square; ab is upsampled and put under the
   photo's own full-resolution L) against the naive path (run the net on the full-resolution L). Prints
   photos/s of CPU time for both and how much the naive colors change when the same photo is given at
   twice the size (ours: by construction only resampling noise).
2. Video smoothing: the running sum (one accumulator, O(1) per frame) against a buffer of the last K+1
   frames re-summed with the decay weights every frame (what the paper's formula reads like).
Untrained ColorUNet at the default width and 32 bins (head scaled up so it picks vivid colors): speed
does not depend on the weights.

    .venv/bin/python benchmarks/bench_predict.py [--n 4] [--frames 60]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prep import photo_like  # noqa: E402

from colorize.dataset.color import encode_l, lab_to_rgb, rgb_to_lab  # noqa: E402
from colorize.models.infer.arrays import colorize_rgb  # noqa: E402
from colorize.models.infer.colorizer import Colorizer  # noqa: E402
from colorize.models.infer.video import RunningSmoother  # noqa: E402
from colorize.models.net.annealed import annealed_mean  # noqa: E402
from colorize.models.net.checkpoint import untrained_payload  # noqa: E402

CENTERS = np.array([[a, b] for a in range(-60, 70, 20) for b in range(-60, 70, 20)][:32], np.float32)


def naive_colorize(col: Colorizer, rgb: np.ndarray, temperature: float) -> np.ndarray:
    """The net on the full-resolution L, clipped per channel: what one writes first."""
    lab = rgb_to_lab(rgb)
    with torch.inference_mode():
        probs = col.probs(torch.from_numpy(encode_l(lab[..., 0]))[None])
        ab = annealed_mean(probs, col.centers, temperature)[0].permute(1, 2, 0).numpy()
    return lab_to_rgb(np.dstack([lab[..., :1], ab]))


def cpu_rate(fn, items) -> tuple[float, list]:
    start = time.process_time()
    out = [fn(x) for x in items]
    return len(items) / (time.process_time() - start), out


def size_dependence(fn, col, rgb) -> float:
    """Mean |Δab| between colorizing a photo and colorizing it at 2x (compared at 1x)."""
    big = cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    small_ab = rgb_to_lab(fn(col, rgb, 0.38))[..., 1:]
    big_ab = cv2.resize(rgb_to_lab(fn(col, big, 0.38))[..., 1:], (rgb.shape[1], rgb.shape[0]),
                        interpolation=cv2.INTER_AREA)
    return float(np.abs(small_ab - big_ab).mean())


def bench_photos(n: int) -> None:
    col = Colorizer.from_payload(untrained_payload(CENTERS, size=256, width=32, seed=0), torch.device("cpu"))
    with torch.no_grad():  # a decisive head, so colors vary like a trained model's (speed is unaffected)
        col.model.head.weight.mul_(40.0)
    photos = [photo_like(1080, 720, seed) for seed in range(n)]
    ours_rate, _ = cpu_rate(lambda p: colorize_rgb(col, p, 0.38), photos)
    naive_rate, _ = cpu_rate(lambda p: naive_colorize(col, p, 0.38), photos)
    small = photo_like(540, 360, 99)
    print(f"photos 1080x720: ours {ours_rate:.2f}/s, naive full-resolution net {naive_rate:.2f}/s (CPU time)")
    print(f"size dependence (mean |Δab|, same photo at 1x and 2x): ours {size_dependence(colorize_rgb, col, small):.2f}, "
          f"naive {size_dependence(naive_colorize, col, small):.2f}")
    print(f"predict: {ours_rate / naive_rate:.1f}x the naive full-resolution pipeline")


def bench_smoothing(frames: int, alpha: float = 0.2, window: int = 20) -> None:
    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(32, 256, 256, generator=gen), 0) for _ in range(8)]
    stream = [probs[i % len(probs)] for i in range(frames)]

    smoother = RunningSmoother(alpha, window)
    start = time.process_time()
    for p in stream:
        smoother.update(p)
    ours = (time.process_time() - start) / frames

    weights = [math.exp(-alpha * i) for i in range(window + 1)]
    buffer: list[torch.Tensor] = []
    start = time.process_time()
    for p in stream:
        buffer = ([p] + buffer)[: window + 1]
        total = sum(w * q for w, q in zip(weights, buffer))
        _ = total / sum(weights[: len(buffer)])
    naive = (time.process_time() - start) / frames
    mb = 32 * 256 * 256 * 4 / 2**20
    print(f"smoothing 32 bins at 256 px: running sum {ours * 1e3:.1f} ms/frame ({mb:.0f} MB state), "
          f"{window + 1}-frame buffer {naive * 1e3:.1f} ms/frame ({(window + 1) * mb:.0f} MB state)")
    print(f"video smoothing: {naive / ours:.1f}x the re-summed frame buffer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="photos")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_photos(args.n)
    bench_smoothing(args.frames)


if __name__ == "__main__":
    main()
