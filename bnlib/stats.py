"""The statistics every claim uses, applied alike to our curves and to the paper's digitized ones.

A curve is (steps, values) with the run's length; phases are fractions of training, so the paper's
steps 1k-8k of 15k and steps 120-960 of an 1,800-step run are the same phase. A statistic over a phase
with fewer than MIN_POINTS finite values is NaN: the runs cannot give it (the claim is then
"inconclusive"). The `*_curve` helpers read our runs into the same shape as `bnlib.paper.curve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bnlib import checks, record
from bnlib.paper import TOTAL_STEPS, Curve
from bnlib.record import Run

# The three landscape measures of Figures 4 and 10 (panel: (record key, what it measures)); graders, tables and
# overlays all read them from here.
LANDSCAPE_MEASURES = {"a": ("loss_range", "loss range"), "b": ("gdiff_range", "gradient-change range"),
                      "c": ("beta_eff", "effective beta")}
MIN_POINTS = 3  # finite values a phase needs before a statistic over it means anything
CHANCE = 100 * record.CHANCE  # % accuracy of ten classes; a diverged run counts as chance from its divergence on
# The paper's own phases (Figure 4: the gap lives in steps 1k-8k of 15k), as fractions of training.
PHASES: dict[str, tuple[float, float]] = {
    "early": (0.0, 1 / 15), "mid": (1 / 15, 8 / 15), "late": (8 / 15, 1.0),
    "first half": (0.0, 0.5), "second half": (0.5, 1.0), "first third": (0.0, 1 / 3), "all": (0.0, 1.0),
    "last tenth": (0.9, 1.0), "middle half": (0.25, 0.75),
}


# Where "both networks train" begins: the Standard network's training accuracy, averaged over the trailing
# SMOOTHING of the run, reaches TRAINING %. The paper's Standard VGG (LR 0.1) gets there at step ~1k of 15k,
# exactly where its Figure 4 gap begins; a small Standard VGG first sits on a plateau at chance for a
# seed-dependent few hundred steps (chapter 9), and a phase taken as a bare fraction would compare that
# plateau (flat, hence "smooth") with a BN network that trains.
TRAINING = 50.0
SMOOTHING = 1 / 50


def describe(phase: str, model: str = "vgg", from_training: bool = False) -> str:
    """'steps 1k-8k of the paper's 15k' for a phase name: how the reader maps it onto the paper's axis."""
    lo, hi = PHASES[phase]
    total = TOTAL_STEPS[model]
    text = f"{phase} ({lo * total / 1000:.3g}k-{hi * total / 1000:.3g}k of the paper's {total // 1000}k steps)"
    return text + (f", from the step Standard's training accuracy reaches {TRAINING:g}% on" if from_training else "")


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Each value's mean with the `window` - 1 before it, NaN until a full window: the book's one running mean
    of its noisy per-step curves (one batch's accuracy is noisy)."""
    checks.check_int("window", window, 1)
    v = np.asarray(values, float)
    out = np.full(len(v), np.nan)
    if len(v) >= window:
        c = np.cumsum(np.insert(v, 0, 0.0))
        out[window - 1:] = (c[window:] - c[:-window]) / window
    return out


def first_reaching(curve: Curve, level: float, window: float) -> float:
    """The first step at which the mean of `curve` over the trailing `window` steps, (step - window, step], reaches
    `level` (inf if it never does; full windows only): when a network leaves its plateau, read the same way off our
    per-step curve and the paper's every-100-steps one."""
    steps, values = np.asarray(curve.steps, float), np.asarray(curve.values, float)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    sums = np.concatenate([[0.0], np.cumsum(values)])
    first = np.searchsorted(steps, steps - window, side="right")
    means = (sums[1:] - sums[first]) / (np.arange(1, len(steps) + 1) - first)
    hit = np.flatnonzero((means >= level) & (steps >= steps[0] + window - 1)) if len(steps) else []
    return float(steps[hit[0]]) if len(hit) else float("inf")


def training_from(curve: Curve, total: int) -> float:
    """Where a network trains: its training accuracy (%) reaches TRAINING, averaged over the trailing SMOOTHING of
    its `total` steps."""
    return first_reaching(curve, TRAINING, SMOOTHING * total)


def training_start(history: Mapping[str, Any]) -> float:
    """Where a run of ours trains: `training_from` on its per-step training-batch accuracy."""
    return training_from(batch_accuracy_curve(history), total(history))


def in_phase(curve: Curve, total: int, phase: str, start: float = 0.0) -> np.ndarray:
    """The finite values of `curve` whose step lies in the phase (fractions of `total` steps) and at or after
    `start` (a step, e.g. `first_reaching`'s; inf leaves nothing)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {list(PHASES)}, got {phase!r}")
    if not total > 0:
        raise ValueError(f"total must be the run's positive number of steps, got {total!r}")
    lo, hi = PHASES[phase]
    steps, values = np.asarray(curve.steps, float), np.asarray(curve.values, float)
    keep = (steps <= hi * total) & ((steps > lo * total) if lo > 0 else True) & np.isfinite(values) & (steps >= start)
    return values[keep]


def over(curve: Curve, total: int, phase: str, stat: Callable[[np.ndarray], Any] = np.median,
         start: float = 0.0) -> float:
    """`stat` (median by default) of the curve over the phase, from step `start` on; NaN with fewer than
    MIN_POINTS values."""
    values = in_phase(curve, total, phase, start)
    return float(stat(values)) if len(values) >= MIN_POINTS else float("nan")


def last(curve: Curve) -> float:
    """The curve's last finite value (a final test accuracy)."""
    values = np.asarray(curve.values, float)
    values = values[np.isfinite(values)]
    return float(values[-1]) if len(values) else float("nan")


