"""The prep stage end to end: shard layout, splits, augmentation, skipped inputs, determinism, dask, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from imagedata import hostile_files, jpeg_bytes, make_dataset, photo_like

import colorize.dataset as splits
from colorize.cli import cli
from colorize.dataset import VARIANTS, augment, variants_for
from colorize.dataset.loader import ShardDataset
from colorize.dataset.prep import JOURNAL, run_prep
from colorize.dataset.shards import SCHEMA, list_shards, load_shard, load_stats, read_manifest, sample_weights
from colorize.errors import ColorizeError, UsageError
from colorize.io import sha256_file

OPTS = dict(size=48, grid=10, bins=12, lam=0.5, sigma=5.0, augment=7, split="0.6,0.2,0.2", seed=3, shard_size=10)


def _files(folder: Path) -> dict[str, bytes]:
    """Every output whose bytes must be reproducible (not the run record, which holds timings)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and (p.suffix == ".npz" or p.name == "manifest.json")}


def _load_all(out: Path) -> dict[str, dict[str, np.ndarray]]:
    return {e["name"]: load_shard(out / e["name"], e["sha256"]) for e in list_shards(out)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("raw"), n_per_category=4)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "shards"
    run_prep(dataset, out, workers=1, **OPTS)
    return out


def test_shard_layout_dtypes_and_manifest(reference):
    manifest = read_manifest(reference)
    assert manifest["schema"] == SCHEMA and len(manifest["source_manifest_sha256"]) == 64
    assert manifest["params"]["seed"] == 3 and manifest["params"]["lambda"] == 0.5
    assert manifest["categories"] == ["beach", "city", "forest"]
    shards = _load_all(reference)
    assert set(shards) == {e["name"] for e in manifest["shards"]}
    for entry in manifest["shards"]:
        arrays = shards[entry["name"]]
        n = entry["stored"]  # stored rows: the original and the crops only
        assert 0 < n <= entry["count"] <= OPTS["shard_size"] and entry["bytes"] == (reference / entry["name"]).stat().st_size
        assert arrays["sample_row"].shape == arrays["sample_variant"].shape == (entry["count"],)
        assert set(arrays["variant"].tolist()) <= set(augment.STORED) and len(entry["content_sha256"]) == 64
        assert arrays["L"].shape == (n, 48, 48) and arrays["L"].dtype == np.uint8
        assert arrays["ab"].shape == (n, 48, 48, 2) and arrays["ab"].dtype == np.int8
        assert arrays["mask"].shape == (n, 48, 48) and arrays["mask"].dtype == np.bool_
        for key in ("photo_id", "category", "variant"):
            assert arrays[key].dtype.kind == "U" and arrays[key].shape == (n,)
        # 96x64 photos padded to a square: a third of the rows or columns is padding
        assert np.allclose(arrays["mask"].mean(axis=(1, 2)), 32 / 48, atol=0.03)
    counted = {s: sum(manifest["counts"][s].values()) for s in splits.SPLITS}
    assert counted == manifest["samples"] and sum(counted.values()) == sum(e["count"] for e in manifest["shards"])
    stats = load_stats(reference)
    assert stats.n_bins == 12 and manifest["stats"]["n_bins"] == 12
    assert float((stats.prior.astype(np.float64) * stats.weights).sum()) == pytest.approx(1.0, abs=1e-5)
    train_pixels = sum(int((a["mask"].sum(axis=(1, 2)) * sample_weights(a)).sum())
                       for name, a in shards.items() if name.startswith("train"))
    assert int(stats.cell_counts.sum()) == train_pixels  # over the unmasked pixels of every train sample
    derived = reference / "source-manifest.json"  # a plain folder gets a derived manifest, hashed like a real one
    assert sha256_file(derived) == manifest["source_manifest_sha256"]
    assert len(json.loads(derived.read_text())["photos"]) == manifest["photos"] == 12
    record = json.loads((reference / "prep-run.json").read_text())
    assert record["command"] == "prep" and record["timings_s"]["total"] > 0
    assert "timings" not in json.dumps(manifest) and "created" not in manifest


