"""Figure 3's runs: Standard vs +BN, VGG at LR 0.1 and 0.01, the DLN at LR 1e-6 and 1e-7.

With the default layers these are the canonical shared runs (their default ICS probe measures
VGG layers #5, #10 and DLN layers #9, #17). Other layers get their own cached runs carrying
only an ICS probe for those layers, at the same cadence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bnlib import plan
from bnlib import stats as st
from bnlib.experiments import common
from bnlib.experiments.common import train_planned
from bnlib.probes.ics import DLN_LAYERS, VGG_LAYERS, ICSProbe, ics_series
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned

NORMS = ("none", "batch")
VGG_LRS = (0.1, 0.01)
DLN_LRS = (1e-6, 1e-7)

Runs = dict[tuple[str, float], Run]


def _check(name: str, values: Sequence[Any], count: int | None = None) -> tuple[Any, ...]:
    values = tuple(values)
    if not values or (count is not None and len(values) != count):
        raise ValueError(f"{name} must be a sequence of {count or 'one or more'} values, got {values!r}")
    return values


def vgg_plan(profile: Profile, dataset: str = "auto", seed: int = 0,
             lrs: Sequence[float] = VGG_LRS, layers: Sequence[int] = VGG_LAYERS) -> dict[tuple[str, float], Planned]:
    """Figure 3 (top)'s runs: canonical ones at the default layers, else ones carrying only an ICS probe."""
    lrs, layers = _check("lrs", lrs), _check("layers", layers, 2)
    if tuple(sorted(layers)) == VGG_LAYERS:
        return common.plan_of(profile, "fig3-vgg", NORMS, lrs, dataset=dataset, seed=seed)
    return {(norm, lr): (common.vgg_config(profile, norm, lr, dataset, seed), [ICSProbe(profile.probe_every, layers)])
            for lr in lrs for norm in NORMS}


def dln_plan(profile: Profile, seed: int = 0, lrs: Sequence[float] = DLN_LRS,
             layers: Sequence[int] = DLN_LAYERS) -> dict[tuple[str, float], Planned]:
    """Figure 3 (bottom)'s runs, chosen as vgg_plan chooses."""
    lrs, layers = _check("lrs", lrs), _check("layers", layers, 2)
    if tuple(sorted(layers)) == DLN_LAYERS:
        return common.plan_of(profile, "fig3-dln", NORMS, lrs, seed=seed)
    return {(norm, lr): (common.dln_config(profile, norm, lr, seed), [ICSProbe(profile.dln_probe_every, layers)])
            for lr in lrs for norm in NORMS}


def vgg_runs(profile: Profile, dataset: str = "auto", seed: int = 0,
             lrs: Sequence[float] = VGG_LRS, layers: Sequence[int] = VGG_LAYERS,
             progress: bool = True) -> Runs:
    """{(norm, lr): history} for Figure 3 (top)."""
    planned = vgg_plan(profile, dataset, seed, lrs, layers)
    return {key: train_planned(one, progress) for key, one in planned.items()}


def dln_runs(profile: Profile, seed: int = 0, lrs: Sequence[float] = DLN_LRS,
             layers: Sequence[int] = DLN_LAYERS, progress: bool = True) -> Runs:
    """{(norm, lr): history} for Figure 3 (bottom) and Figure 9 (full scale at profiles cpu and paper)."""
    return {key: train_planned(planned, progress) for key, planned in dln_plan(profile, seed, lrs, layers).items()}


def fig9_plan(profile: Profile, seed: int = 0, lr: float = DLN_LRS[0]
              ) -> dict[tuple[str, float], Planned]:
    """Figure 9's runs: the DLN, Standard and +BN at `lr`, with the activation probe (canonical at 1e-6)."""
    return common.plan_of(profile, "fig9", NORMS, (lr,), seed=seed)


