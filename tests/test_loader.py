"""The shard loader: exactly-once epochs across ranks and workers, equal batch counts, resume, integrity."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from test_loader_shards import make_shards

from colorize.dataset.loader import ShardDataset, iterate, make_loader
from colorize.errors import ColorizeError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    # 23 train samples in shards of 5: nothing divides evenly, so padding and partial batches are exercised.
    return make_shards(tmp_path_factory.mktemp("loader") / "shards", n_train=23, n_val=4, size=32)


def _epoch(shards, rank, world, workers, epoch=0, start=0, **kw):
    ds = ShardDataset(shards, "train", seed=7, batch_size=4, workers=workers, rank=rank, world_size=world,
                      buffer=6, **kw)
    ds.set_epoch(epoch, start)
    return ds, list(iterate(make_loader(ds)))


def test_every_sample_once_per_epoch_across_2_ranks_x_2_workers(shards):
    seen: Counter[int] = Counter()
    counts = []
    for rank in range(2):
        ds, batches = _epoch(shards, rank, 2, workers=2)
        counts.append(len(batches))
        assert len(batches) == len(ds)
        for b in batches:
            assert b["L"].dtype == torch.uint8 and b["bins"].dtype == torch.int16 and b["mask"].dtype == torch.bool
            assert b["L"].shape[1:] == (32, 32)
            seen.update(b["index"][b["valid"]].tolist())
            assert not b["mask"][~b["valid"]].any()  # padding copies never count
    assert counts[0] == counts[1]
    assert sorted(seen) == list(range(23)) and set(seen.values()) == {1}


def test_order_depends_on_seed_and_epoch_only(shards):
    def order(epoch, workers):
        _, batches = _epoch(shards, 0, 1, workers=workers, epoch=epoch)
        return [i for b in batches for i in b["index"].tolist()]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(1, 0)
    assert sorted(order(1, 2)) == list(range(23))


def test_mid_epoch_start_yields_exactly_the_rest_of_the_plan(shards):
    _, full = _epoch(shards, 0, 1, workers=2, epoch=3)
    _, rest = _epoch(shards, 0, 1, workers=2, epoch=3, start=3)
    assert [b["index"].tolist() for b in rest] == [b["index"].tolist() for b in full[3:]]


def test_bins_come_from_the_stats_lookup_table(shards):
    ds, batches = _epoch(shards, 0, 1, workers=0, with_ab=True)
    b = batches[0]
    ab = b["ab"].numpy().astype(np.int16) + 128
    assert np.array_equal(b["bins"].numpy(), ds.stats.ab_lut[ab[..., 0], ab[..., 1]])
    # Gray images are flagged so the loss can ignore them.
    for batch in batches:
        gray = ~(np.abs(batch["ab"].numpy().astype(int)) > 5).any(axis=(1, 2, 3))
        assert np.array_equal(batch["colorful"].numpy() | ~batch["valid"].numpy(), ~gray | ~batch["valid"].numpy())


def test_category_and_photo_id_filters(shards):
    _, batches = _epoch(shards, 0, 1, workers=0, categories=["beach"])
    cats = [c for b in batches for c, v in zip(b["category"], b["valid"]) if v]
    assert cats and set(cats) == {"beach"}
    _, batches = _epoch(shards, 0, 1, workers=0, photo_ids=["train000000002"[-11:]])
    assert sum(int(b["valid"].sum()) for b in batches) == 1
    with pytest.raises(ColorizeError, match="no samples"):
        ShardDataset(shards, "train", categories=["nowhere"])


def test_tampered_shard_is_refused_with_one_line(tmp_path):
    root = make_shards(tmp_path / "s", n_train=5, n_val=0, size=32)
    path = root / "train-00000.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the L array: still a valid .npz, but not the recorded bytes
    path.write_bytes(bytes(data))
    ds = ShardDataset(root, "train", batch_size=2, workers=1)
    with pytest.raises(ColorizeError, match="sha256") as err:
        list(iterate(make_loader(ds)))
    assert "\n" not in err.value.line() and "Traceback" not in err.value.line()


def test_resume_state_must_match_the_plan(shards):
    ds = ShardDataset(shards, "train", batch_size=4, workers=2)
    ds.check_resume(ds.state(0, 0).to_dict() | {"workers": 0})  # at an epoch boundary anything goes
    with pytest.raises(ColorizeError, match="workers"):
        ds.check_resume(ds.state(0, 2).to_dict() | {"workers": 0})


def test_persistent_workers_follow_set_epoch(shards):
    ds = ShardDataset(shards, "train", seed=7, batch_size=4, workers=2, buffer=6)
    loader = make_loader(ds)
    seen = []
    for epoch, start in ((0, 0), (1, 0), (1, 2)):
        ds.set_epoch(epoch, start)
        seen.append([b["index"].tolist() for b in iterate(loader)])
    for (epoch, start), got in zip(((0, 0), (1, 0), (1, 2)), seen):
        _, fresh = _epoch(shards, 0, 1, workers=2, epoch=epoch, start=start)
        assert got == [b["index"].tolist() for b in fresh]
    assert seen[0] != seen[1] and seen[2] == seen[1][2:]


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """Prep's shards with every variant: flip and noise samples are made by the loader from stored rows."""
    from imagedata import make_dataset

    from colorize.dataset.prep import run_prep

    base = tmp_path_factory.mktemp("augmented")
    out = base / "shards"
    run_prep(make_dataset(base / "raw", n_per_category=3), out, size=32, bins=8, augment=7, split="1,0,0",
             shard_size=8, workers=1)
    return out


