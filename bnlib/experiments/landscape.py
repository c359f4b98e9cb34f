"""Chapter 4's runs: Figure 4 / 11 (VGG), Figure 10 (DLN), and the learning-rate control grid.

Figures 4, 10 and the Hessian curves read the canonical shared runs of every seed the chapter trains
(their default probes carry the landscape and Hessian records); Figure 11 shows the first seed's. The
control trains short runs (profile.widget_steps steps) of Standard and +BN over a grid of learning
rates, each with a landscape probe, cached, at the first seed only: it is for exploring, not a claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bnlib import plan
from bnlib import stats as st
from bnlib.experiments.common import dln_config, planned, train_planned, vgg_config
from bnlib.losses import cross_entropy, sum_squared_error
from bnlib.models import DLN
from bnlib.probes import landscape as probes
from bnlib.probes.hessian import finite_difference_hessian, lanczos
from bnlib.probes.landscape import VGG_ETA_FACTORS, LandscapeProbe
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned

VGG_LR = 0.1  # Figure 4
DLN_LR = 1e-6  # Figure 10
GRID_LRS = (0.01, 0.05, 0.1, 0.5, 1.0)  # the control: includes rates where Standard fails
NORMS = {"Standard": "none", "+BN": "batch"}


def vgg_plan(profile: Profile, dataset: str = "auto", seed: int = 0,
             lr: float = VGG_LR) -> dict[str, Planned]:
    """Figure 4 / 11's runs: the canonical VGG runs, Standard and +BN, at `lr`."""
    return {label: planned(profile, "fig4", norm, lr, dataset=dataset, seed=seed) for label, norm in NORMS.items()}


def dln_plan(profile: Profile, seed: int = 0, lr: float = DLN_LR) -> dict[str, Planned]:
    """Figure 10's runs: the canonical DLN runs, Standard and +BN, at `lr`."""
    return {label: planned(profile, "fig10", norm, lr, seed=seed) for label, norm in NORMS.items()}


def vgg_runs(profile: Profile, dataset: str = "auto", seed: int = 0, lr: float = VGG_LR,
             progress: bool = True) -> dict[str, Run]:
    """Figure 4 / 11: the canonical VGG runs, Standard and +BN, at `lr`."""
    return {label: train_planned(one, progress) for label, one in vgg_plan(profile, dataset, seed, lr).items()}


def dln_runs(profile: Profile, seed: int = 0, lr: float = DLN_LR,
             progress: bool = True) -> dict[str, Run]:
    """Figure 10: the canonical DLN runs (25 x 10x10, full batch), Standard and +BN, at `lr`."""
    return {label: train_planned(one, progress) for label, one in dln_plan(profile, seed, lr).items()}


