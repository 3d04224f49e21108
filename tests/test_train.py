"""The training loop: learning, exact resume (epoch and mid-epoch), Ctrl-C, time budget, outputs, CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_loader_shards import make_shards

from colorize.cli import cli
from colorize.errors import ColorizeError
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.net.checkpoint import load_checkpoint
from colorize.models.train.ddp import weights_digest
from colorize.models.train.loop import TrainConfig, train
from colorize.models.train.schedule import FINAL_LR_FRAC

# 16 train samples, batch 4: 4 steps per epoch; 2 workers so resume is checked through real worker processes.
SMALL = dict(epochs=2, batch_size=4, width=8, workers=2, device="cpu", lr=3e-3, seed=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("train") / "shards", n_train=16, n_val=4, size=64)


@pytest.fixture(scope="module")
def straight(shards, tmp_path_factory):
    """Two epochs without interruption: the reference every resumed run must match bit for bit."""
    out = tmp_path_factory.mktemp("straight") / "run"
    result = train(TrainConfig(shards, out, **SMALL))
    return out, result


def _weights(path):
    return load_checkpoint(path)["model"]


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_overfits_a_tiny_shard_set(tmp_path):
    root = make_shards(tmp_path / "s", n_train=8, n_val=0, per_shard=8, jitter=0)
    losses: list[float] = []
    train(TrainConfig(root, tmp_path / "run", epochs=25, batch_size=8, width=8, workers=0, device="cpu",
                      lr=3e-2, warmup_frac=0.0, hints=False, on_step=lambda step, loss: losses.append(float(loss))))
    assert len(losses) == 25
    assert np.mean(losses[-3:]) < 0.5 * losses[0]


def test_run_folder_outputs(straight):
    out, result = straight
    assert result.epochs_done == 2 and result.steps == 8 and result.stopped == "done"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "val_loss", "val_psnr", "val_colorfulness", "val_auc", "lr"):
        assert all(np.isfinite(r[key]) for r in rows), key
    for name in ("samples/epoch-001.png", "samples/epoch-002.png", "loss.png", "best.pt", "last.pt"):
        assert (out / name).stat().st_size > 0, name
    from PIL import Image

    grid = Image.open(out / "samples/epoch-002.png")
    assert grid.size[0] == 3 * 64 + 4 * 2  # gray | predicted | truth
    record = json.loads((out / "train-run.json").read_text())
    assert record["command"] == "train" and record["counts"]["steps"] == 8
    # epoch 1 ends at 0.6x the peak lr, epoch 2 at 0.01x: best.pt is the annealed epoch 2 whatever val says
    assert record["best"]["epoch"] == 2 and record["best"]["annealed"] is True
    assert load_checkpoint(out / "best.pt")["epoch"] == 2
    ck = load_checkpoint(out / "last.pt")
    assert ck["epoch"] == 2 and ck["loader_state"]["batches_done"] == 0 and len(ck["shards_sha256"]) == 64
    for key in ("optimizer", "scheduler", "scaler", "rng", "centers", "ab_lut", "weights", "prior", "best_val"):
        assert key in ck
    col = load_colorizer(out / "best.pt", "cpu")  # prediction needs nothing but the checkpoint
    assert col.size == 64 and col.probs(torch.zeros(1, 64, 64, dtype=torch.uint8)).shape == (1, col.n_bins, 64, 64)
    assert "summary" not in result.summary_line() and "2 epochs" in result.summary_line()


def test_one_epoch_then_resume_matches_two_straight_epochs(straight, shards, tmp_path):
    out = tmp_path / "run"
    first = train(TrainConfig(shards, out, max_steps=4, **SMALL))  # stops at the end of epoch 1
    assert first.epochs_done == 1 and first.stopped == "max steps"
    second = train(TrainConfig(shards, out, resume=True, **SMALL))
    assert second.epochs_done == 2 and second.steps == 8
    _assert_same_weights(straight[0] / "last.pt", out / "last.pt")
    assert (out / "metrics.jsonl").read_bytes() == (straight[0] / "metrics.jsonl").read_bytes()


def test_planned_steps_end_annealed_inside_an_epoch_and_do_not_depend_on_the_clock(straight, shards, tmp_path):
    """--steps 6 with 4 steps per epoch: the plan ends in epoch 2, validated, saved, annealed, "done"; the
    same run again (the clock differs) gives the same weights."""
    runs = []
    for name in ("a", "b"):
        result = train(TrainConfig(shards, tmp_path / name, steps=6, **{**SMALL, "epochs": 1}))
        assert (result.steps, result.epochs_done, result.stopped) == (6, 2, "done")
        runs.append(tmp_path / name)
    record = json.loads((runs[0] / "train-run.json").read_text())
    assert record["plan"]["final"]["basis"] == "steps" and record["plan"]["final"]["total_steps"] == 6
    assert record["best"] == {**record["best"], "epoch": 2, "annealed": True}
    _assert_same_weights(runs[0] / "last.pt", runs[1] / "last.pt")
    assert (runs[0] / "metrics.jsonl").read_bytes() == (runs[1] / "metrics.jsonl").read_bytes()


def test_mid_epoch_checkpoint_resumes_exactly(straight, shards, tmp_path):
    out = tmp_path / "run"
    stopped = train(TrainConfig(shards, out, max_steps=6, **SMALL))  # batch 2 of epoch 2
    ck = load_checkpoint(out / "last.pt")
    assert stopped.stopped == "max steps" and (ck["epoch"], ck["loader_state"]["batches_done"]) == (1, 2)
    assert ck["loader_state"]["samples_done"] == 8
    train(TrainConfig(shards, out, resume=True, **SMALL))
    _assert_same_weights(straight[0] / "last.pt", out / "last.pt")
    assert (out / "metrics.jsonl").read_bytes() == (straight[0] / "metrics.jsonl").read_bytes()


def test_ctrl_c_saves_last_pt_first_and_resume_finishes_identically(straight, shards, tmp_path):
    out = tmp_path / "run"

    def press_ctrl_c(step, loss):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(shards, out, on_step=press_ctrl_c, **SMALL))
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 3 and ck["loader_state"]["batches_done"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert json.loads((out / "train-run.json").read_text())["stopped"] == "interrupt"
    train(TrainConfig(shards, out, resume=True, **SMALL))
    _assert_same_weights(straight[0] / "last.pt", out / "last.pt")


def test_time_budget_stops_cleanly_and_can_resume(shards, tmp_path):
    out = tmp_path / "run"
    result = train(TrainConfig(shards, out, max_minutes=1e-9, **SMALL))
    assert result.stopped == "time budget" and result.steps == 1
    assert "--resume continues" in result.summary_line()
    assert load_checkpoint(out / "last.pt")["step"] == 1


def test_a_budget_that_fits_the_epochs_is_a_plan_that_ends_annealed_and_is_recorded(shards, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="colorize.models.train.loop"):
        result = train(TrainConfig(shards, out, max_minutes=60, **SMALL))
    assert result.stopped == "done" and result.steps == 8 and result.epochs_done == 2
    plan = json.loads((out / "train-run.json").read_text())["plan"]
    assert plan["final"]["basis"] == "epochs" and plan["final"]["total_steps"] == 8
    assert plan["final"]["budget_s"] == 3600 and plan["final"]["step_s"] is not None  # measured, then planned
    assert any(r.getMessage().startswith("plan: ") for r in caplog.records)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == pytest.approx(SMALL["lr"] * FINAL_LR_FRAC)  # annealed at the end
    assert "val_ab_offset_a" in rows[-1] and "val_ab_offset_b" in rows[-1]  # the cast, every epoch


def test_reruns_never_overwrite_and_resume_checks_its_inputs(straight, shards, tmp_path):
    with pytest.raises(ColorizeError, match="already holds a run"):
        train(TrainConfig(shards, straight[0], **SMALL))
    with pytest.raises(ColorizeError, match="nothing to resume"):
        train(TrainConfig(shards, tmp_path / "new", resume=True, **SMALL))
    with pytest.raises(ColorizeError, match="width"):
        train(TrainConfig(shards, straight[0], resume=True, **{**SMALL, "width": 4}))
    other = make_shards(tmp_path / "other", n_train=16, n_val=4, size=64, seed=5)
    with pytest.raises(ColorizeError, match="shards changed"):
        train(TrainConfig(other, straight[0], resume=True, **SMALL))


def test_specialist_on_a_category_with_given_weights(shards, tmp_path):
    n_bins = int(np.load(shards / "stats.npz")["centers"].shape[0])
    weights = np.linspace(0.5, 2.0, n_bins)
    seen: list[int] = []
    result = train(TrainConfig(shards, tmp_path / "beach", categories=["beach"], weights=weights,
                               compile_model=True, compile_backend="eager",
                               on_step=lambda step, loss: seen.append(step), **{**SMALL, "epochs": 1}))
    assert result.steps == len(seen) == 2  # 6 of 16 samples are beaches: 2 batches on 2 workers
    ck = load_checkpoint(tmp_path / "beach" / "last.pt")
    assert torch.allclose(ck["weights"], torch.as_tensor(weights, dtype=torch.float32))
    assert ck["config"]["categories"] == ["beach"]
    assert not any(k.startswith("_orig_mod") for k in ck["model"])  # compiled, saved as the plain model
    with pytest.raises(ColorizeError, match="one per bin"):
        train(TrainConfig(shards, tmp_path / "bad", weights=[1.0, 2.0], **SMALL))


def test_cli_train_and_its_errors(shards, tmp_path):
    runner = CliRunner()
    args = ["train", "--shards", str(shards), "--out", str(tmp_path / "cli"), "--epochs", "1", "--batch-size", "8",
            "--width", "8", "--workers", "0", "--device", "cpu", "--soft-targets", "3"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "trained 1 epoch /" in result.output and (tmp_path / "cli" / "best.pt").is_file()
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "error: " in again.output and "--resume" in again.output
    missing = runner.invoke(cli, ["train", "--shards", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "colorize prep" in missing.output
    if not torch.cuda.is_available():
        no_gpu = runner.invoke(cli, args[:3] + ["--out", str(tmp_path / "gpu"), "--device", "cuda"])
        assert no_gpu.exit_code == 1 and "no CUDA GPU" in no_gpu.output
    resumed = runner.invoke(cli, args + ["--resume", "--epochs", "2"])  # a finished run can be extended
    assert resumed.exit_code == 0, resumed.output
    assert "trained 2 epochs" in resumed.output


def test_two_process_gloo_ddp_through_torchrun_ends_with_identical_weights(shards, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "colorize",
           "train", "--shards", str(shards), "--out", str(out), "--epochs", "1", "--batch-size", "4",
           "--width", "8", "--workers", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 1: 2 steps done" in proc.stdout  # 16 samples / 2 ranks / batch 4
    record = json.loads((out / "train-run.json").read_text())
    assert record["world_size"] == 2
    digests = record["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert digests[0] == weights_digest(load_checkpoint(out / "last.pt")["model"])
    assert load_checkpoint(out / "last.pt")["config"]["world_size"] == 2


def test_resume_from_a_damaged_or_pre_hints_last_pt_is_one_line_and_leaves_it(straight, shards, tmp_path):
    import shutil

    from colorize.models.net.checkpoint import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(straight[0], run)
    ck = load_checkpoint(run / "last.pt")
    assert ck["config"]["hint_channels"] == 3
    state = ck["optimizer"]["state"]
    key = next(iter(state))
    state[key]["exp_avg"] = torch.zeros(3, 1, 2)  # a moment that fits no parameter: fails in the step
    save_checkpoint(run / "last.pt", ck)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ColorizeError, match=r"cannot resume from .*last.pt: its training state is damaged"):
        train(TrainConfig(shards, run, resume=True, **{**SMALL, "epochs": 3}))
    assert (run / "last.pt").read_bytes() == before
    old = load_checkpoint(straight[0] / "last.pt")
    del old["config"]["hint_channels"]
    save_checkpoint(run / "last.pt", old)
    with pytest.raises(ColorizeError, match="without colour hints"):
        train(TrainConfig(shards, run, resume=True, **{**SMALL, "epochs": 3}))


def test_validation_scores_what_predict_gives_at_the_shard_size(straight, shards):
    """best.pt is chosen on the colors users get: validation's PSNR is that of predict's array path at the
    shard size (`Colorizer.probs`: the mirror averaged; then decoding and the gamut fit). A decisive head
    (weights x40) makes the mirror and the gamut fit matter: the unmirrored, clipped decode differs."""
    from colorize.dataset.color import stored_to_rgb
    from colorize.dataset.loader import ShardDataset, iterate, make_loader
    from colorize.models.net import metrics
    from colorize.models.net.annealed import decode, softmax_probs
    from colorize.models.net.colors import compose_at_size, decode_ab
    from colorize.models.net.loss import RebalancedLoss
    from colorize.models.net.unet import l_to_input
    from colorize.models.train.val_loop import validate

    out, _ = straight
    col = load_colorizer(out / "best.pt", "cpu")
    with torch.no_grad():
        col.model.head.weight.mul_(40.0)
    ds = ShardDataset(shards, "val", shuffle=False, batch_size=4, with_ab=True)
    val = validate(col.model, make_loader(ds), RebalancedLoss(col.weights), col.centers, 0.38,
                   torch.device("cpu"), None)
    ds.set_epoch(0)
    ours, differ = [], False
    for b in iterate(make_loader(ds)):
        L, truth = b["L"].numpy(), stored_to_rgb(b["L"].numpy(), b["ab"].numpy())
        pred = compose_at_size(L, decode_ab(col.probs(b["L"]), col.centers, 0.38))
        with torch.no_grad():
            raw = decode(softmax_probs(col.model(l_to_input(b["L"]))), col.centers, 0.38).permute(0, 2, 3, 1)
        old = stored_to_rgb(L, raw.numpy())
        differ |= not np.array_equal(pred, old)
        for i in np.flatnonzero(b["valid"].numpy()):
            ours.append(metrics.psnr(pred[i], truth[i], b["mask"].numpy()[i]))
    assert val.images == len(ours) > 0
    assert val.psnr == pytest.approx(float(np.mean(ours)), abs=1e-6)
    assert differ  # the unmirrored, unfitted decode gives other colors: validation is not scoring that one
