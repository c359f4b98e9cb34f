"""Figures 4 and 10 (the three landscape measures), Figure 11 (gradient change vs step size),
the Hessian's beta beside the effective one, and the learning-rate control's panel.

Runs are passed as {"Standard": history, "+BN": history}. Shading is the range over the probed
step sizes, as in the paper. Values span orders of magnitude between the two networks, so the
y axes are logarithmic (the paper's are linear; the quantities and x axes are the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bnlib import paper
from bnlib.claims.landscape import PAPER_FILES
from bnlib.plots import paper as overlay
from bnlib.probes.hessian import hessian_series
from bnlib.probes.landscape import gradient_change_curves, landscape_series
from bnlib.record import Run

Runs = Mapping[str, Mapping[str, Any]]
COLOURS = {"Standard": "tab:blue", "+BN": "tab:orange"}
LEGEND = {"Standard": "Standard", "+BN": "Standard + BatchNorm"}
PAPER = {"Standard": "standard", "+BN": "bn"}  # our run names -> the paper's series



def _colour(name: str) -> str:
    return COLOURS.get(name, "black")


def _check(runs: Runs) -> None:
    if not runs:
        raise ValueError('runs must not be empty: a {"Standard": history, "+BN": history} mapping')


def _diverged(ax: Axes, history: Mapping[str, Any], name: str) -> None:
    at = Run.of(history).diverged_at
    if at is not None:
        ax.axvline(at, color=_colour(name), ls=":", lw=1)


def _model(runs: Runs) -> str:
    return Run.of(next(iter(runs.values()))).model


def _paper_panels(axes: Any, name: str, model: str, total: int) -> None:
    """The paper's Figure 4 / 10 for one network on the three panels (bands: the range over step sizes)."""
    series = PAPER.get(name)
    if series is None:
        return
    files = PAPER_FILES[model]
    what = LEGEND.get(name, name)
    overlay.band(axes[0], files["a"], series, what, _colour(name), total, model)
    overlay.band(axes[1], files["b"], series, what, _colour(name), total, model)
    overlay.line(axes[2], paper.curve(files["c"], series), files["c"], what, _colour(name), total, model)


