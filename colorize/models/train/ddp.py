"""Multi-process training with DistributedDataParallel, started by `torchrun`.

`torchrun --nproc_per_node=N -m colorize train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; `setup` joins
the process group (NCCL on GPUs, gloo on CPU) and pins each rank to its GPU. Only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from colorize.errors import ColorizeError
from colorize.models.net.runtime import resolve_device

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> DistInfo:
    """Single process unless launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return DistInfo(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ColorizeError(f"rank {rank} wants GPU {local} but only {torch.cuda.device_count()} are visible",
                                "use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    log.info("DDP rank %d/%d on %s", rank, world, device)
    return DistInfo(rank, world, local, device)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_rank(info: DistInfo, flags: list[bool]) -> list[bool]:
    """Each flag True on every rank if it is True on any (all ranks must stop at the same step); one
    all-reduce for all flags."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def mean_over_ranks(info: DistInfo, total: float, count: float) -> float:
    """Σ total / Σ count over all ranks."""
    if info.enabled:
        t = torch.tensor([total, count], dtype=torch.float64, device=info.device)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / count if count else float("nan")


def sync_buffers(info: DistInfo, model: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm running statistics (each rank updated them on its own batches)."""
    if info.enabled:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names and bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                 if state[name].numel() else b"")
    return h.hexdigest()


def gather_strings(info: DistInfo, text: str) -> list[str]:
    """Every rank's `text`, in rank order (on every rank)."""
    if not info.enabled:
        return [text]
    out: list[str] = [""] * info.world_size
    dist.all_gather_object(out, text)
    return out
