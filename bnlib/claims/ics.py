"""Figure 3's claims: BatchNorm does not reduce ICS (Definition 2.1), measured and read off the paper.

Each VGG curve is summarised by its median over the probed steps from the step at which the Standard run's
training accuracy reaches 50% (both networks train from there; `stats.training_from`, the paper's from its own
Figure 3 accuracy panel) to the end; each DLN curve over the whole run. The paper's l2
difference is calibrated for the left-hand panels only (VGG layer #5, DLN layer #9; the right-hand
panels have no tick labels), so the VGG claim uses layer #5 on both sides; the cosines of both
layers are calibrated. Functions take runs keyed by seed: {seed: {(norm, lr): history}}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bnlib import paper
from bnlib import stats as st
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.paper import Curve

VGG_LAYER = 5  # the calibrated l2 panel of the paper's Figure 3 (top)
DLN_LAYERS = (9, 17)
# "similar or higher": BN / Standard within a factor 2 either way is "similar" (direction 0), above is higher
SIMILAR = Rule(null=1, margin=2.0, scale="log", factor=3.0, text=(0, 1))
# "far less correlated": Standard's median cos minus BN's; under 0.1 apart is no difference
DECORRELATES = Rule(null=0, margin=0.1, factor=2.0)


def l2_ratio(bn: Curve, std: Curve, total: int, start: float = 0.0) -> float:
    """BN / Standard, median ||G - G'|| over the run from step `start` on."""
    return st.ratio(st.over(bn, total, "all", start=start), st.over(std, total, "all", start=start))


def cos_gap(std: Sequence[Curve], bn: Sequence[Curve], total: int) -> float:
    """Mean over layers of (Standard's median cos(G, G') - BN's), over the whole run."""
    return float(np.mean([st.over(s, total, "all") - st.over(b, total, "all") for s, b in zip(std, bn, strict=True)]))


def vgg_claims(runs: Mapping[int, Mapping[tuple[str, float], Any]], lrs: Sequence[float] = (0.1, 0.01)
               ) -> list[ClaimResult]:
    """One claim per learning rate: BN's ICS similar to or above Standard's (VGG, layer #5)."""
    out = []
    for lr in lrs:
        ours = {seed: l2_ratio(st.ics_curve(r[("batch", lr)], VGG_LAYER, "l2"),
                               st.ics_curve(r[("none", lr)], VGG_LAYER, "l2"), st.total(r[("batch", lr)]),
                               st.training_start(r[("none", lr)]))
                for seed, r in runs.items() if ("batch", lr) in r}
        if not ours:
            continue
        p = None
        if lr in (0.1, 0.01):  # from where the paper's own Standard (Figure 3's accuracy panel) reaches 50%
            start = st.training_from(paper.curve("fig3a_vgg_train_acc", "standard", lr=lr), paper.TOTAL_STEPS["vgg"])
            p = l2_ratio(*(paper.curve("fig3a_vgg_ics_l2", s, lr=lr, layer=VGG_LAYER) for s in ("bn", "standard")),
                         paper.TOTAL_STEPS["vgg"], start)
        out.append(claim(f"fig3-vgg-ics-lr{lr:g}", "Fig. 3 (top)",
                         f"VGG, LR {lr:g}: with BatchNorm ICS (||G - G'||) is similar or higher",
                         f"BN / Standard, median ||G - G'|| of layer #{VGG_LAYER} from the step Standard's training "
                         f"accuracy reaches {st.TRAINING:g}% to the end (within x2 either way = similar)",
                         ours, p, SIMILAR))
    return out


def dln_claims(runs: Mapping[int, Mapping[tuple[str, float], Any]], lrs: Sequence[float] = (1e-6, 1e-7)
               ) -> list[ClaimResult]:
    """One claim per learning rate: with BatchNorm, G and G' are far less correlated (DLN, layers #9, #17)."""
    out = []
    for lr in lrs:
        ours = {seed: cos_gap([st.ics_curve(r[("none", lr)], k, "cos") for k in DLN_LAYERS],
                              [st.ics_curve(r[("batch", lr)], k, "cos") for k in DLN_LAYERS], st.total(r[("none", lr)]))
                for seed, r in runs.items() if ("none", lr) in r}
        if not ours:
            continue
        p = None
        if lr in (1e-6, 1e-7):
            curves = {s: [paper.curve("fig3b_dln_ics_cos", s, lr=lr, layer=k) for k in DLN_LAYERS]
                      for s in ("standard", "bn")}
            p = cos_gap(curves["standard"], curves["bn"], paper.TOTAL_STEPS["dln"])
        out.append(claim(f"fig3-dln-cos-lr{lr:g}", "Fig. 3 (bottom)",
                         f"DLN, LR {lr:g}: with BatchNorm G and G' are far less correlated",
                         "Standard - BN, median cos(G, G') over training, mean of layers #9 and #17",
                         ours, p, DECORRELATES))
    return out
