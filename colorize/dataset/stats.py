"""`colorize stats`: the color-bin table of a shard folder, and pictures of the bins and each category's colors.

The maths is `bins.py`; the stats file is read by `shards.load_stats`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from colorize.dataset.bins import BinStats, grid_cells
from colorize.dataset.color import lab_to_rgb
from colorize.dataset.shards import list_shards, load_shard, load_stats, sample_weights
from colorize.io import atomic_open, atomic_write_csv, write_run_record

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- `colorize stats`
@dataclass
class StatsReport:
    out_dir: Path
    table: str
    pictures: list[Path]

    def summary_line(self) -> str:
        names = ", ".join(p.name for p in self.pictures)
        return f"{self.table}\nwrote {names} to {self.out_dir}"


def bin_table(stats: BinStats) -> str:
    """The printed table: one line per bin."""
    lines = [f"{'bin':>4} {'a':>6} {'b':>6} {'prior':>9} {'smoothed':>9} {'weight':>8}"]
    for i in range(stats.n_bins):
        a, b = stats.centers[i]
        lines.append(f"{i:>4} {a:>6.0f} {b:>6.0f} {stats.prior[i]:>9.5f} {stats.prior_smoothed[i]:>9.5f} "
                     f"{stats.weights[i]:>8.3f}")
    lines.append(f"{stats.n_bins} bins on a {stats.grid}-unit ab grid, λ={stats.lam:g}, σ={stats.sigma:g}, "
                 f"{int(stats.cell_counts.sum())} train pixels; Σ prior·weight = "
                 f"{float((stats.prior.astype(np.float64) * stats.weights).sum()):.6f}")
    return "\n".join(lines)


def category_histograms(shards_dir: str | os.PathLike, stats: BinStats) -> dict[str, np.ndarray]:
    """Per category, the bin frequencies of its unmasked train pixels (normalised to sum 1); a stored row
    counts once per sample made from it, as in the training set."""
    counts: dict[str, np.ndarray] = {}
    for entry in list_shards(shards_dir, "train"):
        arrays = load_shard(Path(shards_dir) / entry["name"], entry["sha256"])
        bins = stats.bin_index(arrays["ab"])
        for i, (category, weight) in enumerate(zip(arrays["category"].tolist(), sample_weights(arrays))):
            hist = int(weight) * np.bincount(bins[i][arrays["mask"][i]], minlength=stats.n_bins)
            counts[category] = counts.get(category, 0) + hist
    return {c: h / max(1, h.sum()) for c, h in sorted(counts.items())}


def run_stats(shards_dir: str | os.PathLike, out_dir: str | os.PathLike) -> StatsReport:
    """Print the bin table and draw the bin pictures (colors, log frequency, weights, per category)."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    bin_stats = load_stats(shards_dir)
    per_category = category_histograms(shards_dir, bin_stats)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = draw_pictures(bin_stats, per_category, out_dir)
    table = bin_table(bin_stats)
    written.append(_write_csv(bin_stats, per_category, out_dir / "bins.csv"))
    write_run_record(out_dir / "stats-run.json", "stats", params={"shards": str(shards_dir), "out": str(out_dir)},
                     counts={"bins": bin_stats.n_bins, "categories": len(per_category)},
                     pictures=[p.name for p in written])
    return StatsReport(out_dir, table, written)


# ------------------------------------------------------------------------------------------ pictures
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


def _ramp(values: np.ndarray) -> np.ndarray:
    """0..1 -> a viridis-like uint8 color ramp (readable, and fine for color-blind readers)."""
    x = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(int), len(_RAMP) - 2)
    t = (x - i)[..., None]
    return np.rint(_RAMP[i] * (1 - t) + _RAMP[i + 1] * t).astype(np.uint8)


def _bin_colors(stats: BinStats, lightness: float = 60.0) -> np.ndarray:
    lab = np.concatenate([np.full((stats.n_bins, 1), lightness, np.float32), stats.centers], axis=1)
    return lab_to_rgb(lab)


