"""Benchmark `colorize predict` against the obvious alternatives, in one process, on one thread.

1. Photos: our path (the net sees the photo fitted to its 256 px square; ab is upsampled and put under the
   photo's own full-resolution L) against the naive path (run the net on the full-resolution L). Prints
   photos/s of CPU time for both and how much the naive colors change when the same photo is given at
   twice the size (ours: by construction only resampling noise).
2. Video smoothing: the running sum (one accumulator, O(1) per frame) against a buffer of the last K+1
   frames re-summed with the decay weights every frame (what the paper's formula reads like).
3. `--sweep`: `colorize predict` on one synthetic JPEG of 1, 16, 64 and 100 MP, each size in a fresh
   process (so max RSS is that run's): seconds per MP and peak RSS per MP, and bytes per pixel above a
   1 MP run, for the strip composition against today's path (whole-image L, upsample and compose, the
   encoded file held in memory). Today's CLI refuses photos over 40 MP; its path is measured with the
   cap lifted, up to `--old-max-mp` (64 by default: at ~75 B/px, 100 MP would take ~7.5 GB of a shared
   24 GB machine), and the table says where it was not run.
Untrained ColorUNet at the default width and 32 bins (head scaled up so it picks vivid colors): speed
does not depend on the weights.

    .venv/bin/python benchmarks/bench_predict.py [--n 4] [--frames 60]
    .venv/bin/python benchmarks/bench_predict.py --sweep [--sizes 1,16,64,100] [--old-max-mp 64]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

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


def make_jpeg(path: Path, megapixels: float) -> None:
    """A 3:2 photo-like JPEG of about `megapixels`: a photo_like picture enlarged, with grain."""
    width = int(round(math.sqrt(megapixels * 1e6 * 1.5)))
    height = int(round(megapixels * 1e6 / width))
    big = cv2.resize(photo_like(1200, 800, 7), (width, height), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    grain = rng.integers(-6, 7, (1, width, 3), dtype=np.int16)
    for y in range(0, height, 512):  # in place, a band at a time: the maker needs no float copy
        band = big[y:y + 512].astype(np.int16) + np.roll(grain, y % 97, axis=1)
        big[y:y + 512] = np.clip(band, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def run_old(model: Path, photo: Path, out: Path) -> None:
    """Today's path (before strips): decode, whole-image L, whole upsample + compose, encode in memory."""
    from colorize.dataset.color import rgb_to_lab
    from colorize.dataset.images import load_rgb
    from colorize.imaging import encode_image
    from colorize.io import atomic_write_bytes
    from colorize.models.infer.arrays import Framing, RGBArray, model_probs, net_input
    from colorize.models.infer.colorizer import load_colorizer
    from colorize.models.net.colors import decode_ab
    from colorize.models.net.gamut import compose

    col = load_colorizer(model, "cpu")
    rgb = load_rgb(photo, max_pixels=10**10)
    framing = Framing.of(rgb.shape[0], rgb.shape[1], col.size)
    ab = decode_ab(model_probs(col, net_input([RGBArray(rgb)], col.size)), col.centers, 0.38)[0]
    colored = compose(rgb_to_lab(rgb)[..., 0], framing.upsample(ab))
    atomic_write_bytes(out / f"{photo.stem}.color.jpg", encode_image(colored, ".jpg"))


def one_run(which: str, model: Path, photo: Path, out: Path) -> None:
    """Child process: one predict, then {seconds, max_rss_mb} as JSON on the last line."""
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    if which == "new":
        from colorize.models.infer.predict import run_predict

        report = run_predict(model, [photo], out, device="cpu")
        assert report.failed == 0, report.summary_line()
    else:
        run_old(model, photo, out)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def bench_sweep(sizes: list[float], old_max_mp: float) -> None:
    from colorize.models.net.checkpoint import write_untrained_checkpoint

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp_path = Path(tmp)
        model = write_untrained_checkpoint(tmp_path / "m.pt", CENTERS, size=256, width=32, seed=0)
        rows: dict[tuple[str, float], dict] = {}
        for mp in sorted(set([1.0] + sizes)):
            photo = tmp_path / f"scan-{mp:g}mp.jpg"
            _child("--make", str(photo), str(mp))
            with warnings.catch_warnings():  # our own 100 MP test photo, over Pillow's bomb warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                pixels = Image.open(photo).size
            for which in ("new", "old"):
                if which == "old" and mp > old_max_mp:
                    continue
                r = _child("--one", which, str(model), str(photo), str(tmp_path / f"out-{which}-{mp:g}"))
                rows[(which, mp)] = {**r, "mp": pixels[0] * pixels[1] / 1e6}
            photo.unlink()
        print("size    path    s/MP   peak RSS MB  RSS MB/MP  B/px above 1 MP run")
        for mp in sorted(set([1.0] + sizes)):
            for which, name in (("new", "strips"), ("old", "today")):
                r = rows.get((which, mp))
                if r is None:
                    print(f"{mp:5g} MP {name:6s}  not run (over --old-max-mp; today's CLI refuses > 40 MP, and at "
                          f"~75 B/px it would take ~{75 * mp / 1000:.1f} GB)")
                    continue
                base = rows[(which, 1.0)]
                above = (r["max_rss_mb"] - base["max_rss_mb"]) * 2**20 / max(1.0, (r["mp"] - base["mp"]) * 1e6)
                print(f"{mp:5g} MP {name:6s} {r['seconds'] / r['mp']:6.2f} {r['max_rss_mb']:11.0f} "
                      f"{r['max_rss_mb'] / r['mp']:10.1f} {above:10.1f}" if mp > 1 else
                      f"{mp:5g} MP {name:6s} {r['seconds'] / r['mp']:6.2f} {r['max_rss_mb']:11.0f} "
                      f"{r['max_rss_mb'] / r['mp']:10.1f}          -")
        both = [mp for mp in sizes if ("old", mp) in rows and ("new", mp) in rows and mp > 1]
        if both:
            mp = max(both)
            new, old = rows[("new", mp)], rows[("old", mp)]
            print(f"predict at {mp:g} MP: {old['max_rss_mb'] / new['max_rss_mb']:.1f}x less peak memory and "
                  f"{old['seconds'] / new['seconds']:.2f}x the speed of today's whole-image path")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--make", "--one"):
        if sys.argv[1] == "--make":
            make_jpeg(Path(sys.argv[2]), float(sys.argv[3]))
        else:
            one_run(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="photos")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sweep", action="store_true", help="only the size sweep (1..100 MP, minutes)")
    parser.add_argument("--sizes", default="1,16,64,100", help="sweep sizes in megapixels")
    parser.add_argument("--old-max-mp", type=float, default=64.0, help="largest size today's path is run at")
    args = parser.parse_args()
    if args.sweep:
        bench_sweep([float(v) for v in args.sizes.split(",")], args.old_max_mp)
        return
    torch.set_num_threads(1)
    bench_photos(args.n)
    bench_smoothing(args.frames)


if __name__ == "__main__":
    main()
