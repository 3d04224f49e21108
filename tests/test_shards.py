"""Shard files: deterministic bytes, no pickle, hash checks, and `prep --verify`."""

from __future__ import annotations

import time

import lz4.block
import numpy as np
import pytest
from click.testing import CliRunner
from imagedata import make_dataset

from colorize.cli import cli
from colorize.dataset import shards
from colorize.dataset.prep import run_prep
from colorize.dataset.shards import (
    SCHEMA,
    content_sha256,
    list_shards,
    load_npz,
    load_shard,
    read_manifest,
    read_shard,
    sample_weights,
    verify_shards,
    write_npz,
    write_shard,
)
from colorize.errors import ColorizeError
from colorize.io import atomic_write_json


def _arrays(n=3, s=8):
    rng = np.random.default_rng(0)
    mask = np.ones((n, s, s), bool)
    mask[1, :, 6:] = False  # a padded sample
    return {"L": rng.integers(0, 256, (n, s, s), dtype=np.uint8),
            "ab": rng.integers(-128, 128, (n, s, s, 2), dtype=np.int8),
            "mask": mask, "photo_id": ["a", "bb", "c"], "category": ["x", "y", "x"], "variant": ["orig", "crop1", "orig"]}


def test_write_npz_is_byte_deterministic_and_numpy_readable(tmp_path, monkeypatch):
    first = write_shard(tmp_path / "a.npz", **_arrays())
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 7200)  # np.savez would stamp this into the zip
    second = write_shard(tmp_path / "b.npz", **_arrays())
    assert first == second
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert z["photo_id"].tolist() == ["a", "bb", "c"] and z["pixels"].dtype == np.uint8
    assert not list(tmp_path.glob(".tmp-*"))


def test_shards_round_trip_content_and_its_hash(tmp_path):
    """Stored rows come back exactly (3 B/px compressed, a pad box for the mask), with prep's colorful flag;
    the content sha256 ignores how the bytes were compressed (codec versions differ), the file sha256 does not."""
    arrays = _arrays()
    arrays["ab"][2] = 0  # a gray sample
    _, sha, content = write_shard(tmp_path / "a.npz", **arrays, sample_row=np.array([0, 0, 1, 2], np.int32),
                                  sample_variant=["orig", "flip", "crop1", "orig"])
    back = load_shard(tmp_path / "a.npz", expected_sha256=sha)
    for key in ("L", "ab", "mask"):
        assert np.array_equal(back[key], arrays[key]), key
    assert back["box"].tolist()[1] == [0, 0, 8, 6] and back["colorful"].tolist() == [True, True, False]
    assert back["sample_variant"].tolist() == ["orig", "flip", "crop1", "orig"]
    assert sample_weights(back).tolist() == [2, 1, 1]
    assert content_sha256(back) == content
    shard = read_shard(tmp_path / "a.npz")
    other = shards.write_npz(tmp_path / "b.npz", {  # the same content, compressed at another lz4 level
        **{k: v for k, v in np.load(tmp_path / "a.npz").items() if k not in ("pixels", "offsets")},
        **_recompressed(shard)})
    assert other[1] != sha and content_sha256(load_shard(tmp_path / "b.npz")) == content
    changed = _arrays()
    changed["L"][0, 0, 0] ^= 1
    assert write_shard(tmp_path / "c.npz", **changed)[2] != content


def _recompressed(shard) -> dict[str, np.ndarray]:
    blocks = [lz4.block.compress(b"".join(x.tobytes() for x in shard.pixels_of(r)), mode="high_compression",
                                 compression=9, store_size=False)
              for r in range(shard.stored)]
    return {"pixels": np.frombuffer(b"".join(blocks), np.uint8),
            "offsets": np.concatenate([[0], np.cumsum([len(b) for b in blocks])]).astype(np.int64)}


