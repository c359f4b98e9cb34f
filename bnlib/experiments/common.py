"""The canonical runs every chapter shares, one per (model, norm, lr, seed, profile, dataset), and the
registry of which figure reads which probes from them.

Each figure or claim declares the canonical runs it reads and the default probes it needs of them
(`REGISTRY`); a canonical run carries the union over its readers (VGG/BN at LR 0.1: histograms, ICS,
landscape and Hessian records). A run outside the registry (another learning rate, say) carries only
the probes its figure asks for. Since a run's cache key covers the code of exactly the probes it
carries, a change to one probe retrains only the runs carrying it.

Every run function trains a `Planned` (config, probes) that a `*_plan` function lists first, so
a chapter can say what it will train (bnlib.plan) from the same source that trains it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bnlib import runs, train
from bnlib.execution import prepare_execution
from bnlib.losses import Loss
from bnlib.models import NoiseConfig
from bnlib.probes import activations, ics, landscape
from bnlib.probes.base import Probe
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned
from bnlib.train import RunConfig

LP_NORMS = ("none", "batch", "l1", "l2", "linf")
# The most of a canonical DLN run's CPU time its probes may take (probes / the whole run). The cadences and the
# Hessian's cap are chosen to stay under it (`python -m tools.bench --only dln`
# prints it). Measured at the cpu profile (one thread): Standard at LR 1e-6 with every probe 26-30% (its
# written-out training, 3.5 s, is the cheapest, and each landscape measurement is six autograd passes of the
# module), +BN 20%, the l_p runs 12-18% (landscape), the LR 1e-7 runs 4-7% (ICS only).
DLN_PROBE_SHARE = 0.4


@dataclass(frozen=True)
class Reads:
    """One figure's (or claim's) canonical runs, every (norm, lr) of `model`, and the probes it reads of them."""

    figure: str
    model: str
    norms: tuple[str, ...]
    lrs: tuple[float, ...]
    probes: tuple[str, ...]


REGISTRY: tuple[Reads, ...] = (
    Reads("fig1", "vgg", ("none", "batch"), (0.1, 0.5), ("activations",)),  # ch. 1 (accuracy, Figure 1c)
    Reads("fig2", "vgg", ("none", "batch", "noisy", "noise_only"), (0.1,), ("activations",)),  # ch. 2, Figs 2, 8
    Reads("fig3-vgg", "vgg", ("none", "batch"), (0.1, 0.01), ("ics",)),  # ch. 3
    Reads("fig3-dln", "dln", ("none", "batch"), (1e-6, 1e-7), ("ics",)),  # ch. 3
    Reads("fig9", "dln", ("none", "batch"), (1e-6,), ("activations",)),  # ch. 3
    Reads("fig4", "vgg", ("none", "batch"), (0.1,), ("landscape", "hessian")),  # ch. 4: Figs 4, 11, the Hessian
    Reads("fig10", "dln", ("none", "batch"), (1e-6,), ("landscape", "hessian")),  # ch. 4
    Reads("fig5-vgg", "vgg", LP_NORMS, (0.1,), ("activations", "landscape")),  # ch. 5: Figs 5a, 6, 12
    Reads("fig5-dln", "dln", LP_NORMS, (1e-6,), ("landscape",)),  # ch. 5: Figs 5b, 13
    Reads("outliers", "vgg", ("batch",), (0.1,), ("hessian_running",)),  # ch. 7: the Hessian with running statistics
)
FIGURES = {r.figure: r for r in REGISTRY}


def reads(figure: str) -> Reads:
    """The registry entry of `figure` (a clear error for an unknown name)."""
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {list(FIGURES)}, got {figure!r}")
    return FIGURES[figure]


def carried(model: str, norm: str, lr: float) -> tuple[str, ...]:
    """The probe names a canonical run carries: the union of what its readers declare (() outside the registry)."""
    names = {p for r in REGISTRY if r.model == model and norm in r.norms and lr in r.lrs for p in r.probes}
    return tuple(sorted(names))


def canonical(model: str | None = None) -> list[tuple[str, str, float]]:
    """Every canonical run as (model, norm, lr), in registry order, each once."""
    return list(dict.fromkeys((r.model, n, lr) for r in REGISTRY if model in (None, r.model)
                              for lr in r.lrs for n in r.norms))


def vgg_config(profile: Profile, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
               steps: int | None = None, noise: NoiseConfig = NoiseConfig()) -> RunConfig:
    """VGG run config at the profile's scale (paper: width 1, batch 128, 15k steps)."""
    return RunConfig(model="vgg", norm=norm, lr=lr, steps=steps or profile.vgg_steps, batch_size=profile.batch_size,
                     seed=seed, width=profile.vgg_width, dataset=dataset, n_train=profile.n_train,
                     n_test=profile.n_test, eval_every=profile.eval_every, noise=noise)


