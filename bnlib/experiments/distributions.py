"""The runs behind Figures 1, 2 and 8 and the noise-level control (chapters 01 and 02).

Figures 1/2/8 use the canonical shared runs (`common.planned`, figures "fig1" and "fig2"), which carry
the activation probe's records. The noise-level grid is short runs of `profile.widget_steps` steps with no
probes; two of its points come free: scale 0 is plain BN and scale 1 (the paper's constants) is
the canonical noisy run, whose first steps are identical to a short run's (same seed, same
batches, probes never change a trajectory), so only the other scales are trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bnlib.experiments.common import planned, train_planned, vgg_config
from bnlib.models import NoiseConfig
from bnlib.probes import activations as act
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned

FIG1_LRS = (0.1, 0.5)
FIG2_LR = 0.1
FIG2_NORMS = ("none", "batch", "noisy")  # Standard, +BN, +"Noisy" BN
CONTROL_NORM = "noise_only"  # the text's control: the same noise on the Standard network
FIG1C_LAYERS = (3, 11)
FIG2_LAYERS = (2, 9, 13)
NOISE_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0)  # multiples of the paper's noise (the static grid)
LIVE_SCALES = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # the live control's finer choices
PAPER_NOISE = NoiseConfig()


def scaled_noise(scale: float) -> NoiseConfig:
    """Algorithm 1's noise `scale` times the paper's: n_mu, n_sigma - 1, r_mu, r_sigma all scaled."""
    if not scale >= 0:
        raise ValueError(f"noise scale must be >= 0 (0 = no noise, 1 = the paper's constants), got {scale!r}")
    p = PAPER_NOISE
    return NoiseConfig(n_mu=p.n_mu * scale, n_sigma=1 + (p.n_sigma - 1) * scale, r_mu=p.r_mu * scale,
                       r_sigma=p.r_sigma * scale)


def fig1_plan(profile: Profile, dataset: str = "auto", seed: int = 0,
              lrs: Sequence[float] = FIG1_LRS) -> dict[tuple[str, float], Planned]:
    """Figure 1's runs: Standard and +BN at each learning rate, keyed (norm, lr)."""
    return {(norm, lr): planned(profile, "fig1", norm, lr, dataset=dataset, seed=seed)
            for lr in lrs for norm in ("none", "batch")}


def fig1_runs(profile: Profile, dataset: str = "auto", seed: int = 0,
              lrs: Sequence[float] = FIG1_LRS) -> dict[tuple[str, float], Run]:
    """Figure 1: Standard and +BN at each learning rate, keyed (norm, lr)."""
    return {key: train_planned(one) for key, one in fig1_plan(profile, dataset, seed, lrs).items()}


def fig2_plan(profile: Profile, dataset: str = "auto", seed: int = 0, lr: float = FIG2_LR,
              control: bool = True) -> dict[str, Planned]:
    """Figures 2 and 8's runs: Standard, +BN, +noisy BN (and the noise-only control), keyed by norm."""
    norms = FIG2_NORMS + ((CONTROL_NORM,) if control else ())
    return {norm: planned(profile, "fig2", norm, lr, dataset=dataset, seed=seed) for norm in norms}


def fig2_runs(profile: Profile, dataset: str = "auto", seed: int = 0, lr: float = FIG2_LR,
              control: bool = True) -> dict[str, Run]:
    """Figures 2 and 8: Standard, +BN, +noisy BN (and the noise-only control), keyed by norm."""
    return {norm: train_planned(one) for norm, one in fig2_plan(profile, dataset, seed, lr, control).items()}


def unit_drift(run: Run, layer: int) -> dict[str, float]:
    """Mean |change| of the recorded units' mean and variance between recorded steps, in absolute terms and
    relative to each unit's OWN typical sd (variance), so layers and networks on different scales compare."""
    drift = act.moment_drift(run, layer)
    _, _, var = act.moments(run, layer)
    sd = np.sqrt(np.nanmean(var, axis=0))  # one per unit
    return {"mean |Δμ|": float(np.nanmean(drift["abs_dmean"])),
            "mean |Δμ| / unit sd": float(np.nanmean(drift["abs_dmean"] / sd)),
            "mean |Δvar|": float(np.nanmean(drift["abs_dvar"])),
            "mean |Δvar| / unit var": float(np.nanmean(drift["abs_dvar"] / sd**2))}


