"""Benchmark `fetch`'s planning (everything before the first request) against `json.load` of the same file.

A Full-dataset selection is millions of entries. Planning reads and checks the shared manifest (ids,
categories, hashes, duplicates), looks at `--out`, sorts the work and writes the first copy of the
manifest; it must stay linear in the manifest, and light: its time and peak memory are printed beside
those of a bare `json.load` of the same file, as ratios, for 33k, 330k and 1M entries. Each measurement
runs in a fresh subprocess (peak RSS above the process's own start, from `ru_maxrss`), one after another.

    .venv/bin/python benchmarks/bench_fetch_plan.py [--sizes 33000,330000,1000000] [--categories 20]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
def rss_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
mode, manifest, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from colorize.scraper.fetch import plan_fetch  # imported before the baseline RSS in both modes
start_kb = rss_kb()
t = time.perf_counter()
if mode == "json":
    with open(manifest, encoding="utf-8") as fh:
        doc = json.load(fh)
    n = len(doc["photos"])
else:
    plan = plan_fetch(manifest, out)
    plan.copy.save()  # run_fetch writes the copy before the first download
    n = len(plan.entries)
seconds = time.perf_counter() - t
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": seconds, "peak_mb": (peak_kb - start_kb) / 1024}))
"""


def write_manifest(path: Path, n: int, categories: int) -> None:
    """A manifest shaped like scrape's (every contract field), written compactly, one entry at a time."""
    rng = random.Random(n)
    letters = string.ascii_letters + string.digits + "-_"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"schema": "colorize.dataset/1", "created": "2026-01-01T00:00:00Z", "photos": [')
        for i in range(n):
            pid = "".join(rng.choices(letters, k=11))
            cat = f"category{i % categories}"
            entry = {"id": pid, "category": cat, "query": cat, "rank": i // categories + 1, "slug": "",
                     "page_url": f"https://unsplash.com/photos/{pid}",
                     "image_url": f"https://images.unsplash.com/photo-{1500000000000 + i}-{pid[:12]}?fm=jpg&q=85"
                                  "&w=1080&fit=max&cs=srgb",
                     "file": f"{cat}/{pid}.jpg", "sha256": f"{rng.getrandbits(256):064x}", "bytes": 200000 + i,
                     "width": 1080, "height": 720, "alt": "a photo",
                     "photographer": {"username": "someone", "name": "Some One", "url": "https://unsplash.com/@someone"},
                     "license": {"name": "Unsplash Dataset (Full)", "url": "https://github.com/unsplash/datasets"},
                     "scraped_at": "2026-01-01T00:00:00Z", "status": "ok", "keyword": cat, "score": 90.0}
            fh.write(("," if i else "") + json.dumps(entry))
        fh.write("]}\n")


def measure(mode: str, manifest: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(manifest), str(out)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="33000,330000,1000000", help="comma-separated entry counts")
    ap.add_argument("--categories", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fetch-plan-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            manifest = Path(tmp) / f"manifest-{n}.json"
            write_manifest(manifest, n, args.categories)
            size_mb = manifest.stat().st_size / 1e6
            base = measure("json", manifest, Path(tmp) / "unused")
            plan = measure("plan", manifest, Path(tmp) / f"out-{n}")
            print(f"fetch plan n={n}: file {size_mb:.0f} MB; plan {plan['seconds']:.1f} s, peak +{plan['peak_mb']:.0f} MB "
                  f"({plan['peak_mb'] / size_mb:.1f}x the file); json.load {base['seconds']:.1f} s, "
                  f"+{base['peak_mb']:.0f} MB; ratio plan/json.load: time {plan['seconds'] / base['seconds']:.2f}x, "
                  f"memory {plan['peak_mb'] / max(base['peak_mb'], 1):.2f}x", flush=True)
            manifest.unlink()


if __name__ == "__main__":
    main()
