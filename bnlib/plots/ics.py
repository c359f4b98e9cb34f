"""Figure 3 (ICS in the optimisation view, VGG and DLN) and Figure 9 (DLN layer-input distributions).

Figure 3 puts, for each learning rate (one column each), the training accuracy (VGG) or loss (DLN)
beside ||G - G'||_2 on a log axis and cos(G, G') for two layers, Standard against +BN. It takes the
runs of every seed, {seed: {(norm, lr): history}}, and draws each curve's mean over the seeds with the
band from the lowest to the highest seed (`bnlib.plots.seeds`). Figure 9, a ridge plot of one run per
network, takes one seed's runs and names the seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bnlib import paper
from bnlib.plots import paper as overlay
from bnlib.plots import seeds as spread
from bnlib.plots.distributions import COLOURS, accuracy_curve, distributions, label
from bnlib.probes.ics import ics_series
from bnlib.record import Run

RunMap = Mapping[tuple[str, float], Mapping[str, Any]]
SeedRuns = Mapping[int, RunMap]  # {seed: {(norm, lr): history}}


def _check_seeds(runs: SeedRuns) -> None:
    """A clear error for a mapping that is not {seed: {(norm, lr): history}} (e.g. one seed's runs)."""
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs must be a non-empty {seed: {(norm, lr): history}} mapping")
    for seed, by_key in runs.items():
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"runs must be keyed by seed (an int), got the key {seed!r}: pass {{seed: runs}}")
        if not isinstance(by_key, Mapping) or not by_key:
            raise ValueError(f"runs[{seed}] must be a non-empty {{(norm, lr): history}} mapping")


def _lrs_and_norms(runs: SeedRuns) -> tuple[list[float], list[str]]:
    keys = {key for by_key in runs.values() for key in by_key}
    lrs = sorted({lr for _, lr in keys}, reverse=True)
    norms = [n for n in ("none", "batch") if any(k[0] == n for k in keys)] + sorted(
        {n for n, _ in keys} - {"none", "batch"})
    return lrs, norms


PAPER = {"none": "standard", "batch": "bn"}
PAPER_LRS = {"vgg": (0.1, 0.01), "dln": (1e-6, 1e-7)}
PAPER_L2_LAYER = {"vgg": 5, "dln": 9}  # the l2 panels with tick labels (the others are uncalibrated)


def _paper(ax: Axes, name: str, norm: str, lr: float, model: str, total: int, **where: int) -> None:
    """The paper's curve for (norm, lr) on this panel, where the paper has it."""
    if norm in PAPER and any(np.isclose(lr, p) for p in PAPER_LRS[model]):
        curve = paper.curve(name, PAPER[norm], lr=lr, **where)
        overlay.line(ax, overlay.positive(curve) if "l2" in name or "loss" in name else curve, name, label(norm),
                     COLOURS.get(norm, "black"), total, model)


def _progress_panel(ax: Axes, histories: Sequence[Mapping[str, Any]], norm: str, model: str) -> None:
    """Training accuracy (VGG) or per-step loss (DLN): the seeds' mean and band; a dotted line where one diverged."""
    colour = COLOURS.get(norm, "black")
    curves = []
    for history in histories:
        if model == "vgg":
            steps, acc = accuracy_curve(history, "train")
            curves.append((steps, 100 * acc))
        else:
            run = Run.of(history)
            loss = run.step_loss()[:run.steps_done]
            curves.append((np.arange(len(loss)), loss))
    if model == "vgg":
        spread.draw(ax, curves, colour, label(norm), marker="o" if len(curves[0][0]) < 8 else None)
        ax.set_ylabel("Training accuracy (%)")
        ax.set_ylim(0, 100)
    else:
        spread.draw(ax, curves, colour, label(norm), lw=1)
        ax.set_yscale("log")
        ax.set_ylabel("Training loss")
    for history in histories:
        if Run.of(history).diverged:
            ax.axvline(Run.of(history).diverged_at, color=colour, ls=":", lw=0.8)


def _ics_panels(ax_l2: Axes, ax_cos: Axes, histories: Sequence[Mapping[str, Any]], norm: str, layer: int) -> None:
    """||G - G'|| (only the positive values a log axis shows) and cos(G, G') of one layer over the seeds."""
    series = [ics_series(history, layer) for history in histories]
    colour = COLOURS.get(norm, "black")
    marker = "o" if max(len(s["steps"]) for s in series) <= 30 else None
    for ax, key in ((ax_l2, "l2"), (ax_cos, "cos")):
        curves = []
        for s in series:
            ok = np.isfinite(s[key]) & ((s[key] > 0) if key == "l2" else True)
            curves.append((s["steps"][ok], s[key][ok]))
        if any(len(x) for x, _ in curves):
            spread.draw(ax, curves, colour, label(norm), marker=marker, ms=3, lw=1)