def landscape_figure(runs: Runs, title: str = "", paper_data: bool = True) -> Figure:
    """Figure 4 (VGG) / Figure 10 (DLN), stacked: (a) loss landscape, (b) gradient predictiveness,
    (c) effective beta, with the paper's bands and curve (same units; top axis: the paper's steps)."""
    _check(runs)
    model = _model(runs)
    total = max(Run.of(h).steps for h in runs.values())
    fig, axes = plt.subplots(3, 1, figsize=(7, 10.5))
    for name, h in runs.items():
        s = landscape_series(h)
        c = _colour(name)
        axes[0].fill_between(s["steps"], s["loss_min"], s["loss_max"], color=c, alpha=0.4, label=LEGEND.get(name, name))
        axes[1].fill_between(s["steps"], s["gdiff_min"], s["gdiff_max"], color=c, alpha=0.4,
                             label=LEGEND.get(name, name))
        axes[2].plot(s["steps"], s["beta_eff"], color=c, marker=".", label=LEGEND.get(name, name))
        for ax in axes:
            _diverged(ax, h, name)
        if paper_data:
            _paper_panels(axes, name, model, total)
    axes[0].set(ylabel="Loss Landscape", yscale="log")
    axes[1].set(ylabel="l2 diff in gradients", yscale="log")
    axes[2].set(xlabel="Steps (ours)", ylabel=r"$\beta$-smoothness", yscale="log")
    titles = ("(a) loss landscape", "(b) gradient predictiveness", r"(c) effective $\beta$-smoothness")
    for ax, text in zip(axes, titles, strict=True):
        ax.set_title(text, loc="left")
    overlay.legend(axes[-1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if paper_data:
        overlay.scale_caption(fig, next(iter(runs.values())))
    return fig


def gradient_change_figure(runs: Runs, max_curves: int = 8, paper_data: bool = True) -> Figure:
    """Figure 11, stacked: ||g - grad L(w - eta g)|| against eta, one curve per probed training step (colour =
    step), with the paper's first and last curves (its steps 100 and 15000) dashed in grey."""
    _check(runs)
    model = _model(runs)
    fig, axes = plt.subplots(len(runs), 1, figsize=(7, 4.0 * len(runs)), sharex=True, squeeze=False)
    for ax, (name, h) in zip(axes[:, 0], runs.items(), strict=True):
        curves = gradient_change_curves(h)
        pick = np.unique(np.linspace(0, len(curves) - 1, min(max_curves, len(curves))).round().astype(int))
        cmap = plt.get_cmap("viridis")
        for i, k in enumerate(pick):
            c = curves[k]
            ax.plot(c["eta"], c["gdiff"], marker="o", ms=3, color=cmap(i / max(1, len(pick) - 1)),
                    label=f"step {c['step']}")
        if paper_data and name in PAPER:
            file = "fig11a_vgg_grad_change_vs_step_size" if model == "vgg" else "fig11b_dln_grad_change_vs_step_size"
            theirs = paper.step_size_curves(file, PAPER[name])
            for step, ls in ((min(theirs), "--"), (max(theirs), ":")):
                ax.plot(theirs[step].steps, theirs[step].values, color="0.3", ls=ls, lw=1.4,
                        label=f"{paper.label(file)}: step {step}")
        ax.set(xscale="log", yscale="log", title=LEGEND.get(name, name))
        ax.set_ylabel(r"$\|\nabla L(w) - \nabla L(w - \eta \nabla L(w))\|_2$")
        ax.legend(fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel(r"Step size $\eta$")
    fig.tight_layout()
    return fig


def hessian_figure(groups: Mapping[str, Runs]) -> Figure:
    """Per model: beta = max |Hessian eigenvalue| (solid) beside the effective beta-smoothness (dashed),
    with 2 / LR dotted: the curvature above which a gradient step of that size is unstable."""
    if not groups:
        raise ValueError('groups must not be empty: {"VGG": runs, "DLN": runs}')
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, (model, runs) in zip(axes[0], groups.items(), strict=True):
        for name, h in runs.items():
            c, lab = _colour(name), LEGEND.get(name, name)
            hs, ls = hessian_series(h), landscape_series(h)
            ax.plot(hs["steps"], hs["beta"], color=c, marker="o", label=rf"{lab}: max $|\lambda|$")
            ax.plot(ls["steps"], ls["beta_eff"], color=c, ls="--", label=rf"{lab}: effective $\beta$")
        lrs = {Run.of(h).lr for h in runs.values()}
        for lr in lrs:
            ax.axhline(2 / lr, color="grey", ls=":", lw=1.2, label=f"2 / LR = {2 / lr:g}")
        ax.set(yscale="log", xlabel="Steps", ylabel=r"$\beta$", title=f"{model}: Hessian vs effective smoothness")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def control_figure(runs: Runs, lr: float) -> Figure:
    """The learning-rate control: per-step training loss and the landscape measures of short runs."""
    _check(runs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for name, h in runs.items():
        c, lab = _colour(name), LEGEND.get(name, name)
        run = Run.of(h)
        loss = run.step_loss()[:run.steps_done]
        text = f"{lab} ({run.status()})" if run.diverged else lab
        axes[0].plot(np.arange(len(loss)), loss, color=c, lw=0.8, label=text)
        s = landscape_series(h)
        axes[1].fill_between(s["steps"], s["gdiff_min"], s["gdiff_max"], color=c, alpha=0.4)
        axes[2].plot(s["steps"], s["beta_eff"], color=c, marker=".")
    axes[0].set(xlabel="Steps", ylabel="Training loss (batch)", yscale="log", title=f"LR = {lr:g}")
    axes[1].set(xlabel="Steps", ylabel="l2 diff in gradients", yscale="log", title="gradient predictiveness")
    axes[2].set(xlabel="Steps", ylabel=r"$\beta$-smoothness", yscale="log", title=r"effective $\beta$-smoothness")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
