"""Benchmark the shard loader against decoding JPEGs per sample, and its cost inside a training step.

Generated photo-like 1080x720 JPEGs are prepped into shards by the real `colorize prep`.
1. Loader images/s (one process, `--workers 0` for both, CPU time so other load on a shared machine does
   not skew the ratio): `ShardDataset` batches (uint8 L, bin indices via the stats LUT, mask) vs a
   map-style Dataset that opens each JPEG from the folder, Pillow-decodes it, resizes with LANCZOS, converts
   to Lab and looks up the bins, batched by a DataLoader — what one writes first.
2. Train-step time on CPU (64 px shards, batch 32, width 32): real loader vs the same batches preloaded
   in memory (best of 5 alternating runs, wall time); aim <= 1.05x.
3. With a CUDA device: images/s and GPU busy share at 256 px, bf16, batch 64, width 32, channels_last,
   with the real loader (pinned, 4 workers) vs batches preloaded on the GPU (busy share = preloaded time /
   loader time: the fraction of wall time the GPU spends on the step itself).

    .venv/bin/python benchmarks/bench_loader.py [--photos 160] [--augment 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prep import make_photos  # noqa: E402  (the same generated photos as the prep benchmark)

from colorize.dataset.color import rgb_to_stored  # noqa: E402
from colorize.dataset.loader import ShardDataset, iterate, make_loader  # noqa: E402
from colorize.dataset.prep import run_prep  # noqa: E402
from colorize.models.net.loss import RebalancedLoss  # noqa: E402
from colorize.models.net.runtime import amp_dtype, autocast  # noqa: E402
from colorize.models.net.unet import ColorUNet, l_to_input  # noqa: E402


class JpegFolder(Dataset):
    """The baseline: one JPEG decoded, resized and converted per sample."""

    def __init__(self, paths: list[Path], size: int, lut: np.ndarray) -> None:
        self.paths, self.size, self.lut = paths, size, lut

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        with Image.open(self.paths[i]) as img:
            rgb = np.asarray(ImageOps.fit(img.convert("RGB"), (self.size, self.size), Image.Resampling.LANCZOS))
        L, ab = rgb_to_stored(rgb)
        bins = self.lut[ab[..., 0].astype(np.int32) + 128, ab[..., 1].astype(np.int32) + 128]
        return {"L": torch.from_numpy(L), "bins": torch.from_numpy(bins),
                "mask": torch.ones(L.shape, dtype=torch.bool)}


def images_per_cpu_s(batches, limit: int) -> float:
    n, t0 = 0, time.process_time()
    for batch in batches:
        n += int(batch["L"].shape[0])
        if n >= limit:
            break
    return n / (time.process_time() - t0)


def loader_epochs(ds: ShardDataset, epochs: int):
    loader = make_loader(ds, pin_memory=torch.cuda.is_available())  # one loader: workers persist
    for e in range(epochs):
        ds.set_epoch(e)
        yield from iterate(loader)


def step_fn(model, crit, opt, device, amp):
    def step(batch) -> None:
        L = batch["L"].to(device, non_blocking=True)
        x = l_to_input(L)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            loss = crit(model(x), batch["bins"].to(device, non_blocking=True),
                        batch["mask"].to(device, non_blocking=True), batch["colorful"].to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def timed_steps(step, batches, n: int, device: torch.device) -> float:
    """Wall seconds for n steps (after the iterator is started), synchronising the GPU at the end."""
    it = iter(batches)
    step(next(it))  # warm-up (cuDNN autotune, worker start)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step(next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def train_step_ratio(shards: Path, size: int, batch: int, width: int, workers: int, steps: int,
                     device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds per step with the real loader, with preloaded batches): best of `repeats` each."""
    ds = ShardDataset(shards, "train", batch_size=batch, workers=workers, seed=0)
    torch.manual_seed(0)
    model = ColorUNet(ds.stats.n_bins, width).to(device)
    amp = amp_dtype(device, True)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    crit = RebalancedLoss(torch.as_tensor(ds.stats.weights)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step = step_fn(model, crit, opt, device, amp)
    cached = []
    for b in loader_epochs(ds, 1):
        cached.append({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()})
        if len(cached) >= steps + 1:
            break
    pre = [cached[i % len(cached)] for i in range(steps + 1)]
    real, fast = [], []
    for _ in range(repeats):
        real.append(timed_steps(step, loader_epochs(ds, 1000), steps, device) / steps)
        fast.append(timed_steps(step, pre, steps, device) / steps)
    return min(real), min(fast)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=160)
    parser.add_argument("--augment", type=int, default=0, help="prep variants per photo (more samples)")
    parser.add_argument("--baseline-images", type=int, default=96)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_photos(root / "raw", args.photos)
        for size in (256, 64):
            run_prep(root / "raw", root / f"shards{size}", size=size, augment=args.augment, split="0.9,0.1,0",
                     shard_size=64, workers=min(8, os.cpu_count() or 1))
        ds = ShardDataset(root / "shards256", "train", batch_size=64, workers=0, seed=0)
        for p in paths:
            p.read_bytes()  # warm the page cache for both contenders

        base = DataLoader(JpegFolder(paths, 256, ds.stats.ab_lut), batch_size=64, num_workers=0)
        images_per_cpu_s(base, 8)
        base_ips = images_per_cpu_s(base, args.baseline_images)
        images_per_cpu_s(loader_epochs(ds, 1), 64)
        shard_ips = images_per_cpu_s(loader_epochs(ds, 1000), max(2000, 4 * ds.n_samples))
        print(f"baseline (JPEG per sample: Pillow decode + LANCZOS + Lab + LUT, DataLoader): {base_ips:.1f} img/s per core")
        print(f"ShardDataset (uint8 L + LUT bins + mask, 256 px, batch 64): {shard_ips:.0f} img/s per core")
        print(f"loader: {shard_ips / base_ips:.1f}x the per-sample JPEG pipeline (aim >= 30x)")

        cpu = torch.device("cpu")
        real, fast = train_step_ratio(root / "shards64", 64, 32, 32, 0, 5, cpu, repeats=5)
        print(f"CPU train step (64 px, batch 32, width 32): real loader {real * 1000:.0f} ms, "
              f"preloaded {fast * 1000:.0f} ms")
        print(f"train step: {real / fast:.3f}x the preloaded-tensor step (aim <= 1.05x)")

        if not torch.cuda.is_available():
            print("GPU figures skipped: no CUDA device is present")
            return 0
        gpu = torch.device("cuda")
        real, fast = train_step_ratio(root / "shards256", 256, 64, 32, 4, 20, gpu, repeats=2)
        name = torch.cuda.get_device_name(gpu)
        print(f"GPU ({name}, 256 px, bf16, batch 64, width 32): real loader {64 / real:.0f} img/s, "
              f"preloaded on GPU {64 / fast:.0f} img/s")
        print(f"GPU busy share with the real loader: {fast / real:.0%} (train step {real / fast:.3f}x preloaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
