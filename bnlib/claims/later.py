"""Chapter 7's claims: findings of later work, graded on our runs against that work's text (it plotted nothing we
digitized, so each claim is about a direction, `Rule.factor` None). Rules, statistics and the points they read were
fixed in this module before the runs were looked at.

- Yao et al. 2020 (PyHessian): BatchNorm's smoothing is weak in shallow networks and shows in deeper ones. Per
  depth, Standard / +BN of the median top Hessian eigenvalue over the middle half of training (from where the
  Standard VGG trains); the claim's number is that ratio at the deepest network over the shallowest.
- Yang et al. 2019: at initialisation, BatchNorm makes the gradient explode with depth. At the deepest MLP, the
  growth of the gradient norm from the last hidden layer back to the second (`later.explosion`), +BN / Standard.
- Bjorck et al. 2018: BatchNorm allows larger learning rates, and without it large steps diverge as depth grows.
  The largest rate of the grid at which the deepest network trains (`later.trains`), +BN / Standard, per seed.
- Ghorbani et al. 2019: large isolated Hessian eigenvalues without BatchNorm, almost none with it, and back when
  BatchNorm uses its running statistics. The outlier ratio: the top eigenvalue over the root-mean-square
  eigenvalue (`rms_eig`, from Lanczos's first product), the median over the points after step 0 where both the
  batch- and the running-statistics Hessian were measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bnlib import stats as st
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.experiments import later
from bnlib.paper import Curve
from bnlib.probes.hessian import hessian_series

GROWS = Rule(null=1, margin=1.25, scale="log", factor=None)  # a ratio of ratios: within x1.25 is no change
EXPLODES = Rule(null=1, margin=2.0, scale="log", factor=None)
LARGER_RATE = Rule(null=1, margin=1.5, scale="log", factor=None)  # the grid's steps are x3.16 (x3 for the DLN's)
OUTLIERS = Rule(null=1, margin=1.5, scale="log", factor=None)
PHASE = "middle half"


def top_eig_median(history: Mapping[str, Any], start: float) -> float:
    """The median top Hessian eigenvalue over the middle half of training, from step `start` on (NaN with fewer
    than three points)."""
    h = hessian_series(dict(history))
    return st.over(Curve(h["steps"].astype(float), h["top_eig"]), st.total(history), PHASE, start=start)


def smoothing_by_depth(runs: Mapping[tuple[str, int, str], Any], model: str) -> dict[int, float]:
    """{depth: Standard / +BN median top eigenvalue} for one seed's section-1 runs of `model`."""
    depths = later.VGG_DEPTHS if model == "vgg" else later.DLN_DEPTHS
    out = {}
    for d in depths:
        std, bn = runs[model, d, "Standard"], runs[model, d, "+BN"]
        start = st.training_start(std) if model == "vgg" else 0.0
        out[d] = st.ratio(top_eig_median(std, start), top_eig_median(bn, start))
    return out


def depth_claims(runs: Mapping[int, Mapping[tuple[str, int, str], Any]]) -> list[ClaimResult]:
    """Section 1, one claim per family: does BatchNorm's smoothing (Standard / +BN top eigenvalue) grow with depth?"""
    out = []
    for model, name in (("vgg", "VGG"), ("dln", "DLN")):
        by_seed = {seed: smoothing_by_depth(r, model) for seed, r in runs.items()}
        lo, hi = min(by_seed[next(iter(by_seed))]), max(by_seed[next(iter(by_seed))])
        ours = {seed: st.ratio(d[hi], d[lo]) for seed, d in by_seed.items()}
        out.append(claim(f"later-depth-{model}-hessian", "Yao et al. 2020",
                         f"{name}: BatchNorm's smoothing grows with depth (weak in shallow networks)",
                         f"(Standard / +BN median top Hessian eigenvalue) at depth {hi} over at depth {lo}, middle "
                         f"half of training", ours, None, GROWS,
                         details={"per depth": {seed: d for seed, d in by_seed.items()}}))
    return out


def init_claims(table: Mapping[tuple[str, int, int], np.ndarray]) -> list[ClaimResult]:
    """Section 2: at the deepest MLP, +BN's gradient growth towards the input over Standard's."""
    deepest = max(d for _, d, _ in table)
    seeds = sorted({s for _, _, s in table})
    ours = {s: st.ratio(later.explosion(table["+BN", deepest, s]), later.explosion(table["Standard", deepest, s]))
            for s in seeds}
    return [claim("later-init-gradient-explodes", "Yang et al. 2019",
                  "At initialisation, BatchNorm makes the gradient explode with depth (fully connected ReLU network)",
                  f"+BN / Standard of ||dL/dW_2|| / ||dL/dW_{deepest - 1}||, MLP of depth {deepest} at its "
                  f"initialisation", ours, None, EXPLODES)]