def test_readers_refuse_pickles_bad_hashes_and_wrong_layouts(tmp_path):
    np.savez(tmp_path / "pickled.npz", L=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ColorizeError, match="not a readable"):
        load_npz(tmp_path / "pickled.npz")
    write_shard(tmp_path / "ok.npz", **_arrays())
    with pytest.raises(ColorizeError, match="sha256"):
        load_shard(tmp_path / "ok.npz", expected_sha256="0" * 64)
    good = dict(np.load(tmp_path / "ok.npz"))
    for key, bad in (("box", good["box"].astype(np.int32)), ("offsets", good["offsets"][::-1].copy()),
                     ("sample_row", np.array([0, 5], np.int32)), ("side", np.int32(100_000))):
        write_npz(tmp_path / "bad.npz", {**good, key: bad})
        with pytest.raises(ColorizeError, match="shapes, dtypes or bounds"):
            load_shard(tmp_path / "bad.npz")
    write_npz(tmp_path / "old.npz", {"L": np.zeros((1, 8, 8), np.uint8)})  # today's arrays of format 1
    with pytest.raises(ColorizeError, match="older shard format"):
        load_shard(tmp_path / "old.npz")
    cut = {**good, "pixels": good["pixels"][:-3], "offsets": np.minimum(good["offsets"], good["pixels"].size - 3)}
    write_npz(tmp_path / "cut.npz", cut)
    with pytest.raises(ColorizeError, match="corrupt sample|short sample"):
        load_shard(tmp_path / "cut.npz")
    with pytest.raises(ColorizeError, match="missing"):
        load_shard(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK not really")
    with pytest.raises(ColorizeError):
        load_shard(tmp_path / "junk.npz")
    with pytest.raises(ColorizeError, match="no shard manifest"):
        read_manifest(tmp_path)


def test_old_format_folders_get_one_line_and_prep_replaces_them(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=2, categories=("a", "b"))
    out = tmp_path / "shards"
    out.mkdir()
    atomic_write_json(out / "manifest.json", {"schema": "colorize.shards/1", "shards": []})
    write_npz(out / "train-00000.npz", {"L": np.zeros((1, 8, 8), np.uint8)})
    bad = CliRunner().invoke(cli, ["prep", "--verify", str(out)])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
    assert "old shard format colorize.shards/1" in bad.output and "re-run `colorize prep" in bad.output
    run_prep(src, out, size=32, bins=8, augment=2, shard_size=4, workers=1)
    assert read_manifest(out)["schema"] == SCHEMA and verify_shards(out).checked >= 2


def test_verify_catches_a_flipped_byte(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=3, categories=("a", "b"))
    out = tmp_path / "shards"
    run_prep(src, out, size=32, bins=8, augment=3, shard_size=4, workers=1)
    runner = CliRunner()
    ok = runner.invoke(cli, ["prep", "--verify", str(out)])
    assert ok.exit_code == 0 and "all sha256 match" in ok.output
    assert verify_shards(out).checked == len(list_shards(out)) + 2  # shards + stats.npz + noise.npz

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


def test_verify_checks_the_decoded_content_too(tmp_path):
    """A shard rewritten with other pixels and a matching file hash in the manifest: the content hash says so."""
    src = make_dataset(tmp_path / "raw", n_per_category=2, categories=("a", "b"))
    out = tmp_path / "shards"
    run_prep(src, out, size=32, bins=8, augment=1, shard_size=4, workers=1)
    entry = list_shards(out, "train")[0]
    arrays = load_shard(out / entry["name"])
    arrays["L"][0, 5, 5] ^= 0x10
    nbytes, sha, _ = write_shard(out / entry["name"], arrays["L"], arrays["ab"], arrays["mask"], arrays["photo_id"],
                                 arrays["category"], arrays["variant"], arrays["sample_row"], arrays["sample_variant"])
    manifest = read_manifest(out)
    for e in manifest["shards"]:
        if e["name"] == entry["name"]:
            e["sha256"], e["bytes"] = sha, nbytes
    atomic_write_json(out / "manifest.json", manifest)
    with pytest.raises(ColorizeError, match="decoded content sha256 mismatch"):
        verify_shards(out)
