"""The paper's digitized curves drawn beside ours, on the same axes, with x as the fraction of training.

Our runs are often shorter than the paper's (1,800 steps at profile cpu vs 15k), so each panel gets a
twin x axis on top, in the paper's steps, scaled so that both axes span the whole of training: the
same fraction of training sits at the same place. The y axis is shared (same units), so a paper curve
is read against ours directly. Paper curves are thin, dashed and translucent, in our colour for the
same network, and every legend entry says "paper, digitized from Fig. N".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

from bnlib import paper
from bnlib.paper import Curve

STYLE = {"lw": 1.1, "ls": (0, (4, 2)), "alpha": 0.75}
LEGEND_DROP_IN = 0.55  # inches from a panel's bottom edge to its legend: below the tick labels and the x label


def twin(ax: Axes, ours_total: int, model: str = "vgg") -> Axes:
    """The panel's paper axis: a twin x axis on top in the paper's steps, aligned by fraction of training."""
    existing = getattr(ax, "_bnlib_paper_axis", None)
    if existing is not None:
        return existing
    if not ours_total > 0:
        raise ValueError(f"ours_total must be our run's positive number of steps, got {ours_total!r}")
    paper_total = paper.TOTAL_STEPS[model]
    ax.set_xlim(0, ours_total)
    top = ax.twiny()
    top.set_xlim(0, paper_total)
    top.set_xlabel(f"paper's steps (of {paper_total // 1000}k)", fontsize=10)
    top.tick_params(axis="x", labelsize=9, colors="0.35")
    top.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k" if v else "0")
    ax._bnlib_paper_axis = top  # type: ignore[attr-defined]
    return top


def line(ax: Axes, curve: Curve, name: str, what: str, colour: str, ours_total: int, model: str = "vgg") -> None:
    """One paper curve (e.g. Fig. 1a's Standard LR 0.1) on the panel's paper axis."""
    top = twin(ax, ours_total, model)
    top.plot(curve.steps, curve.values, color=colour, label=f"{paper.label(name)}: {what}", **STYLE)


def band(ax: Axes, name: str, series: str, what: str, colour: str, ours_total: int, model: str = "vgg") -> None:
    """A paper band (the range over the step sizes) as its two dashed edges, lightly hatched between."""
    steps, lower, upper = paper.band(name, series)
    top = twin(ax, ours_total, model)
    top.plot(steps, upper, color=colour, label=f"{paper.label(name)}: {what}", **STYLE)
    top.plot(steps, lower, color=colour, **STYLE)
    top.fill_between(steps, lower, upper, facecolor="none", edgecolor=colour, hatch="///", lw=0, alpha=0.35)


def legend(ax: Axes, ncol: int = 1) -> None:
    """One legend for our curves and the paper's (the paper's live on the twin axis), under the panel and
    outside it, so that it hides no data; give the bottom panel of a figure (tight_layout makes room)."""
    handles, labels = ax.get_legend_handles_labels()
    top = getattr(ax, "_bnlib_paper_axis", None)
    if top is not None:
        more = top.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        # a fixed distance below the axes (past the tick labels and the x label), not a fraction of the
        # panel's height: on a short panel -0.17 of it put the legend's first row over the x label
        below = ax.transAxes + ScaledTranslation(0, -LEGEND_DROP_IN, ax.figure.dpi_scale_trans)
        (top or ax).legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below,
                           ncol=ncol, fontsize=10, frameon=False)


def scale_note(total: int, model: str = "vgg") -> str:
    """A caption line: our steps against the paper's."""
    return f"ours: {total} steps (bottom axis); paper: {paper.TOTAL_STEPS[model]} steps (top axis)"


def positive(curve: Curve) -> Curve:
    """Only the points a log axis can show."""
    keep = np.isfinite(curve.values) & (curve.values > 0)
    return Curve(curve.steps[keep], curve.values[keep])


def all_overlays(runs: Mapping[int, Mapping[str, Any]], columns: int = 1) -> Figure:
    """Every paired curve at once, one panel per paper panel, x = fraction of training for both: ours
    solid (`runs` is {seed: canonical runs}: the seeds' mean, shaded from the lowest to the highest seed),
    the paper's dashed ("paper, digitized from Fig. N")."""
    from bnlib.claims import overlays
    from bnlib.plots import seeds

    if not runs:
        raise ValueError("runs must map at least one seed to its canonical runs ({seed: runs})")
    groups: dict[str, list[overlays.Pair]] = {}
    for p in overlays.pairs():
        groups.setdefault(p.panel, []).append(p)
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.0 * rows), squeeze=False)
    for ax, (panel, members) in zip(axes.flat, groups.items(), strict=False):
        for p in members:
            curves = []
            for r in runs.values():
                ours, total = p.ours(r)
                ours = positive(ours) if p.unit == "decades" else ours
                curves.append((np.asarray(ours.steps) / total, ours.values))
            theirs = positive(p.theirs()) if p.unit == "decades" else p.theirs()
            colour = overlays.COLOURS[p.network]
            seeds.draw(ax, curves, colour, f"ours: {overlays.NAMES[p.network]}", lw=1.3)
            ax.plot(theirs.steps / paper.TOTAL_STEPS[p.model], theirs.values, color=colour, **STYLE)
        if members[0].unit == "decades":
            ax.set_yscale("log")
        ax.set_title(panel, loc="left", fontsize=10)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=9, loc="best")
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("fraction of training")
    which = f"seed {next(iter(runs))}" if len(runs) == 1 else f"mean of seeds {', '.join(map(str, runs))}, " \
        "shaded from the lowest to the highest"
    fig.suptitle(f"solid: ours ({which}); dashed: paper, digitized from the figure named in each title", y=1.0)
    fig.tight_layout()
    first = next(iter(runs.values()))
    scale_caption(fig, first["vgg"][("batch", 0.1)])
    scale_caption(fig, first["dln"]["batch"], y=-0.006)
    return fig


def scale_caption(fig: Figure, history: Mapping[str, Any], y: float = 0.0, note: str = "") -> None:
    """Say under the figure which scale differs from the paper's: dataset, width and steps (VGG), or
    points and steps (DLN), read from one of the runs drawn; `note` (e.g. how the seeds are drawn) follows
    on its own line, so that the two never overlap."""
    c = history["config"]
    if c["model"] == "vgg":
        width = "full" if c["width"] == 1 else f"{c['width']:.3g} x"
        data = history.get("dataset", c["dataset"])
        ours = f"{data}, {width} VGG-16 width, {c['steps']} steps of batch {c['batch_size']}"
        theirs = "CIFAR-10, full width, 15,000 steps of batch 128"
    else:
        ours = f"{c['dln_points']} points, {c['steps']} full-batch steps"
        theirs = "1000 points, 10,000 full-batch steps"
    text = f"Scale: ours {ours} (bottom axis); the paper's {theirs} (top axis)." + (f"\n{note}" if note else "")
    fig.text(0.5, y, text, ha="center", va="top", fontsize=9, wrap=True)
