"""Figures 4 and 10 (the three landscape measures), Figure 11 (gradient change vs step size),
the Hessian's beta beside the effective one, and the learning-rate control's panel.

Figures over training take runs keyed by seed, {seed: {"Standard": history, "+BN": history}}, and draw
each quantity's mean over the seeds with their min-max band (`bnlib.plots.seeds`; one seed: a plain
line). Single-run views (Figure 11, the control) take one seed's {"Standard": history, "+BN": history}
and name the seed in their titles. Values span orders of magnitude between the two networks, so the
y axes are logarithmic (the paper's are linear; the quantities and x axes are the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bnlib import paper
from bnlib import stats as st
from bnlib.claims.landscape import PAPER_FILES, training_start
from bnlib.plots import paper as overlay
from bnlib.plots import seeds as spread
from bnlib.probes.hessian import hessian_series
from bnlib.probes.landscape import gradient_change_curves, landscape_series
from bnlib.record import Run

Runs = Mapping[str, Mapping[str, Any]]  # one seed's runs: {"Standard": history, "+BN": history}
BySeed = Mapping[int, Runs]  # {seed: runs}
COLOURS = {"Standard": "tab:blue", "+BN": "tab:orange"}
LEGEND = {"Standard": "Standard", "+BN": "Standard + BatchNorm"}
PAPER = {"Standard": "standard", "+BN": "bn"}  # our run names -> the paper's series
CLAIM_PHASE = "mid"  # the phase the claims compare (bnlib.claims.landscape), shaded on Figures 4 and 10


def _colour(name: str) -> str:
    return COLOURS.get(name, "black")


def _check(runs: Runs) -> None:
    if not runs:
        raise ValueError('runs must not be empty: a {"Standard": history, "+BN": history} mapping')


def _by_name(runs: BySeed) -> dict[str, list[Mapping[str, Any]]]:
    """{name: [history of each seed]}, checking that `runs` is keyed by seed and every seed has the same runs."""
    if not runs or not all(isinstance(seed, int) for seed in runs):
        raise ValueError('runs must be a non-empty {seed: {"Standard": history, "+BN": history}} mapping, '
                         f"got keys {list(runs)!r}")
    names = [list(r) for r in runs.values()]
    if not names[0] or any(n != names[0] for n in names):
        raise ValueError(f"every seed needs the same non-empty runs, got {dict(zip(runs, names, strict=True))}")
    return {name: [r[name] for r in runs.values()] for name in names[0]}


def _seed(history: Mapping[str, Any]) -> str:
    return f"seed {Run.of(history).config.get('seed', '?')}"


def _diverged(ax: Axes, history: Mapping[str, Any], name: str) -> None:
    at = Run.of(history).diverged_at
    if at is not None:
        ax.axvline(at, color=_colour(name), ls=":", lw=1)


def _captions(fig: Figure, runs: BySeed, first: Mapping[str, Any] | None, extra: str = "") -> None:
    """Under the figure: the scale against the paper's (when `first`, a run drawn, is given), then which seeds
    are drawn and how (as chapter 5's figures say it)."""
    which = f"Seed {next(iter(runs))}." if len(runs) == 1 else spread.seeds_note(len(runs))
    note = f"{which} {extra}".strip()
    if first is not None:
        overlay.scale_caption(fig, first, note=note)
    else:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=9, wrap=True)


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


def _range_edges(ax: Axes, series: Sequence[Mapping[str, np.ndarray]], key: str, colour: str, label: str) -> None:
    """The range over the step sizes by its edges, as in chapter 5's Figures 12 and 13: the largest value
    solid with the seeds' band, the smallest dotted (the seeds' mean), so that shading means one thing."""
    spread.draw(ax, [(s["steps"], s[f"{key}_max"]) for s in series], colour, label, lw=1.2)
    x, smallest, _, _ = spread.spread([(s["steps"], s[f"{key}_min"]) for s in series])
    ax.plot(x, smallest, color=colour, ls=":", lw=1.0)


