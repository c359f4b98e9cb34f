"""The appendix's figures: the signal at initialisation, and how long a Standard VGG sits at chance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def signal_figure(stds: Mapping[float, Sequence[float]]) -> Figure:
    """Standard deviation of each block's output at initialisation (log scale), one line per width."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for width, values in stds.items():
        ax.plot(np.arange(1, len(values) + 1), values, "o-", label=f"width {width:g}")
    depth = len(next(iter(stds.values())))
    ax.plot([1, depth], [1, 0.5 ** ((depth - 1) / 2)], "k:", label=r"$\times 1/\sqrt{2}$ per layer (from 1)")
    ax.set_yscale("log")
    ax.set(xlabel="Block (1-13: conv + ReLU; 14: the logits)", ylabel="Std of the block's output",
           xticks=range(1, depth + 1))
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def escape_figure(rows: Sequence[Mapping[str, float | int | str | None]], run_steps: int | None = None) -> Figure:
    """Steps until the rolling training-batch accuracy passes 50%, per width: one marker per seed (a
    square for the plain memory layout, a hollow triangle at the cap for a seed that never got there),
    with a third of the chosen run length."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    rows = [r for r in rows if float(r.get("lr", 0.1)) == 0.1]  # the paper's rate: the plateau's length
    widths = sorted({float(r["width"]) for r in rows})
    styles = {("channels_last", True): ("o", "tab:blue", "a seed (channels-last layout, the default)"),
              ("contiguous", True): ("s", "tab:grey", "the same seed, plain layout"),
              ("channels_last", False): ("^", "tab:red", "a seed still below 50% at its cap"),
              ("contiguous", False): ("^", "tab:red", "a seed still below 50% at its cap")}
    shown: set[str] = set()
    for i, width in enumerate(widths):
        mine = [r for r in rows if float(r["width"]) == width]
        for k, r in enumerate(mine):
            hit = r["steps_to_50"] is not None
            marker, colour, text = styles[(str(r.get("layout", "channels_last")), hit)]
            ax.plot(i + 0.3 * (k / max(1, len(mine) - 1) - 0.5), r["steps_to_50"] if hit else r["steps_run"],
                    marker, color=colour, mfc=colour if hit else "none", ms=8,
                    label=None if text in shown else text)
            shown.add(text)
    if run_steps:
        ax.axhline(run_steps / 3, color="black", ls="--", lw=1, label=f"a third of the cpu profile's {run_steps} steps")
    ax.set_xticks(range(len(widths)), [f"{w:g}" for w in widths])
    ax.set(xlabel="VGG width (x VGG-16's channels)", ylabel="Steps to 50% training accuracy", ylim=(0, None))
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