def largest_rates(runs: Mapping[tuple[str, int, str, float], Any]) -> dict[tuple[str, int, str], float]:
    """{(model, depth, label): the largest rate at which that network trained} for one seed's grid."""
    grids: dict[tuple[str, int, str], dict[float, Any]] = {}
    for (model, depth, label, lr), run in runs.items():
        grids.setdefault((model, depth, label), {})[lr] = run
    return {key: later.largest_trained(grid) for key, grid in grids.items()}


def lr_claims(runs: Mapping[int, Mapping[tuple[str, int, str, float], Any]]) -> list[ClaimResult]:
    """Section 3, one claim per family: at its deepest, does +BN train at larger rates than Standard?"""
    rates = {seed: largest_rates(r) for seed, r in runs.items()}
    out = []
    for model, name, depths in (("mlp", "MLP", later.LR_DEPTHS), ("dln", "DLN", later.DLN_DEPTHS)):
        d = max(depths)
        ours = {seed: st.ratio(r[model, d, "+BN"], r[model, d, "Standard"]) for seed, r in rates.items()}
        out.append(claim(f"later-lr-{model}", "Bjorck et al. 2018",
                         f"{name}: BatchNorm allows larger learning rates; without it, large steps diverge in deep "
                         f"networks", f"+BN / Standard largest learning rate that trains (grid), depth {d}", ours,
                         None, LARGER_RATE, details={"largest rates": rates}))
    return out


def outlier_ratios(history: Mapping[str, Any], probe: str = "hessian",
                   steps: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, top / rms eigenvalue) of the probe's records at `steps` (all after step 0 when None)."""
    h = hessian_series(dict(history), probe)
    rms = np.array([r.get("rms_eig", np.nan) for r in dict(history)["probes"][probe]], dtype=float)
    keep = (h["steps"] > 0) if steps is None else np.isin(h["steps"], list(steps))
    return h["steps"][keep], h["top_eig"][keep] / rms[keep]


def outlier_ratio(history: Mapping[str, Any], probe: str = "hessian", steps: Any = None) -> float:
    """The median of `outlier_ratios` over its steps (NaN with none)."""
    ratios = outlier_ratios(history, probe, steps)[1]
    return float(np.median(ratios)) if ratios.size else float("nan")


def outlier_values(runs: Mapping[str, Any]) -> dict[str, float]:
    """One seed's outlier ratios of the Standard VGG and of the +BN VGG with batch and with running statistics, each
    at the steps after 0 that the running-statistics probe measured."""
    steps = [rec["step"] for rec in runs["+BN"]["probes"]["hessian_running"] if rec["step"] > 0]
    return {"Standard": outlier_ratio(runs["Standard"], steps=steps),
            "+BN (batch statistics)": outlier_ratio(runs["+BN"], steps=steps),
            "+BN (running statistics)": outlier_ratio(runs["+BN"], "hessian_running", steps)}


def outlier_claims(runs: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """Ghorbani et al.: outliers without BN (Standard over +BN with batch statistics) and with running statistics
    (running over batch, the same +BN weights)."""
    values = {seed: outlier_values(r) for seed, r in runs.items()}
    batch = "+BN (batch statistics)"
    return [claim("later-outliers-standard", "Ghorbani et al. 2019",
                  "VGG: without BatchNorm the Hessian has large outlier eigenvalues; with it, almost none",
                  "Standard / +BN of the outlier ratio (top / root-mean-square eigenvalue)",
                  {s: st.ratio(v["Standard"], v[batch]) for s, v in values.items()}, None, OUTLIERS,
                  details={"outlier ratios": values}),
            claim("later-outliers-running", "Ghorbani et al. 2019",
                  "VGG: the outliers come back when BatchNorm normalises with its running statistics",
                  "+BN running / batch statistics of the outlier ratio, same weights and batch",
                  {s: st.ratio(v["+BN (running statistics)"], v[batch]) for s, v in values.items()}, None, OUTLIERS,
                  details={"outlier ratios": values})]
