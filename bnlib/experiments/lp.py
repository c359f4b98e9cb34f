"""Section 3.3's runs: Standard, BN and l1 / l2 / l_inf normalisation on the VGG and the DLN.

All are canonical runs (`experiments.common`), so Standard and BN are the very runs the other
chapters use, and every run carries the activation and landscape probes. This module also holds
the summary numbers the plots and claims share: distributional shift and the median landscape
measures (final accuracy and loss are `bnlib.record.Run.final_acc` / `final_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bnlib.experiments.common import LP_NORMS as NORMS
from bnlib.experiments.common import planned, train_planned
from bnlib.probes import activations, landscape
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned

LABELS = {"none": "Standard", "batch": "Standard + BatchNorm", "l1": "Standard + L1", "l2": "Standard + L2",
          "linf": "Standard + L_inf"}
LP_NORMS = ("l1", "l2", "linf")
VGG_LR = 0.1  # the paper's Figures 5, 6, 12
DLN_LR = 1e-6  # the paper's DLN learning rate (Figure 13); every variant trains there
HIST_LAYER = 11  # Figure 6


def _check_norms(norms: tuple[str, ...]) -> None:
    bad = [n for n in norms if n not in NORMS]
    if bad:
        raise ValueError(f"norms must be among {list(NORMS)}, got {bad}")


def vgg_plan(profile: Profile, dataset: str = "auto", seed: int = 0, lr: float = VGG_LR,
             norms: tuple[str, ...] = NORMS) -> dict[str, Planned]:
    """The canonical VGG runs, one per norm."""
    _check_norms(norms)
    return {n: planned(profile, "fig5-vgg", n, lr, dataset=dataset, seed=seed) for n in norms}


def dln_plan(profile: Profile, seed: int = 0, lr: float = DLN_LR,
             norms: tuple[str, ...] = NORMS) -> dict[str, Planned]:
    """The canonical DLN runs, one per norm."""
    _check_norms(norms)
    return {n: planned(profile, "fig5-dln", n, lr, seed=seed) for n in norms}


def vgg_runs(profile: Profile, dataset: str = "auto", seed: int = 0, lr: float = VGG_LR,
             norms: tuple[str, ...] = NORMS) -> dict[str, Run]:
    """Canonical VGG runs (cached), one per norm."""
    return {n: train_planned(one) for n, one in vgg_plan(profile, dataset, seed, lr, norms).items()}


def dln_runs(profile: Profile, seed: int = 0, lr: float = DLN_LR,
             norms: tuple[str, ...] = NORMS) -> dict[str, Run]:
    """Canonical DLN runs (cached), one per norm."""
    return {n: train_planned(one) for n, one in dln_plan(profile, seed, lr, norms).items()}


def chapter_plan(profile: Profile, dataset: str, seeds: Sequence[int],
                 vgg_lr: float = VGG_LR, dln_lr: float = DLN_LR) -> list[Planned]:
    """Every run chapter 5 trains: each norm on the VGG and the DLN, for every seed (the claim
    check reads the same runs)."""
    return [run for seed in seeds
            for run in (*vgg_plan(profile, dataset, seed, vgg_lr).values(), *dln_plan(profile, seed, dln_lr).values())]


def distribution_shift(history: dict[str, Any], layers: tuple[int, ...] | None = None) -> dict[str, float]:
    """How far the recorded units' input distributions move from their first recorded state.

    Scale-free, so networks whose activations live on different scales compare fairly:
    mean_shift = |mu_t - mu_0| / sqrt(var_0) and var_shift = |log(var_t / var_0)|, averaged over the
    recorded steps, units and `layers` (default: every recorded layer).
    """
    recorded = sorted(Run.of(history).probe(activations.NAME)[0]["layers"])
    layers = tuple(recorded) if layers is None else layers
    mean_shifts, var_shifts = [], []
    for k in layers:
        _, mean, var = activations.moments(history, k)
        keep = np.all(np.isfinite(mean), axis=1) & np.all(np.isfinite(var), axis=1)
        mean, var = mean[keep], np.maximum(var[keep], 1e-12)
        mean_shifts.append(np.abs(mean - mean[:1]) / np.sqrt(var[:1]))
        var_shifts.append(np.abs(np.log(var / var[:1])))
    return {"mean_shift": float(np.mean(np.concatenate(mean_shifts))),
            "var_shift": float(np.mean(np.concatenate(var_shifts)))}


def landscape_medians(history: dict[str, Any]) -> dict[str, float]:
    """Medians over training of the three Figure 12/13 measures (gradient predictiveness = the
    largest gradient change over the step sizes; loss range = max - min loss along the gradient)."""
    s = landscape.landscape_series(history)
    return {"loss_range": float(np.nanmedian(s["loss_max"] - s["loss_min"])),
            "gdiff_max": float(np.nanmedian(s["gdiff_max"])), "beta_eff": float(np.nanmedian(s["beta_eff"]))}
