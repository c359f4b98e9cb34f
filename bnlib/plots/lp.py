"""Figures 5, 6, 12 and 13: l_p normalisation against BN and the standard network.

Curves over training take the runs of every seed, {seed: {norm: history}}, and draw each network's
mean with the band from the lowest to the highest seed (`bnlib.plots.seeds`); the histograms of
Figure 6 are one run's, so they take one seed's {norm: history} and name the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bnlib import paper
from bnlib import stats as st
from bnlib.experiments.lp import HIST_LAYER, LABELS
from bnlib.plots import paper as overlay
from bnlib.plots import seeds
from bnlib.probes import activations, landscape
from bnlib.record import Run

COLOURS = {"none": "C0", "batch": "C1", "l1": "C2", "l2": "C3", "linf": "C4"}
SERIES = {"none": "standard", "batch": "bn", "l1": "l1", "l2": "l2", "linf": "linf"}  # the paper's series names
PAPER_FILES = {"vgg": ("fig12b_vgg_lp_loss_landscape", "fig12c_vgg_lp_gradient_predictiveness",
                       "fig12d_vgg_lp_beta_smoothness"),
               "dln": ("fig13b_dln_lp_loss_landscape", "fig13c_dln_lp_gradient_predictiveness",
                       "fig13d_dln_lp_beta_smoothness")}
Runs = Mapping[str, Mapping[str, Any]]  # one seed's runs: {norm: history}
SeedRuns = Mapping[int, Runs]  # {seed: {norm: history}}


def _check(runs: SeedRuns) -> None:
    if not runs or not all(runs.values()):
        raise ValueError("runs must map each seed to its {norm: history} runs, e.g. {0: {'batch': history}}")


def _norms(runs: SeedRuns) -> list[str]:
    return list(next(iter(runs.values())))


def training_curve(history: Mapping[str, Any], model: str) -> seeds.Curve:
    """(steps, y): training-batch accuracy in %, moving average over 1/30 of the run (VGG), or the loss (DLN)."""
    if model == "vgg":
        acc = Run.of(history).step_acc()
        window = max(1, len(acc) // 30)
        y = 100 * (st.trailing_mean(acc, window) if len(acc) >= window else acc)
    else:
        y = Run.of(history).step_loss()
    return np.arange(len(y)), y


def _training(ax: Axes, runs: SeedRuns, model: str, paper_data: bool = True, figure: int = 5) -> None:
    """Training accuracy (VGG) or loss (DLN); `figure` names the paper's panel drawn beside it (5, or 12 / 13)."""
    total = seeds.total_steps(runs)
    for norm in _norms(runs):
        curves = [training_curve(r[norm], model) for r in runs.values()]
        seeds.draw(ax, curves, COLOURS[norm], LABELS[norm], lw=1.2)
        if paper_data:
            name = {5: {"vgg": "fig5a_vgg_lp_train_acc", "dln": "fig5b_dln_lp_train_loss"},
                    12: {"vgg": "fig12a_vgg_lp_train_acc", "dln": "fig13a_dln_lp_train_loss"}}[min(figure, 12)][model]
            overlay.line(ax, paper.curve(name, SERIES[norm]), name, LABELS[norm], COLOURS[norm], total, model)
    if model == "vgg":
        ax.set(xlabel="Steps (ours)", ylabel="Training Accuracy (%)")
    else:
        ax.set(xlabel="Steps (ours)", ylabel="Training Loss", yscale="log")
    ax.set_title("Training accuracy" if model == "vgg" else "Training loss", loc="left")


def _captions(fig: Figure, runs: SeedRuns, paper_data: bool, extra: str = "") -> None:
    """Under the figure: the scale against the paper's (with paper data), then which seeds are drawn and how."""
    which = f"Seed {next(iter(runs))}." if len(runs) == 1 else seeds.seeds_note(len(runs))
    note = f"{which} {extra}".strip()
    if paper_data:
        overlay.scale_caption(fig, seeds.first_run(runs), note=note)
    else:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=9, wrap=True)


def training(runs: SeedRuns, model: str = "vgg", paper_data: bool = True) -> Figure:
    """Figure 5 (VGG, training-batch accuracy, moving average over 1/30 of the run; the paper's: one batch
    every 100 steps) / 5b = 13a (DLN, training loss), with the paper's curves (top axis: its steps)."""
    _check(runs)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    _training(ax, runs, model, paper_data)
    overlay.legend(ax)
    fig.tight_layout()
    _captions(fig, runs, paper_data)
    return fig


