"""Section 3.2's claims (Figures 4 and 10): BatchNorm makes the loss landscape smoother.

Each measure as the paper defines it: (a) the loss range over the step sizes (band width), (b) the
range of the gradient change ||g - grad L(w - eta g)|| (band width), (c) the effective beta. A claim
is the Standard / BN ratio of their medians over a phase of training, the same phase (as a fraction)
of our run and of the paper's: "mid" is the paper's steps 1k-8k of 15k, where its Figure 4 gap lives,
"late" steps 8k-15k. For the VGG a phase starts no earlier than the step at which the Standard run's training
accuracy reaches 50% (`training_start`: the paper's at step 1k; ours per seed), so that both networks train in it.
Functions take runs keyed by seed: {seed: {"Standard": history, "+BN": history}}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bnlib import paper
from bnlib import stats as st
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.paper import Curve

PAPER_FILES = {"vgg": {"a": "fig4a_loss_landscape", "b": "fig4b_gradient_predictiveness", "c": "fig4c_beta_smoothness"},
               "dln": {"a": "fig10a_dln_loss_landscape", "b": "fig10b_dln_gradient_predictiveness",
                       "c": "fig10c_dln_beta_smoothness"}}
SMOOTHER = Rule(null=1, margin=1.25, scale="log", factor=3.0)  # Standard / BN; within x1.25 is no difference
ORDERS = Rule(null=1, margin=3.0, scale="log", factor=3.0)  # "up to two orders of magnitude"


def median_ratio(std: Curve, bn: Curve, total: int, phase: str, start: float = 0.0) -> float:
    """Standard / BN of the medians over the phase (from step `start` on); NaN where either median is 0 (the
    phase mostly below fp32's resolution: `stats.landscape_curves(resolved=True)`)."""
    a, b = st.over(std, total, phase, start=start), st.over(bn, total, phase, start=start)
    return st.ratio(a, b) if a > 0 else float("nan")


def training_start(history: Mapping[str, Any] | None) -> float:
    """Where both VGGs train: the step the Standard run's training-batch accuracy reaches st.TRAINING (the paper's
    own Standard, Figure 1a at LR 0.1, when `history` is None)."""
    if history is None:
        return st.training_from(paper.curve("fig1a_train_acc", "standard_lr0.1"), paper.TOTAL_STEPS["vgg"])
    return st.training_start(history)


def max_ratio(std: Curve, bn: Curve, total: int, phase: str) -> float:
    """The largest per-step Standard / BN ratio in the phase (at the steps both curves have)."""
    steps, i, j = np.intersect1d(std.steps, bn.steps, return_indices=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = std.values[i] / bn.values[j]
    r = np.where(np.isfinite(r) & (r > 0), r, np.nan)
    return st.over(Curve(steps, r), total, phase, np.max)


def paper_curve(model: str, panel: str, series: str) -> Curve:
    """The paper's measure: a band's width for (a), (b); the plotted line for (c)."""
    name = PAPER_FILES[model][panel]
    return paper.curve(name, series) if panel == "c" else paper.width(name, series)


def _claims(runs: Mapping[int, Mapping[str, Any]], model: str, phases: Sequence[str]) -> list[ClaimResult]:
    fig, total = ("Fig. 4", paper.TOTAL_STEPS["vgg"]) if model == "vgg" else ("Fig. 10", paper.TOTAL_STEPS["dln"])
    what = "VGG" if model == "vgg" else "DLN"
    curves = {seed: {name: st.landscape_curves(h, resolved=True) for name, h in r.items()} for seed, r in runs.items()}
    out = []
    vgg = model == "vgg"  # the DLN has no plateau to leave (and no accuracy): its phases are bare fractions
    starts = {seed: training_start(r["Standard"]) if vgg else 0.0 for seed, r in runs.items()}
    paper_start = training_start(None) if vgg else 0.0
    for phase in phases:
        for panel, (key, text) in st.LANDSCAPE_MEASURES.items():
            if phase == "late" and panel == "c":
                continue
            ours = {seed: median_ratio(c["Standard"][key], c["+BN"][key], st.total(runs[seed]["+BN"]), phase,
                                       starts[seed]) for seed, c in curves.items()}
            p = median_ratio(paper_curve(model, panel, "standard"), paper_curve(model, panel, "bn"), total, phase,
                             paper_start)
            out.append(claim(f"{fig.lower().replace('. ', '')}{panel}-{model}-{key.replace('_', '-')}-{phase}",
                             f"{fig}{panel}", f"{what}: BN's {text} is smaller than Standard's ({phase} training)",
                             f"Standard / BN, median {text}, {st.describe(phase, model, vgg)}", ours, p, SMOOTHER))
    return out


def vgg_claims(runs: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """Figure 4 (mid training) and "up to two orders of magnitude early" (first third)."""
    out = _claims(runs, "vgg", ("mid",))
    ours = {seed: max_ratio(st.landscape_curves(r["Standard"])["gdiff_max"], st.landscape_curves(r["+BN"])["gdiff_max"],
                            st.total(r["+BN"]), "first third") for seed, r in runs.items()}
    p = max_ratio(paper.curve("fig4b_gradient_predictiveness", "standard", "upper"),
                  paper.curve("fig4b_gradient_predictiveness", "bn", "upper"), paper.TOTAL_STEPS["vgg"], "first third")
    out.append(claim("fig4b-vgg-gradient-orders", "Fig. 4b",
                     "VGG: gradient predictiveness differs by up to two orders of magnitude early in training",
                     f"largest per-step Standard / BN max gradient change, {st.describe('first third')} "
                     "(a max over more probed steps is larger: the paper probed every 100)", ours, p, ORDERS,
                     text_value=100.0))
    return out


def dln_claims(runs: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """Figure 10, mid training, and late in training, where the paper's own bands cross."""
    return _claims(runs, "dln", ("mid", "late"))
