"""Speed and memory, measured against what people would use instead, all in one run on one machine.

    python -m bnlib.bench [--profile cpu] [--steps 30] [--device cpu] [--only loop probes ...] [--full]

Sections (issue 2's benchmark and issue 8's list): `loop` our training loop vs the usual torchvision
DataLoader + transforms loop (images/s, ratio, peak memory); `probes` each default probe's cost per
measurement in training steps; `hessian` our top Hessian eigenvalue vs PyHessian's; `chapter` peak
memory of a chapter notebook run under papermill; `book` projected time of the book's canonical runs
at --profile; `gpu` the same at profile paper on CUDA. Figures are printed, never asserted: a timed
test would be flaky on a shared machine, a table measured in one run is comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlib import data as bdata
from bnlib.experiments import common
from bnlib.models import VGG
from bnlib.probes.base import Probe, StepContext, rng_state
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig, Task, batch_indices, build_task, cross_entropy, evaluate, prepare_execution, train

SECTIONS = ("loop", "speedups", "probes", "hessian", "chapter", "book", "gpu")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHAPTER = "chapters/01_ics_distributions.ipynb"
# The canonical runs behind the paper's figures (../shared/paper-spec.md's figure table): what the book
# trains at any profile. Widget runs (profile.widget_steps each) are not included.
BOOK_RUNS: tuple[tuple[str, str, float], ...] = (
    ("vgg", "none", 0.1), ("vgg", "batch", 0.1), ("vgg", "none", 0.5), ("vgg", "batch", 0.5),  # fig 1
    ("vgg", "noisy", 0.1), ("vgg", "noise_only", 0.1),  # fig 2 and its control
    ("vgg", "none", 0.01), ("vgg", "batch", 0.01),  # fig 3
    ("vgg", "l1", 0.1), ("vgg", "l2", 0.1), ("vgg", "linf", 0.1),  # figs 5, 6, 12
    ("dln", "none", 1e-6), ("dln", "batch", 1e-6), ("dln", "none", 1e-7), ("dln", "batch", 1e-7),  # figs 3, 9, 10
    ("dln", "l1", 1e-6), ("dln", "l2", 1e-6), ("dln", "linf", 1e-6),  # fig 13
)


# --- small helpers ----------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers the work it names."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def cuda_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


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
                 min_seconds: float) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of `fn`, over at least `min_reps` calls and
    `min_seconds` of calls. On a shared machine CPU time is the steadier of the two: it counts the work
    done, not the wait for a core (with one torch thread it is the wall time of a machine to oneself)."""
    wall: list[float] = []
    cpu: list[float] = []
    while len(wall) < min_reps or sum(wall) < min_seconds:
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


_IMAGES: dict[tuple[Any, ...], bdata.ImageData] = {}


def task_for(config: RunConfig, device: torch.device) -> Task:
    """build_task's model and data, loading each image split once per process: the in-process
    sections build a dozen models, and a fresh copy of the split for each would cost memory only."""
    if config.model != "vgg":
        return build_task(config, device)
    key = (config.dataset, config.n_train, config.n_test, str(device))
    if key not in _IMAGES:
        _IMAGES[key] = bdata.load(config.dataset, device, config.n_train, config.n_test)
    images = _IMAGES[key]
    torch.manual_seed(config.seed)
    model = VGG(config.norm, config.width, images.channels, images.num_classes, config.noise).to(device)
    return Task(model, cross_entropy, images.x_train, images.y_train, images.x_test, images.y_test,
                images.name, images.source)


# --- 1. our loop vs the torchvision DataLoader loop --------------------------------------------

def loop_config(profile: Profile, dataset: str, steps: int, warmup: int) -> RunConfig:
    """The profile's VGG/BN at LR 0.1, evaluating only at the start and end (outside the timed span)."""
    return common.vgg_config(profile, "batch", 0.1, dataset).replace(eval_every=warmup + steps + 1)