def dln_config(profile: Profile, norm: str, lr: float, seed: int = 0,
               steps: int | None = None) -> RunConfig:
    """DLN run config (25 x 10x10, full batch of dln_points, paper: 1000 points, 10k steps)."""
    return RunConfig(model="dln", norm=norm, lr=lr, steps=steps or profile.dln_steps, dln_points=profile.dln_points,
                     seed=seed, eval_every=max(1, profile.dln_probe_every))


@dataclass(frozen=True)
class FirstStep:
    """A run's state at step 0, before any update: what its step-0 probe records were measured on."""

    model: nn.Module  # the seeded initialisation, in training mode (batch statistics), on the CPU
    x: torch.Tensor  # step 0's batch (the DLN: all its points)
    y: torch.Tensor
    loss_fn: Loss
    config: RunConfig


@contextlib.contextmanager
def first_step(run: Run | dict[str, Any]) -> Iterator[FirstStep]:
    """`run`'s step 0, rebuilt exactly from its config (the seeded model and the first batch, as the training loop
    makes them) in its recorded memory layout, with torch's thread count set to the run's while inside (restored
    after), so that its kernels round as nearly as a notebook can make them like the run's: on the machine that
    trained it, the step-0 records repeat bit for bit at the smoke profile and within 5e-5 at cpu (measured
    2026-12-06; the pool's worker processes are not the notebook's). The chapters' by-hand cells recompute a
    probe's quantity from it and compare with the run's step-0 record."""
    history = Run.of(run).history
    stored = dict(history["config"])
    config = RunConfig(**{**stored, "noise": NoiseConfig(**stored["noise"])})
    task = train.build_task(config, "cpu")
    layout = {"channels_last": bool(history["execution"].get("channels_last")) and config.model == "vgg",
              "compile": False}
    model, x_train, _ = prepare_execution(task.model, task.x_train, layout)
    n = len(x_train)
    idx = train.batch_indices(n, config.batch_size if config.on_images else n, 0, config.seed, x_train.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(history["execution"].get("threads", threads))
    try:
        yield FirstStep(model.train(), x_train[idx], task.y_train[idx], task.loss_fn, config)
    finally:
        torch.set_num_threads(threads)


def default_probes(profile: Profile, model: str) -> list[Probe]:
    """Every default probe of `model` at the profile's cadences, in one fixed order (it is part of run keys)."""
    if model not in ("vgg", "dln"):
        raise ValueError(f"model must be 'vgg' or 'dln', got {model!r}")
    return [probe for module in (activations, ics, landscape)
            for probe in (module.vgg_probes(profile) if model == "vgg" else module.dln_probes(profile))]


def planned(profile: Profile, figure: str, norm: str, lr: float, *, dataset: str = "auto",
            seed: int = 0) -> Planned:
    """The run `figure` reads at (norm, lr): a canonical run's config with the probes its registry readers
    declare (so every figure gets the same shared run), else only the probes `figure` declares."""
    r = reads(figure)
    names = set(r.probes) | set(carried(r.model, norm, lr))
    probes = [probe for probe in default_probes(profile, r.model) if probe.name in names]
    config = vgg_config(profile, norm, lr, dataset, seed) if r.model == "vgg" else dln_config(profile, norm, lr, seed)
    return config, probes


def plan_of(profile: Profile, figure: str, norms: Sequence[str], lrs: Sequence[float], *,
            dataset: str = "auto", seed: int = 0) -> dict[tuple[str, float], Planned]:
    """{(norm, lr): planned} of `figure` for every norm and learning rate."""
    return {(n, lr): planned(profile, figure, n, lr, dataset=dataset, seed=seed) for lr in lrs for n in norms}


def train_planned(planned: Planned, progress: bool = True) -> Run:
    """The record of a planned run (from the cache when present, else trained)."""
    config, probes = planned
    return Run(runs.run(config, probes, progress=progress))
