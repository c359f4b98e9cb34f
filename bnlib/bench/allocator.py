"""Section `allocator`: a VGG/BN training step with glibc's default allocator settings against
`bnlib.execution.keep_freed_memory` (freed activations reused rather than returned to the kernel).

The setting cannot be undone inside a process, so each side runs in its own child process (the same
init and batches), alternating for `--rounds`; the children print one JSON line: ms/step, page faults/step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

import torch

from bnlib.bench.loop import loop_config
from bnlib.bench.util import REPO, heading, ratio, table
from bnlib.execution import keep_freed_memory
from bnlib.profiles import resolve
from bnlib.train import batch_indices, build_task


def child_main(profile: str, dataset: str, keep: bool, warmup: int, steps: int) -> None:
    """Time `steps` bare SGD steps of the profile's VGG/BN (channels-last, as train runs it) on one thread."""
    torch.set_num_threads(1)
    if keep:
        keep_freed_memory()
    config = replace(loop_config(resolve(profile), dataset), n_test=None)  # never evaluated here
    task = build_task(config)
    model = task.model.to(memory_format=torch.channels_last)
    x_train = task.x_train.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)

    def step(s: int) -> None:
        idx = batch_indices(len(x_train), config.batch_size, s, config.seed, x_train.device)
        optimizer.zero_grad(set_to_none=True)
        task.loss_fn.of(model(x_train[idx]), task.y_train[idx]).backward()
        optimizer.step()

    for s in range(warmup):
        step(s)
    faults, began = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for s in range(warmup, warmup + steps):
        step(s)
    seconds = (time.perf_counter() - began) / steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    print(json.dumps({"ms": seconds * 1000, "faults": faults}))


def _child(args: argparse.Namespace, keep: bool) -> dict[str, float]:
    code = ("import sys; from bnlib.bench.allocator import child_main; "
            "child_main(sys.argv[1], sys.argv[2], sys.argv[3] == '1', int(sys.argv[4]), int(sys.argv[5]))")
    out = subprocess.run([sys.executable, "-c", code, args.profile, args.dataset, "1" if keep else "0",
                          str(max(5, args.warmup)), str(max(20, args.steps))],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def section_allocator(args: argparse.Namespace) -> None:
    p = resolve(args.profile)
    heading(f"1c. Allocator: glibc defaults vs keep_freed_memory (VGG/BN width {p.vgg_width:g}, batch "
            f"{p.batch_size}, one thread, CPU)")
    if not keep_freed_memory():
        print("not glibc on Linux here: keep_freed_memory does nothing, nothing to compare")
        return
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(max(1, args.rounds)):
        for keep in (False, True):
            results[keep].append(_child(args, keep))
    best = {keep: min(runs, key=lambda r: r["ms"]) for keep, runs in results.items()}
    rows = [[name, f"{best[keep]['ms']:.1f}", f"{best[keep]['faults']:.0f}",
             ratio(best[False]["ms"], best[keep]["ms"])]
            for name, keep in (("glibc defaults", False), ("keep_freed_memory", True))]
    print(table(["allocator", "ms/step (best of rounds)", "page faults/step", "speed-up"], rows))
    print("Each side in a fresh child process, alternating; train() calls keep_freed_memory once per process.")
