"""A scrape killed with SIGKILL midway resumes: same final set, no temp files, no finished file fetched twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from colorize.io import sha256_file
from colorize.scraper.localsite.site import Faults, LocalSite

pytestmark = pytest.mark.browser
LIMIT = 36


def _command(site: LocalSite, out: Path, scroll_pause: float = 0.05) -> list[str]:
    return [sys.executable, "-m", "colorize", "-q", "scrape", "--category", "beach", "--limit", str(LIMIT),
            "--out", str(out), "--base-url", site.base_url, "--width", "64", "--workers", "2", "--per-host", "2",
            "--scroll-pause", str(scroll_pause)]


def test_sigkill_then_rerun_resumes_without_refetching(tmp_path):
    out = tmp_path / "raw"
    with LocalSite(n_photos=50, faults=Faults(latency_s=0.2)) as site:
        expected = site.expected_ids("beach", LIMIT)
        # Its own process group, so the kill takes chromedriver and Chromium down with it, as a real kill -9 would.
        proc = subprocess.Popen(_command(site, out), start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while len(list((out / "beach").glob("*.jpg"))) < LIMIT // 2:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "the scrape made no progress"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        finished = {p.stem: p.read_bytes() for p in (out / "beach").glob("*.jpg")}
        assert LIMIT // 2 <= len(finished) < LIMIT  # killed midway
        # The manifest on disk at the kill is whole and only lists verified files.
        at_kill = json.loads((out / "manifest.json").read_text())
        for p in at_kill["photos"]:
            assert sha256_file(out / p["file"]) == p["sha256"]
        (out / "beach" / ".tmp-abc.jpg.x1y2").write_bytes(b"half a file")  # as a kill mid-write leaves

        rerun = subprocess.run(_command(site, out), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert f"scrape: {LIMIT} photos in 1 category" in rerun.stdout
        for pid in finished:
            assert site.image_hits(pid) == 1, f"{pid} was downloaded again"
        assert all(site.image_hits(pid) >= 1 for pid in expected)
    assert {p.stem for p in (out / "beach").glob("*.jpg")} == set(expected)
    assert not [p for p in out.rglob(".tmp-*")]
    for pid, data in finished.items():
        assert (out / "beach" / f"{pid}.jpg").read_bytes() == data
    photos = json.loads((out / "manifest.json").read_text())["photos"]
    assert sorted(p["id"] for p in photos) == sorted(expected)
    assert all(sha256_file(out / p["file"]) == p["sha256"] for p in photos)
    counts = json.loads((out / "scrape-run.json").read_text())["counts"]["beach"]
    assert counts["reused"] + counts["adopted"] == len(finished)
    assert counts["downloaded"] == LIMIT - len(finished)


def _group_commands(pgid: int) -> list[str]:
    """Names of the processes in process group `pgid` (Linux /proc)."""
    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1: text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[2]) == pgid:
            names.append(name)
    return names


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_quits_the_browser_and_keeps_finished_work(tmp_path):
    out = tmp_path / "raw"
    with LocalSite(n_photos=50, faults=Faults(latency_s=0.15)) as site:
        # A slow scroll keeps the browser busy while the first files arrive: Ctrl-C lands mid-harvest.
        proc = subprocess.Popen(_command(site, out, scroll_pause=0.6), start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(list((out / "beach").glob("*.jpg"))) < 4:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the scrape made no progress"
                time.sleep(0.02)
            running = _group_commands(proc.pid)
            os.kill(proc.pid, signal.SIGINT)  # Ctrl-C reaches the Python process
            output, _ = proc.communicate(timeout=60)
            deadline = time.monotonic() + 10
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            alive = _group_alive(proc.pid)
        finally:
            if _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
    assert "chromedriver" in running and any("chrom" in n and n != "chromedriver" for n in running), running
    assert proc.returncode == 130, output
    assert "interrupted — finished work is kept" in output and "Traceback" not in output
    assert not alive, "chromedriver or Chromium outlived the interrupted scrape"
    photos = json.loads((out / "manifest.json").read_text())["photos"]
    files = sorted(p.stem for p in (out / "beach").glob("*.jpg"))
    assert sorted(p["id"] for p in photos) == files  # saved on the way out: every finished file is listed
    assert not [p for p in out.rglob(".tmp-*")]
    record = json.loads((out / "scrape-run.json").read_text())
    assert record["error"] == "KeyboardInterrupt"
    assert record["counts"]["beach"]["downloaded"] == len(files)