def _contents(batches) -> dict[int, tuple[bytes, bytes, bytes, int]]:
    """Sample index -> (L, bins, mask bytes, colorful) over the real samples of some batches."""
    return {int(i): (b["L"][k].numpy().tobytes(), b["bins"][k].numpy().tobytes(), b["mask"][k].numpy().tobytes(),
                     int(b["colorful"][k]))
            for b in batches for k, (i, v) in enumerate(zip(b["index"], b["valid"])) if v}


def test_derived_samples_are_the_same_for_any_worker_count_and_on_resume(augmented):
    def epoch(workers, epoch=1, start=0):
        ds = ShardDataset(augmented, "train", seed=5, batch_size=5, workers=workers)
        ds.set_epoch(epoch, start)
        return ds, list(iterate(make_loader(ds)))

    ds, full = epoch(0)
    assert ds.bank is not None and ds.n_samples == 9 * 7  # 9 photos x 7 variants, 3 of them stored
    base = _contents(full)
    assert sorted(base) == list(range(ds.n_samples))
    _, two = epoch(2)
    assert _contents(two) == base  # the same bytes whichever worker made a sample
    _, again = epoch(0)
    assert [b["index"].tolist() for b in again] == [b["index"].tolist() for b in full]
    _, rest = epoch(0, start=4)  # mid-epoch resume: exactly the rest of the plan, the same samples
    assert [b["index"].tolist() for b in rest] == [b["index"].tolist() for b in full[4:]]
    assert all(base[i] == c for i, c in _contents(rest).items())
    _, later = epoch(0, epoch=2)  # another epoch: another order, the same samples (prep's, fixed)
    assert _contents(later) == base
    by_variant = {}
    for key in range(ds.n_samples):
        s = ds.sample(key, 0)
        by_variant.setdefault(s.photo_id, {})[s.variant] = s
    photo = next(iter(by_variant.values()))
    orig, flip, noisy = photo["orig"], photo["flip"], photo["noise3"]
    assert np.array_equal(flip.L, orig.L[:, ::-1]) and np.array_equal(flip.ab, orig.ab[:, ::-1])
    assert np.array_equal(noisy.ab, orig.ab) and not np.array_equal(noisy.L, orig.L)
    assert flip.colorful == noisy.colorful == orig.colorful
