"""Independent runs on all cores: a process pool with the torch threads split between its workers.

Small convolutions use two threads poorly, so two one-thread runs side by side finish sooner than
the same runs one after another on two threads. Every job is a module-level function and its
arguments (workers are spawned, so a notebook's kernel can use the pool too; a script must call it
under `if __name__ == "__main__":`, because each spawned worker imports the script); results come back
in job order. A run is bitwise reproducible for a given thread count, and a pool always gives each
worker the same count for the same `workers`, so a rerun reproduces it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from bnlib import checks

Job = tuple[Callable[..., Any], tuple[Any, ...]]


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """$BNLIB_WORKERS, else one worker per core (1 on a GPU: its runs share one device)."""
    value = os.environ.get("BNLIB_WORKERS", "").strip()
    if value:
        return checks.check_int("BNLIB_WORKERS", int(value) if value.isdigit() else value, 1)
    return 1 if torch.cuda.is_available() else cores()


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _call(job: Job) -> Any:
    fn, args = job
    return fn(*args)


def map_jobs(jobs: Sequence[Job], workers: int | None = None) -> list[Any]:
    """Results of `fn(*args)` for every job, run by `workers` processes (default: `default_workers()`)
    with `cores() // workers` torch threads each; one worker, or one job, runs here in this process."""
    workers = default_workers() if workers is None else checks.check_int("workers", workers, 1)
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [_call(job) for job in jobs]
    threads = max(1, cores() // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as ex:
        return list(ex.map(_call, jobs))