def landscape_figure(runs: BySeed, title: str = "", paper_data: bool = True) -> Figure:
    """Figure 4 (VGG) / Figure 10 (DLN), stacked: (a) loss landscape, (b) gradient predictiveness,
    (c) effective beta, each the mean and spread of the seeds in `runs` ({seed: runs}); (a) and (b) draw
    the range over the step sizes by its edges (solid: largest, dotted: smallest). Beside them the paper's
    bands and curve (same units; top axis: the paper's steps) and, grey, the claims' main phase."""
    by_name = _by_name(runs)
    first = next(iter(by_name.values()))[0]
    model = Run.of(first).model
    total = max(Run.of(h).steps for hs in by_name.values() for h in hs)
    fig, axes = plt.subplots(3, 1, figsize=(7, 10.5))
    lo, hi = st.PHASES[CLAIM_PHASE]
    begin, where = lo * total, ""
    if model == "vgg":  # the claims' phase starts where Standard trains: shade from the latest seed's start
        latest = max(training_start(h) for h in by_name["Standard"]) if "Standard" in by_name else 0.0
        begin = max(begin, latest)
        where = (f",\nfrom step {latest:,.0f}, where the last seed's Standard reaches {st.TRAINING:g}%"
                 if begin < hi * total else f",\nempty: a seed's Standard does not reach {st.TRAINING:g}% in it")
    for ax in axes:  # the label in two lines: a wide legend would shrink the panels on the page
        ax.axvspan(min(begin, hi * total), hi * total, color="0.9", lw=0, zorder=0,
                   label=f"grey: {st.describe(CLAIM_PHASE, model)}, the claims' main phase{where}")
    for name, histories in by_name.items():
        series = [landscape_series(h) for h in histories]
        c = _colour(name)
        for ax, key in zip(axes[:2], ("loss", "gdiff"), strict=True):
            _range_edges(ax, series, key, c, LEGEND.get(name, name))
        spread.draw(axes[2], [(s["steps"], s["beta_eff"]) for s in series], c, LEGEND.get(name, name), marker=".")
        for ax in axes:
            for h in histories:
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
    _captions(fig, runs, first if paper_data else None,
              "(a), (b): solid, the largest value over the step sizes; dotted, the smallest.")
    return fig


def gradient_change_figure(runs: Runs, max_curves: int = 8, paper_data: bool = True) -> Figure:
    """Figure 11 for one seed's runs, stacked: ||g - grad L(w - eta g)|| against eta, one curve per probed
    training step (colour = step), with the paper's first and last curves (its steps 100 and 15000) dashed
    in grey. Each panel's title names the seed (a curve per step and per seed would be unreadable)."""
    _check(runs)
    model = Run.of(next(iter(runs.values()))).model
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
        ax.set(xscale="log", yscale="log", title=f"{LEGEND.get(name, name)} ({_seed(h)})")
        ax.set_ylabel(r"$\|\nabla L(w) - \nabla L(w - \eta \nabla L(w))\|_2$")
        ax.legend(fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel(r"Step size $\eta$")
    fig.tight_layout()
    return fig


def hessian_figure(groups: Mapping[str, BySeed]) -> Figure:
    """Per model ({seed: runs} each): beta = max |Hessian eigenvalue| (solid) beside the effective
    beta-smoothness (dashed), each the mean and spread of the seeds, with 2 / LR dotted: the curvature
    above which a gradient step of that size is unstable."""
    if not groups:
        raise ValueError('groups must not be empty: {"VGG": {seed: runs}, "DLN": {seed: runs}}')
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, (model, runs) in zip(axes[0], groups.items(), strict=True):
        by_name = _by_name(runs)
        for name, histories in by_name.items():
            c, lab = _colour(name), LEGEND.get(name, name)
            hs, ls = [hessian_series(h) for h in histories], [landscape_series(h) for h in histories]
            spread.draw(ax, [(s["steps"], s["beta"]) for s in hs], c, rf"{lab}: max $|\lambda|$", marker="o")
            spread.draw(ax, [(s["steps"], s["beta_eff"]) for s in ls], c, rf"{lab}: effective $\beta$", "--")
        lrs = {Run.of(h).lr for hs in by_name.values() for h in hs}
        for lr in sorted(lrs):
            ax.axhline(2 / lr, color="grey", ls=":", lw=1.2, label=f"2 / LR = {2 / lr:g}")
        ax.set(yscale="log", xlabel="Steps", ylabel=r"$\beta$", title=f"{model}: Hessian vs effective smoothness")
        ax.legend(fontsize=7)
    fig.tight_layout()
    _captions(fig, max(groups.values(), key=len), None)
    return fig


def control_figure(runs: Runs, lr: float) -> Figure:
    """The learning-rate control for one seed's short runs: per-step training loss and the landscape
    measures (the title names the seed)."""
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
    seed = _seed(next(iter(runs.values())))
    axes[0].set(xlabel="Steps", ylabel="Training loss (batch)", yscale="log", title=f"LR = {lr:g} ({seed})")
    axes[1].set(xlabel="Steps", ylabel="l2 diff in gradients", yscale="log", title="gradient predictiveness")
    axes[2].set(xlabel="Steps", ylabel=r"$\beta$-smoothness", yscale="log", title=r"effective $\beta$-smoothness")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
