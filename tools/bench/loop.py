"""Section `loop`: bnlib.train.train against the usual torchvision DataLoader + transforms loop
(images/s, ratio, peak memory). Each loop runs in a fresh child process, so its peak memory
(ru_maxrss) is its own; the children print one JSON line that the parent tabulates.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlib import data as bdata
from bnlib import losses
from bnlib.experiments import common
from bnlib.models import VGG
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig, Task, batch_indices, build_task
from tools.bench.util import (
    REPO,
    cuda_peak_mb,
    heading,
    peak_rss_mb,
    positive_ratio,
    ratio,
    scaled,
    sync,
    table,
    train_step_seconds,
)


def loop_config(profile: Profile, dataset: str) -> RunConfig:
    """The profile's VGG/BN at LR 0.1 (the measured runs set their own length and evaluate twice)."""
    return common.vgg_config(profile, "batch", 0.1, dataset)


def vgg_task(profile: str, dataset: str, device: str) -> tuple[Profile, torch.device, RunConfig, Task]:
    """(profile, device, loop_config, its task on the device): where every VGG/BN section starts."""
    p, dev = resolve(profile), torch.device(device)
    config = loop_config(p, dataset)
    return p, dev, config, build_task(config, dev)


def batch(task: Task, config: RunConfig, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step`'s training batch of `config`, as the loop draws it."""
    idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, task.x_train.device)
    return task.x_train[idx], task.y_train[idx]


def bare_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """The baseline every loop is held against: one SGD step in bare eager PyTorch, nothing around it."""
    optimizer.zero_grad(set_to_none=True)
    losses.for_model("vgg")(model, x, y).backward()
    optimizer.step()


def measure_ours(profile: Profile, dataset: str, steps: int, warmup: int, device: torch.device) -> dict[str, Any]:
    """bnlib.train.train's step time (difference of two run lengths), and a bare step over the same
    in-memory split with batches as index slices (what our loop does around the step)."""
    config = loop_config(profile, dataset)
    ours_s, _ = train_step_seconds(config, device, warmup, steps)
    first_run_rss = peak_rss_mb()  # training runs in a fresh process: what a notebook kernel's first runs cost
    task = build_task(config, device)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    task.model.train()

    def run(first: int, last: int) -> None:
        for step in range(first, last):
            idx = batch_indices(len(task.x_train), config.batch_size, step, config.seed, device)
            bare_step(task.model, optimizer, task.x_train[idx], task.y_train[idx])

    run(0, warmup)
    sync(device)
    t0 = time.perf_counter()
    run(warmup, warmup + steps)
    sync(device)
    raw_s = positive_ratio(time.perf_counter() - t0, steps)
    images = config.batch_size
    return {"rows": [
        {"loop": "ours: bnlib.train.train", "images_per_s": ratio(images, ours_s)},
        {"loop": "ours: raw inner step (tensor split, index slices)", "images_per_s": ratio(images, raw_s)},
    ], "dataset": task.dataset, "n_train": len(task.x_train), "first_run_rss_mb": first_run_rss}


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
    std = ((squares - n * mean**2) / max(1, n - 1)).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def raw_arrays(name: str) -> dict[str, torch.Tensor]:
    """A dataset's uint8 arrays through bnlib.data's public readers (what bnlib.data.load normalises)."""
    if name == "cifar10":
        return bdata.cifar10_uint8()
    if name == "fashion-mnist":
        return bdata.fashion_mnist_uint8()[0]
    return bdata.synthetic_uint8()


def torchvision_dataset(profile: Profile, dataset: str) -> tuple[ArrayImages, int]:
    """The same training images as bnlib.data.load gives, the usual way: raw uint8 (Fashion-MNIST at
    its native 28x28), transforms Pad + ToTensor + Normalize with the same per-channel statistics."""
    from torchvision import transforms

    name = bdata.resolve_name(dataset)
    arrays = raw_arrays(name)
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


def baseline_model(config: RunConfig, channels: int, device: torch.device) -> nn.Module:
    """The library's VGG with the run's seeded init, without loading bnlib's copy of the data."""
    torch.manual_seed(config.seed)
    return VGG(config.norm, config.width, channels, 10, config.noise).to(device).train()


def timed_loop(batches: Iterator[Any], steps: int, device: torch.device,
               step: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> float | None:
    """Seconds per step of `steps` steps over `batches` (input pipeline alone when step is None)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        if step is not None:
            step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    sync(device)
    return positive_ratio(time.perf_counter() - t0, steps)


def measure_torchvision(profile: Profile, dataset: str, steps: int, warmup: int, device: torch.device,
                        workers: Sequence[int]) -> dict[str, Any]:
    """The usual loop: DataLoader(shuffle) over a PIL-transform dataset, same model, same optimizer."""
    config = loop_config(profile, dataset)
    ds, channels = torchvision_dataset(profile, dataset)
    rows = []
    for k in workers:
        model = baseline_model(config, channels, device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=config.batch_size, shuffle=True, num_workers=k, drop_last=True,
            persistent_workers=k > 0, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed))
        batches = forever(loader)

        def step(x: torch.Tensor, y: torch.Tensor) -> None:
            bare_step(model, optimizer, x, y)  # noqa: B023 (called within this iteration only)

        timed_loop(batches, warmup, device, step)
        seconds = timed_loop(batches, steps, device, step)
        rows.append({"loop": f"torchvision DataLoader, num_workers={k}",
                     "images_per_s": ratio(config.batch_size, seconds)})
        if k == 0:  # the input pipeline alone: the most images/s this loop could ever reach
            rows.append({"loop": "  (its input pipeline alone, no model)",
                         "images_per_s": ratio(config.batch_size, timed_loop(batches, steps, device))})
        del batches, loader
        gc.collect()
    return {"rows": rows, "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN) if any(workers) else None}


def measure_interleaved(profile: Profile, dataset: str, steps: int, warmup: int,
                        device: torch.device) -> dict[str, Any]:
    """The raw step on our tensors and the DataLoader (num_workers=0) step, alternated step by step in
    one process on two identical models: both see the same machine load, so the ratio of their median
    step times holds on a busy machine, where back-to-back runs do not."""
    config = loop_config(profile, dataset)
    task = build_task(config, device)
    ds, channels = torchvision_dataset(profile, dataset)
    batches = forever(torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                                  generator=torch.Generator().manual_seed(config.seed)))
    model = baseline_model(config, channels, device)
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
                bare_step(task.model, opt_ours, task.x_train[idx], task.y_train[idx])
            else:
                x, y = next(batches)
                bare_step(model, opt_tv, x.to(device), y.to(device))
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
    cmd = [sys.executable, "-m", "tools.bench", "--child", kind, "--profile", profile, "--device", device,
           "--dataset", args.dataset, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--workers", *map(str, args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_rates(rounds: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float | None]:
    """Each row's best images/s over the rounds (a round that could not form a rate gives n/a)."""
    best: dict[str, float | None] = {}
    for ours, tv in rounds:
        for r in ours["rows"] + tv["rows"]:
            rates = [v for v in (best.get(r["loop"]), r["images_per_s"]) if v is not None]
            best[r["loop"]] = max(rates) if rates else None
    return best


def report_loop(rounds: Sequence[tuple[dict[str, Any], dict[str, Any]]], both: dict[str, float],
                batch_size: int, steps: int, warmup: int) -> None:
    """Print section 1's tables from the children's results (kept apart from running them, so its
    guards against zero and missing figures are testable)."""
    ours, tv = rounds[0]
    best = best_rates(rounds)
    print(f"data: {ours['dataset']} ({ours['n_train']} training images); same model init, SGD lr 0.1; "
          f"{warmup} warm-up steps excluded, {steps} timed steps each, best of {len(rounds)} alternating "
          f"rounds; torch threads: {ours['threads']} (ours), {tv['threads']} (DataLoader main process)")
    base = best.get("ours: bnlib.train.train")
    rows = [[label, ips, scaled(ratio(batch_size, ips), 1000), None if "alone" in label else ratio(base, ips)]
            for label, ips in best.items()]
    print(table(["loop", "images/s", "ms/step", "ours/this"], rows))
    mem = [["baseline: python with torch and bnlib imported", ours["baseline_rss_mb"], None],
           ["ours, train() runs in a fresh process", ours["first_run_rss_mb"], None],
           ["ours, whole process (3 train() runs + 1 build_task)", ours["rss_mb"], ours["cuda_peak_mb"]],
           ["torchvision DataLoader (one process, all worker settings)", tv["rss_mb"], tv["cuda_peak_mb"]]]
    if tv.get("worker_rss_mb"):
        mem.append(["  largest DataLoader worker process", tv["worker_rss_mb"], None])
    print()
    print(table(["peak memory", "ru_maxrss MiB", "CUDA max allocated MiB"], mem))
    print("ours/this = images/s of bnlib.train.train divided by the row's images/s (> 1: ours is faster); "
          "ours = difference of a long and a short train() run.")
    print(f"\ninterleaved in one process, step by step (same load for both; median of {steps} steps each): ours raw "
          f"step {fmt_ms(both.get('ours'))}, DataLoader (num_workers=0) step {fmt_ms(both.get('tv'))}; "
          f"ours/DataLoader speed ratio {fmt_ratio(ratio(both.get('tv'), both.get('ours')))} (> 1: ours is faster)")


def fmt_ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.1f} ms"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def section_loop(args: argparse.Namespace, profile: str, device: str) -> None:
    p = resolve(profile)
    heading(f"1. Training throughput, VGG/BN width {p.vgg_width:g}, batch {p.batch_size}, profile {p.name}, "
            f"device {device}")
    # Rounds alternate the two processes and each row keeps its best round: on a shared machine the
    # best of a few is the figure least disturbed by other work (as timeit does).
    rounds = [(run_child("ours", args, profile, device), run_child("torchvision", args, profile, device))
              for _ in range(args.rounds)]
    report_loop(rounds, run_child("interleaved", args, profile, device), p.batch_size, args.steps, args.warmup)
