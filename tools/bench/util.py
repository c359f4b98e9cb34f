"""What every bench section shares: clocks, safe ratios, plain text tables, and step times measured
through bnlib.train.train itself (the difference of two run lengths), so no section copies the loop.

Every ratio goes through `ratio`: on a busy machine a measured time can round to 0 or come out
negative (the difference of two noisy runs), and the bench must print 'n/a' there, never crash.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bnlib.probes.base import Probe
from bnlib.train import RunConfig, train

REPO = Path(__file__).resolve().parent.parent.parent
MAX_REPS = 1000  # a frozen or coarse clock must not turn "at least min_seconds" into an endless loop


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers the work it names."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def cuda_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None (printed 'n/a') when either is missing or not finite, or den is not > 0:
    every denominator in the bench is a time, a count or a rate, so only a positive one means anything."""
    if num is None or den is None or not (math.isfinite(num) and math.isfinite(den)) or den <= 0:
        return None
    return num / den


def scaled(value: float | None, factor: float) -> float | None:
    """value * factor, keeping 'n/a' as it is."""
    return None if value is None else value * factor


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def num(value: float | None, spec: str = ".3g") -> str:
    """`value` in format `spec`, or 'n/a'."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 96 - len(title)), flush=True)


def timed_median(fn: Callable[[], None], device: torch.device, min_reps: int,
                 min_seconds: float = 0.0) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of `fn`, over at least `min_reps` calls and
    `min_seconds` of calls (at most MAX_REPS). On a shared machine CPU time is the steadier of the two."""
    wall: list[float] = []
    cpu: list[float] = []
    while len(wall) < min_reps or (sum(wall) < min_seconds and len(wall) < MAX_REPS):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def best_of(fn: Callable[[], None], device: torch.device, reps: int) -> float:
    """Shortest wall time of `reps` calls: the figure least disturbed by other work (as timeit does)."""
    best = math.inf
    for _ in range(max(1, reps)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def timed_train(config: RunConfig, device: torch.device, probes: Sequence[Probe] = (),
                **execution: bool) -> tuple[float, float, dict[str, Any]]:
    """(loop wall seconds as train() reports them, process CPU seconds of the whole call, history)."""
    c0 = time.process_time()
    history = train(config, probes, device=device, progress=False, **execution)
    return history["seconds"], time.process_time() - c0, history


def quiet_config(config: RunConfig, steps: int) -> RunConfig:
    """`config` evaluating only at its first and last step, so runs of any length evaluate equally often."""
    return config.replace(steps=steps, eval_every=steps + 1)


def train_step_seconds(config: RunConfig, device: torch.device, warmup: int, steps: int,
                       **execution: bool) -> tuple[float | None, float | None]:
    """Seconds per training step of bnlib.train.train (wall, CPU): the difference of a (warmup + steps)-step
    run and a warmup-step run, divided by steps. Setup, evaluations and one-time costs cancel; the loop
    runs untouched. A first, discarded run pays the process's lazy set-up. None where the difference is
    not positive (a busy machine)."""
    train(quiet_config(config, max(1, warmup)), device=device, progress=False, **execution)
    short = timed_train(quiet_config(config, max(1, warmup)), device, **execution)
    long = timed_train(quiet_config(config, max(1, warmup) + steps), device, **execution)
    return positive_ratio(long[0] - short[0], steps), positive_ratio(long[1] - short[1], steps)


def positive_ratio(num: float, den: float) -> float | None:
    """num / den for a difference of times that must be positive to mean anything, else None."""
    return ratio(num, den) if num > 0 else None
