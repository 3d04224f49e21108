"""Run independent tasks on this machine's cores (`local`) or on a dask.distributed cluster (`dask`).

Prep's unit of work is one output shard: a task reads its photos and writes one file, and returns a
small result. Because tasks share nothing, the same list runs unchanged on a process pool or on a
cluster of many machines (which then need the source and output folders on a shared filesystem),
and the output does not depend on where or in which order tasks ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from colorize.dataset import ENGINES
from colorize.errors import ColorizeError

log = logging.getLogger(__name__)

_SETUP_DONE = False
_HAS_PROC = os.path.isdir("/proc/self")


def worker_setup() -> None:
    """Once per worker process: one thread per library (we parallelise over processes), and keep glibc
    from returning decode buffers to the OS after every image (a measured halving of Pillow's decode
    time: glibc otherwise unmaps and re-faults each photo's buffers)."""
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    _SETUP_DONE = True
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 256 * 1024 * 1024)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 512 * 1024 * 1024)  # M_TRIM_THRESHOLD


def _pool_worker_init(parent_pid: int) -> None:
    worker_setup()
    # Ctrl-C reaches the whole process group: the run handles it (and says so); workers just finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """A pool worker's parent is the forkserver, not the run, so it would outlive a `kill -9` of the run
    (blocked forever, or finishing a shard nobody records). Poll the run's pid and leave when it is gone;
    a temp file cut short here is removed by the next run."""
    while _alive(parent_pid):
        time.sleep(interval)
    os._exit(1)


def _alive(pid: int) -> bool:
    """True while `pid` runs; a killed process that its parent has not reaped yet (a zombie) counts as gone."""
    if _HAS_PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
        except FileNotFoundError:
            return False
        except (OSError, IndexError):
            return True
    try:  # no /proc (macOS): ask the kernel (a zombie still counts as alive there)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], engine: str = "local", workers: int | None = None,
              scheduler: str | None = None) -> Iterator[Any]:
    """Yield `fn(task)` for every task, in completion order (callers sort if order matters)."""
    if not tasks:
        return
    workers = workers or default_workers()
    if engine == "local":
        yield from _run_local(fn, tasks, workers)
    elif engine == "dask":
        yield from _run_dask(fn, tasks, workers, scheduler)
    else:
        raise ColorizeError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")


def _run_local(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int) -> Iterator[Any]:
    workers = min(workers, len(tasks))
    if workers == 1:
        # In-process: no start-up cost, and a debugger/profiler sees the real work.
        for task in tasks:
            yield fn(task)
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_worker_init,
                             initargs=(os.getpid(),)) as pool:
        # Keep at most 2 tasks per worker in flight, so results (and the resume journal) keep up with the work.
        pending = iter(tasks)
        running = set()
        for task in pending:
            running.add(pool.submit(fn, task))
            if len(running) >= 2 * workers:
                break
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        running.add(pool.submit(fn, nxt))
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _run_dask(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, scheduler: str | None) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ColorizeError("--engine dask needs dask.distributed", "pip install 'colorize-photos[distributed]'") from exc
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=15))
            except (OSError, TimeoutError) as exc:
                raise ColorizeError(f"cannot reach the dask scheduler at {scheduler} ({exc})",
                                    "start it with `dask scheduler` and check the address") from exc
            log.info("dask: %d workers at %s (source and output must be on a shared filesystem)",
                     len(client.scheduler_info().get("workers", {})), scheduler)
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=logging.WARNING))
            client = stack.enter_context(Client(cluster))
        futures = client.map(fn, list(tasks), pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            client.cancel(futures)
            raise
