"""Benchmark how `colorize turing` records answers, against the naive safe alternative, in one process.

Why it matters: every answer must be on disk before the page moves on (closing the tab loses nothing),
so the cost per answer is paid while the participant waits, and it must not grow as a study fills up.
Store: `AnswerStore.record` — one JSON line appended in one write to an O_APPEND file, then fsync.
Baseline: what one writes first to be equally safe — rewrite the participant's whole answers file with
`colorize.io.atomic_write_text` (temp file + fsync + rename) after each answer, which copies every
earlier answer again. Both record the same answers for the same participants; prints ms per answer for
both, the growth from the first to the last quarter, and the ratio line.

    .venv/bin/python benchmarks/bench_turing.py [--participants 4] [--pairs 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from colorize.io import atomic_write_text, utc_now
from colorize.turing.pairs import build_study, image_source
from colorize.turing.store import AnswerStore
from colorize.turing.study import ANSWER_SCHEMA, Condition, Study


def make_study(root: Path, pairs: int) -> Study:
    """A real study folder (small generated photos, a cheap stand-in colorizer: recording is measured)."""
    rng = np.random.default_rng(0)
    for i in range(pairs + 1):
        folder = root / "images" / f"cat{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cond = [Condition("A", "none.pt", "0" * 64, 0.38)]
    gray = {"A": lambda rgb: np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)}
    return build_study(root / "study", image_source(root / "images"), cond, gray, 0, pairs, 0).study


def run_store(study_dir: Path, study: Study, participants: int) -> list[float]:
    store = AnswerStore(study_dir, study, 1000)
    times = []
    for _ in range(participants):
        pid = store.new_participant()
        for position, trial_id in enumerate(store.order_for(pid)):
            t0 = time.perf_counter()
            store.record(pid, position, trial_id, "left", 850.0)
            times.append(time.perf_counter() - t0)
    return times


def run_baseline(folder: Path, study: Study, participants: int) -> list[float]:
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.trials_by_id()
    times = []
    for p in range(participants):
        pid = f"{p:012x}"
        lines: list[str] = []
        for position, trial_id in enumerate(sorted(trials)):
            t0 = time.perf_counter()
            t = trials[trial_id]
            rec = {"schema": ANSWER_SCHEMA, "participant": pid, "position": position, "trial": t.id,
                   "real_side": t.real_side, "choice": "left", "rt_ms": 850.0, "answered_at": utc_now()}
            lines.append(json.dumps(rec, sort_keys=True))
            atomic_write_text(folder / f"{pid}.jsonl", "\n".join(lines) + "\n")
            times.append(time.perf_counter() - t0)
    return times


def quarter_growth(times: list[float], per_participant: int) -> float:
    """Mean time of the last quarter of each participant's answers over the first quarter."""
    q = max(1, per_participant // 4)
    first = [t for i, t in enumerate(times) if i % per_participant < q]
    last = [t for i, t in enumerate(times) if i % per_participant >= per_participant - q]
    return float(np.mean(last) / np.mean(first))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-turing-") as tmp:
        root = Path(tmp)
        study = make_study(root, args.pairs)
        n = len(study.trials)
        base = run_baseline(root / "baseline", study, args.participants)
        store = run_store(root / "study", study, args.participants)
        base_ms, store_ms = 1000 * float(np.mean(base)), 1000 * float(np.mean(store))
        print(f"answers: {len(store)} ({args.participants} participants x {n} pairs)")
        print(f"baseline (atomic rewrite per answer): {base_ms:.3f} ms/answer, "
              f"last/first quarter {quarter_growth(base, n):.2f}x")
        print(f"store (append + fsync per answer):    {store_ms:.3f} ms/answer, "
              f"last/first quarter {quarter_growth(store, n):.2f}x")
        print(f"turing: {base_ms / store_ms:.1f}x the atomic-rewrite baseline per recorded answer")


if __name__ == "__main__":
    main()
