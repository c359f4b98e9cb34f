"""Figures 5, 6, 12 and 13: l_p normalisation against BN and the standard network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bnlib.experiments.lp import HIST_LAYER, LABELS
from bnlib.probes import activations, landscape

COLOURS = {"none": "C0", "batch": "C1", "l1": "C2", "l2": "C3", "linf": "C4"}
Runs = Mapping[str, dict[str, Any]]


def _smooth(v: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (NaN-aware enough for plotting: a NaN poisons only its window)."""
    if window <= 1 or len(v) < window:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.full_like(v, np.nan)
    out[window - 1:] = (c[window:] - c[:-window]) / window
    return out


def _training(ax: Any, runs: Runs, model: str) -> None:
    for norm, h in runs.items():
        if model == "vgg":
            acc = h["step_acc"].numpy().astype(float)
            y = 100 * _smooth(acc, max(1, len(acc) // 30))
        else:
            y = h["step_loss"].numpy().astype(float)
        ax.plot(np.arange(len(y)), y, color=COLOURS[norm], label=LABELS[norm], lw=1.2)
    if model == "vgg":
        ax.set(xlabel="Steps", ylabel="Training Accuracy (%)", title="Training accuracy")
    else:
        ax.set(xlabel="Steps", ylabel="Training Loss", yscale="log", title="Training loss")


def training(runs: Runs, model: str = "vgg") -> Figure:
    """Figure 5 (VGG, training accuracy, moving average over 1/30 of the run) / 13a (DLN, training loss)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    _training(ax, runs, model)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def landscape_panels(runs: Runs, model: str = "vgg") -> Figure:
    """Figures 12 / 13: training, (a) loss landscape, (b) gradient predictiveness, (c) effective
    beta-smoothness over training, one colour per normalisation (shaded = range over step sizes)."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    _training(axes[0], runs, model)
    for norm, h in runs.items():
        s = landscape.landscape_series(h)
        c = COLOURS[norm]
        axes[1].fill_between(s["steps"], s["loss_min"], s["loss_max"], color=c, alpha=0.35, label=LABELS[norm])
        axes[2].fill_between(s["steps"], s["gdiff_min"], s["gdiff_max"], color=c, alpha=0.35, label=LABELS[norm])
        axes[3].plot(s["steps"], s["beta_eff"], color=c, label=LABELS[norm])
    axes[1].set(xlabel="Steps", ylabel="Loss Landscape", title="(a) loss landscape", yscale="log")
    axes[2].set(xlabel="Steps", ylabel="l2 diff in gradients", title="(b) gradient predictiveness", yscale="log")
    axes[3].set(xlabel="Steps", ylabel=r"$\beta$-smoothness", title=r"(c) effective $\beta$-smoothness", yscale="log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def histograms(runs: Runs, layer: int = HIST_LAYER, unit: int = 0, rows: int = 8) -> Figure:
    """Figure 6: one recorded unit of layer #`layer` per normalisation, its distribution at `rows`
    evenly spaced recorded steps (ridge plot, later steps lower; each histogram scaled to its peak)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(3.3 * len(runs), 4.2), squeeze=False)
    for ax, (norm, h) in zip(axes[0], runs.items(), strict=True):
        steps, edges, counts = activations.histograms(h, layer)
        pick = np.unique(np.linspace(0, len(steps) - 1, rows).round().astype(int))
        for r, t in enumerate(pick):
            e, n = edges[t, unit], counts[t, unit].astype(float)
            if n.sum() == 0:
                continue
            centres, top = (e[:-1] + e[1:]) / 2, n / n.max()
            base = -r
            ax.fill_between(centres, base, base + 0.9 * top, color=COLOURS[norm], alpha=0.6, lw=0)
            ax.plot(centres, base + 0.9 * top, color="k", lw=0.5)
        ax.set_yticks([-r for r in range(len(pick))], [str(steps[t]) for t in pick], fontsize=7)
        ax.set(title=LABELS[norm], xlabel="activation value")
    axes[0, 0].set_ylabel("Steps")
    fig.suptitle(f"Layer #{layer}: distribution of one random unit over training")
    fig.tight_layout()
    return fig
