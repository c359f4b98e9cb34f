"""Section 3.3's claims about l_p normalisation (Figures 5, 6, 12, 13), on our runs and the paper's data.

"Comparable" claims are about a side of a tolerance (factor None in their Rule): the worst l_p
variant at most 3 accuracy points below BN (VGG), a final loss at most 25% above BN's (DLN), median
landscape measures within a factor 3 of BN's. Functions take runs keyed by seed: {seed: {norm: history}}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bnlib import paper
from bnlib import stats as st
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.paper import Curve

LP = ("l1", "l2", "linf")
SERIES = {"none": "standard", "batch": "bn", "l1": "l1", "l2": "l2", "linf": "linf"}
ACC_TOLERANCE = 3.0  # points below BN that still count as "comparable"
LOSS_TOLERANCE = 1.25  # x BN's final loss that still counts as "comparable"
SIMILAR_FACTOR = 3.0  # "similar smoothing": within this factor of BN's median measure

TRAINS_VGG = Rule(null=-ACC_TOLERANCE, margin=0, factor=None, text=(1,))
TRAINS_DLN = Rule(null=1 / LOSS_TOLERANCE, margin=1, scale="log", factor=None)
L1_BEATS = Rule(null=1, margin=1.05, scale="log", factor=3.0)
SHIFTS = Rule(null=1, margin=1.1, scale="log", factor=None)
SMOOTHS = Rule(null=SIMILAR_FACTOR, margin=1, scale="log", factor=None, sense=-1)


def worst_acc_gap(acc: Mapping[str, Curve], total: int) -> float:
    """Worst l_p variant minus BN, mean training-batch accuracy over the last phase (points)."""
    bn = st.over(acc["batch"], total, "late", np.mean)
    return min(st.over(acc[n], total, "late", np.mean) - bn for n in LP)


def final_losses(loss: Mapping[str, Curve], total: int) -> dict[str, float]:
    """Median training loss over the last tenth of training, per network."""
    return {n: st.over(c, total, "last tenth") for n, c in loss.items()}


def worst_factor(measures: Mapping[str, Mapping[str, Curve]], total: int) -> float:
    """Largest factor (either way) between an l_p variant's and BN's median measure, mid training."""
    factors = []
    for key in ("gdiff_range", "beta_eff"):
        bn = st.over(measures["batch"][key], total, "mid")
        for n in LP:
            r = st.ratio(st.over(measures[n][key], total, "mid"), bn)
            factors.append(max(r, 1 / r) if np.isfinite(r) and r > 0 else float("nan"))
    return float(max(factors))


def _paper_measures(files: tuple[str, str]) -> dict[str, dict[str, Curve]]:
    return {n: {"gdiff_range": paper.width(files[0], s), "beta_eff": paper.curve(files[1], s)}
            for n, s in SERIES.items() if n != "none"}


def vgg_claims(runs: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """VGG: every l_p variant trains comparably to BN; smooths like BN; its activations shift more (Fig. 6)."""
    from bnlib.experiments import lp

    trains, smooth, shift = {}, {}, {}
    for seed, r in runs.items():
        n = st.total(r["batch"])
        trains[seed] = worst_acc_gap({k: st.batch_accuracy_curve(h) for k, h in r.items()}, n)
        smooth[seed] = worst_factor({k: st.landscape_curves(h) for k, h in r.items() if k != "none"}, n)
        s = {k: lp.distribution_shift(h) for k, h in r.items()}
        total_shift = {k: v["mean_shift"] + v["var_shift"] for k, v in s.items()}
        shift[seed] = min(st.ratio(total_shift[k], total_shift["none"]) for k in LP)
    acc = {n: paper.curve("fig12a_vgg_lp_train_acc", s) for n, s in SERIES.items()}
    return [
        claim("lp-vgg-trains", "Fig. 5a / 12a", "Every l_p variant trains the VGG comparably to BN or better",
              f"worst l_p variant - BN, mean training-batch accuracy (points), {st.describe('late')}; "
              f"comparable: above -{ACC_TOLERANCE:g}", trains,
              worst_acc_gap(acc, paper.TOTAL_STEPS["vgg"]), TRAINS_VGG),
        claim("lp-shift", "Fig. 6", "l_p activations shift more than the standard network's",
              "smallest l_p / Standard ratio of the scale-free distribution shift (mean + variance, all layers)",
              shift, None, SHIFTS),
        claim("lp-smooth-vgg", "Fig. 12c-d", "l_p normalisation smooths the VGG landscape like BN",
              f"largest factor between an l_p variant's and BN's median gradient-change range or effective beta, "
              f"{st.describe('mid')}; similar: within x{SIMILAR_FACTOR:g}", smooth,
              worst_factor(_paper_measures(("fig12c_vgg_lp_gradient_predictiveness", "fig12d_vgg_lp_beta_smoothness")),
                           paper.TOTAL_STEPS["vgg"]), SMOOTHS)]


def dln_claims(runs: Mapping[int, Mapping[str, Any]]) -> list[ClaimResult]:
    """DLN: every l_p variant trains comparably to BN; l1 beats BN; l_p smooths like BN."""
    trains, l1, smooth = {}, {}, {}
    for seed, r in runs.items():
        n = st.total(r["batch"])
        loss = final_losses({k: st.loss_curve(h) for k, h in r.items()}, n)
        trains[seed] = min(st.ratio(loss["batch"], loss[k]) for k in LP)
        l1[seed] = st.ratio(loss["batch"], loss["l1"])
        smooth[seed] = worst_factor({k: st.landscape_curves(h) for k, h in r.items() if k != "none"}, n)
    p_loss = final_losses({n: paper.curve("fig13a_dln_lp_train_loss", s) for n, s in SERIES.items()},
                          paper.TOTAL_STEPS["dln"])
    return [
        claim("lp-dln-trains", "Fig. 5b / 13a", "Every l_p variant trains the DLN comparably to BN or better",
              f"BN / worst l_p variant, median training loss over the last tenth; comparable: above "
              f"1/{LOSS_TOLERANCE:g}", trains, min(st.ratio(p_loss["batch"], p_loss[k]) for k in LP), TRAINS_DLN),
        claim("lp-dln-l1", "Fig. 13a", "On the DLN, l1 normalisation beats BN",
              "BN / l1, median training loss over the last tenth", l1, st.ratio(p_loss["batch"], p_loss["l1"]),
              L1_BEATS),
        claim("lp-smooth-dln", "Fig. 13c-d", "l_p normalisation smooths the DLN landscape like BN",
              f"largest factor between an l_p variant's and BN's median gradient-change range or effective beta, "
              f"{st.describe('mid', 'dln')}; similar: within x{SIMILAR_FACTOR:g}", smooth,
              worst_factor(_paper_measures(("fig13c_dln_lp_gradient_predictiveness", "fig13d_dln_lp_beta_smoothness")),
                           paper.TOTAL_STEPS["dln"]), SMOOTHS)]