def _ab_panel(cell_rgb: np.ndarray, title: str, kept: np.ndarray, cell_px: int = 12):
    """A G x G ab-plane picture (a down the rows, b across, like ColorUNet's figure 1) with a title."""
    n_cells = cell_rgb.shape[0]
    plane = np.repeat(np.repeat(cell_rgb, cell_px, 0), cell_px, 1)
    margin = 22
    img = Image.new("RGB", (plane.shape[1] + 2 * margin, plane.shape[0] + 2 * margin), (255, 255, 255))
    img.paste(Image.fromarray(plane), (margin, margin))
    draw = ImageDraw.Draw(img)
    for ka, kb in kept:  # outline the cells that are kept bins
        x, y = margin + kb * cell_px, margin + ka * cell_px
        draw.rectangle([x, y, x + cell_px - 1, y + cell_px - 1], outline=(0, 0, 0))
    draw.text((margin, 4), title, fill=(0, 0, 0))
    draw.text((margin, margin + n_cells * cell_px + 4), "b ->   (rows: a, top = -128)", fill=(0, 0, 0))
    return img


def draw_pictures(stats: BinStats, per_category: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
    """bins.png (bin colors | log10 frequency | weights over the ab grid) and categories.png."""
    k_min, n_cells = grid_cells(stats.grid)
    kept = np.rint(stats.centers / stats.grid).astype(int) - k_min  # grid cell of each bin
    centers_ab = (np.arange(n_cells) + k_min) * stats.grid
    cell_bin = stats.ab_lut[np.clip(centers_ab + 128, 0, 255)[:, None], np.clip(centers_ab + 128, 0, 255)[None, :]]
    colors = _bin_colors(stats)[cell_bin]
    logf = np.log10(stats.cell_counts.astype(np.float64) + 1)
    freq = _ramp(logf / max(logf.max(), 1e-9))
    freq[stats.cell_counts == 0] = 255
    w = stats.weights[cell_bin].astype(np.float64)
    weights = _ramp((w - w.min()) / max(w.max() - w.min(), 1e-9))
    panels = [_ab_panel(colors, "bin colors (L=60)", kept),
              _ab_panel(freq, "log10 pixel frequency", kept),
              _ab_panel(weights, f"weights {w.min():.2f}..{w.max():.2f}", kept)]
    sheet = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), (255, 255, 255))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width
    written = [_save_png(sheet, out_dir / "bins.png")]

    # Per-category bin histograms: one row of bars per category, each bar in its bin's color.
    bar_w, row_h, label_w = 10, 60, 110
    cats = list(per_category) or ["(no train samples)"]
    img = Image.new("RGB", (label_w + bar_w * stats.n_bins + 10, row_h * len(cats) + 20), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    bin_rgb = _bin_colors(stats)
    for r, cat in enumerate(cats):
        hist = per_category.get(cat, np.zeros(stats.n_bins))
        top = 10 + r * row_h
        draw.text((4, top + row_h // 2 - 6), cat[:16], fill=(0, 0, 0))
        peak = max(float(hist.max()), 1e-9)
        for i, v in enumerate(hist):
            h = int(round((row_h - 8) * float(v) / peak))
            x0 = label_w + i * bar_w
            if h > 0:
                draw.rectangle([x0, top + row_h - 4 - h, x0 + bar_w - 2, top + row_h - 4],
                               fill=tuple(int(c) for c in bin_rgb[i]))
        draw.line([label_w, top + row_h - 3, label_w + bar_w * stats.n_bins, top + row_h - 3], fill=(0, 0, 0))
    written.append(_save_png(img, out_dir / "categories.png"))
    return written


def _write_csv(stats: BinStats, per_category: dict[str, np.ndarray], path: Path) -> Path:
    """The bin table as CSV (one row per bin, one column per category's share) for spreadsheets and papers.

    Category names come from folder names and shared manifests, so they are written through
    `io.atomic_write_csv`: quoted when they hold a comma or quote, defused when they start like a formula.
    """
    cats = list(per_category)
    rows: list[list[str | int | float]] = [["bin", "a", "b", "prior", "prior_smoothed", "weight", *cats]]
    for i in range(stats.n_bins):
        a, b = stats.centers[i]
        rows.append([i, float(a), float(b), float(stats.prior[i]), float(stats.prior_smoothed[i]),
                     float(stats.weights[i]), *(float(per_category[c][i]) for c in cats)])
    atomic_write_csv(path, rows)
    return path


def _save_png(img, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")
    return path
