"""One curve per run, several seeds per run: every figure draws their mean and their spread the same way.

The mean is a line; the band runs from the lowest to the highest seed at each x (with three seeds a
min-max band says more than a standard deviation). Curves may end at different x (a run that diverged
stops there): from the point where a seed has no value the mean and band use the seeds that do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from bnlib.record import Run

Curve = tuple[np.ndarray, np.ndarray]  # (x, y) of one seed


def stack(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """(x, values): every seed's y on the union of their x, NaN where a seed has no value at that x."""
    if not curves:
        raise ValueError("stack needs at least one seed's curve")
    x = np.unique(np.concatenate([np.asarray(c[0], dtype=float) for c in curves]))
    values = np.full((len(curves), len(x)), np.nan)
    for i, (cx, cy) in enumerate(curves):
        values[i, np.searchsorted(x, np.asarray(cx, dtype=float))] = np.asarray(cy, dtype=float)
    return x, values


def spread(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, low, high) across seeds at each x where at least one seed has a value."""
    x, values = stack(curves)
    keep = np.isfinite(values).any(axis=0)
    x, values = x[keep], values[:, keep]
    return x, np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def draw(ax: Axes, curves: Sequence[Curve], colour: str, label: str, style: str = "-", alpha: float = 0.2,
         **line: object) -> None:
    """The seeds' mean as a line labelled `label` (with the number of seeds when more than one) and their
    min-max band in the same colour."""
    x, mean, low, high = spread(curves)
    n = len(curves)
    ax.plot(x, mean, style, color=colour, label=label if n == 1 else f"{label} (mean of {n} seeds)", **line)
    if n > 1:
        ax.fill_between(x, low, high, color=colour, alpha=alpha, linewidth=0)


def first_run(by_seed: Mapping[int, Mapping[Any, Mapping[str, Any]]]) -> Mapping[str, Any]:
    """One history of {seed: {key: history}} (the first seed's first run): what a scale caption reads."""
    return next(iter(next(iter(by_seed.values())).values()))


def total_steps(by_seed: Mapping[int, Mapping[Any, Mapping[str, Any]]]) -> int:
    """The longest configured run of {seed: {key: history}}: the length the paper's twin axis spans."""
    return max(Run.of(h).steps for runs in by_seed.values() for h in runs.values())


def seeds_note(n: int) -> str:
    """The sentence a caption adds under a figure drawn from `n` seeds."""
    return "" if n <= 1 else f"Lines: mean of {n} seeds; shaded: the lowest to the highest seed."