def ratio(a: float, b: float) -> float:
    """a / b, NaN unless both are finite and b > 0."""
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def at_fractions(curve: Curve, total: int, fractions: np.ndarray) -> np.ndarray:
    """The curve linearly interpolated at fractions of training (NaN outside its recorded steps)."""
    steps, values = np.asarray(curve.steps, float), np.asarray(curve.values, float)
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return np.full(len(fractions), np.nan)
    x = np.asarray(fractions, float) * total
    out = np.interp(x, steps[ok], values[ok])
    out[(x < steps[ok][0]) | (x > steps[ok][-1])] = np.nan
    return out


def distance(ours: Curve, ours_total: int, paper: Curve, paper_total: int, log: bool = False,
             points: int = 20) -> float:
    """Mean ``|ours - paper|`` at `points` matched fractions of training (in decades when `log`)."""
    fractions = np.linspace(0, 1, points + 1)[1:]
    a, b = at_fractions(ours, ours_total, fractions), at_fractions(paper, paper_total, fractions)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = np.log10(a), np.log10(b)
    d = np.abs(a - b)
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) >= MIN_POINTS else float("nan")


# ---- our runs as curves (read through bnlib.record.Run: one divergence rule; steps count from 0) ----

def total(history: Mapping[str, Any]) -> int:
    """The run's configured number of steps (a diverged run still spans them: chance from divergence on)."""
    return Run.of(history).steps


def batch_accuracy_curve(history: Mapping[str, Any]) -> Curve:
    """Per-step training-batch accuracy in % (the paper's Figs 1a, 2a, 5a plot one batch of 128),
    chance after a divergence."""
    acc = 100 * Run.of(history).step_acc()
    return Curve(np.arange(len(acc), dtype=float), acc)


def eval_accuracy_curve(history: Mapping[str, Any], split: str = "test") -> Curve:
    """Evaluation-mode accuracy in % at the evaluation cadence, chance from a divergence on."""
    steps, acc = Run.of(history).eval_acc(split)
    return Curve(steps, 100 * acc)


def loss_curve(history: Mapping[str, Any]) -> Curve:
    """Per-step training loss (NaN after a divergence)."""
    loss = Run.of(history).step_loss()
    return Curve(np.arange(len(loss), dtype=float), loss)


# A loss range below this many fp32 rounding steps of the loss itself is rounding, not landscape: the Standard deep
# linear network at LR 1e-6 stalls near a loss of 2e4 by mid training, and its ranges there read 2-5 units in the
# last place (2**-9 at that loss), which made its Standard / BN ratios swing by orders of magnitude between seeds.
RESOLVED_ULPS = 64
FP32_EPS = 2.0 ** -23


def landscape_curves(history: Mapping[str, Any], resolved: bool = False) -> dict[str, Curve]:
    """The paper's three landscape measures over training: loss range, gradient-change range, beta. `resolved`:
    a loss range under RESOLVED_ULPS rounding steps of the loss it is measured at reads 0 (unresolved: below what
    fp32 losses can show), so a phase that is mostly unresolved has a median of 0, which the claims refuse."""
    from bnlib.probes.landscape import landscape_series

    s = landscape_series(history)
    steps = np.asarray(s["steps"], float)
    loss_range = np.asarray(s["loss_max"] - s["loss_min"], float)
    if resolved:
        floor = RESOLVED_ULPS * FP32_EPS * np.abs(np.asarray(s["loss_max"], float))
        loss_range = np.where(loss_range < floor, 0.0, loss_range)
    return {"loss_range": Curve(steps, loss_range),
            "gdiff_range": Curve(steps, s["gdiff_max"] - s["gdiff_min"]),
            "gdiff_max": Curve(steps, s["gdiff_max"]), "beta_eff": Curve(steps, s["beta_eff"])}


def ics_curve(history: Mapping[str, Any], layer: int, key: str) -> Curve:
    """``||G - G'||`` ('l2') or cos(G, G') ('cos') of one layer over the probed steps."""
    from bnlib.probes.ics import ics_series

    s = ics_series(history, layer)
    return Curve(np.asarray(s["steps"], float), s[key])


# ---- the numbers in a table: one cell, and several seeds' values in one cell ----

def cell(value: Any, fmt: str = "{:.3g}") -> str:
    """One table cell: a float through `fmt` ('—' for None, 'nan' for NaN), anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if value != value else fmt.format(value)
    return str(value).replace("|", "\\|")


def across_seeds(values: Sequence[float], fmt: str = "{:.3g}") -> str:
    """One cell for several seeds' values: 'mean [lowest, highest]' (one seed: its value); NaN seeds (a run
    that cannot give the number) are left out of the mean and counted."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    if not finite:
        return "nan"
    mean = cell(sum(finite) / len(finite), fmt)
    text = mean if len(values) == 1 else f"{mean} [{cell(min(finite), fmt)}, {cell(max(finite), fmt)}]"
    missing = len(values) - len(finite)
    return text + (f" ({missing} of {len(values)} seeds nan)" if missing else "")
