"""Section 3.3's claims about l_p normalisation, computed from the canonical runs.

Thresholds are named constants so the verdicts are reproducible and easy to argue with. At
profile `smoke` (a few dozen steps) the runs are too short to judge anything, so every verdict
is "inconclusive" there; the verdict the numbers would give is kept in `details["would_be"]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bnlib.claims import ClaimResult
from bnlib.experiments import lp
from bnlib.profiles import Profile, resolve

CHAPTER = "05_lp_normalization"
ACC_TOLERANCE = 0.03  # "comparable" VGG training accuracy: at most 3 points below BN's
LOSS_TOLERANCE = 1.25  # "comparable" DLN final loss: at most 25% above BN's
L1_MARGIN = 0.95  # l1 "beats" BN on the DLN with margin if its final loss is below 95% of BN's
SIMILAR_FACTOR = 3.0  # "similar smoothing": median landscape measures within a factor 3 of BN's


def _grade(flags: list[bool]) -> str:
    """All hold: reproduced; some: partly; none: not reproduced."""
    if all(flags):
        return "reproduced"
    return "partly" if any(flags) else "not reproduced"


def trains_comparably(final: Mapping[str, float], higher_is_better: bool) -> tuple[str, dict[str, bool]]:
    """Each l_p variant's final metric against BN's, within ACC_TOLERANCE / LOSS_TOLERANCE."""
    ref = final["batch"]
    ok = {}
    for n in lp.LP_NORMS:
        v = final[n]
        ok[n] = bool(math.isfinite(v) and (v >= ref - ACC_TOLERANCE if higher_is_better else v <= ref * LOSS_TOLERANCE))
    return _grade(list(ok.values())), ok


def l1_beats_bn(loss_l1: float, loss_bn: float) -> str:
    if not (math.isfinite(loss_l1) and loss_l1 < loss_bn):
        return "not reproduced"
    return "reproduced" if loss_l1 < L1_MARGIN * loss_bn else "partly"


def shifts_more(shift: Mapping[str, Mapping[str, float]]) -> tuple[str, dict[str, bool]]:
    """Each variant shifts more than Standard in both the mean and the variance measure."""
    ok = {n: bool(shift[n]["mean_shift"] > shift["none"]["mean_shift"] and
                  shift[n]["var_shift"] > shift["none"]["var_shift"]) for n in lp.LP_NORMS}
    return _grade(list(ok.values())), ok


def smooths_like_bn(med: Mapping[str, Mapping[str, float]]) -> tuple[str, dict[str, bool]]:
    """Each variant's median gradient predictiveness and beta_eff within SIMILAR_FACTOR of BN's."""
    def close(a: float, b: float) -> bool:
        return bool(math.isfinite(a) and math.isfinite(b) and b > 0 and 1 / SIMILAR_FACTOR <= a / b <= SIMILAR_FACTOR)

    ok = {n: all(close(med[n][k], med["batch"][k]) for k in ("gdiff_max", "beta_eff")) for n in lp.LP_NORMS}
    return _grade(list(ok.values())), ok


def _fmt(values: Mapping[str, float], spec: str) -> str:
    short = {"none": "Std", "batch": "BN", "l1": "l1", "l2": "l2", "linf": "linf"}
    return ", ".join(f"{short[n]} {format(v, spec)}" for n, v in values.items())


def measurements(vgg: Mapping[str, dict[str, Any]], dln: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Every number the claims use, from the runs."""
    return {
        "vgg_acc": {n: lp.final_train_acc(h) for n, h in vgg.items()},
        "dln_loss": {n: lp.final_train_loss(h) for n, h in dln.items()},
        "vgg_shift": {n: lp.distribution_shift(h) for n, h in vgg.items()},
        "vgg_land": {n: lp.landscape_medians(h) for n, h in vgg.items()},
        "dln_land": {n: lp.landscape_medians(h) for n, h in dln.items()},
    }


def claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0, vgg_lr: float = lp.VGG_LR,
           dln_lr: float = lp.DLN_LR) -> list[ClaimResult]:
    """The chapter's claims at the paper's learning rates (VGG 0.1, DLN 1e-6) unless told otherwise."""
    p = resolve(profile)
    m = measurements(lp.vgg_runs(p, dataset, seed, vgg_lr), lp.dln_runs(p, seed, dln_lr))
    v_acc, ok_acc = trains_comparably(m["vgg_acc"], True)
    v_loss, ok_loss = trains_comparably(m["dln_loss"], False)
    v_l1 = l1_beats_bn(m["dln_loss"]["l1"], m["dln_loss"]["batch"])
    v_shift, ok_shift = shifts_more(m["vgg_shift"])
    v_vs, ok_vs = smooths_like_bn(m["vgg_land"])
    v_ds, ok_ds = smooths_like_bn(m["dln_land"])

    def result(id_: str, claim: str, fig: str, measured: str, paper: str, verdict: str, details: dict[str, Any]
               ) -> ClaimResult:
        if p.name == "smoke":
            details, verdict = {**details, "would_be": verdict}, "inconclusive"
        return ClaimResult(id_, claim, fig, measured, paper, verdict, CHAPTER, details)

    shift = {n: s["mean_shift"] + s["var_shift"] for n, s in m["vgg_shift"].items()}
    return [
        result("lp-vgg-trains", "every l_p variant trains VGG comparably to BN or better", "Fig. 5, 12",
               f"final train acc: {_fmt({n: 100 * a for n, a in m['vgg_acc'].items()}, '.1f')} %",
               "all comparable to or better than BN", v_acc, {"ok": ok_acc, **m["vgg_acc"]}),
        result("lp-dln-trains", "every l_p variant trains the DLN comparably to BN or better", "Fig. 13",
               f"final loss: {_fmt(m['dln_loss'], '.3g')}", "all comparable to or better than BN", v_loss,
               {"ok": ok_loss, **m["dln_loss"]}),
        result("lp-dln-l1", "on the DLN, l1 normalisation beats BN", "Fig. 13",
               f"final loss l1 / BN = {m['dln_loss']['l1'] / m['dln_loss']['batch']:.2f}", "l1 below BN", v_l1,
               {"l1": m["dln_loss"]["l1"], "batch": m["dln_loss"]["batch"]}),
        result("lp-shift", "l_p activations shift more than the standard network's", "Fig. 6",
               f"mean+var shift (all layers): {_fmt(shift, '.2f')}", "larger shift than Standard", v_shift,
               {"ok": ok_shift, **m["vgg_shift"]}),
        result("lp-smooth-vgg", "l_p normalisation smooths the VGG landscape like BN", "Fig. 12",
               f"median beta_eff: {_fmt({n: d['beta_eff'] for n, d in m['vgg_land'].items()}, '.3g')}",
               "similar smoothing to BN", v_vs, {"ok": ok_vs, **m["vgg_land"]}),
        result("lp-smooth-dln", "l_p normalisation smooths the DLN landscape like BN", "Fig. 13",
               f"median beta_eff: {_fmt({n: d['beta_eff'] for n, d in m['dln_land'].items()}, '.3g')}",
               "similar smoothing to BN", v_ds, {"ok": ok_ds, **m["dln_land"]}),
    ]
