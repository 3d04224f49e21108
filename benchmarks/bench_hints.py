"""What colour hints are worth, on a trained model of a `bench_quality.py --work DIR` run, without retraining.

Runs the real CLI, `colorize eval --model WORK/run/best.pt --images WORK/test --hints-sweep 0,1,2,5,10,20,50`
(Zhang et al. 2017's simulated user through the one colouring path, next to Levin et al. 2004's colour
propagation: `models/evaluate/sweep.py`), and prints the sweep and its goals as bench_quality does.

    .venv/bin/python benchmarks/bench_quality.py --work /tmp/bq     # trains RUN/best.pt, sweeps once
    .venv/bin/python benchmarks/bench_hints.py --work /tmp/bq       # the sweep again (e.g. after a change)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import SWEEP, colorize, sweep_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench_quality.py --work folder")
    parser.add_argument("--model", type=Path, help="checkpoint [WORK/run/best.pt]")
    parser.add_argument("--counts", default=SWEEP, help=f"point counts [{SWEEP}]")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    model = args.model or args.work / "run" / "best.pt"
    seconds = colorize(args.work, "eval", "--model", str(model), "--images", str(args.work / "test"), "--out",
                       str(args.work / "eval-hints"), "--device", "cpu", "--hints-sweep", args.counts)
    ok = sweep_report(json.loads((args.work / "eval-hints" / "eval.json").read_text()))
    print(f"eval with the sweep: {seconds:.0f} s; goals {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
