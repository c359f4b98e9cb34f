"""Section `allocator`: a VGG/BN training step with glibc's default allocator settings against
`bnlib.execution.keep_freed_memory` (freed activations reused rather than returned to the kernel).

The setting cannot be undone inside a process, so each side runs in its own child process (`--child
allocator-default` / `allocator-kept`: the same init and batches), alternating for `--rounds`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

import torch

from bnlib.execution import keep_freed_memory, prepare_execution
from bnlib.profiles import resolve
from bnlib.train import build_task
from tools.bench.loop import bare_step, batch, loop_config, run_child
from tools.bench.util import heading, ratio, table

CHILDREN = {False: "allocator-default", True: "allocator-kept"}


def child_main(args: argparse.Namespace) -> None:
    """One side: time `--steps` bare SGD steps of the profile's VGG/BN (channels-last, as train runs it) on one
    thread; prints one JSON line, ms/step and page faults/step."""
    torch.set_num_threads(1)
    if args.child == CHILDREN[True]:
        keep_freed_memory()
    config = replace(loop_config(resolve(args.profile), args.dataset), n_test=None)  # never evaluated here
    task = build_task(config)
    task.model, task.x_train, _ = prepare_execution(task.model, task.x_train, {"channels_last": True, "compile": False})
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    for s in range(args.warmup):
        bare_step(task.model, optimizer, *batch(task, config, s))
    faults, began = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for s in range(args.warmup, args.warmup + args.steps):
        bare_step(task.model, optimizer, *batch(task, config, s))
    seconds = (time.perf_counter() - began) / args.steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
    print(json.dumps({"ms": seconds * 1000, "faults": faults}))


def _child(args: argparse.Namespace, keep: bool) -> dict[str, float]:
    at_least = argparse.Namespace(**{**vars(args), "warmup": max(5, args.warmup), "steps": max(20, args.steps)})
    return run_child(CHILDREN[keep], at_least, args.profile, "cpu")


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