def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One SGD step with nothing around it: what every loop below has to do."""
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def measure_ours(profile: Profile, dataset: str, steps: int, warmup: int, device: torch.device) -> dict[str, Any]:
    """bnlib.train.train, and its raw inner step (split on the device, batches as index slices)."""
    config = loop_config(profile, dataset, steps, warmup)
    # train() reports its loop time without setup; the difference of a warmup-step run and a
    # (warmup + steps)-step run is the time of `steps` warm steps (both runs evaluate twice).
    # A first, discarded run pays the process's one-time costs (lazy kernel and allocator set-up).
    train(config.replace(steps=max(1, warmup)), device=device, progress=False)
    first_run_rss = peak_rss_mb()  # one training run in a fresh process: what a notebook kernel's first run costs
    short = train(config.replace(steps=warmup), device=device, progress=False)
    long = train(config.replace(steps=warmup + steps), device=device, progress=False)
    loop_s = long["seconds"] - short["seconds"]
    task = build_task(config, device)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    task.model.train()

    def run(first: int, last: int) -> None:
        for step in range(first, last):
            idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, device)
            plain_step(task.model, optimizer, task.x_train[idx], task.y_train[idx])

    run(0, warmup)
    sync(device)
    t0 = time.perf_counter()
    run(warmup, warmup + steps)
    sync(device)
    raw_s = time.perf_counter() - t0
    images = steps * config.batch_size
    return {"rows": [
        {"loop": "ours: bnlib.train.train", "seconds": loop_s, "images_per_s": images / loop_s},
        {"loop": "ours: raw inner step (tensor split, index slices)", "seconds": raw_s, "images_per_s": images / raw_s},
    ], "dataset": long["dataset"], "n_train": len(task.x_train), "first_run_rss_mb": first_run_rss}


class ArrayImages(torch.utils.data.Dataset):
    """A torchvision.datasets-style dataset: uint8 arrays, a PIL image per item, then the transform
    (what torchvision.datasets.MNIST / CIFAR10 do in __getitem__)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform: Callable[[Any], torch.Tensor]) -> None:
        self.data, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data[index])), int(self.targets[index])


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images on ToTensor's [0, 1] scale, in chunks: a float copy of
    the whole split would charge the DataLoader loop's peak memory with the benchmark's own work."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in x.split(4096):
        c = chunk.double()
        total += c.sum(dim=(0, 2, 3))
        squares += c.pow(2).sum(dim=(0, 2, 3))
    n = x.numel() // x.shape[1]
    mean = total / n
    std = ((squares - n * mean**2) / (n - 1)).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def torchvision_dataset(profile: Profile, dataset: str) -> tuple[ArrayImages, int]:
    """The same training images as bnlib.data.load gives, the usual way: raw uint8 (Fashion-MNIST at
    its native 28x28), transforms Pad + ToTensor + Normalize with the same per-channel statistics."""
    from torchvision import transforms

    name = bdata.resolve_name(dataset)
    arrays, _ = bdata._fetch_cached(name, True)
    x, y = arrays["x_train"], arrays["y_train"]
    if profile.n_train is not None:
        x, y = x[:profile.n_train], y[:profile.n_train]
    mean, std = channel_stats(x)
    pad = 0
    if name == "fashion-mnist":  # bnlib pads 28x28 to 32x32 with zeros; here transforms.Pad does it
        x, pad = x[:, :, 2:30, 2:30], 2
    images = x.permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = images[..., 0]  # grayscale (N, H, W), as torchvision's MNIST keeps it
    steps = ([transforms.Pad(pad)] if pad else []) + [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return ArrayImages(np.ascontiguousarray(images), y.numpy(), transforms.Compose(steps)), x.shape[1]


def forever(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


def measure_torchvision(profile: Profile, dataset: str, steps: int, warmup: int, device: torch.device,
                        workers: Sequence[int]) -> dict[str, Any]:
    """The usual loop: DataLoader(shuffle) over a PIL-transform dataset, same model, same optimizer."""
    config = loop_config(profile, dataset, steps, warmup)
    ds, channels = torchvision_dataset(profile, dataset)
    bs = config.batch_size
    rows = []
    for k in workers:
        torch.manual_seed(config.seed)
        model = VGG(config.norm, config.width, channels, 10, config.noise).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
        model.train()
        loader = torch.utils.data.DataLoader(
            ds, batch_size=bs, shuffle=True, num_workers=k, drop_last=True, persistent_workers=k > 0,
            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed))
        batches = forever(loader)
        for _ in range(warmup):
            x, y = next(batches)
            plain_step(model, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = next(batches)
            plain_step(model, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        sync(device)
        seconds = time.perf_counter() - t0
        rows.append({"loop": f"torchvision DataLoader, num_workers={k}", "seconds": seconds,
                     "images_per_s": steps * bs / seconds})
        if k == 0:  # the input pipeline alone: the most images/s this loop could ever reach
            t0 = time.perf_counter()
            for _ in range(steps):
                next(batches)
            seconds = time.perf_counter() - t0
            rows.append({"loop": "  (its input pipeline alone, no model)", "seconds": seconds,
                         "images_per_s": steps * bs / seconds})
        del batches, loader
        gc.collect()
    return {"rows": rows, "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN) if any(workers) else None}


def measure_interleaved(profile: Profile, dataset: str, steps: int, warmup: int,
                        device: torch.device) -> dict[str, Any]:
    """Our raw step and the DataLoader (num_workers=0) step, alternated step by step in one process
    on two identical models: both see the same machine load, so the ratio of their median step
    times holds on a busy machine, where back-to-back runs do not."""
    config = loop_config(profile, dataset, steps, warmup)
    task = build_task(config, device)
    ds, channels = torchvision_dataset(profile, dataset)
    loader = torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(config.seed))
    batches = forever(loader)
    torch.manual_seed(config.seed)
    model = VGG(config.norm, config.width, channels, 10, config.noise).to(device).train()
    opt_ours = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    opt_tv = torch.optim.SGD(model.parameters(), lr=config.lr)
    task.model.train()
    times: dict[str, list[float]] = {"ours": [], "tv": []}
    for step in range(warmup + steps):
        for name in ("ours", "tv"):
            sync(device)
            t0 = time.perf_counter()
            if name == "ours":
                idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, device)
                plain_step(task.model, opt_ours, task.x_train[idx], task.y_train[idx])
            else:
                x, y = next(batches)
                plain_step(model, opt_tv, x.to(device), y.to(device))
            sync(device)
            if step >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def child_main(args: argparse.Namespace) -> None:
    """Entry point of an isolated measurement process: prints one JSON line."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    profile = resolve(args.profile)
    baseline = peak_rss_mb()  # python + torch + bnlib imported, nothing loaded
    if args.child == "ours":
        result = measure_ours(profile, args.dataset, args.steps, args.warmup, device)
    elif args.child == "interleaved":
        result = measure_interleaved(profile, args.dataset, args.steps, args.warmup, device)
    else:
        result = measure_torchvision(profile, args.dataset, args.steps, args.warmup, device, args.workers)
    result.update(rss_mb=peak_rss_mb(), baseline_rss_mb=baseline, cuda_peak_mb=cuda_peak_mb(device),
                  threads=torch.get_num_threads())
    print(json.dumps(result))


def run_child(kind: str, args: argparse.Namespace, profile: str, device: str) -> dict[str, Any]:
    """Each loop runs in a fresh process, so peak memory (ru_maxrss) belongs to that loop alone."""
    cmd = [sys.executable, "-m", "bnlib.bench", "--child", kind, "--profile", profile, "--device", device,
           "--dataset", args.dataset, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--workers", *map(str, args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section_loop(args: argparse.Namespace, profile: str, device: str) -> None:
    p = resolve(profile)
    heading(f"1. Training throughput, VGG/BN width {p.vgg_width:g}, batch {p.batch_size}, profile {p.name}, "
            f"device {device}")
    # Rounds alternate the two processes and each row keeps its best round: on a shared machine the
    # best of a few is the figure least disturbed by other work (as timeit does).
    rounds = [(run_child("ours", args, profile, device), run_child("torchvision", args, profile, device))
              for _ in range(args.rounds)]
    ours, tv = rounds[0]
    best: dict[str, float] = {}
    for pair in rounds:
        for r in pair[0]["rows"] + pair[1]["rows"]:
            best[r["loop"]] = max(best.get(r["loop"], 0.0), r["images_per_s"])
    print(f"data: {ours['dataset']} ({ours['n_train']} training images); same model init, SGD lr 0.1; "
          f"{args.warmup} warm-up steps excluded, {args.steps} timed steps each, best of {args.rounds} alternating "
          f"rounds; torch threads: {ours['threads']} (ours), {tv['threads']} (DataLoader main process)")
    base = best["ours: bnlib.train.train"]
    rows = [[label, ips, 1000 * p.batch_size / ips, None if "alone" in label else base / ips]
            for label, ips in best.items()]
    print(table(["loop", "images/s", "ms/step", "ours/this"], rows))
    mem = [["baseline: python with torch and bnlib imported", ours["baseline_rss_mb"], None],
           ["ours, one train() run in a fresh process", ours["first_run_rss_mb"], None],
           ["ours, whole process (3 train() runs + 1 build_task)", ours["rss_mb"], ours["cuda_peak_mb"]],
           ["torchvision DataLoader (one process, all worker settings)", tv["rss_mb"], tv["cuda_peak_mb"]]]
    if tv.get("worker_rss_mb"):
        mem.append(["  largest DataLoader worker process", tv["worker_rss_mb"], None])
    print()
    print(table(["peak memory", "ru_maxrss MiB", "CUDA max allocated MiB"], mem))
    print("ours/this = images/s of bnlib.train.train divided by the row's images/s (> 1: ours is faster).")
    both = run_child("interleaved", args, profile, device)
    print(f"\ninterleaved in one process, step by step (same load for both; median of {args.steps} steps each): "
          f"ours raw step {1000 * both['ours']:.1f} ms, DataLoader (num_workers=0) step {1000 * both['tv']:.1f} ms; "
          f"ours/DataLoader speed ratio {both['tv'] / both['ours']:.2f} (> 1: ours is faster)")


# --- 1b. execution options: channels_last and torch.compile ---------------------------------------

def time_execution(config: RunConfig, dev: torch.device, channels_last: bool, compiled: bool, warmup: int,
                   steps: int) -> tuple[float, float]:
    """(seconds of the first `warmup` steps, compile included; median seconds of the next `steps` steps)."""
    task = task_for(config, dev)
    model, x_all, forward = prepare_execution(task.model, task.x_train,
                                              {"channels_last": channels_last, "compile": compiled})
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    batches = iter([batch_indices(len(x_all), config.batch_size, k, config.seed, dev) for k in range(warmup + steps)])

    def step() -> None:
        idx = next(batches)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(forward(x_all[idx]), task.y_train[idx]).backward()
        optimizer.step()

    sync(dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(dev)
    first = time.perf_counter() - t0
    return first, timed_median(step, dev, min_reps=steps, min_seconds=0.0)[0]


def section_speedups(args: argparse.Namespace, profile: str, device: str) -> None:
    """Step time of the profile's VGG/BN under each execution option of bnlib.train.execution_options,
    same model init and batches; compile time (the first steps) reported apart from the timed steps."""
    p, dev = resolve(profile), torch.device(device)
    heading(f"1b. Execution options: channels_last and torch.compile (VGG/BN width {p.vgg_width:g}, batch "
            f"{p.batch_size}, device {device})")
    config = loop_config(p, args.dataset, args.steps, args.warmup)
    rows, base = [], None
    for channels_last, compiled in ((False, False), (True, False), (False, True), (True, True)):
        name = f"channels_last={channels_last}, compile={compiled}"
        try:
            first, per_step = time_execution(config, dev, channels_last, compiled, max(1, args.warmup), args.steps)
        except Exception as err:  # e.g. no C++ compiler for inductor on this machine
            rows.append([name, None, None, None, f"failed: {type(err).__name__}: {str(err)[:60]}"])
            continue
        base = base or per_step
        rows.append([name, per_step * 1000, config.batch_size / per_step, base / per_step,
                     f"warm-up steps incl. compile: {first:.1f} s"])
    print(table(["execution", "ms/step", "images/s", "speed-up", "note"], rows))
    print("speed-up = eager default step time / this row's (> 1: faster). Turn them on for runs with "
          "BNLIB_CHANNELS_LAST=1 / BNLIB_COMPILE=1 (bnlib.train.execution_options); fp32 throughout.")


# --- 2. probe costs -----------------------------------------------------------------------------

def train_step(task: Any, config: RunConfig, optimizer: torch.optim.Optimizer, step: int, device: torch.device,
               wanted: Sequence[Probe] = ()) -> None:
    """One step as bnlib.train.train runs it, with the `wanted` probes measured at it."""
    idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, device)
    x, y = task.x_train[idx], task.y_train[idx]
    rng = rng_state() if wanted else {}
    for p in wanted:
        p.before_forward(task.model, step)
    optimizer.zero_grad(set_to_none=True)
    loss = task.loss_fn(task.model, x, y)
    loss.backward()
    if wanted:
        ctx = StepContext(task.model, x, y, loss.detach(), task.loss_fn, config.lr, step, rng, optimizer)
        for p in wanted:
            p.measure(ctx)
    optimizer.step()


def probe_costs(profile: Profile, dataset: str, device: torch.device, warmup: int,
                reps: int) -> list[dict[str, Any]]:
    """For every default probe of the canonical runs: seconds of a step with that probe vs a plain step."""
    results = []
    setups = (("vgg", common.vgg_config(profile, "batch", 0.1, dataset), common.vgg_probes(profile)),
              ("dln", common.dln_config(profile, "batch", 1e-6), common.dln_probes(profile)))
    for model_name, config, probes in setups:
        if not probes:
            results.append({"model": model_name, "probe": None})
            continue
        task = task_for(config, device)
        optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
        task.model.train()
        steps = iter(range(10**9))
        for _ in range(warmup):
            train_step(task, config, optimizer, next(steps), device)
        plain = timed_median(lambda: train_step(task, config, optimizer, next(steps), device),  # noqa: B023
                             device, min_reps=max(reps, 5), min_seconds=0.5)
        for probe in probes:
            row = {"model": model_name, "probe": probe.name, "every": probe.every, "plain_s": plain[0],
                   "plain_cpu_s": plain[1]}
            wanted = iter(range(probe.every * 1000, 10**9, probe.every))  # steps the probe measures at
            try:
                train_step(task, config, optimizer, next(wanted), device, [probe])  # untimed: lazy set-up
                with_probe = timed_median(
                    lambda: train_step(task, config, optimizer, next(wanted), device, [probe]),  # noqa: B023
                    device, reps, 0.0)
                row["cost_steps"] = with_probe[0] / plain[0] - 1
                row["share"] = row["cost_steps"] / probe.every
                row["cost_cpu"] = with_probe[1] / plain[1] - 1
                row["share_cpu"] = row["cost_cpu"] / probe.every
            except Exception as err:  # report a probe that fails here instead of losing the whole table
                row["error"] = f"{type(err).__name__}: {err}"
            results.append(row)
    return results


def section_probes(args: argparse.Namespace, profile: str, device: str) -> list[dict[str, Any]]:
    p = resolve(profile)
    heading(f"2. Probe cost per measurement, in training steps (profile {p.name}, device {device}, norm batch)")
    results = probe_costs(p, args.dataset, torch.device(device), args.warmup, args.probe_reps)
    rows, share, share_cpu = [], {"vgg": 0.0, "dln": 0.0}, {"vgg": 0.0, "dln": 0.0}
    for r in results:
        if r["probe"] is None:
            rows.append([r["model"], "(no default probes defined yet)"] + [None] * 6)
        elif "error" in r:
            rows.append([r["model"], r["probe"], r["every"], r["plain_s"] * 1000, "error", r["error"][:60], None, None])
        else:
            share[r["model"]] += r["share"]
            share_cpu[r["model"]] += r["share_cpu"]
            rows.append([r["model"], r["probe"], r["every"], r["plain_s"] * 1000, r["cost_steps"],
                         f"{100 * r['share']:.1f}%", r["cost_cpu"], f"{100 * r['share_cpu']:.1f}%"])
    print(table(["model", "probe", "every", "plain step ms", "cost (steps)", "share of run", "CPU cost (steps)",
                 "CPU share"], rows))
    print(f"total probe overhead at this cadence: VGG {100 * share['vgg']:.1f}%, DLN {100 * share['dln']:.1f}% "
          f"of a plain run's step time (CPU time: VGG {100 * share_cpu['vgg']:.1f}%, DLN "
          f"{100 * share_cpu['dln']:.1f}%; budget: 25%). cost = (step with probe) / (plain step) - 1, "
          f"median of {args.probe_reps} measurements after one untimed.")
    return results


# --- 3. Hessian top eigenvalue vs PyHessian --------------------------------------------------------

class KeepMode(nn.Module):
    """Wraps a model so PyHessian's `model.eval()` leaves it in training mode (BN on batch statistics),
    the mode our probes measure the landscape in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def eval(self) -> KeepMode:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def section_hessian(args: argparse.Namespace, profile: str, device: str) -> None:
    p = resolve(profile)
    dev = torch.device(device)
    heading(f"3. Hessian top eigenvalue: ours vs PyHessian (VGG/BN width {p.vgg_width:g}, one batch of "
            f"{p.batch_size}, training-mode BN for both)")
    config = common.vgg_config(p, "batch", 0.1, args.dataset)
    task = task_for(config, dev)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    task.model.train()
    for step in range(args.warmup):  # leave initialisation so the spectrum is a trained one's
        idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, dev)
        plain_step(task.model, optimizer, task.x_train[idx], task.y_train[idx])
    x, y = task.x_train[:config.batch_size], task.y_train[:config.batch_size]
    iters, tol = args.hessian_iters, args.hessian_tol
    rows, values, seconds, hvps, trajectory = [], {}, {}, {}, {}

    def timed(name: str, label: str, fn: Callable[[], float]) -> None:
        sync(dev)
        t0 = time.perf_counter()
        with counting_hvps() as quotients:
            values[name] = float(fn())
        sync(dev)
        seconds[name], hvps[name] = time.perf_counter() - t0, len(quotients)
        trajectory[name] = quotients
        rows.append([label, values[name], hvps[name], seconds[name], 1000 * seconds[name] / max(1, hvps[name]), ""])

    try:
        from bnlib.probes.hessian import lanczos
    except ImportError as err:
        rows.append(["ours", None, None, None, None, f"not available: {err}"])
    else:
        model = copy.deepcopy(task.model)
        lanczos(model, cross_entropy, x, y, iters=2, seed=0)  # untimed: the process's first double backward
        ritz: list[float] = []  # our top Ritz value after each product: the estimate's trajectory
        timed("ours", "ours (bnlib.probes.hessian.top_eigenvalue)",
              lambda: lanczos(model, cross_entropy, x, y, iters=iters, tol=tol, seed=0, which="top",
                              trace=ritz)["top_eig"])
        trajectory["ours"] = ritz
    try:
        from pyhessian import hessian
    except ImportError as err:
        rows.append(["PyHessian", None, None, None, None, f"not installed ({err}); .venv/bin/pip install pyhessian"])
    else:
        def pyhessian_top(tol: float, max_iter: int = iters) -> float:
            with warnings.catch_warnings():  # PyHessian's backward(create_graph=True) warns about a ref cycle
                warnings.simplefilter("ignore", UserWarning)
                h = hessian(KeepMode(copy.deepcopy(task.model)), nn.CrossEntropyLoss(), data=(x, y),
                            cuda=dev.type == "cuda")
                return h.eigenvalues(maxIter=max_iter, tol=tol, top_n=1)[0][0]

        pyhessian_top(tol, 2)  # untimed warm-up, as for ours
        torch.manual_seed(0)
        timed("pyhessian", f"PyHessian 0.1 (hessian(...).eigenvalues), tol {tol:g}", lambda: pyhessian_top(tol))
        if args.hessian_reference:
            torch.manual_seed(1)
            timed("reference", f"PyHessian, tol {tol / 100:g}, up to {3 * iters} HVPs (reference value)",
                  lambda: pyhessian_top(tol / 100, 3 * iters))
    print(table(["method", "top eigenvalue", "HVPs", "seconds", "ms/HVP", "note"], rows))
    print(f"each: at most {iters} Hessian-vector products (HVPs), tolerance {tol:g} under its own stopping rule "
          f"(ours: see bnlib.probes.hessian; PyHessian: power iteration, relative change of the estimate); model "
          f"after {args.warmup} SGD steps; batch = the first {config.batch_size} training images; seconds include "
          f"building the gradient graph.")
    if "ours" in values and "pyhessian" in values:
        def rel(a: str, b: str) -> float:
            return abs(values[a] - values[b]) / abs(values[b])

        per_hvp = (seconds["ours"] / max(1, hvps["ours"])) / (seconds["pyhessian"] / max(1, hvps["pyhessian"]))
        agreement = f"agreement: ours vs PyHessian relative difference {rel('ours', 'pyhessian'):.2e}"
        if "reference" in values:
            agreement += (f"; relative difference from the reference: ours {rel('ours', 'reference'):.2e}, "
                          f"PyHessian {rel('pyhessian', 'reference'):.2e}")
        print(agreement)
        print(f"time ours/PyHessian (each at tolerance {tol:g} under its own stopping rule) = "
              f"{seconds['ours'] / seconds['pyhessian']:.2f} in total, {per_hvp:.2f} per HVP (< 1: ours is faster)")
        if "reference" in values:  # equal accuracy: products each needs to come within tol of the reference
            def first_within(estimates: Sequence[float]) -> int | None:
                ref = values["reference"]
                hits = [i + 1 for i, q in enumerate(estimates) if abs(q - ref) <= tol * abs(ref)]
                return hits[0] if hits else None

            # power iteration: PyHessian's own run, or (when its stopping rule quit early) the reference run
            power = next((k for k in ("pyhessian", "reference") if first_within(trajectory[k])), "pyhessian")
            ours_n, power_n = first_within(trajectory["ours"]), first_within(trajectory[power])
            if ours_n and power_n:
                ratio = (ours_n * seconds["ours"] / hvps["ours"]) / (power_n * seconds[power] / hvps[power])
                print(f"equal accuracy (within {tol:g} of the reference): ours after {ours_n} HVPs, PyHessian's power "
                      f"iteration ({power} run) after {power_n}; time ours/PyHessian at equal accuracy = {ratio:.2f} "
                      f"(< 1: ours is faster)")
            else:
                print(f"equal accuracy (within {tol:g} of the reference): ours after {ours_n or 'none'} of "
                      f"{len(trajectory['ours'])} HVPs, PyHessian after {power_n or 'none'} of "
                      f"{len(trajectory[power])}")


@contextlib.contextmanager
def counting_hvps() -> Iterator[list[float]]:
    """Record every Hessian-vector product (a torch.autograd.grad call given grad_outputs v, in ours and in
    PyHessian alike) as its Rayleigh quotient v.Hv / v.v: the list's length counts the products, and
    for power iteration its entries are the successive estimates."""
    quotients: list[float] = []
    original = torch.autograd.grad

    def grad(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        v = kwargs.get("grad_outputs")
        if v is not None:
            with torch.no_grad():
                num = sum(float((a * b).sum()) for a, b in zip(v, out, strict=True))
                quotients.append(num / max(sum(float((a * a).sum()) for a in v), 1e-30))
        return out

    torch.autograd.grad = grad
    try:
        yield quotients
    finally:
        torch.autograd.grad = original


# --- 4. a chapter's peak memory -------------------------------------------------------------------

RUSAGE_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE, text=True)\n"
    "sys.stderr.write(rc.stderr[-3000:] if rc.returncode else '')\n"
    "print(rc.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def chapter_peak(notebook: Path, profile: str, dataset: str) -> dict[str, Any]:
    """Run `notebook` under papermill with a fresh, empty run cache (so its runs really train) in a
    wrapper process whose only children are papermill and its kernel: RUSAGE_CHILDREN's ru_maxrss is
    then the largest of those processes (the kernel)."""
    with tempfile.TemporaryDirectory(prefix="bnlib-bench-") as tmp:
        env = {**os.environ, "BNLIB_CACHE": str(Path(tmp) / "cache")}
        cmd = [sys.executable, "-c", RUSAGE_WRAPPER, sys.executable, "-m", "papermill", str(notebook),
               str(Path(tmp) / "out.ipynb"), "-p", "profile", profile, "-p", "dataset", dataset,
               "--no-progress-bar", "--cwd", str(notebook.parent)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        rc, seconds, rss_kib = proc.stdout.split()
        if proc.returncode or int(rc):
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {rc}"}
        return {"seconds": float(seconds), "rss_mb": int(rss_kib) / 1024}


def section_chapter(args: argparse.Namespace, profiles: Sequence[str]) -> None:
    heading("4. Peak memory of a chapter run (papermill, fresh run cache, largest process = the kernel)")
    rows = []
    for notebook in args.chapter:
        path = (REPO / notebook).resolve()
        for profile in profiles:
            r = chapter_peak(path, profile, args.dataset)
            rows.append([path.name, profile, r.get("seconds"), r.get("rss_mb"), r.get("error", "")])
    print(table(["notebook", "profile", "seconds", "peak RSS MiB", "error"], rows))


# --- 5. projected book time (any profile; paper profile on CUDA) -----------------------------------

def step_seconds(model: str, norm: str, profile: Profile, dataset: str, device: torch.device,
                 warmup: int, reps: int) -> tuple[float, float, float, float]:
    """Seconds per training step and per evaluation of a canonical run's config: wall, then CPU."""
    config = (common.vgg_config(profile, norm, 0.1, dataset) if model == "vgg"
              else common.dln_config(profile, norm, 1e-6))
    task = task_for(config, device)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    task.model.train()
    steps = iter(range(10**9))
    for _ in range(warmup):
        train_step(task, config, optimizer, next(steps), device)
    per_step, cpu_step = timed_median(lambda: train_step(task, config, optimizer, next(steps), device), device,
                            min_reps=max(reps, 5), min_seconds=0.3)

    def one_eval() -> None:  # what train()'s do_eval reads: train and test subsets of n_test images
        if model == "vgg":
            n = len(task.x_test)
            evaluate(task.model, task.loss_fn, task.x_train[:n], task.y_train[:n], True)
            evaluate(task.model, task.loss_fn, task.x_test, task.y_test, True)
        else:
            evaluate(task.model, task.loss_fn, task.x_train, task.y_train, False)

    per_eval, cpu_eval = timed_median(one_eval, device, min_reps=1, min_seconds=0.0)
    return per_step, per_eval, cpu_step, cpu_eval


def project_book(profile: Profile, dataset: str, device: torch.device, warmup: int, reps: int,
                 probes: Sequence[dict[str, Any]] = ()) -> None:
    """Sum over BOOK_RUNS of steps x step time + evaluations + probe measurements (from section 2)."""
    timings = {(m, n): step_seconds(m, n, profile, dataset, device, warmup, reps)
               for m, n in dict.fromkeys((m, n) for m, n, _ in BOOK_RUNS)}
    # wall and CPU seconds of each probe's work per training step (section 2), by model and probe name
    probe_s: dict[tuple[str, str], tuple[float, float]] = {}
    for r in probes:
        if r.get("probe") and "cost_steps" in r:
            probe_s[(r["model"], r["probe"])] = (r["cost_steps"] * r["plain_s"] / r["every"],
                                                 r["cost_cpu"] * r["plain_cpu_s"] / r["every"])
    rows, total, total_cpu = [], 0.0, 0.0
    for (model, norm), (per_step, per_eval, cpu_step, cpu_eval) in timings.items():
        lrs = [lr for m, n, lr in BOOK_RUNS if (m, n) == (model, norm)]
        steps = profile.vgg_steps if model == "vgg" else profile.dln_steps
        evals = steps // (profile.eval_every if model == "vgg" else profile.dln_probe_every) + 1
        reads = common.VGG_READS if model == "vgg" else common.DLN_READS
        run_s, run_cpu = [], []
        for lr in lrs:  # each canonical run pays only for the probes it carries
            carried = [probe_s[(m, name)] for (m, name) in probe_s
                       if m == model and name in reads.get((norm, lr), common.ALL)]
            run_s.append(steps * (per_step + sum(c[0] for c in carried)) + evals * per_eval)
            run_cpu.append(steps * (cpu_step + sum(c[1] for c in carried)) + evals * cpu_eval)
        total += sum(run_s)
        total_cpu += sum(run_cpu)
        rows.append([f"{model}/{norm}", ", ".join(f"{lr:g}" for lr in lrs), per_step * 1000, cpu_step * 1000,
                     per_eval, steps, max(run_s) / 60, max(run_cpu) / 60, sum(run_s) / 60])
    print(table(["run", "LRs", "ms/step", "CPU ms/step", "s/eval", "steps", "max min/run", "CPU max min/run",
                 "min (all LRs)"], rows))
    have_probes = any(r.get("probe") and "cost_steps" in r for r in probes)
    print(f"projected canonical runs of the book at profile {profile.name} on {device}: {total / 60:.1f} min wall "
          f"at this machine's load, {total_cpu / 60:.1f} CPU-min ({len(BOOK_RUNS)} runs from the paper's figures; "
          f"probes {'included, at section 2 costs' if have_probes else 'NOT included (none measured)'}; widget "
          f"runs, notebook kernels and plotting not included). With {torch.get_num_threads()} torch thread(s), "
          f"CPU-min / threads is a lower bound on the wall time of the machine to oneself.")


def section_book(args: argparse.Namespace, profile: str, device: str, probes: Sequence[dict[str, Any]]) -> None:
    p = resolve(profile)
    heading(f"5a. Projected time of the book's canonical runs, profile {p.name}, device {device}")
    project_book(p, args.dataset, torch.device(device), args.warmup, args.probe_reps, probes)


def section_gpu(args: argparse.Namespace) -> None:
    heading("5b. GPU: paper profile (VGG width 1, batch 128, 15,000 steps)")
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}")
    paper = resolve("paper")
    per_step, per_eval, _, _ = step_seconds("vgg", "batch", paper, args.dataset, device, args.warmup, args.steps)
    run_s = paper.vgg_steps * per_step + (paper.vgg_steps // paper.eval_every + 1) * per_eval
    print(f"VGG/BN paper profile: {per_step * 1000:.2f} ms/step, {paper.batch_size / per_step:,.0f} images/s; "
          f"one {paper.vgg_steps:,}-step run with evaluations: {run_s / 60:.1f} min (probes excluded)")
    section_loop(args, "paper", "cuda")
    gpu_probes = section_probes(args, "paper", "cuda") if "probes" in args.only else []
    project_book(paper, args.dataset, device, args.warmup, args.probe_reps, gpu_probes)


# --- entry point ----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bnlib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", help="profile of the measured runs (default: cpu)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per loop (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default: 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="auto", choices=bdata.DATASETS)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                        help=f"sections to run, of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for every measurement (default: torch's, i.e. OMP_NUM_THREADS)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of section 1, best kept")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    parser.add_argument("--probe-reps", type=int, default=2, help="timed measurements per probe (default: 2)")
    parser.add_argument("--hessian-iters", type=int, default=100,
                        help="cap on Hessian-vector products per method (PyHessian default: 100)")
    parser.add_argument("--hessian-tol", type=float, default=1e-3,
                        help="tolerance of each method's stopping rule (PyHessian default: 1e-3)")
    parser.add_argument("--no-hessian-reference", dest="hessian_reference", action="store_false",
                        help="skip the tight-tolerance PyHessian reference value")
    parser.add_argument("--chapter", nargs="+", default=[DEFAULT_CHAPTER], help="notebook(s) for section 4")
    parser.add_argument("--full", action="store_true", help="also run the chapter at profile cpu (minutes)")
    parser.add_argument("--child", choices=("ours", "torchvision", "interleaved"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "threads", "probe_reps", "hessian_iters", "rounds"):
        minimum = 0 if name == "warmup" else 1
        if getattr(args, name) < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}")
    if any(k < 0 for k in args.workers):
        parser.error(f"--workers must be >= 0, got {args.workers}")
    resolve(args.profile)  # unknown profile: a clear error before any work
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    print(f"bnlib.bench: profile {args.profile}, device {args.device}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {platform.processor() or platform.machine()}")
    print(f"dataset: {bdata.resolve_name(args.dataset)}; sections: {' '.join(args.only)}", flush=True)
    probes: list[dict[str, Any]] = []
    steps = {
        "loop": lambda: section_loop(args, args.profile, args.device),
        "speedups": lambda: section_speedups(args, args.profile, args.device),
        "probes": lambda: probes.extend(section_probes(args, args.profile, args.device)),
        "hessian": lambda: section_hessian(args, args.profile, args.device),
        "chapter": lambda: section_chapter(args, ["smoke", "cpu"] if args.full else ["smoke"]),
        "book": lambda: section_book(args, args.profile, args.device, probes),
        "gpu": lambda: section_gpu(args),
    }
    for name in SECTIONS:
        if name in args.only:
            t0 = time.perf_counter()
            try:
                steps[name]()
            except Exception:  # one broken section must not hide the others' figures
                print(f"section {name} FAILED:\n{traceback.format_exc()}", flush=True)
            print(f"[section {name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"\ntotal bench time {time.perf_counter() - began:.0f} s; load average now {os.getloadavg()[0]:.2f}; "
          f"peak RSS of this process {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
