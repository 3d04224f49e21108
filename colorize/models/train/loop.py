"""`colorize train`: the training loop — GPU-ready, resumable to the batch, multi-GPU through torchrun.

`train(TrainConfig(...))` is the programmatic entry (routing trains specialists with it: `categories` /
`photo_ids` restrict the data, `weights` / `prior` replace the shard statistics); `run_train(...)` is the
thin CLI wrapper. Run folder: last.pt, best.pt, metrics.jsonl, loss.png, samples/epoch-NNN.png,
train-run.json. Ctrl-C (or SIGTERM) and --max-minutes save last.pt at the current batch first;
`--resume` continues from it exactly (same weights as an uninterrupted run on CPU).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from colorize import progress
from colorize.dataset.hints import HINT_CHANNELS
from colorize.dataset.loader import ShardDataset, iterate, make_loader
from colorize.dataset.shards import MANIFEST, list_shards, read_manifest
from colorize.errors import ColorizeError
from colorize.io import atomic_write_text, remove_stale_temps, sha256_file, write_run_record
from colorize.models.net.checkpoint import (
    CHECKPOINT_SCHEMA,
    hint_channels_of,
    hint_spread_of,
    load_checkpoint,
    model_state,
    save_checkpoint,
)
from colorize.models.net.loss import RebalancedLoss, hint_loss
from colorize.models.net.metrics import cast_warning
from colorize.models.net.runtime import amp_dtype, autocast
from colorize.models.net.unet import ColorUNet, count_parameters, l_to_input
from colorize.models.train import ddp
from colorize.models.train.config import RunState, TrainConfig, TrainResult
from colorize.models.train.plots import loss_curve
from colorize.models.train.schedule import BudgetPlanner, better_checkpoint, is_annealed, lr_factor
from colorize.models.train.val_loop import validate, write_sample_grid

log = logging.getLogger(__name__)

# _train_epoch's word for "the plan ended inside the epoch, which is validated and saved": the run is done.

__all__ = ["TrainConfig", "TrainResult", "run_train", "train"]


class _StopRequest:
    """SIGINT/SIGTERM set a flag so the loop can save a consistent checkpoint; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a DataLoader worker inherited the handler: the main process decides
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this batch and saving last.pt (press Ctrl-C again to abort)")

    def __enter__(self) -> _StopRequest:
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _read_history(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """metrics.jsonl rows of epochs <= upto_epoch (a crash after a row but before its checkpoint is undone)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("epoch", 0) <= upto_epoch]


def _stat_tensor(values: Sequence[float] | np.ndarray, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if t.shape != (n,) or not torch.isfinite(t).all() or (t < 0).any():
        raise ColorizeError(f"{name} must be {n} finite non-negative numbers (one per bin)",
                            "pass one value per color bin of the shards' stats.npz")
    return t


def train(cfg: TrainConfig) -> TrainResult:
    """Train a ColorUNet as configured (joins a DDP group when launched by torchrun)."""
    info = ddp.setup(cfg.device)
    try:
        return _Trainer(cfg, info).run()
    finally:
        ddp.teardown(info)


class _Trainer:
    def __init__(self, cfg: TrainConfig, info: ddp.DistInfo) -> None:
        self.cfg, self.info, self.device = cfg, info, info.device
        self.t0 = time.monotonic()
        self.out = Path(cfg.out)
        shards = Path(cfg.shards)
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.out)
        if not (shards / MANIFEST).is_file():
            raise ColorizeError(f"no shards at {shards}", f"run `colorize prep --out {shards}` first")
        self.shards_sha256 = sha256_file(shards / MANIFEST)
        self.data_source = read_manifest(shards).get("source")  # where prep's photos came from (predict says it)
        common = dict(seed=cfg.seed, batch_size=cfg.batch_size, categories=cfg.categories,
                      photo_ids=cfg.photo_ids)
        self.train_ds = ShardDataset(shards, "train", shuffle=True, buffer=cfg.buffer, workers=cfg.workers,
                                     rank=info.rank, world_size=info.world_size, hints=cfg.hints, **common)
        self.val_ds = None
        if info.is_main and list_shards(shards, "val"):  # only rank 0 validates
            try:
                self.val_ds = ShardDataset(shards, "val", shuffle=False, workers=min(cfg.workers, 1), rank=0,
                                           world_size=1, limit=cfg.val_samples, with_ab=True, **common)
            except ColorizeError:  # the filter left no val samples: select best.pt by train loss
                log.warning("no val samples for this selection; best.pt follows the train loss")
        pin = info.device.type == "cuda"
        self.train_loader = make_loader(self.train_ds, pin_memory=pin)  # made once: workers persist
        self.val_loader = make_loader(self.val_ds, pin_memory=pin) if self.val_ds is not None else None
        stats = self.train_ds.stats
        n = stats.n_bins
        self.centers = torch.as_tensor(stats.centers, dtype=torch.float32)
        self.weights = _stat_tensor(cfg.weights if cfg.weights is not None else stats.weights, n, "weights")
        self.prior = _stat_tensor(cfg.prior if cfg.prior is not None else stats.prior, n, "prior")
        self.ab_lut = torch.as_tensor(stats.ab_lut.astype(np.int16))
        self.size = int(self.train_ds.size or 0)

        torch.manual_seed(cfg.seed)
        self.model = ColorUNet(n, cfg.width, HINT_CHANNELS if cfg.hints else 0)
        self.model.init_hint_head(self.centers)
        self.model = self.model.to(self.device)
        self.parameters = count_parameters(self.model)
        log.info("ColorUNet: %d bins, width %d, %d parameters (%.2f M)", n, cfg.width, self.parameters,
                 self.parameters / 1e6)
        self.amp = amp_dtype(self.device, cfg.amp)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.criterion = RebalancedLoss(self.weights, self.centers, cfg.soft_targets).to(self.device)
        self.centers_dev = self.centers.to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        budget = cfg.max_minutes * 60 if cfg.max_minutes is not None else None
        self.planner = BudgetPlanner(len(self.train_ds), cfg.epochs, cfg.warmup_frac, budget, cfg.steps)
        # reads the planner's current plan at every step, so a re-plan reshapes the rest of the schedule
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(step, self.planner.plan))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.epoch, self.batches_done, self.step = 0, 0, 0
        self.loss_sum, self.loss_batches = 0.0, 0
        self.best_val, self.best_annealed, self.best_epoch = float("inf"), False, 0
        self.history: list[dict[str, Any]] = []
        self._restore_or_refuse()

        self.net: torch.nn.Module = self.model
        if info.enabled:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        if cfg.compile_model:
            self.net = torch.compile(self.net, backend=cfg.compile_backend)

    # -------------------------------------------------------------------------------- checkpoints
    def _payload(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        config = self.cfg.record() | {"size": self.size, "n_bins": int(self.centers.shape[0]),
                                      "world_size": self.info.world_size,
                                      "hint_channels": self.model.hint_channels,
                                      "hint_spread": self.model.hint_spread,
                                      "data_source": self.data_source}
        return {
            "schema": CHECKPOINT_SCHEMA, "model": model_state(self.model), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng,
            "loader_state": self.train_ds.state(self.epoch, self.batches_done).to_dict()
            | {"loss_sum": self.loss_sum, "loss_batches": self.loss_batches},
            "config": config, "centers": self.centers, "ab_lut": self.ab_lut, "weights": self.weights,
            "prior": self.prior, "shards_sha256": self.shards_sha256, "epoch": self.epoch, "step": self.step,
            "best_val": self.best_val, "best_annealed": self.best_annealed, "best_epoch": self.best_epoch,
        }

    def _save(self, name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = payload or self._payload()
        if self.info.is_main:
            save_checkpoint(self.out / name, payload)
        return payload

    def _restore_or_refuse(self) -> None:
        last = self.out / "last.pt"
        if not self.cfg.resume:
            if last.exists():
                raise ColorizeError(f"{self.out} already holds a run (last.pt)",
                                    "pass --resume to continue it, or choose another --out")
            return
        if not last.exists():
            raise ColorizeError(f"nothing to resume: {last} does not exist", "run once without --resume")
        ck = load_checkpoint(last, map_location=self.device)
        if ck.get("shards_sha256") != self.shards_sha256:
            raise ColorizeError("the shards changed since last.pt was written (manifest sha256 differs)",
                                "resume with the same --shards, or start a new run with another --out")
        old = ck["config"]
        if old.get("width") != self.cfg.width or old.get("n_bins") != int(self.centers.shape[0]):
            raise ColorizeError(f"last.pt is a width-{old.get('width')} model; this run asks for "
                                f"width {self.cfg.width}", "resume with the same --width")
        if hint_channels_of(old) != self.model.hint_channels or hint_spread_of(old) != self.model.hint_spread:
            raise ColorizeError(f"{last} is from a version of colorize train without colour hints",
                                "start a new run with another --out (its best.pt still predicts)")
        self.train_ds.check_resume(ck["loader_state"])
        self._load_states(last, ck)
        state = ck["loader_state"]
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
        self.loss_sum, self.loss_batches = float(state["loss_sum"]), int(state["loss_batches"])
        self.step, self.best_val = int(ck["step"]), float(ck["best_val"])
        self.best_annealed, self.best_epoch = bool(ck.get("best_annealed", False)), int(ck.get("best_epoch", 0))
        self.history = _read_history(self.out / "metrics.jsonl", self.epoch)
        log.info("resuming at epoch %d, batch %d (step %d)", self.epoch + 1, self.batches_done, self.step)

    def _load_states(self, last: Path, ck: dict[str, Any]) -> None:
        """Weights, optimizer, scheduler, scaler and RNG from last.pt; a damaged one is one error line.

        Adam's moments are checked against their parameters here: a tensor of the wrong shape loads
        without complaint and only fails inside the first step, as a traceback.
        """
        try:
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            for p, st in ((p, self.opt.state.get(p, {})) for g in self.opt.param_groups for p in g["params"]):
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in st and (st[key].shape != p.shape or not torch.isfinite(st[key]).all()):
                        raise ValueError(f"optimizer {key} of shape {list(st[key].shape)} for a parameter "
                                         f"of shape {list(p.shape)}")
            self.sched.load_state_dict(ck["scheduler"])  # the lambda is not saved: this run's plan (--epochs may grow)
            self.scaler.load_state_dict(ck["scaler"])
            torch.set_rng_state(ck["rng"]["torch"].cpu())
            if "cuda" in ck["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(ck["rng"]["cuda"].cpu(), self.device)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ColorizeError(f"cannot resume from {last}: its training state is damaged ({str(exc)[:120]})",
                                "start a new run with another --out (best.pt may still be usable)") from exc

    # ------------------------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        cfg, images, train_s = self.cfg, 0, 0.0
        stopped = RunState.DONE
        self.first_step = self.step + 1
        if self.info.is_main:
            log.info("plan: %s", self.planner.plan.line())
        with _StopRequest() as stop:
            while self.step < self.planner.plan.total_steps and stopped is RunState.DONE:
                t_epoch = time.monotonic()
                n_img, stopped, complete = self._train_epoch(stop)
                images += n_img
                train_s += time.monotonic() - t_epoch
                if complete:  # the one place an epoch closes: validate, save, record
                    self._end_epoch()
        ddp.sync_buffers(self.info, self.model)
        digests = ddp.gather_strings(self.info, ddp.weights_digest(model_state(self.model)))
        seconds = time.monotonic() - self.t0
        result = TrainResult(self.out, self.epoch, self.step, self.best_val, self.parameters, stopped, seconds,
                             images * self.info.world_size / train_s if train_s else 0.0, self.info.rank)
        if self.info.is_main:
            write_run_record(self.out / "train-run.json", "train", cfg.record(),
                             counts={"epochs_done": self.epoch, "steps": self.step, "parameters": self.parameters,
                                     "train_samples": self.train_ds.n_samples,
                                     "val_samples": self.val_ds.n_samples if self.val_ds else 0},
                             timings={"total": seconds, "train": train_s},
                             device=str(self.device), world_size=self.info.world_size, stopped=stopped,
                             images_per_s=round(result.images_per_s, 2), best_val=self.best_val,
                             best={"epoch": self.best_epoch, "val": self.best_val, "annealed": self.best_annealed},
                             amp=str(self.amp) if self.amp else None, rank_weights_sha256=digests,
                             plan=self.planner.record())
            self._warn_cast()
        if stopped is RunState.INTERRUPT:  # last.pt and the run record are written: now let the CLI say so
            raise KeyboardInterrupt
        return result

    def _warn_cast(self) -> None:
        """A warning line when the last validation shows a color cast over the whole picture."""
        rows = [r for r in self.history if r.get("val_ab_offset_a") is not None]
        if rows:
            line = cast_warning(rows[-1]["val_ab_offset_a"], rows[-1]["val_ab_offset_b"], "the model (on val)")
            if line:
                log.warning("%s — try more or more varied photos, or a higher prep --lambda", line)

    def _observe_step(self) -> None:
        """Feed the step to the budget planner (clock averaged over ranks when it is read)."""
        if not self.planner.wants_time(self.step, self.first_step):
            return
        now = ddp.mean_over_ranks(self.info, time.monotonic() - self.t0, 1.0)
        new = self.planner.step(self.step, now, self.first_step)
        if new is not None and self.info.is_main:
            log.info("plan: %s", new.line())

    def _stop_reason(self, stop: _StopRequest) -> RunState | None:
        over_time = self.cfg.max_minutes is not None and time.monotonic() - self.t0 > self.cfg.max_minutes * 60
        over_steps = self.cfg.max_steps is not None and self.step >= self.cfg.max_steps
        flags = ddp.any_rank(self.info, [stop.requested, over_time, over_steps])
        reasons = (RunState.INTERRUPT, RunState.TIME_BUDGET, RunState.MAX_STEPS)
        return next((r for r, f in zip(reasons, flags) if f), None)

    def _train_epoch(self, stop: _StopRequest) -> tuple[int, RunState, bool]:
        """Batches of one epoch from where it stands -> (images, run state, whether the epoch is complete and
        must be closed). Complete: its last batch ran, or the plan ended inside it. A stop inside it saves
        last.pt and leaves the epoch open, for --resume to finish."""
        cfg, dev = self.cfg, self.device
        self.train_ds.set_epoch(self.epoch, self.batches_done)
        self.model.train()
        bar = progress.progress(total=len(self.train_ds), initial=self.batches_done, unit="batch",
                                desc=f"epoch {self.epoch + 1}/{math.ceil(self.planner.plan.epochs)}")
        images, t_start = 0, time.monotonic()
        # float64 (where the device has it): a resumed epoch folds two partial sums, which must round to
        # the same train_loss as one straight sum; float32 sums of the larger hint-weighted loss did not.
        loss_acc = torch.zeros((), device=dev, dtype=torch.float32 if dev.type == "mps" else torch.float64)
        try:
            for batch in iterate(self.train_loader):
                L = batch["L"].to(dev, non_blocking=True)
                bins = batch["bins"].to(dev, non_blocking=True)
                mask = batch["mask"].to(dev, non_blocking=True)
                colorful = batch["colorful"].to(dev, non_blocking=True)
                hints = batch["hints"].to(dev, non_blocking=True) if cfg.hints else None
                x = l_to_input(L)
                if dev.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                    if hints is not None:
                        hints = hints.contiguous(memory_format=torch.channels_last)
                with autocast(dev, self.amp):
                    if hints is None:
                        logits = self.net(x)
                        loss = self.criterion(logits, bins, mask, colorful)
                    else:  # one trunk pass, both outputs scored: automatic colours stay as good as without hints
                        auto, logits = self.net(x, hints, pair=True)
                        loss = self.criterion(auto, bins, mask, colorful) + self.criterion(logits, bins, mask, colorful)
                        if cfg.hint_weight:
                            loss = loss + cfg.hint_weight * hint_loss(logits, hints, self.centers_dev, cfg.temperature)
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.sched.step()
                loss_acc += loss.detach()
                self.batches_done += 1
                self.step += 1
                images += int(L.shape[0])
                bar.update(1)
                if self.step % 20 == 0 and bar.disable is False:
                    bar.set_postfix(loss=f"{float(loss):.3f}",
                                    img_s=f"{images / max(1e-9, time.monotonic() - t_start):.0f}")
                if cfg.on_step is not None:
                    cfg.on_step(self.step, loss.detach())
                self._observe_step()
                reason = self._stop_reason(stop)
                if reason is None and self.step >= self.planner.plan.total_steps \
                        and self.batches_done < len(self.train_ds):  # the plan ends inside this epoch
                    self._fold_loss(loss_acc)
                    return images, RunState.DONE, True
                if reason and self.batches_done < len(self.train_ds):
                    self._fold_loss(loss_acc)
                    self._save("last.pt")
                    log.warning("stopped (%s) at epoch %d, batch %d; saved %s (continue with --resume)",
                                reason.value, self.epoch + 1, self.batches_done, self.out / "last.pt")
                    return images, reason, False
                if reason:  # the epoch's last batch: the epoch is complete, then stop
                    self._fold_loss(loss_acc)
                    return images, reason, True
        finally:
            bar.close()
        self._fold_loss(loss_acc)
        return images, RunState.DONE, True

    def _fold_loss(self, loss_acc: torch.Tensor) -> None:
        """Move the on-device loss sum to the host (one sync) so a checkpoint can carry it."""
        self.loss_sum += float(loss_acc)
        self.loss_batches = self.batches_done
        loss_acc.zero_()

    def _end_epoch(self) -> None:
        """Val, metrics.jsonl, pictures and checkpoints for the epoch that just finished (rank 0 writes);
        the time they took goes to the budget planner."""
        t_end = time.monotonic()
        self._end_epoch_work()
        now = time.monotonic() - self.t0
        took, now = (ddp.mean_over_ranks(self.info, v, 1.0) for v in (time.monotonic() - t_end, now))
        new = self.planner.epoch_end(self.step, now, took)
        if new is not None and self.info.is_main:
            log.info("plan: %s", new.line())

    def _end_epoch_work(self) -> None:
        ddp.sync_buffers(self.info, self.model)
        train_loss = ddp.mean_over_ranks(self.info, self.loss_sum, self.loss_batches)
        self.epoch += 1
        self.batches_done, self.loss_sum, self.loss_batches = 0, 0.0, 0
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "train_loss": round(train_loss, 6),
                               "lr": round(self.sched.get_last_lr()[0], 8)}
        if self.info.is_main:
            score = train_loss
            if self.val_loader is not None:
                val = validate(self.model, self.val_loader, self.criterion, self.centers.to(self.device),
                               self.cfg.temperature, self.device, self.amp, self.cfg.grid_rows)
                row |= val.row()
                score = val.loss
                write_sample_grid(self.out / "samples" / f"epoch-{self.epoch:03d}.png", val)
            self.history.append(row)
            atomic_write_text(self.out / "metrics.jsonl",
                              "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history))
            loss_curve(self.out / "loss.png", [r["train_loss"] for r in self.history],
                       [r.get("val_loss") for r in self.history])
            annealed = is_annealed(self.step, self.planner.plan)
            improved = better_checkpoint(score, annealed, self.best_val, self.best_annealed)
            if improved:
                self.best_val, self.best_annealed, self.best_epoch = score, annealed, self.epoch
            payload = self._save("last.pt")
            if improved:
                self._save("best.pt", payload)
            log.info("epoch %d: %s", self.epoch, json.dumps(row, sort_keys=True))
        ddp.barrier(self.info)


def run_train(shards: str | Path, out: str | Path, **options: Any) -> TrainResult:
    """The CLI entry point: one TrainConfig (options by keyword, defaults from TrainConfig), one `train`."""
    return train(TrainConfig(shards=Path(shards), out=Path(out), **options))
