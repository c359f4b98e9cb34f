"""How a run executes, not what it computes: memory layout and compilation of the VGG's training step, and
the numerics every run keeps (true fp32, repeatable kernels) with what it records of them.

Like the device, these options are not part of a run's cache key; `bnlib.train` asks for them once per run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# cuBLAS repeats its matrix products only with a fixed workspace, and reads this before its first call in the
# process: set here, at import, before any run touches CUDA (an explicit setting of the reader's is kept)
CUBLAS_WORKSPACE = os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: unset or empty gives `default`; 0, 1, true, false; anything else is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false"):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return default if value == "" else value in ("1", "true")


def _numerics() -> list[tuple[str, Any, str, Any]]:
    """(label, settings object, attribute, value) of exact, repeatable numerics in the installed torch's API: IEEE
    fp32 for matrix products and cuDNN convolutions (torch >= 2.9 calls it fp32_precision; before, allow_tf32),
    cuDNN's deterministic algorithms, no autotuning."""
    cuda, cudnn = torch.backends.cuda, torch.backends.cudnn
    if hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        precision = [("cuda.matmul.fp32_precision", cuda.matmul, "fp32_precision", "ieee"),
                     ("cudnn.conv.fp32_precision", cudnn.conv, "fp32_precision", "ieee")]
    else:
        precision = [("cuda.matmul.allow_tf32", cuda.matmul, "allow_tf32", False),
                     ("cudnn.allow_tf32", cudnn, "allow_tf32", False)]
    return [*precision, ("cudnn.deterministic", cudnn, "deterministic", True),
            ("cudnn.benchmark", cudnn, "benchmark", False)]


@contextlib.contextmanager
def exact_numerics(device: torch.device | None = None) -> Iterator[None]:
    """Inside, the settings of `_numerics` and, on a CUDA `device`, torch's deterministic algorithms (an op without
    one raises instead of varying); the previous settings restored on the way out, however it is left.

    Why: on CUDA, cuDNN's convolutions default to TF32 (a 10-bit mantissa) on Ampere and later GPUs, while the
    probes measure small differences of losses and gradients, and cuDNN may otherwise pick non-deterministic or
    autotuned algorithms, so a rerun or a resumed run would not repeat itself. CPU kernels ignore these settings,
    and deterministic algorithms stay off there (they would fill every new tensor with NaN first, for nothing): on
    the CPU nothing changes (the runs' golden hashes are the same with and without)."""
    settings = _numerics()
    saved = [(owner, name, getattr(owner, name)) for _, owner, name, _ in settings]
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for _, owner, name, value in settings:
            setattr(owner, name, value)
        if device is not None and device.type == "cuda":
            torch.use_deterministic_algorithms(True)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model: what a run records it was made on (kernels round differently on each)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "CPU"


def provenance(device: torch.device) -> dict[str, Any]:
    """What made a run, recorded beside it and never part of its key: the device's name, torch's and cuDNN's
    versions, and the numerics settings in force (read, not assumed: call it inside `exact_numerics`)."""
    # plain str and bool only: a run's record must load with torch.load(weights_only=True) (bnlib.store)
    plain = {label: (str if isinstance(value, str) else bool)(getattr(owner, name))
             for label, owner, name, value in _numerics()}
    return {"device_name": device_name(device), "torch": str(torch.__version__),
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None, **plain,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cublas_workspace": str(os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")) if device.type == "cuda" else None}


def execution_options(channels_last: bool | None = None, compile_model: bool | None = None,
                      device: torch.device | None = None) -> dict[str, bool]:
    """How to execute (not what to compute): arguments, else $BNLIB_CHANNELS_LAST / $BNLIB_COMPILE (0 or 1).

    channels_last is on by default on the CPU (1.2-1.9x faster per VGG step on this project's 2-core CPU) and off
    on CUDA, where no GPU has measured it yet (fp32 NHWC kernels are often slower on a T4); compile is off (no
    faster for the Standard VGG on that CPU, and 8-30 s
    to compile each model). Like the device, neither is part of a run's cache key: they change the
    order of floating-point operations, not the model, the data or the precision (always fp32;
    bnlib offers no mixed precision, because the probes measure differences of losses and
    gradients that bf16/fp16 rounding would swamp). `python -m tools.bench --only speedups` measures them.
    """
    layout_default = device is None or device.type != "cuda"
    return {"channels_last": env_flag("BNLIB_CHANNELS_LAST", layout_default) if channels_last is None
            else bool(channels_last),
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