def _overlays(axes: Any, norm: str, lr: float, layers: Sequence[int], model: str, total: int) -> None:
    """The paper's Figure 3 curves on one row: progress, then the calibrated l2 panel and every cos panel."""
    vgg = model == "vgg"
    _paper(axes[0], "fig3a_vgg_train_acc" if vgg else "fig3b_dln_train_loss", norm, lr, model, total)
    for j, layer in enumerate(layers):
        if layer == PAPER_L2_LAYER[model]:
            _paper(axes[1 + 2 * j], "fig3a_vgg_ics_l2" if vgg else "fig3b_dln_ics_l2", norm, lr, model, total,
                   layer=layer)
        if layer in ((5, 10) if vgg else (9, 17)):
            _paper(axes[2 + 2 * j], "fig3a_vgg_ics_cos" if vgg else "fig3b_dln_ics_cos", norm, lr, model, total,
                   layer=layer)


def _titles(axes: Any, lr: float, layers: Sequence[int], model: str) -> None:
    """One column's titles, axis labels and scales."""
    progress = "Training accuracy" if model == "vgg" else "Training loss"
    axes[0].set_title(f"{progress} (LR={lr:g})", fontsize=10, loc="left")
    for j, layer in enumerate(layers):
        ax_l2, ax_cos = axes[1 + 2 * j], axes[2 + 2 * j]
        ax_l2.set_yscale("log")
        ax_l2.set_title(f"LR={lr:g}, layer #{layer}: $\\ell_2$ difference", fontsize=10, loc="left")
        ax_l2.set_ylabel(r"$\|G - G'\|_2$")
        ax_cos.set_title(f"LR={lr:g}, layer #{layer}: cos angle", fontsize=10, loc="left")
        ax_cos.set_ylabel(r"$\cos(G, G')$")
        ax_cos.axhline(1.0, color="grey", lw=0.6, ls=":")
    axes[-1].set_xlabel("Steps (ours)")


def fig3(runs: SeedRuns, layers: Sequence[int], model: str, paper_data: bool = True) -> Figure:
    """Figure 3: columns = learning rates; rows = accuracy/loss, then l2 difference and cosine per layer. Each
    curve is the mean over the seeds of `runs` ({seed: {(norm, lr): history}}) with their min-max band, beside
    the paper's curves where it plotted them (its l2 panels of VGG #10 and DLN #17 have no scale: left out)."""
    if model not in ("vgg", "dln"):
        raise ValueError(f"model must be 'vgg' or 'dln', got {model!r}")
    _check_seeds(runs)
    lrs, norms = _lrs_and_norms(runs)
    ncol = 1 + 2 * len(layers)
    # one column per learning rate, panels stacked down it (readable at page width); axes[r] = column r
    fig, grid = plt.subplots(ncol, len(lrs), figsize=(3.6 * len(lrs), 2.9 * ncol), squeeze=False)
    axes = grid.T
    total = spread.total_steps(runs)
    for ax in grid.flat:
        ax.set_xlim(0, total)  # every panel spans the whole run, as the paper's top axes do
    for r, lr in enumerate(lrs):
        for norm in norms:
            histories = [by_key[(norm, lr)] for by_key in runs.values() if (norm, lr) in by_key]
            if not histories:
                continue
            _progress_panel(axes[r, 0], histories, norm, model)
            for j, layer in enumerate(layers):
                _ics_panels(axes[r, 1 + 2 * j], axes[r, 2 + 2 * j], histories, norm, layer)
            if paper_data:
                _overlays(axes[r], norm, lr, layers, model, total)
        _titles(axes[r], lr, layers, model)
    overlay.legend(grid[-1, 0])
    fig.tight_layout()
    note = spread.seeds_note(len(runs))
    if paper_data:
        overlay.scale_caption(fig, spread.first_run(runs), note=note)
    elif note:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=9)
    return fig


def fig3_vgg(runs: SeedRuns, layers: Sequence[int] = (5, 10), paper_data: bool = True) -> Figure:
    """Figure 3 (top): VGG, training accuracy beside ICS of layers #5 and #10, over the seeds of `runs`."""
    return fig3(runs, layers, "vgg", paper_data)


def fig3_dln(runs: SeedRuns, layers: Sequence[int] = (9, 17), paper_data: bool = True) -> Figure:
    """Figure 3 (bottom): DLN, training loss beside ICS of layers #9 and #17, over the seeds of `runs`."""
    return fig3(runs, layers, "dln", paper_data)


def fig9(runs: RunMap, seed: int, lr: float = 1e-6, layers: Sequence[int] = (1, 11, 24), unit: int = 0) -> Figure:
    """Figure 9: one random unit's distribution over training in the DLN, Standard vs +BN (ridge plots), from
    one seed's runs ({(norm, lr): history}); the title names `seed`."""
    picked = {norm: runs[(norm, lr)] for norm in ("none", "batch") if (norm, lr) in runs}
    if not picked:
        raise ValueError(f"no DLN runs at lr={lr:g}; have {sorted(runs)}")
    return distributions(picked, layers, unit, title=f"DLN layer inputs over training (LR={lr:g}, seed {seed})")