def control_probes(profile: Profile) -> list[LandscapeProbe]:
    """The short control runs carry the landscape probe at 5 points of their length."""
    return [LandscapeProbe(max(1, profile.widget_steps // 5), VGG_ETA_FACTORS)]


def control_plan(profile: Profile, norm: str, lr: float, dataset: str = "auto",
                 seed: int = 0) -> Planned:
    """One short run behind the learning-rate control: widget_steps steps with the landscape probe."""
    return vgg_config(profile, norm, lr, dataset, seed, steps=profile.widget_steps), list(control_probes(profile))


def control_run(profile: Profile, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
                progress: bool = True) -> Run:
    """One short run behind the learning-rate control (cached): what the live widget retrains."""
    return train_planned(control_plan(profile, norm, lr, dataset, seed), progress)


def grid_plan(profile: Profile, dataset: str = "auto", seed: int = 0,
              lrs: Sequence[float] = GRID_LRS) -> dict[float, dict[str, Planned]]:
    """The static stepper's runs: {lr: {"Standard": planned, "+BN": planned}}."""
    if not lrs or any(not lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates, got {lrs!r}")
    return {lr: {label: control_plan(profile, norm, lr, dataset, seed) for label, norm in NORMS.items()}
            for lr in lrs}


def lr_grid(profile: Profile, dataset: str = "auto", seed: int = 0,
            lrs: Sequence[float] = GRID_LRS, progress: bool = True) -> dict[float, dict[str, Run]]:
    """{lr: {"Standard": history, "+BN": history}} for the static stepper over learning rates."""
    return {lr: {label: train_planned(one, progress) for label, one in pair.items()}
            for lr, pair in grid_plan(profile, dataset, seed, lrs).items()}


def chapter_plan(profile: Profile, dataset: str, seeds: Sequence[int],
                 grid_lrs: Sequence[float] = GRID_LRS) -> list[Planned]:
    """Every run chapter 4 trains (its live control aside): Figures 4, 10, 11 and the claim check read the
    canonical runs of every seed; the learning-rate control trains short runs at
    `grid_lrs` for the first seed."""
    grid = [one for pair in grid_plan(profile, dataset, seeds[0], grid_lrs).values() for one in pair.values()]
    return [*(run for seed in seeds for run in (*vgg_plan(profile, dataset, seed).values(),
                                                *dln_plan(profile, seed).values())), *grid]


def phase_medians(run: Run, phase: str, start: float = 0.0) -> dict[str, float]:
    """The median of each of Figure 4 / 10's measures over a phase of one run from step `start` on (NaN with
    too few probed steps in it): the numbers whose Standard / BN ratios the claims grade."""
    curves = st.landscape_curves(run)
    return {f"median {text}": st.over(curves[key], st.total(run), phase, start=start)
            for key, text in st.LANDSCAPE_MEASURES.values()}


def medians_table(runs: Mapping[int, Mapping[str, Run]], phases: Sequence[str] = ("mid",)) -> list[dict[str, Any]]:
    """Rows for `report.table`: one per phase and network, each median of `phase_medians` as the mean and range
    over the seeds of `runs` ({seed: {"Standard": run, "+BN": run}}), so that a reader sees whether the seeds'
    spread is small beside the gap between the networks. A VGG phase starts, seed by seed, where that seed's
    Standard run reaches 50% training accuracy, as the claims' does (`bnlib.stats.training_start`)."""
    if not runs:
        raise ValueError('runs must map at least one seed to its {"Standard": run, "+BN": run}')
    model = Run.of(next(iter(next(iter(runs.values())).values()))).model
    starts = {seed: st.training_start(r["Standard"]) if model == "vgg" else 0.0 for seed, r in runs.items()}
    rows = []
    for phase in phases:
        for name in next(iter(runs.values())):
            per_seed = [phase_medians(r[name], phase, starts[seed]) for seed, r in runs.items()]
            rows.append({"network": name, "phase": st.describe(phase, model, model == "vgg"),
                         **{col: st.across_seeds([m[col] for m in per_seed]) for col in per_seed[0]}})
    return rows


def probe_costs(profile: Profile, dataset: str = "auto", repeats: int = 2) -> dict[str, Any]:
    """CPU time of one measurement of each default probe, in training steps, on each +BN model
    (`bnlib.plan.probe_cost` with the process-time clock, so other work on the machine does not inflate it).
    Also the extra work over a whole canonical run these cadences imply, as a fraction of its steps."""
    out: dict[str, Any] = {}
    for model, config, defaults, steps in (
            ("VGG", vgg_config(profile, "batch", VGG_LR, dataset), probes.vgg_probes(profile), profile.vgg_steps),
            ("DLN", dln_config(profile, "batch", DLN_LR), probes.dln_probes(profile), profile.dln_steps)):
        cost = plan.probe_cost(config, defaults, plan.cpu_timer, repeats)
        overhead = sum(cost[probe.name] * len(range(0, steps, probe.every)) / steps for probe in defaults)
        out[model] = {**cost, "overhead": overhead}
    return out


def hessian_check(iters: int = 12, seed: int = 0) -> dict[str, dict[str, float]]:
    """The Hessian probe against an independent route on tiny float64 models (the chapter's check).

    Lanczos with `iters` double-backward products vs the eigenvalues of the full Hessian built
    by finite differences of first-order gradients: DLN depth 3 x 3x3 (Standard, +BN) and a tiny
    MLP with BN. Returns, per model, both extreme eigenvalues each way and the relative error.
    """
    torch.manual_seed(seed)
    x = torch.randn(16, 3, dtype=torch.float64)
    target = x @ torch.randn(3, 3, dtype=torch.float64)
    xm, ym = torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    cases = {"DLN 3x(3x3) Standard": (DLN("none", 3, 3), sum_squared_error, x, target),
             "DLN 3x(3x3) +BN": (DLN("batch", 3, 3), sum_squared_error, x, target),
             "MLP 4-5-3 +BN": (mlp, cross_entropy, xm, ym)}
    out = {}
    for name, (net, loss_fn, xs, ys) in cases.items():
        net = net.double().train()
        eig = np.linalg.eigvalsh(finite_difference_hessian(net, loss_fn, xs, ys))
        est = lanczos(net, loss_fn, xs, ys, iters=iters, tol=0.0, seed=seed)
        scale = float(np.abs(eig).max())
        out[name] = {"params": sum(p.numel() for p in net.parameters()), "top_full": float(eig[-1]),
                     "top_lanczos": est["top_eig"], "min_full": float(eig[0]), "min_lanczos": est["min_eig"],
                     "rel_error": float(max(abs(est["top_eig"] - eig[-1]), abs(est["min_eig"] - eig[0])) / scale)}
    return out