def _samples(out: Path, split: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every sample of a split as the loader makes it: (photo id, variant) -> (L, ab, mask)."""
    ds = ShardDataset(out, split, shuffle=False)
    made = [ds.sample(key, 0) for key in range(ds.n_samples)]  # unfiltered: keys are 0..n-1
    return {(s.photo_id, s.variant): (s.L.copy(), s.ab.copy(), augment.box_mask(s.box, s.L.shape[0])) for s in made}


def test_splits_and_variants(reference):
    shards = _load_all(reference)
    split_of: dict[str, str] = {}
    variants_of: dict[str, list[str]] = {}
    stored_of: dict[str, list[str]] = {}
    for name, arrays in shards.items():
        split = name.split("-")[0]
        for row, variant in zip(arrays["sample_row"].tolist(), arrays["sample_variant"].tolist()):
            pid = str(arrays["photo_id"][row])
            assert split_of.setdefault(pid, split) == split  # all variants of a photo in one split
            variants_of.setdefault(pid, []).append(variant)
            assert split == splits.assign_split(pid, 3, (0.6, 0.2, 0.2))
            assert augment.stored_variant(variant) == arrays["variant"][row]
        for pid, variant in zip(arrays["photo_id"].tolist(), arrays["variant"].tolist()):
            stored_of.setdefault(pid, []).append(variant)
    assert set(split_of.values()) == {"train", "val", "test"}
    for pid, variants in variants_of.items():
        expected = VARIANTS if split_of[pid] == "train" else ("orig",)
        assert sorted(variants) == sorted(expected)  # val/test never augmented
        assert set(stored_of[pid]) == ({"orig", "crop1", "crop2"} if split_of[pid] == "train" else {"orig"})

    train = _samples(reference, "train")
    pid = next(p for p, s in split_of.items() if s == "train")
    L, ab, m = train[(pid, "orig")]
    fL, fab, fm = train[(pid, "flip")]  # made on the fly: the very bytes prep used to store
    assert np.array_equal(fL, L[:, ::-1]) and np.array_equal(fab, ab[:, ::-1]) and np.array_equal(fm, m[:, ::-1])
    spread = []
    for level in ("noise1", "noise2", "noise3"):
        nL, nab, nm = train[(pid, level)]
        assert np.array_equal(nab, ab) and np.array_equal(nm, m)  # noise on the input L only
        assert np.array_equal(nL[~m], L[~m])  # padding untouched
        spread.append(np.std(nL[m].astype(int) - L[m]))
    assert 0 < spread[0] < spread[1] < spread[2]
    c1, c2 = train[(pid, "crop1")][0], train[(pid, "crop2")][0]
    assert not np.array_equal(c1, L) and not np.array_equal(c1, c2)


def test_augment_zero_and_crop_fit(dataset, tmp_path):
    out = tmp_path / "s"
    run_prep(dataset, out, workers=1, **{**OPTS, "augment": 0, "fit": "crop"})
    shards = _load_all(out)
    assert {v for a in shards.values() for v in a["variant"].tolist()} == {"orig"}
    assert all(a["mask"].all() for a in shards.values())
    assert read_manifest(out)["params"]["variants"] == ["orig"]


def test_determinism_across_workers_and_dask(dataset, reference, tmp_path):
    out2 = tmp_path / "w2"
    report = run_prep(dataset, out2, workers=2, **OPTS)
    assert report.rebuilt == report.shards
    assert _files(out2) == _files(reference)

    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        out3 = tmp_path / "dask"
        run_prep(dataset, out3, workers=1, engine="dask", scheduler=cluster.scheduler_address, **OPTS)
    assert _files(out3) == _files(reference)
    assert json.loads((out3 / "prep-run.json").read_text())["params"]["engine"] == "dask"

    # No --scheduler: prep starts its own LocalCluster (one worker process, dashboard off).
    out4 = tmp_path / "dask-local"
    run_prep(dataset, out4, workers=1, engine="dask", **OPTS)
    assert _files(out4) == _files(reference)


_SLOW_TASK = """
import time
import colorize.dataset.prep as prep
real = prep.run_shard_task
def slow_task(task):
    time.sleep(0.15)
    return real(task)
"""
_RUN_SLOW_PREP = """
import sys
import colorize.dataset.prep as prep
import slowprep
prep.run_shard_task = slowprep.slow_task  # workers unpickle it by name from slowprep (on PYTHONPATH)
from colorize.cli import main
main(sys.argv[1:])
"""


def _start_slow_prep(dataset: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    """`colorize prep --workers 2` in a subprocess, each shard slowed down, returned once 2 shards are done."""
    (tmp_path / "slowprep.py").write_text(_SLOW_TASK)
    args = ["prep", "--src", str(dataset), "--out", str(out), "--size", "48", "--bins", "12", "--lambda", "0.5",
            "--split", "0.6,0.2,0.2", "--seed", "3", "--shard-size", "10", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _RUN_SLOW_PREP, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    journal = out / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(json.loads(journal.read_text() or "{}").get("shards", {})) >= 2:
            break
        time.sleep(0.02)
    return proc


def test_resume_after_sigkill_gives_the_same_bytes(dataset, reference, tmp_path):
    import psutil

    out = tmp_path / "killed"
    proc = _start_slow_prep(dataset, out, tmp_path)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)  # returns once every process holding its output pipes is gone
    assert not (out / "manifest.json").exists(), "the run finished before the kill; the test proves nothing"
    assert len(children) >= 2  # the pool's worker processes ...
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive  # ... die with the killed run instead of writing on as orphans
    assert len(list(out.glob("*.npz"))) >= 2
    (out / ".tmp-train-00001.npz.half").write_bytes(b"half-written shard of the killed run")

    report = run_prep(dataset, out, workers=1, **OPTS)
    assert 0 < report.rebuilt < report.shards  # finished shards were reused, the rest built
    assert _files(out) == _files(reference)
    assert not list(out.glob(".tmp-*"))

    # A damaged shard is not trusted: it no longer has the recorded hash, so it is rebuilt.
    victim = out / list_shards(out)[0]["name"]
    victim.write_bytes(victim.read_bytes()[:-10])
    report = run_prep(dataset, out, workers=1, **OPTS)
    assert report.rebuilt == 1 and _files(out) == _files(reference)


def test_ctrl_c_stops_cleanly_and_the_rerun_completes(dataset, reference, tmp_path):
    import psutil

    out = tmp_path / "interrupted"
    proc = _start_slow_prep(dataset, out, tmp_path)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not psutil.wait_procs(children, timeout=30)[1]
    assert not (out / "manifest.json").exists()
    run_prep(dataset, out, workers=1, **OPTS)
    assert _files(out) == _files(reference) and not list(out.glob(".tmp-*"))


def test_split_of_a_photo_never_changes_when_photos_are_added(tmp_path):
    ids = [f"photo{i:04d}" for i in range(300)]
    before = {i: splits.assign_split(i, 0, (0.8, 0.1, 0.1)) for i in ids}
    more = ids + [f"new{i:04d}" for i in range(300)]
    after = {i: splits.assign_split(i, 0, (0.8, 0.1, 0.1)) for i in more}
    assert all(after[i] == before[i] for i in ids)
    fractions = np.mean([[after[i] == s for s in splits.SPLITS] for i in more], axis=0)
    assert np.allclose(fractions, [0.8, 0.1, 0.1], atol=0.05)
    assert any(splits.assign_split(i, 1, (0.8, 0.1, 0.1)) != before[i] for i in ids)  # the seed matters

    src = make_dataset(tmp_path / "raw", n_per_category=3, categories=("a", "b"))
    run_prep(src, tmp_path / "one", size=32, bins=4, augment=1, workers=1)
    first = _photo_splits(tmp_path / "one")
    make_dataset(tmp_path / "raw", n_per_category=3, categories=("c",), seed=9)
    run_prep(src, tmp_path / "two", size=32, bins=4, augment=1, workers=1)
    second = _photo_splits(tmp_path / "two")
    assert len(second) == len(first) + 3 and all(second[p] == s for p, s in first.items())


def _photo_splits(out: Path) -> dict[str, str]:
    return {p: n.split("-")[0] for n, a in _load_all(out).items() for p in a["photo_id"].tolist()}


def test_hostile_inputs_are_skipped_with_reasons(tmp_path):
    src = tmp_path / "raw"
    (src / "mixed").mkdir(parents=True)
    files = hostile_files()
    for name, (data, _) in files.items():
        (src / "mixed" / name).write_bytes(data)
    (src / "mixed" / "notes.txt").write_text("a stray file")
    (src / "loose.jpg").write_bytes(jpeg_bytes(photo_like(64, 64)))
    out = tmp_path / "shards"
    report = run_prep(src, out, size=32, bins=4, augment=1, split="1,0,0", workers=1)
    skipped = {s["file"]: s["reason"] for s in read_manifest(out)["skipped"]}
    for name, (_, reason) in files.items():
        if reason:
            assert reason in skipped[f"mixed/{name}"], (name, skipped.get(f"mixed/{name}"))
        else:
            assert f"mixed/{name}" not in skipped
    assert "extension" in skipped["mixed/notes.txt"] and "category folder" in skipped["loose.jpg"]
    used = sum(1 for _, reason in files.values() if reason is None)
    assert report.photos == used == read_manifest(out)["photos"]
    assert read_manifest(out)["samples"]["train"] == used
    assert "skipped" in report.summary_line()


def test_dataset_manifest_input_is_checked(tmp_path, monkeypatch):
    src = tmp_path / "raw"
    (src / "dog").mkdir(parents=True)
    photos = []
    for i in range(5):
        data = jpeg_bytes(photo_like(240, 180, seed=i) if i == 4 else photo_like(80, 60, seed=i))
        if i == 4:  # the one file over the (lowered) byte cap
            import colorize.dataset.prep as prep_module

            monkeypatch.setattr(prep_module, "MAX_FILE_BYTES", len(data) - 1)
        (src / "dog" / f"id{i:09d}.jpg").write_bytes(data)
        import hashlib

        photos.append({"id": f"id{i:09d}", "category": "dog", "file": f"dog/id{i:09d}.jpg",
                       "sha256": hashlib.sha256(data).hexdigest(), "status": "ok"})
    photos[1]["sha256"] = "0" * 64
    photos[2]["status"] = "failed"
    photos.append({"id": "escapeid123", "category": "dog", "file": "../outside.jpg", "status": "ok"})
    photos.append({"id": "../../etc/pw", "category": "dog", "file": "dog/id000000000.jpg", "status": "ok"})
    (src / "manifest.json").write_text(json.dumps({"schema": "colorize.dataset/1", "photos": photos}))
    out = tmp_path / "shards"
    run_prep(src, out, size=32, bins=4, augment=1, split="1,0,0", workers=1)
    manifest = read_manifest(out)
    reasons = " | ".join(f"{s['file']}: {s['reason']}" for s in manifest["skipped"])
    assert "sha256 differs" in reasons and "status 'failed'" in reasons and "escapes" in reasons
    assert "invalid photo id" in reasons and "byte cap" in reasons
    assert manifest["samples"]["train"] == 2 and manifest["source_kind"] == "manifest"


def test_cli_prep_and_its_errors(dataset, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(cli, ["prep", "--src", str(dataset), "--out", str(out), "--size", "32", "--bins", "6",
                                 "--augment", "2", "--workers", "1", "--shard-size", "64"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("prep: ") and "6 color bins" in result.output
    bad_split = runner.invoke(cli, ["prep", "--src", str(dataset), "--out", str(out), "--split", "0.5,0.5"])
    assert bad_split.exit_code == 2 and "error: --split" in bad_split.output
    missing = runner.invoke(cli, ["prep", "--src", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    with pytest.raises(UsageError):
        run_prep(dataset, out, scheduler="tcp://127.0.0.1:1", **OPTS)
    with pytest.raises(UsageError, match="--fit.*--sigma"):
        run_prep(dataset, out, **{**OPTS, "fit": "stretch", "sigma": -1.0})
    with pytest.raises(ColorizeError, match="no usable photos"):
        (tmp_path / "empty" / "cat").mkdir(parents=True)
        run_prep(tmp_path / "empty", out, **OPTS)


def test_output_inside_source_and_changed_options(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=2, categories=("a", "b"))
    out = src / "shards"  # --out inside --src: never read back as input
    run_prep(src, out, size=32, bins=4, augment=1, shard_size=2, workers=1)
    first = read_manifest(out)
    report = run_prep(src, out, size=32, bins=4, augment=1, shard_size=2, workers=1)
    assert report.rebuilt == 0 and read_manifest(out) == first and first["skipped"] == []
    # Other options: the old manifest is retired before any shard changes, and stale shards are removed.
    old_names = {e["name"] for e in first["shards"]}
    proc_out = run_prep(src, out, size=32, bins=4, augment=1, shard_size=4, workers=1)
    new_names = {e["name"] for e in read_manifest(out)["shards"]}
    assert new_names < old_names and {p.name for p in out.glob("*.npz")} == new_names | {"stats.npz"}
    assert proc_out.rebuilt == proc_out.shards

    from colorize.dataset.prep import PrepParams, _retire_other_manifest

    source = read_manifest(out)["source_manifest_sha256"]
    same = PrepParams(size=32, bins=4, augment=1, shard_size=4)
    _retire_other_manifest(out, source, same)
    assert (out / "manifest.json").exists()  # same inputs and options: kept
    _retire_other_manifest(out, source, PrepParams(size=32, bins=4, augment=1, shard_size=4, seed=1))
    assert not (out / "manifest.json").exists()  # a run with another seed starts by retiring it


def test_augmentation_randomness_comes_only_from_seed_photo_and_variant():
    rgb = photo_like(120, 80, seed=11)
    a = augment.stored_samples(rgb, 48, "pad", ["orig", "crop1"], seed=0, photo_id="p1")
    again = augment.stored_samples(rgb, 48, "pad", ["crop1", "orig"], seed=0, photo_id="p1")  # order does not matter
    other_seed = augment.stored_samples(rgb, 48, "pad", ["crop1"], seed=1, photo_id="p1")
    other_photo = augment.stored_samples(rgb, 48, "pad", ["crop1"], seed=0, photo_id="p2")
    assert all(np.array_equal(x, y) for x, y in zip(a["crop1"], again["crop1"]))
    assert not np.array_equal(a["crop1"][0], other_seed["crop1"][0])
    assert not np.array_equal(a["crop1"][0], other_photo["crop1"][0])
    # Noise: one bank per (seed, size), a field picked by (seed, photo, variant).
    bank = augment.noise_bank(0, 48)
    assert bank.shape == (3, augment.BANK_FIELDS, 48, 48) and np.array_equal(bank, augment.noise_bank(0, 48))
    assert not np.array_equal(bank, augment.noise_bank(1, 48))
    picks = {augment.bank_pick(0, f"p{i}", "noise2") for i in range(40)}
    assert len(picks) > 20 and augment.bank_pick(0, "p1", "noise2") == augment.bank_pick(0, "p1", "noise2")
    L, ab, mask = a["orig"]
    box = augment.mask_box(mask)
    noisy, nab, nbox = augment.derive("noise2", L, ab, box, bank, 5)
    region = (slice(box[0], box[2]), slice(box[1], box[3]))
    assert nab is ab and nbox == box and np.array_equal(noisy[~mask], L[~mask])
    assert np.array_equal(noisy[region], np.clip(L[region].astype(int) + bank[1, 5][region], 0, 255))
    big = augment.noise_bank(0, 600)  # the bank's side is bounded; bigger samples tile it
    assert big.shape[2] == augment.BANK_SIDE
    assert augment.derive("noise1", np.zeros((600, 600), np.uint8), np.zeros((600, 600, 2), np.int8),
                          (0, 0, 600, 600), big, 0)[0].shape == (600, 600)
    assert variants_for("train", 7) == VARIANTS
    assert variants_for("train", 3) == ("orig", "flip", "noise1")
    assert variants_for("val", 7) == variants_for("train", 0) == ("orig",)


def test_prep_refuses_to_write_into_a_dataset_folder(dataset, tmp_path):
    """--out pointing at a scraped dataset would replace its manifest.json: refused, exit 2, untouched."""
    target = tmp_path / "scraped"
    target.mkdir()
    record = json.dumps({"schema": "colorize.dataset/1", "photos": []})
    (target / "manifest.json").write_text(record)
    result = CliRunner().invoke(cli, ["prep", "--src", str(dataset), "--out", str(target), "--size", "32",
                                      "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert "another tool's manifest.json" in result.output and len(result.output.strip().splitlines()) == 1
    assert (target / "manifest.json").read_text() == record and sorted(p.name for p in target.iterdir()) == ["manifest.json"]


@pytest.mark.timeout(60)
def test_special_files_in_a_source_folder_are_skipped_not_opened(tmp_path):
    """A FIFO named x.jpg hung prep (open() waits for a writer); FIFOs and sockets are skipped with a reason."""
    import socket

    src = make_dataset(tmp_path / "raw", n_per_category=2, categories=("beach",))
    os.mkfifo(src / "beach" / "x.jpg")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "beach" / "s.jpg"))
        report = run_prep(src, tmp_path / "out", size=32, bins=4, augment=1, split="1,0,0", workers=1)
    finally:
        sock.close()
    skipped = {s["file"]: s["reason"] for s in report.skipped_list}
    assert "FIFO" in skipped["beach/x.jpg"] and "socket" in skipped["beach/s.jpg"]
    assert report.photos == 2


def test_reserved_category_folders_are_skipped_with_a_reason(tmp_path):
    src = make_dataset(tmp_path / "raw", n_per_category=2, categories=("beach", "stats"))
    report = run_prep(src, tmp_path / "out", size=32, bins=4, augment=1, split="1,0,0", workers=1)
    reasons = [s["reason"] for s in report.skipped_list if s["file"].startswith("stats/")]
    assert len(reasons) == 2 and all("reserved category name" in r for r in reasons)
    assert read_manifest(tmp_path / "out")["categories"] == ["beach"]


def test_manifest_ids_sharing_one_file_are_detected(tmp_path):
    """Two ids naming one file (same path, a hard link, or a copy) would put one photo in train and test."""
    import hashlib

    src = tmp_path / "raw"
    (src / "dog").mkdir(parents=True)
    photos = []
    for i in range(3):
        data = jpeg_bytes(photo_like(80, 60, seed=i))
        (src / "dog" / f"id{i:09d}.jpg").write_bytes(data)
        photos.append({"id": f"id{i:09d}", "category": "dog", "file": f"dog/id{i:09d}.jpg",
                       "sha256": hashlib.sha256(data).hexdigest(), "status": "ok"})
    os.link(src / "dog" / "id000000000.jpg", src / "dog" / "hardlink000.jpg")
    (src / "dog" / "copy0000000.jpg").write_bytes((src / "dog" / "id000000001.jpg").read_bytes())
    photos += [
        {"id": "samepath000", "category": "dog", "file": "dog/id000000000.jpg", "status": "ok"},
        {"id": "hardlink000", "category": "dog", "file": "dog/hardlink000.jpg", "status": "ok",
         "sha256": "f" * 64},  # lies about its content: still the same file
        {"id": "copy0000000", "category": "dog", "file": "dog/copy0000000.jpg", "status": "ok"},
        {"id": "reserved000", "category": "manifest.json", "file": "dog/id000000002.jpg", "status": "ok"},
    ]
    (src / "manifest.json").write_text(json.dumps({"schema": "colorize.dataset/1", "photos": photos}))
    report = run_prep(src, tmp_path / "out", size=32, bins=4, augment=1, split="0.5,0,0.5", workers=1)
    skipped = [(s["file"], s["reason"]) for s in read_manifest(tmp_path / "out")["skipped"]]
    assert len(skipped) == 4, skipped  # each duplicate has its own entry and reason
    reasons = dict(skipped)
    assert reasons["dog/hardlink000.jpg"] == "same file as photo id000000000"
    assert reasons["dog/copy0000000.jpg"] == "same content (sha256) as photo id000000001"
    assert sum("same file as photo id000000000" == r for f, r in skipped if f == "dog/id000000000.jpg") == 1
    assert any("reserved category name" in r for f, r in skipped if f == "dog/id000000002.jpg")
    assert report.photos == 3 and sorted(set(_photo_splits(tmp_path / "out"))) == [f"id{i:09d}" for i in range(3)]
