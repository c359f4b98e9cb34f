"""The tables the chapters show, one named function each, returning rows for `bnlib.report.table`.

A page then says which table it shows (`tables.final_accuracy(fig1)`) instead of how its rows are assembled.
Runs arrive as the chapters hold them, {seed: {key: run}}; every number over several seeds is their mean and
range (`stats.across_seeds`), so no table quietly shows one seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bnlib import stats
from bnlib.claims import distributions as distribution_claims
from bnlib.claims import later as later_claims
from bnlib.experiments import distributions, ics, landscape, later, lp
from bnlib.plots.distributions import label
from bnlib.profiles import Profile
from bnlib.record import Run


def final_accuracy(fig1: Mapping[int, Mapping[Any, Run]]) -> list[dict[str, Any]]:
    """Chapter 1: each Figure 1 run's final accuracy in evaluation mode (a diverged run counts as chance)."""
    seeds = list(fig1)
    rows = []
    for norm, lr in sorted(fig1[seeds[0]], key=lambda k: (k[1], k[0])):
        runs = [fig1[s][(norm, lr)] for s in seeds]
        rows.append({"network": label(norm), "LR": f"{lr:g}",
                     "final train acc (%)": stats.across_seeds([100 * r.final_acc("train") for r in runs], "{:.1f}"),
                     "final test acc (%)": stats.across_seeds([100 * r.final_acc("test") for r in runs], "{:.1f}"),
                     "diverged": f"{sum(r.diverged for r in runs)} of {len(runs)}"})
    return rows


def unit_drift(fig1: Mapping[int, Mapping[Any, Run]], layers: Sequence[int]) -> list[dict[str, Any]]:
    """Chapter 1: how far the recorded units' moments move between recorded steps (`unit_drift`), at LR 0.1."""
    rows = []
    for layer in layers:
        for norm in ("none", "batch"):
            per_seed = [distributions.unit_drift(r[(norm, 0.1)], layer) for r in fig1.values()]
            rows.append({"layer": f"#{layer}", "network": label(norm),
                         **{k: stats.across_seeds([d[k] for d in per_seed]) for k in per_seed[0]}})
    return rows


def noise_drift_ratios(fig2: Mapping[int, Mapping[Any, Run]], layers: Sequence[int]) -> list[dict[str, Any]]:
    """Chapter 2: noisy BN's median step-to-step change of each moment over the Standard network's, ours
    beside the paper's (Figure 8a)."""
    ours = [distribution_claims.drift_ratios(distribution_claims.our_drift(r["noisy"], layers),
                                             distribution_claims.our_drift(r["none"], layers)) for r in fig2.values()]
    theirs = distribution_claims.drift_ratios(distribution_claims.paper_drift("noisy_bn"),
                                              distribution_claims.paper_drift("standard"))
    return [{"layer": f"#{k}", "moment": m, "ours: noisy BN / Standard": stats.across_seeds([o[(k, m)] for o in ours]),
             "paper (Fig. 8a)": theirs.get((k, m))} for k, m in ours[0]]


def ics_probe_cost(profile: Profile, dataset: str) -> list[dict[str, Any]]:
    """Chapter 3: one ICS measurement against one training step, and what probing every so often adds."""
    rows = []
    for model in ("vgg", "dln"):
        c = ics.probe_cost(profile, model, "batch", dataset)
        every = profile.probe_every if model == "vgg" else profile.dln_probe_every
        rows.append({"model": model.upper(), "training step (ms)": 1e3 * c["step_s"],
                     "ICS measurement (ms)": 1e3 * c["probe_s"], "in training steps": c["ratio"],
                     "probed every": every, "extra run time": f"+{100 * c['ratio'] / every:.1f}%"})
    return rows


def hessian_check() -> list[dict[str, Any]]:
    """Chapter 4: Lanczos against the full Hessian on tiny float64 models (`landscape.hessian_check`)."""
    return [{"model": name, **row} for name, row in landscape.hessian_check().items()]


def lr_control(grid: Mapping[float, Mapping[str, Run]]) -> list[dict[str, Any]]:
    """Chapter 4: how each short run of the learning-rate control ended."""
    return [{"LR": f"{lr:g}", **{name: run.status() if run.diverged
                                 else f"final batch loss {run.step_loss()[run.steps_done - 1]:.3g}"
                                 for name, run in pair.items()}} for lr, pair in grid.items()]


def landscape_probe_cost(profile: Profile, dataset: str) -> list[dict[str, Any]]:
    """Chapter 4: each landscape probe's measurement in training steps, and the work it adds to a run."""
    return [{"model": model, "training step (CPU s)": c["step_s"], "landscape (steps)": c["landscape"],
             "hessian (steps)": c["hessian"], "extra work per run": f"{100 * c['overhead']:.0f}%"}
            for model, c in landscape.probe_costs(profile, dataset).items()]


