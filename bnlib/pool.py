"""Independent runs on all cores: a process pool with the torch threads split between its workers.

Small convolutions use two threads poorly, so two one-thread runs side by side finish sooner than
the same runs one after another on two threads. Every job is a module-level function and its
arguments (workers are spawned, so a notebook's kernel can use the pool too; a script must call it
under `if __name__ == "__main__":`, because each spawned worker imports the script); results come back
in job order. A run is bitwise reproducible for a given thread count, and a pool always gives each
worker the same count for the same `workers`, so a rerun reproduces it.

Stopping is clean. A worker ignores Ctrl-C (a terminal's and Jupyter's interrupt reach the whole process
group): the process that owns the pool decides. On an interrupt it cancels the queued jobs and sends each
worker SIGTERM, which `bnlib.train` holds to the step in flight's end, checkpoints there and then ends the
worker; a second interrupt kills the workers at once (their last checkpoint holds whole steps only). A worker
whose owner is gone, however it ended (SIGKILL included), sends itself the same SIGTERM within a second.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from bnlib import checks

Job = tuple[Callable[..., Any], tuple[Any, ...]]
PARENT_POLL_S = 0.5  # how often a worker looks for its owner


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


def _init_worker(threads: int, owner: int) -> None:
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner hears Ctrl-C and stops the workers
    threading.Thread(target=_end_with, args=(owner,), daemon=True, name="bnlib-owner-watch").start()


def _end_with(owner: int) -> None:
    """Once the owner is gone (this worker then has another parent), stop as an interrupt would: SIGTERM."""
    while os.getppid() == owner:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def _call(job: Job) -> Any:
    fn, args = job
    return fn(*args)


def _worker_call(job: Job) -> Any:
    """A job in a worker. An interrupt that reaches the job (a second SIGTERM during a step: the executor also
    sends one to every worker once another has ended) ends the worker, not only the job, so that no queued job
    starts after a stop; the run has checkpointed its last whole step first (bnlib.train)."""
    try:
        return _call(job)
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)


def map_jobs(jobs: Sequence[Job], workers: int | None = None) -> list[Any]:
    """Results of `fn(*args)` for every job, run by `workers` processes (default: `default_workers()`)
    with `cores() // workers` torch threads each; one worker, or one job, runs here in this process."""
    workers = default_workers() if workers is None else checks.check_int("workers", workers, 1)
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [_call(job) for job in jobs]
    threads = max(1, cores() // workers)
    context = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads, os.getpid())) as ex:
        futures = [ex.submit(_worker_call, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            _stop(ex, set(multiprocessing.active_children()) - before)
            raise


def _stop(ex: ProcessPoolExecutor, workers: set[Any]) -> None:
    """Cancel the queued jobs, ask every worker to stop at its step boundary (SIGTERM: it checkpoints there),
    and wait for them; a second Ctrl-C while waiting kills them at once."""
    ex.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        for worker in workers:
            worker.kill()
        raise
