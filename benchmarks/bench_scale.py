"""What the Unsplash Dataset costs at scale: prep and loader on N generated photos, projected to Lite and 1M.

Generates N photo-like JPEGs at the size `colorize scrape --dataset` downloads (the image URL's width
parameter, 1080 px wide; heights vary like real aspect ratios), then, each in a fresh child process so
its figures are its own: `colorize prep` (default options, --size 256) with 1 and 2 local workers and on
a local dask cluster (2 worker processes), and the loader over one train epoch with 0 and 2 workers.
Prints wall and CPU time (the child and its workers), peak RSS (the largest process of the run), shard
bytes per photo, loader samples/s, whether every prep run wrote the same shards, and a projection for
Unsplash Lite (25,000 photos) and 1M photos: disk, prep core-hours, and the disk read rate one GPU epoch
needs at 3,000 images/s (each shard is read once per epoch; compare today's 4 B/px x 7 stored samples).

    .venv/bin/python benchmarks/bench_scale.py                    # N = 120, one to two minutes on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --photos 25000     # Lite itself (hours; ~12 GB of JPEGs)
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prep import photo_like  # noqa: E402  (the same photo-like generator as the prep benchmark)

from colorize.scraper.unsplash_dataset.scrape import run_dataset_scrape  # noqa: E402

#: `scrape --dataset`'s default width (its signature is the one source); heights follow common aspects.
WIDTH = int(inspect.signature(run_dataset_scrape).parameters["width"].default)
ASPECTS = (2 / 3, 3 / 4, 9 / 16, 1.0, 4 / 3, 3 / 2)  # height / width
LITE, MILLION, GPU_IMAGES_PER_S = 25_000, 1_000_000, 3000
SIZE = 256


def _write_photo(args: tuple[Path, int]) -> int:
    root, i = args
    height = round(WIDTH * ASPECTS[i % len(ASPECTS)])
    folder = root / ("street", "forest", "beach", "food")[i % 4]
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(photo_like(WIDTH, height, i)).save(buf, "JPEG", quality=90)
    (folder / f"photo{i:06d}.jpg").write_bytes(buf.getvalue())
    return len(buf.getvalue())


def generate(root: Path, n: int) -> int:
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return sum(pool.map(_write_photo, [(root, i) for i in range(n)], chunksize=16))


# ------------------------------------------------------------------------------ child processes
def child_prep(src: Path, out: Path, workers: int, engine: str) -> dict:
    from colorize.dataset.prep import run_prep

    report = run_prep(src, out, size=SIZE, workers=workers, engine=engine)
    return {"photos": report.photos, "samples": sum(report.samples.values())}


def child_loader(shards: Path, workers: int) -> dict:
    from colorize.dataset.loader import ShardDataset, iterate, make_loader

    ds = ShardDataset(shards, "train", batch_size=64, workers=workers, seed=0)
    loader = make_loader(ds)
    ds.set_epoch(0)
    t0, n = time.perf_counter(), 0
    for batch in iterate(loader):
        n += int(batch["valid"].sum())
    return {"samples": n, "loop_s": time.perf_counter() - t0}


class ProcessTree:
    """CPU seconds and peak RSS of a process and all its descendants, sampled from /proc every 0.1 s.

    (os.wait4 misses pool workers: a forkserver, not the child, is their parent.) A process's last
    0.1 s before it exits can be missed; the child's own figures come from wait4 and are exact."""

    def __init__(self, root: int) -> None:
        self.root, self.cpu, self.rss_kb = root, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _descendants(self) -> list[int]:
        parent = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, frontier = [], [self.root]
        while frontier:
            kids = [p for p, pp in parent.items() if pp in frontier]
            found += kids
            frontier = kids
        return found

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.1):
            for pid in self._descendants():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
                hwm = [line for line in status.splitlines() if line.startswith("VmHWM:")]
                if hwm:
                    self.rss_kb = max(self.rss_kb, int(hwm[0].split()[1]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_child(args: list[str]) -> dict:
    """Run this file as a child; its result plus wall, CPU (it and all its workers) and peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True)
    tree = ProcessTree(proc.pid)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    tree.stop()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child {args} failed with exit code {os.waitstatus_to_exitcode(status)}")
    result = json.loads(out.strip().splitlines()[-1])
    workers_cpu = sum(tree.cpu.values())  # descendants the child did not wait for itself (wait4 has the rest)
    waited = usage.ru_utime + usage.ru_stime
    return {**result, "wall_s": time.perf_counter() - t0, "cpu_s": max(waited, result["self_cpu_s"] + workers_cpu),
            "rss_mb": max(usage.ru_maxrss, tree.rss_kb) / 1024}


# ----------------------------------------------------------------------------------------- main
def shard_bytes(folder: Path) -> int:
    """The shard files alone (stats.npz and noise.npz are a fixed few MB whatever the photo count)."""
    return sum(p.stat().st_size for p in folder.glob("*-[0-9][0-9][0-9][0-9][0-9].npz"))


def same_shards(a: Path, b: Path) -> bool:
    """Same decoded content and names (file bytes too, unless the lz4 version differs between runs)."""
    entries = [[(e["name"], e["content_sha256"]) for e in json.loads((f / "manifest.json").read_text())["shards"]]
               for f in (a, b)]
    return entries[0] == entries[1]


def projection(name: str, photos: int, per_photo: float, cpu_per_photo: float, samples_per_photo: float) -> str:
    disk = per_photo * photos
    epoch_s = samples_per_photo * photos / GPU_IMAGES_PER_S
    today = 7 * 4 * SIZE * SIZE * photos * 0.8 + 4 * SIZE * SIZE * photos * 0.2  # 7 stored train samples
    return (f"{name:>10} photos: disk {disk / 1e9:8.1f} GB (today's format {today / 1e9:8.1f} GB), "
            f"prep {cpu_per_photo * photos / 3600:7.1f} core-hours, one epoch at {GPU_IMAGES_PER_S} img/s "
            f"takes {epoch_s / 60:6.1f} min and reads {disk / epoch_s / 1e6:6.1f} MB/s "
            f"(today's format {today / epoch_s / 1e6:6.1f} MB/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument("--work", type=Path, help="keep the photos and shards here (default: a temp dir)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (child_prep(Path(rest[0]), Path(rest[1]), int(rest[2]), rest[3]) if kind == "prep"
                  else child_loader(Path(rest[0]), int(rest[1])))
        me = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({**result, "self_cpu_s": me.ru_utime + me.ru_stime}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        raw = root / "raw"
        t0 = time.perf_counter()
        jpeg_bytes = generate(raw, args.photos) if not raw.is_dir() else sum(p.stat().st_size for p in raw.rglob("*.jpg"))
        print(f"{args.photos} photo-like JPEGs {WIDTH} px wide ({jpeg_bytes / args.photos / 1e3:.0f} KB each) "
              f"in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        runs = {}
        for label, workers, engine in (("prep, 1 worker", 1, "local"), ("prep, 2 workers", 2, "local"),
                                       ("prep, dask local cluster (2 workers)", 2, "dask")):
            out = root / f"shards-{workers}-{engine}"
            runs[label] = r = run_child(["prep", str(raw), str(out), str(workers), engine])
            r["out"] = out
            print(f"{label:>38}: wall {r['wall_s']:7.1f} s, CPU {r['cpu_s']:7.1f} s, peak RSS {r['rss_mb']:6.0f} MB, "
                  f"{r['photos'] / r['cpu_s']:5.1f} photos per CPU-s, {r['samples']} samples")
        first = runs["prep, 1 worker"]
        print("same shards from every prep run:", all(same_shards(first["out"], r["out"]) for r in runs.values()))
        per_photo = shard_bytes(first["out"]) / first["photos"]
        extra = sum(p.stat().st_size for p in first["out"].glob("*.npz")) - shard_bytes(first["out"])
        print(f"shards: {per_photo / 1e3:.0f} KB per photo ({shard_bytes(first['out']) / 1e6:.1f} MB of shards, plus "
              f"{extra / 1e6:.1f} MB stats + noise bank); today's format: "
              f"{(7 * 0.8 + 0.2) * 4 * SIZE * SIZE / 1e3:.0f} KB per photo at an 80/10/10 split")
        for workers in (0, 2):
            r = run_child(["loader", str(first["out"]), str(workers)])
            print(f"{'loader, ' + str(workers) + ' workers':>38}: wall {r['wall_s']:7.1f} s, CPU {r['cpu_s']:7.1f} s, "
                  f"peak RSS {r['rss_mb']:6.0f} MB, {r['samples'] / r['loop_s']:6.0f} samples/s over one train epoch "
                  f"({r['samples']} samples)")
        samples_per_photo = first["samples"] / first["photos"]
        cpu_per_photo = first["cpu_s"] / first["photos"]
        print(f"projection (from the 1-worker prep: {cpu_per_photo * 1e3:.0f} ms CPU per photo, "
              f"{samples_per_photo:.2f} samples per photo):")
        for name, n in (("Lite 25k", LITE), ("1M", MILLION)):
            print(projection(name, n, per_photo, cpu_per_photo, samples_per_photo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
