"""Chapter 7's figures: later work's findings on our runs, one figure per section, panels stacked at the page width.

Every quantity is drawn as the seeds' mean with their lowest-to-highest band (`bnlib.plots.seeds`), or, where the
number is a grid point (the learning rates), as every seed's own marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bnlib.claims import later as claims
from bnlib.experiments import later
from bnlib.plots import seeds as spread
from bnlib.probes.hessian import hessian_series
from bnlib.stats import landscape_curves, over, total, training_start

COLOURS = {"Standard": "tab:blue", "+BN": "tab:orange", "+BN (batch statistics)": "tab:orange",
           "+BN (running statistics)": "tab:red"}
FAMILIES = {"vgg": ("VGG", later.VGG_DEPTHS), "dln": ("Deep linear network", later.DLN_DEPTHS)}


def depth_figure(runs: Mapping[int, Mapping[tuple[str, int, str], Any]]) -> Figure:
    """Section 1: per family, the median top Hessian eigenvalue (solid) and effective beta (dashed) over the middle
    half of training, against depth, Standard and +BN, with 2 / LR dotted: the curvature at which a gradient step of
    that size stops being stable, where gradient descent tends to hold the top eigenvalue (Cohen et al. 2021)."""
    fig, axes = plt.subplots(2, 1, figsize=(7, 7.6))
    for ax, (model, (name, depths)) in zip(axes, FAMILIES.items(), strict=True):
        for label in later.NORMS:
            tops, betas = [], []
            for r in runs.values():
                starts = {d: training_start(r[model, d, "Standard"]) if model == "vgg" else 0.0 for d in depths}
                tops.append((np.array(depths), [claims.top_eig_median(r[model, d, label], starts[d])
                                                for d in depths]))
                betas.append((np.array(depths), [over(landscape_curves(r[model, d, label])["beta_eff"],
                                                      total(r[model, d, label]), claims.PHASE, start=starts[d])
                                                 for d in depths]))
            spread.draw(ax, tops, COLOURS[label], f"{label}: top Hessian eigenvalue", marker="o")
            spread.draw(ax, betas, COLOURS[label], f"{label}: effective beta", "--", marker="s")
        lr = later.VGG_LR if model == "vgg" else later.DLN_LR
        ax.axhline(2 / lr, color="grey", ls=":", lw=1.2, label=f"2 / LR = {2 / lr:g}: the edge of stability")
        ax.set(yscale="log", xticks=depths, xlabel="Depth (weight layers)", ylabel="Median, middle half of training",
               title=name)
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def init_figure(table: Mapping[tuple[str, int, int], np.ndarray]) -> Figure:
    """Section 2: the gradient norm of every layer of the deepest MLP at initialisation (top), and its growth from
    the last hidden layer back to the second against depth (bottom), Standard and +BN."""
    depths = sorted({d for _, d, _ in table})
    seeds = sorted({s for _, _, s in table})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7.6))
    for label in later.NORMS:
        grads = [table[label, depths[-1], s] for s in seeds]
        spread.draw(top, [(np.arange(1, len(g) + 1), g) for g in grads], COLOURS[label], label, marker=".")
        growth = [(np.array(depths), [later.explosion(table[label, d, s]) for d in depths]) for s in seeds]
        spread.draw(bottom, growth, COLOURS[label], label, marker="o")
    top.set(yscale="log", xlabel="Layer", ylabel=r"$\|\partial L / \partial W_\ell\|$",
            title=f"MLP of depth {depths[-1]}, width {later.MLP_WIDTH}, at initialisation")
    bottom.axhline(1, color="grey", ls=":", lw=1)
    bottom.set(yscale="log", xticks=depths, xlabel="Depth (linear layers)",
               ylabel=r"$\|\partial L/\partial W_2\| \,/\, \|\partial L/\partial W_{d-1}\|$",
               title="Growth of the gradient towards the input")
    for ax in (top, bottom):
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def lr_figure(rates: Mapping[int, Mapping[tuple[str, int, str], float]]) -> Figure:
    """Section 3: per family, the largest rate of the grid at which each seed trained (markers) and the largest at
    which every seed did (line), against depth; a network that trained at no rate is drawn at the bottom edge."""
    fig, axes = plt.subplots(2, 1, figsize=(7, 7.6))
    for ax, (model, name, depths, grid) in zip(axes, (("mlp", "MLP", later.LR_DEPTHS, later.MLP_LRS),
                                                      ("dln", "Deep linear network", later.DLN_DEPTHS, later.DLN_LRS)),
                                               strict=True):
        floor = min(grid) / 3
        for i, label in enumerate(later.NORMS):
            per_seed = np.array([[r[model, d, label] for d in depths] for r in rates.values()])
            shown = np.where(np.isfinite(per_seed), per_seed, floor)
            shift = 1 + 0.04 * (2 * i - 1)  # the two networks' markers side by side
            for row in shown:
                ax.scatter(np.array(depths) * shift, row, color=COLOURS[label], alpha=0.6, s=30)
            every = np.where(np.isfinite(per_seed).all(axis=0), np.nanmin(shown, axis=0), np.nan)
            ax.plot(np.array(depths) * shift, every, "-", color=COLOURS[label], marker="D", markersize=9,
                    markerfacecolor="none", label=f"{label}: largest in every seed (dots: each seed)")
        ax.axhline(floor, color="grey", ls=":", lw=1, label="trained at no rate of the grid")
        ax.set(xscale="log", yscale="log", ylim=(floor / 2, max(grid) * 2), xticks=depths, xticklabels=depths,
               xlabel="Depth", ylabel="Largest rate that trains", title=name)
        ax.minorticks_off()
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def outlier_series(runs: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One seed's {variant: (steps, top / rms eigenvalue, top-k eigenvalues over the top one)} at the steps after 0
    where the running-statistics Hessian was measured."""
    steps = [r["step"] for r in runs["+BN"]["probes"]["hessian_running"] if r["step"] > 0]
    out = {}
    for variant, (name, probe) in {"Standard": ("Standard", "hessian"), "+BN (batch statistics)": ("+BN", "hessian"),
                                   "+BN (running statistics)": ("+BN", "hessian_running")}.items():
        h = hessian_series(runs[name], probe)
        top = h["top_eigs"][np.isin(h["steps"], steps)]
        out[variant] = (*claims.outlier_ratios(runs[name], probe, steps), top / top[:, :1])
    return out


