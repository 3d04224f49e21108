"""Color-bin statistics: top-n bins, the total lookup table, Σ p·w = 1, 2-D smoothing, and `colorize stats`."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from imagedata import make_dataset
from PIL import Image

from colorize.cli import cli
from colorize.dataset.bins import (
    ab_histogram,
    cell_index,
    compute_bin_stats,
    gaussian_smooth_2d,
    grid_cells,
    rebalance,
)
from colorize.dataset.prep import run_prep
from colorize.dataset.stats import bin_table
from colorize.errors import ColorizeError


def _fine(points: dict[tuple[int, int], int]) -> np.ndarray:
    """A fine [256, 256] histogram with `count` pixels at each (a, b)."""
    fine = np.zeros((256, 256), np.int64)
    for (a, b), count in points.items():
        fine[a + 128, b + 128] += count
    return fine


def test_grid_cells_center_gray_and_cover_int8():
    k_min, n = grid_cells(10)
    assert (k_min, n) == (-13, 27)
    cells = cell_index(np.arange(-128, 128), 10)
    assert cells.min() == 0 and cells.max() == n - 1
    assert set(cell_index(np.arange(-5, 5), 10)) == {-k_min}  # -5..4 is the gray cell, center 0
    assert cell_index(np.array([5]), 10)[0] == -k_min + 1


def test_top_n_cells_kept_and_lookup_is_total():
    counts = {(0, 0): 500, (30, 30): 400, (-40, 20): 300, (60, -60): 200, (-90, -90): 3, (100, 100): 1}
    st = compute_bin_stats(_fine(counts), grid=10, bins=4, lam=0.5, sigma=0.0)
    assert st.n_bins == 4
    assert st.centers.tolist() == [[0, 0], [30, 30], [-40, 20], [60, -60]]  # most frequent first
    assert st.ab_lut.shape == (256, 256) and st.ab_lut.dtype == np.int16
    assert st.ab_lut.min() >= 0 and st.ab_lut.max() == 3  # every int8 pair maps to a kept bin
    assert st.ab_lut[128 + 2, 128 - 3] == 0  # same cell as gray
    assert st.ab_lut[128 + 100, 128 + 100] == 1  # dropped cell -> nearest kept bin (30, 30)
    assert st.ab_lut[128 - 90, 128 - 90] == 2  # (-90, -90): (-40, 20) is the nearest kept center
    # the prior counts the remapped pixels too
    total = sum(counts.values())
    assert st.prior[1] == pytest.approx((400 + 1) / total, rel=1e-6)
    assert st.bin_index(np.array([[30, 31], [0, 0]], np.int8)).tolist() == [1, 0]


@pytest.mark.parametrize("lam,sigma", [(0.5, 5.0), (0.2, 0.0), (1.0, 5.0), (0.0, 10.0)])
def test_weights_are_normalised_and_follow_the_formula(lam, sigma):
    rng = np.random.default_rng(0)
    ab = np.clip(rng.normal(0, 25, (4, 32, 32, 2)), -128, 127).astype(np.int8)
    st = compute_bin_stats(ab_histogram(ab), grid=10, bins=16, lam=lam, sigma=sigma)
    assert float((st.prior.astype(np.float64) * st.weights).sum()) == pytest.approx(1.0, abs=1e-5)
    raw = 1.0 / ((1 - lam) * st.prior_smoothed.astype(np.float64) + lam / st.n_bins)
    assert np.allclose(st.weights / st.weights[0], raw / raw[0], rtol=1e-4)
    assert st.prior.sum() == pytest.approx(1.0) and st.prior_smoothed.sum() == pytest.approx(1.0)
    if lam == 1.0:
        assert np.allclose(st.weights, 1.0, atol=1e-5)  # λ = 1: uniform mix, no rebalancing
    else:  # rare colors weigh more
        assert st.weights[np.argmin(st.prior_smoothed)] > st.weights[np.argmax(st.prior_smoothed)]


@pytest.mark.parametrize("lam,sigma", [(0.5, 5.0), (0.0, 10.0)])
def test_rebalance_on_given_bins_matches_compute_bin_stats(lam, sigma):
    rng = np.random.default_rng(1)
    ab = np.clip(rng.normal(0, 25, (4, 32, 32, 2)), -128, 127).astype(np.int8)
    st = compute_bin_stats(ab_histogram(ab), grid=10, bins=16, lam=lam, sigma=sigma)
    # Per-bin pixel counts after the remapping (the prior's numerator), in a different bin order.
    bin_counts = np.bincount(st.bin_index(ab).ravel(), minlength=st.n_bins)
    perm = rng.permutation(st.n_bins)
    prior, smoothed, weights = rebalance(st.centers[perm], bin_counts[perm], 10, lam, sigma)
    np.testing.assert_allclose(prior, st.prior[perm], rtol=1e-6)
    np.testing.assert_allclose(smoothed, st.prior_smoothed[perm], rtol=1e-6)
    np.testing.assert_allclose(weights, st.weights[perm], rtol=1e-6)
    with pytest.raises(ColorizeError, match="grid"):
        rebalance(st.centers + 3, bin_counts, 10, lam, sigma)


def test_smoothing_is_over_the_2d_ab_plane_not_the_bin_index():
    # One heavy bin at (0,0) and neighbours at one cell in a, one cell in b, one diagonal, one far away.
    counts = {(0, 0): 10_000, (10, 0): 10, (0, 10): 10, (10, 10): 10, (-100, 100): 10}
    st = compute_bin_stats(_fine(counts), grid=10, bins=5, lam=0.5, sigma=10.0)
    order = {tuple(c): i for i, c in enumerate(st.centers.astype(int).tolist())}
    a_nb, b_nb, diag, far = order[(10, 0)], order[(0, 10)], order[(10, 10)], order[(-100, 100)]
    ps = st.prior_smoothed
    assert ps[a_nb] == pytest.approx(ps[b_nb], rel=1e-5)  # symmetric in a and b
    assert ps[a_nb] > ps[diag] > ps[far]  # falls off with 2-D distance from the heavy bin
    # Ratio to the heavy bin follows the 2-D Gaussian: exp(-d²/2σ²) with d in ab units.
    heavy = order[(0, 0)]
    assert ps[a_nb] / ps[heavy] == pytest.approx(np.exp(-0.5), rel=0.05)
    assert ps[diag] / ps[heavy] == pytest.approx(np.exp(-1.0), rel=0.05)
    plane = np.zeros((9, 9))
    plane[4, 4] = 1.0
    blurred = gaussian_smooth_2d(plane, 1.0)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-6) and blurred[4, 5] == pytest.approx(blurred[5, 4])


def test_no_pixels_is_a_clear_error():
    with pytest.raises(ColorizeError, match="no training pixels"):
        compute_bin_stats(np.zeros((256, 256), np.int64), 10, 32, 0.5, 5.0)


def test_stats_command_prints_table_and_draws_pictures(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=3, categories=("beach", "forest"))
    out = tmp_path / "shards"
    run_prep(src, out, size=32, bins=8, augment=2, split="0.8,0.1,0.1", shard_size=64, workers=1)
    result = CliRunner().invoke(cli, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["bin", "a", "b", "prior", "smoothed", "weight"]
    assert len(lines) == 1 + 8 + 2 and "Σ prior·weight = 1.000000" in lines[-2]
    assert lines[-1].endswith(str(out / "stats"))
    bins_png = Image.open(out / "stats" / "bins.png")
    cats_png = np.asarray(Image.open(out / "stats" / "categories.png").convert("RGB"))
    assert bins_png.width > 3 * bins_png.height // 2
    assert len(np.unique(np.asarray(bins_png.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # really drawn
    assert (cats_png != 255).any(axis=-1).sum() > 500
    assert (out / "stats" / "stats-run.json").is_file()
    csv = (out / "stats" / "bins.csv").read_text().splitlines()
    assert csv[0] == "bin,a,b,prior,prior_smoothed,weight,beach,forest" and len(csv) == 1 + 8
    assert sum(float(row.split(",")[6]) for row in csv[1:]) == pytest.approx(1.0, abs=1e-4)  # beach's shares
    from colorize.dataset.shards import load_stats

    assert bin_table(load_stats(out)).count("\n") == 8 + 1


def test_bins_csv_quotes_and_defuses_hostile_category_names(tmp_path):
    """Category names come from folder names and shared manifests: a comma must not shift the columns and
    a formula prefix (= + - @ tab CR) must not run in a spreadsheet (OWASP CSV injection)."""
    import csv
    import io

    from colorize.dataset.stats import _write_csv

    st = compute_bin_stats(_fine({(0, 0): 50, (30, 30): 40, (-40, 20): 10}), grid=10, bins=3, lam=0.5, sigma=0.0)
    names = ["a,b", '=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", 'q"uote', "ok"]
    per_category = {n: np.full(st.n_bins, 1.0 / st.n_bins) for n in names}
    _write_csv(st, per_category, tmp_path / "bins.csv")
    text = (tmp_path / "bins.csv").read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + st.n_bins and all(len(r) == 6 + len(names) for r in rows)
    header = rows[0][6:]
    assert header[0] == "a,b" and header[-1] == "ok" and header[7] == 'q"uote'
    assert all(h.startswith("'") for h in header[1:7]) and header[1] == "'" + names[1]
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in rows[0])
    assert rows[1][1:3] == ["0", "0"] and float(rows[2][1]) == 30  # numbers stay numbers (negatives too)
    assert any(float(r[1]) < 0 for r in rows[1:]) and text.count("\n") == 1 + st.n_bins