def lp_training(run: Run) -> dict[str, Any]:
    """Chapter 5, one VGG run's row (for `report.seeds_table`): where its training ended."""
    return {"final training-batch accuracy (%)": 100 * run.final_acc("train", "batch"), "loss": run.status()}


def lp_dln(run: Run) -> dict[str, Any]:
    """Chapter 5, one deep-linear-network run's row: its final loss and its landscape medians."""
    return {"final loss": run.final_loss(), **lp.landscape_medians(run)}


def theorem41_conventions(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chapter 6: Theorem 4.1's inequality under each convention and form (`theory_claims.results`)."""
    return [{"convention": conv, "form": form, "holds on": f"{s['frac_holds']:.0%}", "equality": s["equality"],
             "worst slack": s["worst_slack"]}
            for conv, by_form in results["thm41_conventions"].items() for form, s in by_form.items()]


def theorem42_conventions(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chapter 6: Theorem 4.2's inequality under each convention."""
    return [{"convention": conv, "holds on": f"{s['frac_holds']:.0%} of {s['n']}", "equality": s["equality"],
             "worst slack": s["worst_slack"]} for conv, s in results["thm42_conventions"].items()]


def escape_search(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chapter 9: the plateau search, one row per width and seed (`scaling.search` or `scaling.measured`)."""
    def steps(r: Mapping[str, Any], key: str) -> Any:
        return r[key] if r[key] is not None else f"not by {r['steps_run']}"

    return [{"width": f"{r['width']:g}", "seed": r["seed"], "LR": f"{r['lr']:g}", "memory layout": r["layout"],
             "steps to 20%": steps(r, "steps_to_20"), "steps to 50%": steps(r, "steps_to_50"),
             "last 25 steps (%)": f"{100 * r['acc_at_end']:.0f}"} for r in rows]



def later_depth(runs: Mapping[int, Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """Chapter 7, section 1: per family and depth, each seed's Standard / +BN median top Hessian eigenvalue (the
    ratio the claim reads) and their mean."""
    per_seed = {seed: {model: later_claims.smoothing_by_depth(r, model) for model in ("vgg", "dln")}
                for seed, r in runs.items()}
    return [{"network": f"{name}-{depth}", **{f"seed {seed}": v[model][depth] for seed, v in per_seed.items()},
             "mean [lowest, highest]": stats.across_seeds([v[model][depth] for v in per_seed.values()])}
            for model, name, depths in (("vgg", "VGG", later.VGG_DEPTHS), ("dln", "DLN", later.DLN_DEPTHS))
            for depth in depths]


def later_init(table: Mapping[tuple[str, int, int], Any]) -> list[dict[str, Any]]:
    """Chapter 7, section 2: per MLP depth, each seed's growth of the gradient towards the input
    (`later.explosion`), Standard and +BN."""
    seeds = sorted({s for _, _, s in table})
    return [{"depth": depth, "network": name, **{f"seed {s}": later.explosion(table[name, depth, s]) for s in seeds}}
            for depth in sorted({d for _, d, _ in table}) for name in later.NORMS]


def later_rates(rates: Mapping[int, Mapping[tuple[str, int, str], float]]) -> list[dict[str, Any]]:
    """Chapter 7, section 3: the largest rate of the grid at which each network trained, seed by seed (NaN: at no
    rate), and the largest at which every seed did."""
    first = next(iter(rates.values()))
    rows = []
    for model, depth, name in first:
        values = [r[model, depth, name] for r in rates.values()]
        every = min(values) if all(v == v for v in values) else float("nan")
        rows.append({"network": f"{model.upper()}-{depth} {name}",
                     **{f"seed {seed}": r[model, depth, name] for seed, r in rates.items()}, "in every seed": every})
    return rows


def later_outliers(runs: Mapping[int, Mapping[str, Run]]) -> list[dict[str, Any]]:
    """Chapter 7, section 4: each seed's outlier ratio (top / RMS eigenvalue, median over the measured steps) of the
    Standard VGG and of the +BN VGG with batch and with running statistics."""
    per_seed = {seed: later_claims.outlier_values(r) for seed, r in runs.items()}
    variants = next(iter(per_seed.values()))
    return [{"network": variant, **{f"seed {seed}": v[variant] for seed, v in per_seed.items()},
             "mean [lowest, highest]": stats.across_seeds([v[variant] for v in per_seed.values()])}
            for variant in variants]