Kept = tuple[Planned, int | None]  # a planned run and how many of its steps to keep (None: all)


def noise_plan(scale: float, profile: Profile, dataset: str = "auto", seed: int = 0,
               lr: float = FIG2_LR, norm: str = "noisy") -> Kept:
    """What noise_run trains: a short run, or a canonical one of which it keeps the first widget_steps."""
    if norm not in ("noisy", CONTROL_NORM):
        raise ValueError(f"noise_run: norm must be 'noisy' or {CONTROL_NORM!r}, got {norm!r}")
    if scale == 0:
        baseline = "batch" if norm == "noisy" else "none"
        return planned(profile, "fig2", baseline, lr, dataset=dataset, seed=seed), profile.widget_steps
    if scale == 1 and profile.widget_steps <= profile.vgg_steps:
        return planned(profile, "fig2", norm, lr, dataset=dataset, seed=seed), profile.widget_steps
    short = vgg_config(profile, norm, lr, dataset, seed, steps=profile.widget_steps, noise=scaled_noise(scale))
    return (short, []), None


def _train_kept(kept: Kept, progress: bool = True) -> Run:
    one, steps = kept
    run = train_planned(one, progress)
    return run if steps is None else run.truncated(steps)


def noise_run(scale: float, profile: Profile, dataset: str = "auto", seed: int = 0,
              lr: float = FIG2_LR, norm: str = "noisy", progress: bool = True) -> Run:
    """A short (widget_steps) run with the noise at `scale` x the paper's; cached, no probes."""
    return _train_kept(noise_plan(scale, profile, dataset, seed, lr, norm), progress)


def grid_plan(profile: Profile, dataset: str = "auto", seed: int = 0,
              scales: Sequence[float] = NOISE_SCALES, lr: float = FIG2_LR) -> dict[Any, Kept]:
    """The static control's runs: one per noise scale, plus the two baselines (truncated canonical runs)."""
    grid: dict[Any, Kept] = {s: noise_plan(s, profile, dataset, seed, lr) for s in scales}
    grid["batch"] = planned(profile, "fig2", "batch", lr, dataset=dataset, seed=seed), profile.widget_steps
    grid["none"] = planned(profile, "fig2", "none", lr, dataset=dataset, seed=seed), profile.widget_steps
    return grid


def noise_grid(profile: Profile, dataset: str = "auto", seed: int = 0,
               scales: Sequence[float] = NOISE_SCALES, lr: float = FIG2_LR) -> dict[Any, Run]:
    """The static control's grid: one short noisy-BN run per noise scale, plus the two baselines.

    Keys: each scale, and "batch" / "none" for the BN and Standard baselines (truncated canonical runs).
    """
    return {key: _train_kept(kept) for key, kept in grid_plan(profile, dataset, seed, scales, lr).items()}


def chapter1_plan(profile: Profile, dataset: str, seeds: Sequence[int],
                  lrs: Sequence[float] = FIG1_LRS) -> list[Planned]:
    """Every run chapter 1 trains: Figure 1 at `lrs`, and at the paper's rates for its claim check, for
    every seed."""
    return [run for seed in seeds
            for run in (*fig1_plan(profile, dataset, seed, lrs).values(), *fig1_plan(profile, dataset, seed).values())]


def chapter2_plan(profile: Profile, dataset: str, seeds: Sequence[int],
                  lr: float = FIG2_LR, scales: Sequence[float] = NOISE_SCALES) -> list[Planned]:
    """Every run chapter 2 trains (its live control aside): Figure 2 at `lr` and at the paper's rate (its
    claim check) for every seed, and the noise grid at `lr` for the first seed."""
    grid = [one for one, _ in grid_plan(profile, dataset, seeds[0], scales, lr).values()]
    return [*grid, *(run for seed in seeds for run in (*fig2_plan(profile, dataset, seed, lr).values(),
                                                       *fig2_plan(profile, dataset, seed).values()))]
