"""Benchmark the hint editor's recolour (what each click waits for) against colouring the same photo at full size.

Why it matters: the editor recolours after every change, so a recolour must take well under a second on a
CPU. A recolour is `ModelEngine.preview`: the network at its square size (the photo and its mirror; the
trunk, which sees L only, was computed at the page's first colouring and is reused: `unet.TrunkMemo`), the
hints kept by propagation (`propagation.keep_hints`), then the ab composed with the photo's lightness at
preview size (long side 512). The page's first colouring, trunk included, is printed too. The baseline is
the obvious way to show a result: colour the photo at full resolution (`colour_with_hints(...).color(0)`,
what Save and `colorize predict` do) and let the browser shrink it. Both run in this process on the same
12 MP photo with the same model (the default training size 256 and width 16, 317 bins like Zhang's 313);
the preview cache is emptied before each recolour so every one is computed. Every recolour carries
POINTS hint points (the network's hint planes and spread features are computed for real, through the one
colouring path `arrays.predict_sources`).

    .venv/bin/python benchmarks/bench_editor.py [--repeats 7] [--width 4000] [--height 3000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from colorize.dataset.hints import HintPoint
from colorize.editor.engine import PREVIEW_SIDE, colour_with_hints, open_engine
from colorize.imaging import write_image
from colorize.models.infer.arrays import hint_input, honour_hints, model_decoded, net_input, predictions
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.models.net.checkpoint import write_untrained_checkpoint
from colorize.models.train.config import TRAIN_DEFAULTS

POINTS = 10  # hint points on every recolour


def centers() -> np.ndarray:
    """ab grid cells of side 10 within chroma 100: 317 bins, about the in-gamut set of a real shard folder."""
    grid = np.arange(-100, 101, 10, dtype=np.float32)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    keep = np.hypot(a, b) <= 100
    return np.stack([a[keep], b[keep]], 1)


def photo(path: Path, width: int, height: int) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = 60 + 120 * xx / width + 30 * np.sin(yy / 37.0) + rng.normal(0, 6, (height, width))
    write_image(path, np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = write_untrained_checkpoint(root / "m.pt", centers(), size=256, width=TRAIN_DEFAULTS["width"])
        img = photo(root / "p.png", args.width, args.height)
        engine = open_engine(img, model, root / "out", device="cpu")
        points = [HintPoint(x=(i + 0.5) * args.width / POINTS, y=args.height / 2 + (i % 3 - 1) * args.height / 5,
                            a=30.0 - 6 * i, b=-20.0 + 5 * i, size=40) for i in range(POINTS)]
        engine.preview(points)  # warm-up: first-call allocations
        memo = engine.colorizer.model.memo
        recolour, first = [], []
        for _ in range(args.repeats):
            engine._cache.clear()  # noqa: SLF001 - measure the computation, not the cache
            t0 = time.perf_counter()
            engine.preview(points)
            recolour.append(time.perf_counter() - t0)
            engine._cache.clear()  # noqa: SLF001
            memo.items.clear()  # as when the page opens: the photo's trunk not computed yet
            t0 = time.perf_counter()
            engine.preview(points)
            first.append(time.perf_counter() - t0)
        engine.scan.hints = tuple(points)
        L_small = net_input([engine.scan], engine.colorizer.size)
        planes = hint_input([engine.scan], engine.colorizer.size)
        net, kept = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            preds = predictions(engine.colorizer, [engine.scan],
                                model_decoded(engine.colorizer, L_small, planes, [DEFAULT_TEMPERATURE]))
            net.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            honour_hints(preds, L_small, planes)
            kept.append(time.perf_counter() - t0)
        full = []
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            colour_with_hints(engine.colorizer, engine.scan, points).color(0)
            full.append(time.perf_counter() - t0)
            engine.scan.release()
    r, f = statistics.median(recolour), statistics.median(full)
    print(f"photo {args.width}x{args.height}, preview {engine.preview_width}x{engine.preview_height} "
          f"(long side {PREVIEW_SIDE}), model 256 px width {TRAIN_DEFAULTS['width']}, {len(centers())} bins, "
          f"torch threads {torch.get_num_threads()}")
    print(f"recolour at preview size with {POINTS} hint points: median {r * 1000:.0f} ms over {len(recolour)} "
          f"(min {min(recolour) * 1000:.0f}, max {max(recolour) * 1000:.0f}); the photo's trunk reused")
    print(f"  of which the network's head and decoding: median {statistics.median(net) * 1000:.0f} ms; keeping the "
          f"hints (propagation): median {statistics.median(kept) * 1000:.0f} ms")
    print(f"the page's first colouring (the trunk computed, photo + mirror): median "
          f"{statistics.median(first) * 1000:.0f} ms")
    print(f"full-resolution colouring (baseline): median {f * 1000:.0f} ms over {len(full)}")
    print(f"ratio: a preview recolour takes {r / f:.3f}x the full-resolution colouring ({f / r:.1f}x faster)")


if __name__ == "__main__":
    main()
