"""How a run executes, not what it computes: memory layout and compilation of the VGG's training step.

Like the device, these options are not part of a run's cache key; `bnlib.train` asks for them once per run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

import torch
from torch import nn


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: unset or empty gives `default`; 0, 1, true, false; anything else is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false"):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return default if value == "" else value in ("1", "true")


def execution_options(channels_last: bool | None = None, compile_model: bool | None = None) -> dict[str, bool]:
    """How to execute (not what to compute): arguments, else $BNLIB_CHANNELS_LAST / $BNLIB_COMPILE (0 or 1).

    channels_last is on by default (1.2-1.9x faster per VGG step on this project's 2-core CPU, and the
    layout tensor cores want); compile is off (no faster for the Standard VGG on that CPU, and 8-30 s
    to compile each model). Like the device, neither is part of a run's cache key: they change the
    order of floating-point operations, not the model, the data or the precision (always fp32;
    bnlib offers no mixed precision, because the probes measure differences of losses and
    gradients that bf16/fp16 rounding would swamp). `python -m tools.bench --only speedups` measures them.
    """
    return {"channels_last": env_flag("BNLIB_CHANNELS_LAST", True) if channels_last is None else bool(channels_last),
            "compile": env_flag("BNLIB_COMPILE", False) if compile_model is None else bool(compile_model)}


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed activation buffers for reuse instead of handing them back to the kernel.

    A VGG step allocates and frees the same few-MB activations every step; with glibc's defaults many come
    from fresh mmap'd pages: a 1/8-width BN step took 2,000-4,800 page faults, about 20-50 with this
    (`python -m tools.bench --only allocator`; the time saved, 0-12% per step, is within this VM's noise).
    Allocations below 32 MB (glibc's cap for this setting) now reuse the heap, which is not trimmed below 1 GB.
    Only where the memory goes changes, never a computed value. Once per process; False where the C library
    is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def prepare_execution(model: nn.Module, x: torch.Tensor,
                      options: dict[str, bool]) -> tuple[nn.Module, torch.Tensor, Any]:
    """(model, images, training forward) under `options` from execution_options; the model is the same
    object (its layout changed in place) and stays what probes and evaluation call."""
    if options["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, torch.compile(model) if options["compile"] else model
