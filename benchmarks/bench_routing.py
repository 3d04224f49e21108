"""Benchmark what routing costs at prediction time, and the per-image histograms behind color profiles.

1. Routed vs global prediction, in one process: the same 1080x720 photos colored by a bundle
   (`Bundle.pick` + `colorize_rgb`: fit + router at 64 px, then one 256 px specialist) and by its global model alone
   (`arrays.colorize_rgb`). Models are untrained (speed does not depend on the weights) at the default
   sizes: ColorUNet width 32, 32 bins, 256 px; router width 16 at 64 px.
2. Per-image bin histograms for k-means: `profiles.bin_histograms` (one flat-LUT gather and one bincount
   per chunk of 32 images) against the loop one writes first (per image: 2-D lookup + masked bincount).
One torch thread, CPU time (`time.process_time`), best of 3: other load on a shared machine skews little.

    .venv/bin/python benchmarks/bench_routing.py [--photos 12] [--images 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from colorize.models.infer.arrays import colorize_rgb
from colorize.models.infer.colorizer import load_bundle
from colorize.models.net.bundle import write_bundle
from colorize.models.net.checkpoint import untrained_payload
from colorize.models.net.router import RouterCNN, RouterConfig, router_payload
from colorize.models.routing.profiles import bin_histograms


def _cpu(fn, repeat: int = 3) -> float:
    """Best of `repeat` CPU-time measurements (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def routed(bundle, photo: np.ndarray) -> np.ndarray:
    """What `colorize predict` does with a bundle: pick the photo's colorizer, then color it."""
    bundle.min_confidence = 0.0
    col, _ = bundle.pick(photo)
    return colorize_rgb(col, photo, 0.38)


def bench_prediction(n_photos: int) -> None:
    rng = np.random.default_rng(0)
    centers = np.stack(np.meshgrid(np.arange(-30, 30, 10), np.arange(-40, 40, 15)), -1).reshape(-1, 2)[:32]
    routes = [f"route-{i}" for i in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        router = RouterCNN(RouterConfig(n_classes=len(routes)))
        write_bundle(Path(tmp) / "b", "category", routes, router_payload(router, routes, []),
                     untrained_payload(centers, size=256, width=32, seed=0),
                     {r: untrained_payload(centers, size=256, width=32, seed=i + 1) for i, r in enumerate(routes)},
                     input_info={"size": 256, "fit": "pad"})
        bundle = load_bundle(Path(tmp) / "b", "cpu")
        photos = [rng.integers(0, 256, (720, 1080, 3), dtype=np.uint8) for _ in range(n_photos)]
        colorize_rgb(bundle.global_model, photos[0], 0.38)  # warm-up (allocators, kernels)
        routed(bundle, photos[0])
        t_global = _cpu(lambda: [colorize_rgb(bundle.global_model, p, 0.38) for p in photos]) / n_photos
        t_routed = _cpu(lambda: [routed(bundle, p) for p in photos]) / n_photos
        t_router = _cpu(lambda: [bundle.route_rgb(p) for p in photos]) / n_photos
    print(f"global model: {1000 * t_global:.0f} ms CPU per 1080x720 photo; routed: {1000 * t_routed:.0f} ms "
          f"(router incl. fit: {1000 * t_router:.0f} ms)")
    print(f"routing: a routed prediction costs {t_routed / t_global:.2f}x the global model's "
          f"(router {t_router / t_global:.2f}x of it)")


def bench_histograms(n_images: int, size: int = 128, n_bins: int = 32) -> None:
    rng = np.random.default_rng(1)
    ab = rng.integers(-60, 60, (n_images, size, size, 2), dtype=np.int8)
    mask = np.ones((n_images, size, size), bool)
    mask[:, :, : size // 8] = False
    lut = rng.integers(0, n_bins, (256, 256)).astype(np.int16)

    def naive() -> np.ndarray:
        out = np.zeros((n_images, n_bins))
        for i in range(n_images):
            bins = lut[ab[i, ..., 0].astype(np.int16) + 128, ab[i, ..., 1].astype(np.int16) + 128]
            counts = np.bincount(bins[mask[i]], minlength=n_bins)
            out[i] = counts / max(1, counts.sum())
        return out

    np.testing.assert_allclose(naive(), bin_histograms(ab, mask, lut, n_bins))
    t_naive = _cpu(naive)
    t_fast = _cpu(lambda: bin_histograms(ab, mask, lut, n_bins))
    print(f"histograms of {n_images} {size}px images: per-image loop {1000 * t_naive:.0f} ms, "
          f"batched {1000 * t_fast:.0f} ms")
    print(f"profiles: chunked bin histograms {t_naive / t_fast:.1f}x the per-image loop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--images", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one core: CPU time then measures work, not threads spinning
    bench_prediction(args.photos)
    bench_histograms(args.images)


if __name__ == "__main__":
    main()
