"""Figures of the Section 4 checks: each statement's two sides, draw by draw."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _diagonal(ax: Any, lo: float, hi: float) -> None:
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="LHS = RHS")


def theorem41(data: dict[str, np.ndarray]) -> Figure:
    """Left: LHS vs both right-hand sides (a bound holds where its points sit on or above the
    diagonal). Right: each form's relative slack per batch size m (negative = violated)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    rng = np.random.default_rng(0)
    ms = np.unique(data["m"])
    jitter = np.exp(rng.uniform(-0.1, 0.1, len(data["m"])))
    for key, label, colour, marker in (("rhs41_sqrt", "as printed, 1/sqrt(m)", "C3", "x"),
                                       ("rhs41_m", "with 1/m", "C2", "o")):
        a.scatter(data["m"] * jitter, (data["lhs41"] - data[key]) / data["gy_term41"], s=10, color=colour,
                  marker=marker, label=label)
    grid = np.geomspace(ms.min(), ms.max(), 100)
    a.plot(grid, 1 / np.sqrt(grid) - 1 / grid, color="k", lw=0.8, ls="--", label=r"$1/\sqrt{m} - 1/m$ (algebra)")
    a.set(xscale="log", xlabel="batch size m", ylabel=r"(LHS $-$ RHS) / $(\gamma^2/\sigma^2)\langle g,\hat y\rangle^2$",
          title="Theorem 4.1: above 0 = violated")
    a.legend(fontsize=8)
    for key, label, colour in (("rhs41_sqrt", "as printed (1/sqrt(m))", "C3"), ("rhs41_m", "with 1/m", "C2")):
        slack = (data[key] - data["lhs41"]) / data["scale41"]
        b.plot(ms, [np.median(slack[data["m"] == m]) for m in ms], "o-", color=colour, label=f"{label}, median")
        b.plot(ms, [slack[data["m"] == m].min() for m in ms], ":", color=colour, label=f"{label}, worst")
    b.axhline(0, color="k", lw=0.8)
    b.set(xscale="log", xlabel="batch size m", ylabel=r"(RHS $-$ LHS) / $(\gamma^2/\sigma^2)\|g\|^2$",
          title="Slack per batch size (negative = violated)")
    b.set_xticks(ms, [str(int(m)) for m in ms])
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def theorem42(data: dict[str, np.ndarray]) -> Figure:
    """Both sides of Theorem 4.2 (signed, symlog axes): all points on the diagonal = equality."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    sel = data["m"] >= 3
    lhs, rhs = data["lhs42"][sel], data["rhs42"][sel]
    ax.scatter(rhs, lhs, s=10, c=np.log2(data["m"][sel]), cmap="viridis")
    hi = np.abs(np.r_[lhs, rhs]).max()
    _diagonal(ax, -hi, hi)
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set( xlabel="RHS of Theorem 4.2",
           ylabel=r"LHS $v^\top \nabla^2_{y_j}\hat L\, v$,  $v=\nabla_{y_j}\hat L$",
           title="Theorem 4.2 (colour: log2 m)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def lemma45(arrays: dict[str, np.ndarray]) -> Figure:
    """Distance to the nearest BN optimum found, against the lemma's bound (below the diagonal = holds)."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    pos = arrays["inner"] > 0
    ax.scatter(arrays["bound"][pos], arrays["ray"][pos], s=10, label=r"nearest $cW^*$, $c>0$")
    ax.scatter(arrays["bound"][pos], arrays["per_unit"][pos], s=10, marker="x", label=r"nearest diag$(c)W^*$")
    ax.scatter(arrays["bound"][pos], arrays["dist"][pos], s=6, color="0.6", label=r"$\|W_0-W^*\|^2$ (no BN)")
    lo, hi = arrays["bound"][pos].min(), arrays["dist"][pos].max()
    _diagonal(ax, lo, hi)
    ax.set(xlabel="Lemma 4.5 bound", ylabel=r"squared distance from $W_0$",
           title=r"Lemma 4.5 on draws with $\langle W_0,W^*\rangle>0$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
