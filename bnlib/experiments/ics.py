"""Figure 3's runs: Standard vs +BN, VGG at LR 0.1 and 0.01, the DLN at LR 1e-6 and 1e-7.

With the default layers these are the canonical shared runs (their default ICS probe measures
VGG layers #5, #10 and DLN layers #9, #17). Other layers get their own cached runs carrying
only an ICS probe for those layers, at the same cadence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from bnlib import runs
from bnlib.experiments import common
from bnlib.probes.base import StepContext, rng_state
from bnlib.probes.ics import DLN_LAYERS, VGG_LAYERS, ICSProbe
from bnlib.profiles import Profile, resolve
from bnlib.train import build_task, default_device

NORMS = ("none", "batch")
VGG_LRS = (0.1, 0.01)
DLN_LRS = (1e-6, 1e-7)

Runs = dict[tuple[str, float], dict[str, Any]]


def _check(name: str, values: Sequence[Any], count: int | None = None) -> tuple[Any, ...]:
    values = tuple(values)
    if not values or (count is not None and len(values) != count):
        raise ValueError(f"{name} must be a sequence of {count or 'one or more'} values, got {values!r}")
    return values


def vgg_runs(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0,
             lrs: Sequence[float] = VGG_LRS, layers: Sequence[int] = VGG_LAYERS,
             progress: bool = True) -> Runs:
    """{(norm, lr): history} for Figure 3 (top)."""
    p = resolve(profile)
    lrs, layers = _check("lrs", lrs), _check("layers", layers, 2)
    out: Runs = {}
    for lr in lrs:
        for norm in NORMS:
            if tuple(sorted(layers)) == VGG_LAYERS:
                out[(norm, lr)] = common.vgg_run(p, norm, lr, dataset, seed, progress=progress)
            else:
                config = common.vgg_config(p, norm, lr, dataset, seed)
                out[(norm, lr)] = runs.run(config, [ICSProbe(p.probe_every, layers)], progress=progress)
    return out


def dln_runs(profile: Profile | str | None = None, seed: int = 0, lrs: Sequence[float] = DLN_LRS,
             layers: Sequence[int] = DLN_LAYERS, progress: bool = True) -> Runs:
    """{(norm, lr): history} for Figure 3 (bottom) and Figure 9 (full scale at profiles cpu and paper)."""
    p = resolve(profile)
    lrs, layers = _check("lrs", lrs), _check("layers", layers, 2)
    out: Runs = {}
    for lr in lrs:
        for norm in NORMS:
            if tuple(sorted(layers)) == DLN_LAYERS:
                out[(norm, lr)] = common.dln_run(p, norm, lr, seed, progress=progress)
            else:
                config = common.dln_config(p, norm, lr, seed)
                out[(norm, lr)] = runs.run(config, [ICSProbe(p.dln_probe_every, layers)], progress=progress)
    return out


def probe_cost(profile: Profile | str | None = None, model: str = "vgg", norm: str = "batch",
               dataset: str = "auto", reps: int = 3) -> dict[str, float]:
    """Seconds of one training step and of one default ICS measurement (both layers), and their ratio.

    Timed on the profile's model and batch, after one warm-up step; the measurement includes its
    state save/restore. What a run pays is ratio / probe_every extra per step.
    """
    if model not in ("vgg", "dln"):
        raise ValueError(f"model must be 'vgg' or 'dln', got {model!r}")
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an int >= 1, got {reps!r}")
    p = resolve(profile)
    config = common.vgg_config(p, norm, 0.01, dataset) if model == "vgg" else common.dln_config(p, norm, 1e-7)
    task = build_task(config, default_device())
    net, opt = task.model.train(), torch.optim.SGD(task.model.parameters(), lr=config.lr)
    n = config.batch_size if model == "vgg" else config.dln_points
    x, y = task.x_train[:n], task.y_train[:n]
    probe = ICSProbe(1, VGG_LAYERS if model == "vgg" else DLN_LAYERS)

    def forward_backward() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = task.loss_fn(net, x, y)
        loss.backward()
        return loss

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    forward_backward()
    opt.step()
    step_s = probe_s = 0.0
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        forward_backward()
        opt.step()
        sync()
        step_s += time.perf_counter() - t0
        rng = rng_state()
        loss = forward_backward()
        sync()
        t0 = time.perf_counter()
        probe.measure(StepContext(net, x, y, loss.detach(), task.loss_fn, config.lr, 0, rng, opt))
        sync()
        probe_s += time.perf_counter() - t0
    return {"step_s": step_s / reps, "probe_s": probe_s / reps, "ratio": probe_s / step_s}
