"""Section `speedups`: bnlib.train.train's step time under each execution option (channels_last,
torch.compile) on this machine, through train() itself; the first run's time (compile included) apart.
"""

from __future__ import annotations

import argparse

import torch

from bnlib.profiles import resolve
from tools.bench.loop import loop_config
from tools.bench.util import heading, quiet_config, ratio, scaled, table, timed_train, train_step_seconds

OPTIONS = ((False, False), (True, False), (False, True), (True, True))


def section_speedups(args: argparse.Namespace, profile: str, device: str) -> None:
    """Same model init and batches for every option: only the execution differs."""
    p, dev = resolve(profile), torch.device(device)
    heading(f"1b. Execution options: channels_last and torch.compile (VGG/BN width {p.vgg_width:g}, batch "
            f"{p.batch_size}, device {device})")
    config = loop_config(p, args.dataset)
    rows, base = [], None
    for channels_last, compiled in OPTIONS:
        name = f"channels_last={channels_last}, compile={compiled}"
        options = {"channels_last": channels_last, "compile_model": compiled}
        try:  # the first run of an option pays its compilation; later runs reuse it
            first = timed_train(quiet_config(config, max(1, args.warmup)), dev, **options)[0]
            per_step = train_step_seconds(config, dev, args.warmup, args.steps, **options)[0]
        except Exception as err:  # e.g. no C++ compiler for inductor on this machine
            rows.append([name, None, None, None, f"failed: {type(err).__name__}: {str(err)[:60]}"])
            continue
        base = base if base is not None or (channels_last or compiled) else per_step
        rows.append([name, scaled(per_step, 1000), ratio(config.batch_size, per_step), ratio(base, per_step),
                     f"first {max(1, args.warmup)}-step run incl. compile: {first:.1f} s"])
    print(table(["execution", "ms/step", "images/s", "speed-up", "note"], rows))
    print("speed-up = eager default step time / this row's (> 1: faster); step time = difference of a long and "
          "a short train() run. Turn them on with BNLIB_CHANNELS_LAST=1 / BNLIB_COMPILE=1 "
          "(bnlib.execution.execution_options); fp32 throughout.")
