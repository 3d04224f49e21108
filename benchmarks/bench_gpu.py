"""Training throughput on a CUDA GPU from real shards with the real loader, and whether the loader keeps up.

Preps real photos (the ones benchmarks/bench_quality.py caches in ~/.cache/colorize/bench-photos, else
generated photo-like JPEGs) at --size 256 with the default options, then for each lever setting trains
--steps steps of ColorUNet with the real `ShardDataset` + DataLoader, and the same number of steps on
batches already on the GPU. Prints images/s, GPU utilisation (NVML, when pynvml is installed), peak GPU
memory, and "fed": loader step time / preloaded step time (<= 1.05 means the loader kept the GPU busy).
Levers: mixed precision (bf16 autocast), channels_last, pinned memory, DataLoader workers.
Without CUDA it says so and exits 0.

    .venv/bin/python benchmarks/bench_gpu.py [--steps 300] [--batch 64] [--workers 2,4,8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prep import make_photos  # noqa: E402

from colorize.dataset.loader import ShardDataset, iterate, make_loader  # noqa: E402
from colorize.dataset.prep import run_prep  # noqa: E402
from colorize.models.net.loss import RebalancedLoss  # noqa: E402
from colorize.models.net.runtime import amp_dtype, autocast  # noqa: E402
from colorize.models.net.unet import ColorUNet, l_to_input  # noqa: E402

REAL_PHOTOS = Path(os.environ.get("COLORIZE_BENCH_CACHE", Path.home() / ".cache/colorize/bench-photos"))


@dataclass(frozen=True)
class Levers:
    amp: bool
    channels_last: bool
    pin: bool
    workers: int

    def label(self) -> str:
        return (f"{'bf16' if self.amp else 'fp32'}, {'channels_last' if self.channels_last else 'NCHW'}, "
                f"{'pinned' if self.pin else 'pageable'}, {self.workers} workers")


class Utilisation:
    """GPU busy percentage sampled every 50 ms by NVML while a run lasts (None without pynvml)."""

    def __init__(self, device_index: int) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(device_index)
        except Exception:  # pynvml missing or no NVML: utilisation is reported as n/a
            self._nvml = None
        self.samples: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> Utilisation:
        self.samples, self._stop = [], threading.Event()
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.0f}%" if self.samples else "n/a"


def train_steps(model, crit, opt, batches, steps: int, levers: Levers, device: torch.device) -> float:
    """Seconds per step over `steps` steps after 5 warm-up steps (cuDNN autotune, worker start)."""
    amp = amp_dtype(device, levers.amp)
    it = iter(batches)

    def step() -> None:
        batch = next(it)
        x = l_to_input(batch["L"].to(device, non_blocking=True))
        if levers.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            loss = crit(model(x), batch["bins"].to(device, non_blocking=True),
                        batch["mask"].to(device, non_blocking=True), batch["colorful"].to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def epochs(ds: ShardDataset, pin: bool):
    loader = make_loader(ds, pin_memory=pin)
    for e in range(10_000):
        ds.set_epoch(e)
        yield from iterate(loader)


def run(shards: Path, levers: Levers, args, device: torch.device, util: Utilisation) -> str:
    ds = ShardDataset(shards, "train", batch_size=args.batch, workers=levers.workers, seed=0)
    torch.manual_seed(0)
    model = ColorUNet(ds.stats.n_bins, args.width).to(device)
    if levers.channels_last:
        model = model.to(memory_format=torch.channels_last)
    crit = RebalancedLoss(torch.as_tensor(ds.stats.weights)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.cuda.reset_peak_memory_stats(device)
    with util:
        real = train_steps(model, crit, opt, epochs(ds, levers.pin), args.steps, levers, device)
    busy = util.mean()
    resident = []
    for batch in epochs(ds, False):
        resident.append({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        if len(resident) >= 8:
            break
    cycle = (resident[i % len(resident)] for i in range(10**9))
    pre = train_steps(model, crit, opt, cycle, args.steps, levers, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    fed = real / pre
    return (f"{levers.label():>46}: {args.batch / real:7.0f} img/s with the loader, {args.batch / pre:7.0f} preloaded, "
            f"fed {fed:.2f}x ({'kept up' if fed <= 1.05 else 'GPU waits on the loader'}), GPU util {busy}, "
            f"peak GPU memory {peak:.2f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", default="2,4,8", help="worker counts to try with the best other levers")
    parser.add_argument("--photos", type=int, default=200, help="generated photos when no real ones are cached")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False); nothing measured")
        return 0
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory() as tmp:
        src = REAL_PHOTOS
        if not any(src.rglob("*.png")) and not any(src.rglob("*.jpg")):
            src = Path(tmp) / "raw"
            make_photos(src, args.photos)
        report = run_prep(src, Path(tmp) / "shards", size=args.size, workers=os.cpu_count())
        print(report.summary_line())
        util = Utilisation(device.index or 0)
        settings = [Levers(False, False, False, 4), Levers(True, False, False, 4), Levers(True, True, False, 4),
                    Levers(True, True, True, 4)]
        settings += [Levers(True, True, True, int(w)) for w in args.workers.split(",") if int(w) != 4]
        for levers in settings:
            print(run(Path(tmp) / "shards", levers, args, device, util), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
