"""Shard files: deterministic bytes, no pickle, hash checks, and `prep --verify`."""

from __future__ import annotations

import time

import numpy as np
import pytest
from click.testing import CliRunner
from imagedata import make_dataset

from colorize.cli import cli
from colorize.dataset.prep import run_prep
from colorize.dataset.shards import list_shards, load_npz, load_shard, read_manifest, verify_shards, write_npz
from colorize.errors import ColorizeError


def _arrays(n=3, s=8):
    rng = np.random.default_rng(0)
    return {"L": rng.integers(0, 256, (n, s, s), dtype=np.uint8),
            "ab": rng.integers(-128, 128, (n, s, s, 2), dtype=np.int8),
            "mask": np.ones((n, s, s), bool), "photo_id": np.array(["a", "bb", "c"]),
            "category": np.array(["x", "y", "x"]), "variant": np.array(["orig", "flip", "orig"])}


def test_write_npz_is_byte_deterministic_and_numpy_readable(tmp_path, monkeypatch):
    first = write_npz(tmp_path / "a.npz", _arrays())
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 7200)  # np.savez would stamp this into the zip
    second = write_npz(tmp_path / "b.npz", _arrays())
    assert first == second
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert z["photo_id"].tolist() == ["a", "bb", "c"] and z["L"].dtype == np.uint8
    assert load_shard(tmp_path / "a.npz", expected_sha256=first[1])["ab"].shape == (3, 8, 8, 2)
    assert not list(tmp_path.glob(".tmp-*"))


def test_readers_refuse_pickles_bad_hashes_and_wrong_layouts(tmp_path):
    np.savez(tmp_path / "pickled.npz", L=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ColorizeError, match="not a readable"):
        load_npz(tmp_path / "pickled.npz")
    write_npz(tmp_path / "ok.npz", _arrays())
    with pytest.raises(ColorizeError, match="sha256"):
        load_shard(tmp_path / "ok.npz", expected_sha256="0" * 64)
    bad = _arrays()
    bad["ab"] = bad["ab"].astype(np.int16)
    write_npz(tmp_path / "bad.npz", bad)
    with pytest.raises(ColorizeError, match="dtypes"):
        load_shard(tmp_path / "bad.npz")
    with pytest.raises(ColorizeError, match="missing"):
        load_shard(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK not really")
    with pytest.raises(ColorizeError):
        load_shard(tmp_path / "junk.npz")
    with pytest.raises(ColorizeError, match="no shard manifest"):
        read_manifest(tmp_path)


def test_verify_catches_a_flipped_byte(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=3, categories=("a", "b"))
    out = tmp_path / "shards"
    run_prep(src, out, size=32, bins=8, augment=2, shard_size=4, workers=1)
    runner = CliRunner()
    ok = runner.invoke(cli, ["prep", "--verify", str(out)])
    assert ok.exit_code == 0 and "all sha256 match" in ok.output
    assert verify_shards(out).checked == len(list_shards(out)) + 1  # shards + stats.npz

    victim = out / list_shards(out, "train")[1]["name"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, deep inside the pixel data: same size, still a valid zip
    victim.write_bytes(bytes(data))
    bad = runner.invoke(cli, ["prep", "--verify", str(out)])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [bad.output.strip()]  # one line, no traceback
    assert "error:" in bad.output and victim.name in bad.output and "sha256 mismatch" in bad.output
    (out / "stats.npz").unlink()
    assert "stats.npz: missing" in runner.invoke(cli, ["prep", "--verify", str(out)]).output
