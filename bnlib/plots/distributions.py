"""Figures 1, 2 and 8: accuracy curves, layer-input distributions over training, moment drift.

Distributions are drawn as the paper draws them: one histogram per recorded step, stacked over
training (a ridge plot, step on the vertical axis), for one fixed random unit of the layer.
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
from bnlib.plots import paper as overlay
from bnlib.plots import seeds
from bnlib.probes import activations as act
from bnlib.record import Run

LABELS = {"none": "Standard", "batch": "Standard + BatchNorm", "noisy": 'Standard + "Noisy" BatchNorm',
          "noise_only": "Standard + noise (no BN)"}
COLOURS = {"none": "tab:blue", "batch": "tab:orange", "noisy": "tab:green", "noise_only": "tab:red"}
PAPER_LR05 = {"none": "tab:cyan", "batch": "tab:brown"}  # the paper's LR 0.5 curves
PAPER_SERIES = {"none": "standard", "batch": "bn", "noisy": "noisy_bn"}  # our norm -> the paper's series


def label(norm: str) -> str:
    return LABELS.get(norm, norm)


def accuracy_curve(history: Mapping[str, Any], split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(steps, accuracy) at the evaluation cadence; `split` is 'train' or 'test' (eval mode, no noise)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rows = [e for e in history["evals"] if f"{split}_acc" in e]
    return np.array([e["step"] for e in rows]), np.array([e[f"{split}_acc"] for e in rows])


def batch_accuracy(history: Mapping[str, Any], window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-step training-batch accuracy (training mode, noise included), as a running mean."""
    run = Run.of(history)
    acc = run.step_acc()[:run.steps_done]
    window = window or max(1, len(acc) // 20)
    if len(acc) == 0:
        return np.array([]), np.array([])
    smooth = st.trailing_mean(acc, window)[window - 1:]
    return np.arange(window - 1, window - 1 + len(smooth)), smooth


def _draw_accuracy(ax: Axes, histories: Sequence[Mapping[str, Any]], split: str, text: str, colour: str,
                   style: str) -> None:
    """The seeds' mean accuracy and their spread; a diverged seed's curve ends at its divergence (marked x)."""
    curves = [accuracy_curve(h, split) for h in histories]
    ended = [(Run.of(h).diverged_at, acc[-1] if len(acc) else 0.0) for h, (_, acc) in zip(histories, curves,
                                                                                            strict=True)]
    ended = [(step, last) for step, last in ended if step is not None]
    if ended:
        text += (f" (diverged at step {ended[0][0]})" if len(histories) == 1
                 else f" (diverged in {len(ended)} of {len(histories)} seeds)")
    sparse = max(len(steps) for steps, _ in curves) < 8
    seeds.draw(ax, [(steps, 100 * acc) for steps, acc in curves], colour, text, style, marker="o" if sparse else None)
    for step, last in ended:
        ax.plot([step], [100 * last], "x", color=colour, markersize=10, mew=2)
        ax.axvline(step, color=colour, lw=0.8, ls=":")


def fig1_accuracy(by_seed: Mapping[int, Mapping[tuple[str, float], Mapping[str, Any]]],
                  paper_data: bool = True) -> Figure:
    """Figure 1(a, b): training and test accuracy (%) vs steps, Standard vs +BN at each learning rate,
    stacked; each line the mean of the seeds in `by_seed` ({seed: {(norm, lr): run}}) with their spread,
    beside the paper's curves (Fig. 1a: one training batch of 128; Fig. 1b: the test set) at LR 0.1, 0.5."""
    keys = sorted(next(iter(by_seed.values())), key=lambda k: (k[1], k[0]))
    lrs = sorted({lr for _, lr in keys})
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(2, 1, figsize=(7, 8.6))
    for ax, split, title in zip(axes, ("train", "test"), ("(a) Training accuracy", "(b) Test accuracy"),
                                strict=True):
        for norm, lr in keys:
            colour = PAPER_LR05.get(norm, COLOURS[norm]) if lr == 0.5 else COLOURS[norm]
            style = "-" if lr in (0.1, 0.5) else styles[lrs.index(lr) % 4]  # dashed is for the paper's curves
            _draw_accuracy(ax, [runs[(norm, lr)] for runs in by_seed.values()], split, f"{label(norm)}, LR={lr:g}",
                           colour, style)
            if paper_data and norm in ("none", "batch") and lr in (0.1, 0.5):
                name = "fig1a_train_acc" if split == "train" else "fig1b_test_acc"
                series = f"{'standard' if norm == 'none' else 'bn'}_lr{lr:g}"
                overlay.line(ax, paper.curve(name, series), name, f"{label(norm)}, LR={lr:g}",
                             COLOURS[norm] if lr == 0.1 else PAPER_LR05[norm], seeds.total_steps(by_seed))
        ax.axhline(10, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("Steps (ours)")
        ax.set_ylabel(f"{split.capitalize()} accuracy (%)")
        ax.set_title(title, loc="left")
        ax.set_ylim(0, 100)
        if split == "test":
            overlay.legend(ax)
    fig.tight_layout()
    if paper_data:
        overlay.scale_caption(fig, seeds.first_run(by_seed), note=seeds.seeds_note(len(by_seed)))
    return fig


def ridge(ax: Axes, history: Mapping[str, Any], layer: int, unit: int = 0, max_rows: int = 40,
          colour_map: str = "viridis") -> None:
    """One unit's per-step histograms stacked over training (step on the vertical axis, each row
    scaled to its own peak)."""
    steps, edges, counts = act.histograms(history, layer)
    if not 0 <= unit < counts.shape[1]:
        raise ValueError(f"unit must be in 0..{counts.shape[1] - 1} (index into the recorded units), got {unit}")
    keep = np.unique(np.linspace(0, len(steps) - 1, min(max_rows, len(steps))).round().astype(int))
    steps, edges, counts = steps[keep], edges[keep, unit], counts[keep, unit].astype(float)
    ok = counts.sum(axis=1) > 0
    if not ok.any():
        ax.text(0.5, 0.5, "no finite values (diverged)", ha="center", transform=ax.transAxes)
        return
    widths = np.diff(edges, axis=1)
    density = np.where(ok[:, None], counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) / widths, 0)
    spacing = np.median(np.diff(steps)) if len(steps) > 1 else 1.0
    # each row scaled to its own peak: shapes stay readable when the spread changes by orders of
    # magnitude over training (the spread itself is on the horizontal axis)
    peak = np.where(ok, density.max(axis=1), 1.0)
    height = density / peak[:, None] * 2.5 * spacing
    cmap = plt.get_cmap(colour_map)
    for i in range(len(steps) - 1, -1, -1):  # back rows first, so nearer (earlier) rows overlap them
        if not ok[i]:
            continue
        centres = (edges[i, :-1] + edges[i, 1:]) / 2
        colour = cmap(i / max(1, len(steps) - 1))
        ax.fill_between(centres, steps[i], steps[i] + height[i], color=colour, alpha=0.55, lw=0, zorder=len(steps) - i)
        ax.plot(centres, steps[i] + height[i], color="black", lw=0.4, zorder=len(steps) - i)
    ax.set_ylabel("Step")
    ax.set_xlabel("Activation value")


def distributions(runs: Mapping[str, Mapping[str, Any]], layers: Sequence[int], unit: int = 0,
                  title: str | None = None, seed: int | None = None) -> Figure:
    """Layer-input distributions (ridge plots) of one seed's runs: one row per layer, one column per network
    (a histogram per step is one run's view: averaging seeds would blur the very shifts it shows)."""
    norms = list(runs)
    fig, axes = plt.subplots(len(layers), len(norms), figsize=(3.6 * len(norms), 2.9 * len(layers)), squeeze=False)
    for r, layer in enumerate(layers):
        for c, norm in enumerate(norms):
            ax = axes[r, c]
            ridge(ax, runs[norm], layer, unit)
            channel = act.units(runs[norm], layer)[unit]
            ax.set_title(f"{label(norm)}\nlayer #{layer}, unit {channel}", fontsize=9)
    title = ", ".join(t for t in (title, None if seed is None else f"seed {seed}") if t)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig1c(runs: Mapping[tuple[str, float], Mapping[str, Any]], lr: float = 0.1,
          layers: Sequence[int] = (3, 11), unit: int = 0, seed: int | None = None) -> Figure:
    """Figure 1(c): a random unit's distribution over training at layers #3 and #11, Standard vs +BN,
    for one seed's runs."""
    return distributions({norm: runs[(norm, lr)] for norm in ("none", "batch")}, layers, unit, seed=seed)


def fig2_accuracy(by_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], paper_data: bool = True) -> Figure:
    """Figure 2 (left): training accuracy (%) vs steps for Standard, +BN, +noisy BN (and the control), each
    the mean and spread of the seeds in `by_seed` ({seed: {norm: run}}), with the paper's Fig. 2a (one
    training batch of 128 every 100 steps)."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for norm in next(iter(by_seed.values())):
        _draw_accuracy(ax, [runs[norm] for runs in by_seed.values()], "train", label(norm),
                       COLOURS.get(norm, "black"), "--" if norm == "noise_only" else "-")
        if paper_data and norm in PAPER_SERIES:
            overlay.line(ax, paper.curve("fig2a_train_acc", PAPER_SERIES[norm]), "fig2a_train_acc", label(norm),
                         COLOURS[norm], seeds.total_steps(by_seed))
    ax.axhline(10, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="Steps (ours)", ylabel="Training accuracy (%)", ylim=(0, 100))
    overlay.legend(ax)
    fig.tight_layout()
    if paper_data:
        overlay.scale_caption(fig, seeds.first_run(by_seed), note=seeds.seeds_note(len(by_seed)))
    return fig


def fig2_distributions(runs: Mapping[str, Mapping[str, Any]], layers: Sequence[int] = (2, 9, 13),
                       unit: int = 0, seed: int | None = None) -> Figure:
    """Figure 2 (right): distributions at layers #2, #9, #13 for each network, for one seed's runs."""
    return distributions(runs, layers, unit, seed=seed)