def fig9_runs(profile: Profile, seed: int = 0, lr: float = DLN_LRS[0],
              progress: bool = True) -> Runs:
    """{(norm, lr): record} for Figure 9."""
    return {key: train_planned(one, progress) for key, one in fig9_plan(profile, seed, lr).items()}


def medians(run: Run, layer: int) -> dict[str, float]:
    """Medians over the probed steps of ||G - G'||, ||G||, their ratio and cos(G, G') of one layer."""
    s = ics_series(run, layer)
    return {"‖G − G′‖": float(np.nanmedian(s["l2"])), "‖G‖": float(np.nanmedian(s["g_norm"])),
            "‖G − G′‖ / ‖G‖": float(np.nanmedian(s["l2"] / s["g_norm"])), "cos(G, G′)": float(np.nanmedian(s["cos"]))}


def medians_table(runs: Mapping[int, Mapping[tuple[str, float], Run]], layers: Sequence[int],
                  label: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """Rows for `report.table`: one per (network, lr, layer), each statistic of `medians` as its `spread`
    over the seeds of `runs` ({seed: {(norm, lr): record}}), the higher learning rate first; `label` names
    a norm (the figures' `plots.label`)."""
    if not runs:
        raise ValueError("runs must map at least one seed to its {(norm, lr): record} runs")
    keys = sorted({key for by_key in runs.values() for key in by_key}, key=lambda k: (-k[1], k[0]))
    rows = []
    for norm, lr in keys:
        for layer in layers:
            per_seed = [medians(by_key[(norm, lr)], layer) for by_key in runs.values() if (norm, lr) in by_key]
            rows.append({"network": label(norm), "LR": f"{lr:g}", "layer": f"#{layer}",
                         **{stat: st.across_seeds([m[stat] for m in per_seed]) for stat in per_seed[0]}})
    return rows


def chapter_plan(profile: Profile, dataset: str, seeds: Sequence[int],
                 vgg_lrs: Sequence[float] = VGG_LRS, dln_lrs: Sequence[float] = DLN_LRS,
                 vgg_layers: Sequence[int] = VGG_LAYERS, dln_layers: Sequence[int] = DLN_LAYERS) -> list[Planned]:
    """Every run chapter 3 trains: for every seed Figure 3 for its parameters and the
    claim check's runs (the chapter's learning rates, the probe's default layers); Figure 9 (the DLN at the
    first of `dln_lrs`) for the first seed only, the one it shows."""
    chosen = tuple(seeds)
    return [*fig9_plan(profile, chosen[0], tuple(dln_lrs)[0]).values(), *(run for seed in chosen for run in (
        *vgg_plan(profile, dataset, seed, vgg_lrs, vgg_layers).values(),
        *dln_plan(profile, seed, dln_lrs, dln_layers).values(),
        *vgg_plan(profile, dataset, seed, vgg_lrs).values(), *dln_plan(profile, seed, dln_lrs).values()))]


def probe_cost(profile: Profile, model: str = "vgg", norm: str = "batch",
               dataset: str = "auto", reps: int = 3) -> dict[str, float]:
    """Seconds of one training step and the extra of one default ICS measurement (both layers), and their ratio.

    Measured by `bnlib.plan.probe_cost` (the book's one probe-cost measurement) on the profile's model and
    batch, after a warm-up step. What a run pays is ratio / probe_every extra per step.
    """
    if model not in ("vgg", "dln"):
        raise ValueError(f"model must be 'vgg' or 'dln', got {model!r}")
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an int >= 1, got {reps!r}")
    config = (common.vgg_config(profile, norm, 0.01, dataset) if model == "vgg"
              else common.dln_config(profile, norm, 1e-7))
    cost = plan.probe_cost(config, [ICSProbe(1, VGG_LAYERS if model == "vgg" else DLN_LAYERS)], steps=reps)
    return {"step_s": cost["step_s"], "probe_s": cost["ics"] * cost["step_s"], "ratio": cost["ics"]}
