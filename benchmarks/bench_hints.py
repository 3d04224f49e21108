"""What colour hints are worth: PSNR of a trained model at 0, 1, 2, 5, 10, 20, 50 simulated points.

Zhang et al. 2017's protocol on the held-out photos of a `bench_quality.py --work DIR` run: each photo is
fitted into the model's square (the pad fit of training), points are drawn by `dataset.hints.
simulate_points` (seeded per photo, Gaussian around the centre, patch colour = the true mean ab over the
patch; the first k points of a photo are the same at every count), the model colours with them, and the
PSNR against the truth over the real pixels is averaged. Also the mean ab distance between the painted
colour and the hint inside the hinted patches (is a hint honoured where it was placed?). Model size only:
full resolution is predict's job. Goals: 10 points >= +3 dB over 0 points, 50 points >= +5 dB.

    .venv/bin/python benchmarks/bench_quality.py --work /tmp/bq     # trains RUN/best.pt
    .venv/bin/python benchmarks/bench_hints.py --work /tmp/bq
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from colorize.dataset.color import rgb_to_stored, stored_to_rgb  # noqa: E402
from colorize.dataset.hints import HINT_AB_SCALE, hint_rng, simulated_planes  # noqa: E402
from colorize.dataset.images import fit, load_rgb  # noqa: E402
from colorize.models.infer.colorizer import load_colorizer  # noqa: E402
from colorize.models.net import DEFAULT_TEMPERATURE, metrics  # noqa: E402
from colorize.models.net.annealed import decode, softmax_probs  # noqa: E402
from colorize.models.net.unet import l_to_input, require_hints_support  # noqa: E402

COUNTS = (0, 1, 2, 5, 10, 20, 50)


@torch.inference_mode()
def paint(model: torch.nn.Module, L: np.ndarray, planes: np.ndarray, centers: torch.Tensor,
          temperature: float) -> np.ndarray:
    """ab float [S,S,2] as predict paints it (mirror-averaged probabilities, `annealed.decode`)."""
    x = l_to_input(torch.from_numpy(L)[None])
    h = torch.from_numpy(planes)[None]
    probs = (softmax_probs(model(x, h)) + softmax_probs(model(x.flip(-1), h.flip(-1))).flip(-1)) / 2
    return decode(probs, centers, temperature)[0].permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench_quality.py --work folder")
    parser.add_argument("--model", type=Path, help="checkpoint [WORK/run/best.pt]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model_path = args.model or args.work / "run" / "best.pt"
    col = load_colorizer(model_path, device="cpu")
    require_hints_support(col, model_path)
    temperature = float(col.config.get("temperature", DEFAULT_TEMPERATURE))
    photos = sorted(p for p in (args.work / "test").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    psnr = {k: [] for k in COUNTS}
    gray, hint_err = [], {k: [] for k in COUNTS if k}
    for index, path in enumerate(photos):
        rgb, mask = fit(load_rgb(path, reduce_to=col.size), col.size, "pad")
        L, ab = rgb_to_stored(rgb)
        gray.append(metrics.psnr(stored_to_rgb(L, np.zeros_like(ab)), rgb, mask))
        for k in COUNTS:
            planes = simulated_planes(ab, mask, hint_rng(args.seed, 0, index), count=k)
            pred = paint(col.model, L, planes, col.centers, temperature)
            psnr[k].append(metrics.psnr(stored_to_rgb(L, pred), rgb, mask))
            if k:
                hinted = planes[2] > 0
                target = planes[:2].transpose(1, 2, 0)[hinted] * HINT_AB_SCALE
                hint_err[k].append(float(np.linalg.norm(pred[hinted] - target, axis=1).mean()))
    base = float(np.mean(psnr[0]))
    print(f"{len(photos)} held-out photos at {col.size} px, model {model_path}")
    print(f"gray baseline    {np.mean(gray):6.2f} dB")
    for k in COUNTS:
        err = f"   hint |Δab| in patches {np.mean(hint_err[k]):5.2f}" if k else ""
        print(f"{k:3d} points       {np.mean(psnr[k]):6.2f} dB   {np.mean(psnr[k]) - base:+5.2f} dB over 0 points{err}")
    gain10, gain50 = np.mean(psnr[10]) - base, np.mean(psnr[50]) - base
    print(f"goal: 10 points >= +3 dB  {'PASS' if gain10 >= 3 else 'FAIL'}  ({gain10:+.2f} dB)")
    print(f"goal: 50 points >= +5 dB  {'PASS' if gain50 >= 5 else 'FAIL'}  ({gain50:+.2f} dB)")


if __name__ == "__main__":
    main()