def fig8(runs: Mapping[str, Mapping[str, Any]], layers: Sequence[int] = (2, 9, 13), kind: str = "step",
         unit: int = 0, paper_data: bool = True, seed: int | None = None) -> Figure:
    """Figure 8, one unit per layer (rows) and moment (columns): (a) kind='step': abs(mu_t+1 - mu_t),
    abs(var_t+1 - var_t) between recorded steps; (b) kind='shift': mu_t - mu_0, var_t - var_0; with the
    paper's Fig. 8a / 8b (one unit, every 100 steps) where it has the layer."""
    if kind not in ("step", "shift"):
        raise ValueError(f"kind must be 'step' (Fig. 8a) or 'shift' (Fig. 8b), got {kind!r}")
    keys = ("abs_dmean", "abs_dvar") if kind == "step" else ("mean_shift", "var_shift")
    moments = {"abs_dmean": "mean", "abs_dvar": "variance", "mean_shift": "mean", "var_shift": "variance"}
    name = "fig8a_moment_change_step" if kind == "step" else "fig8b_moment_change_cumulative"
    ylabels = {"abs_dmean": r"$|\mu_{t+1} - \mu_t|$", "abs_dvar": r"$|\sigma^2_{t+1} - \sigma^2_t|$",
               "mean_shift": r"$\mu_t - \mu_0$", "var_shift": r"$\sigma^2_t - \sigma^2_0$"}
    fig, axes = plt.subplots(len(layers), 2, figsize=(7.2, 3.1 * len(layers)), squeeze=False)
    for r, layer in enumerate(layers):
        for c, key in enumerate(keys):
            ax = axes[r, c]
            for norm, history in runs.items():
                drift = act.moment_drift(history, layer)
                x = drift["d_steps"] if kind == "step" else drift["steps"]
                ax.plot(x, drift[key][:, unit], color=COLOURS.get(norm, "black"), lw=1, label=label(norm))
                if paper_data and norm in PAPER_SERIES and layer in (2, 9, 13):
                    curve = paper.curve(name, PAPER_SERIES[norm], moment=moments[key], layer=layer)
                    overlay.line(ax, overlay.positive(curve) if kind == "step" else curve, name, label(norm),
                                 COLOURS[norm], seeds.total_steps({seed: runs}))
            if kind == "step":
                ax.set_yscale("log")
            ax.set_title(f"Layer #{layer}", loc="left")
            ax.set_xlabel("Steps (ours)")
            ax.set_ylabel(ylabels[key])
    overlay.legend(axes[-1, 0])
    title = "(a) change between recorded steps" if kind == "step" else "(b) shift from the first recorded step"
    fig.suptitle(title if seed is None else f"{title}, seed {seed}")
    fig.tight_layout()
    if paper_data:
        overlay.scale_caption(fig, next(iter(runs.values())))
    return fig


def noise_level(run: Mapping[str, Any], scale: float, baselines: Mapping[str, Mapping[str, Any]]) -> Figure:
    """The noise-level control: a short noisy-BN run's batch accuracy against the BN and Standard runs."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for norm, history in baselines.items():
        ax.plot(*_pct(batch_accuracy(history)), color=COLOURS[norm], lw=1.2, label=label(norm))
    text = f'"Noisy" BN, noise x{scale:g}'
    if Run.of(run).diverged:
        text += f" ({Run.of(run).status()})"
    ax.plot(*_pct(batch_accuracy(run)), color=COLOURS["noisy"], lw=2, label=text)
    ax.axhline(10, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="Steps", ylabel="Training-batch accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _pct(curve: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return curve[0], 100 * curve[1]
