"""Benchmark the scraper's download path against the ideal for its connection budget, in one process.

The local Unsplash-like site answers every image after a fixed latency (50 ms by default), like a
far-away CDN. With `per_host` connections the best possible rate is per_host / latency (80 images/s for
4 connections at 50 ms); the ratio to it shows what retries, verification (full JPEG decode, sha256),
atomic writes and manifest updates cost. A sequential `requests.get` loop on a sample is printed too.

    .venv/bin/python benchmarks/bench_download.py [--n 400] [--latency 0.05] [--per-host 4] [--workers 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from colorize.scraper.cards import Photo, Photographer
from colorize.scraper.download import Caps, HostLimiter, make_session
from colorize.scraper.hosts import HostPolicy
from colorize.scraper.localsite.site import Faults, LocalSite
from colorize.scraper.manifest import Manifest
from colorize.scraper.skeleton import DownloadContext, download_photo
from colorize.scraper.urls import download_url

WIDTH = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="images to download")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the site waits before each image")
    ap.add_argument("--per-host", type=int, default=4)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--sample", type=int, default=40, help="images for the sequential baseline")
    args = ap.parse_args()

    import concurrent.futures as cf

    with LocalSite(n_photos=args.n) as site, tempfile.TemporaryDirectory() as tmp:
        free = [c.photo for c in site.cards("bench") if c.kind == "free"][: args.n]
        for p in free:  # warm the site's cache: a CDN does not render images on request
            site.jpeg(p, WIDTH, 85)
        site.faults = Faults(latency_s=args.latency)
        photos = [Photo(p.id, p.slug, f"{site.base_url}/photos/{p.slug}-{p.id}", site.base_url + p.image_path,
                        p.alt, None, None, Photographer(p.username, p.name, ""), i + 1) for i, p in enumerate(free)]

        # Baseline: what a first script does, one requests.get after another.
        t0 = time.perf_counter()
        for p in photos[: args.sample]:
            assert requests.get(download_url(p.image_url, WIDTH), timeout=30).content
        seq_rate = args.sample / (time.perf_counter() - t0)

        out = Path(tmp)
        session = make_session(args.per_host, HostPolicy(base_url=site.base_url))  # the site's host is allowed
        ctx = DownloadContext(out, site.base_url, WIDTH, session, HostLimiter(args.per_host),
                              Caps(), Manifest(out / "manifest.json"))
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(args.workers) as pool:
            futures = [pool.submit(download_photo, ctx, "bench", "bench", p) for p in photos]
            outcomes = [f.result()[0] for f in futures]
            ctx.manifest.save()
        elapsed = time.perf_counter() - t0
        assert outcomes.count("downloaded") == len(photos), outcomes
        assert site.max_inflight <= args.per_host

    rate = len(photos) / elapsed
    ideal = args.per_host / args.latency
    print(f"{len(photos)} images of {WIDTH} px, {args.latency * 1000:.0f} ms latency, {args.per_host} connections, "
          f"{args.workers} threads: {rate:.1f} img/s in {elapsed:.2f} s (ideal {ideal:.1f} img/s); "
          f"sequential requests.get: {seq_rate:.1f} img/s")
    print(f"download: {rate / ideal:.2f}x of ideal ({rate:.1f} vs {ideal:.1f} img/s = {args.per_host} connections / "
          f"{args.latency * 1000:.0f} ms); {rate / seq_rate:.1f}x a sequential requests.get loop")


if __name__ == "__main__":
    main()