def outlier_figure(runs: Mapping[int, Mapping[str, Any]]) -> Figure:
    """Section 4: the outlier ratio (top / root-mean-square eigenvalue) at the measured steps (top), and the top
    eigenvalues relative to the largest, their median over those steps (bottom): an isolated top eigenvalue has
    the others far below 1."""
    series = {seed: outlier_series(r) for seed, r in runs.items()}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7.6))
    for variant, colour in COLOURS.items():
        if variant == "+BN":
            continue
        per_seed = [s[variant] for s in series.values() if len(s[variant][0])]
        if not per_seed:  # a run too short for a measurement after step 0 (the smoke profile)
            continue
        spread.draw(top, [(steps, r) for steps, r, _ in per_seed], colour, variant, marker="o")
        ranks = [(np.arange(1, rel.shape[1] + 1), np.median(rel, axis=0)) for _, _, rel in per_seed]
        spread.draw(bottom, ranks, colour, variant, marker="o")
    top.set(yscale="log", xlabel="Steps", ylabel="Top / RMS eigenvalue", title="How far the top eigenvalue stands out")
    bottom.set(yscale="log", xlabel="Rank of the eigenvalue", ylabel=r"$\lambda_i / \lambda_1$ (median over steps)",
               title="The largest eigenvalues, relative to the top one")
    for ax in (top, bottom):
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