def _measures(axes: Any, runs: SeedRuns, norm: str) -> None:
    """One network on the three landscape panels: (a, b) the largest value over the step sizes (solid,
    with the seeds' band) and the smallest (dotted, the seeds' mean); (c) effective beta."""
    series = [landscape.landscape_series(r[norm]) for r in runs.values()]
    c = COLOURS[norm]
    for ax, key in zip(axes[:2], ("loss", "gdiff"), strict=True):
        seeds.draw(ax, [(s["steps"], s[f"{key}_max"]) for s in series], c, LABELS[norm], lw=1.2)
        x, smallest, _, _ = seeds.spread([(s["steps"], s[f"{key}_min"]) for s in series])
        ax.plot(x, smallest, color=c, ls=":", lw=1.0)
    seeds.draw(axes[2], [(s["steps"], s["beta_eff"]) for s in series], c, LABELS[norm], lw=1.2)


def landscape_panels(runs: SeedRuns, model: str = "vgg", paper_data: bool = True) -> Figure:
    """Figures 12 / 13, stacked: training, (a) loss landscape, (b) gradient predictiveness, (c) effective
    beta-smoothness, one colour per normalisation; (a) and (b) draw the range over the step sizes by its
    edges (solid: largest, dotted: smallest); dashed: the paper's curves (for its bands, their upper edge)."""
    _check(runs)
    fig, axes = plt.subplots(4, 1, figsize=(7, 14))
    _training(axes[0], runs, model, paper_data, 12 if model == "vgg" else 13)
    total = seeds.total_steps(runs)
    for norm in _norms(runs):
        _measures(axes[1:], runs, norm)
        if paper_data:
            for ax, name, column in zip(axes[1:], PAPER_FILES[model], ("upper", "upper", "value"), strict=True):
                overlay.line(ax, paper.curve(name, SERIES[norm], column), name, LABELS[norm], COLOURS[norm], total,
                             model)
    axes[1].set(ylabel="Loss Landscape", yscale="log")
    axes[2].set(ylabel="l2 diff in gradients", yscale="log")
    axes[3].set(xlabel="Steps (ours)", ylabel=r"$\beta$-smoothness", yscale="log")
    for ax, text in zip(axes[1:], ("(a) loss landscape", "(b) gradient predictiveness",
                                   r"(c) effective $\beta$-smoothness"), strict=True):
        ax.set_title(text, loc="left")
    overlay.legend(axes[-1])
    fig.tight_layout()
    _captions(fig, runs, paper_data, "(a), (b): solid, the largest value over the step sizes; dotted, the smallest.")
    return fig


def histograms(runs: Runs, layer: int = HIST_LAYER, unit: int = 0, rows: int = 8, seed: int | None = None
               ) -> Figure:
    """Figure 6: one recorded unit of layer #`layer` per normalisation, its distribution at `rows`
    evenly spaced recorded steps (ridge plot oriented as Figure 1c: step on the vertical axis, later
    steps higher; each histogram scaled to its peak). One seed's runs ({norm: history}): a histogram is
    one run's, so the title names `seed`."""
    fig, axes = plt.subplots(1, len(runs), figsize=(3.3 * len(runs), 4.2), squeeze=False)
    for ax, (norm, h) in zip(axes[0], runs.items(), strict=True):
        steps, edges, counts = activations.histograms(h, layer)
        pick = np.unique(np.linspace(0, len(steps) - 1, rows).round().astype(int))
        for r, t in enumerate(pick):
            e, n = edges[t, unit], counts[t, unit].astype(float)
            if n.sum() == 0:
                continue
            centres, top = (e[:-1] + e[1:]) / 2, n / n.max()
            base = r
            ax.fill_between(centres, base, base + 0.9 * top, color=COLOURS[norm], alpha=0.6, lw=0)
            ax.plot(centres, base + 0.9 * top, color="k", lw=0.5)
        ax.set_yticks(list(range(len(pick))), [str(steps[t]) for t in pick], fontsize=7)
        ax.set(title=LABELS[norm], xlabel="activation value")
    axes[0, 0].set_ylabel("Steps")
    which = "" if seed is None else f" (seed {seed})"
    fig.suptitle(f"Layer #{layer}: distribution of one random unit over training{which}")
    fig.tight_layout()
    return fig
