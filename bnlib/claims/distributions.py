"""Claims of Figures 1, 2 and 8 and the noise control (chapters 01 and 02).

Training accuracy is the training-batch accuracy (the paper's Figs 1a and 2a plot one batch of 128
every 100 steps; ours is every step, noise included for noisy BN), summarised over phases of
training given as fractions, so an 1,800-step run and the paper's 15k steps are compared phase by phase.
Each function takes runs keyed by seed: {seed: the chapter's runs for that seed}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bnlib import paper
from bnlib import stats as st
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.paper import Curve
from bnlib.probes import activations as act
from bnlib.record import Run

VGG = paper.TOTAL_STEPS["vgg"]
FIG8_LAYERS = (2, 9, 13)
MOMENTS = {"mean": "abs_dmean", "variance": "abs_dvar"}
MIN_GAP = 1.0  # points: BN must lead Standard by this much for "the share of BN's lead" to be defined

FASTER = Rule(null=0, margin=1.0, factor=2.0)  # points of accuracy
TEST = Rule(null=0, margin=0.5, factor=2.0)
LR05 = Rule(null=0, margin=5.0, factor=2.0)
SHARE = Rule(null=0, margin=0.2, factor=2.0)  # share of BN's lead over Standard that noisy BN keeps
DRIFT = Rule(null=1, margin=1.25, scale="log", factor=3.0)
CONTROL = Rule(null=0, margin=0.2, factor=1.5)


def mean_gap(a: Curve, b: Curve, total: int, phase: str) -> float:
    """Mean of a minus mean of b over a phase of training (accuracy points)."""
    return st.over(a, total, phase, np.mean) - st.over(b, total, phase, np.mean)


def lead_share(noisy: Curve, bn: Curve, std: Curve, total: int, phase: str = "mid") -> float:
    """(noisy - Standard) / (BN - Standard), mean accuracy over the phase: the share of BN's lead noisy BN
    keeps (1: trains as well as BN, 0: no better than Standard). NaN unless BN leads by MIN_GAP."""
    lead = mean_gap(bn, std, total, phase)
    return mean_gap(noisy, std, total, phase) / lead if lead >= MIN_GAP else float("nan")


def drift_ratios(noisy: Mapping[Any, np.ndarray], standard: Mapping[Any, np.ndarray]) -> dict[Any, float]:
    """Per (layer, moment): median |change| of noisy BN / the Standard network's."""
    return {k: st.ratio(np.nanmedian(noisy[k]), np.nanmedian(standard[k])) for k in noisy}


def drift_ratio(noisy: Mapping[Any, np.ndarray], standard: Mapping[Any, np.ndarray]) -> float:
    """Median over (layer, moment) of drift_ratios."""
    ratios = list(drift_ratios(noisy, standard).values())
    return float(np.median(ratios)) if ratios else float("nan")


def control_loss(control: Curve, std: Curve, total: int) -> float:
    """(Standard - control) / (Standard - chance), mean accuracy over the last tenth: the share of the
    Standard network's learning that the noise destroys (1: the control stays at chance)."""
    learnt = st.over(std, total, "last tenth", np.mean) - st.CHANCE
    return mean_gap(std, control, total, "last tenth") / learnt if learnt >= MIN_GAP else float("nan")


def _acc(h: Mapping[str, Any]) -> Curve:
    return st.batch_accuracy_curve(h)


def _paper_acc(series: str) -> Curve:
    return paper.curve("fig1a_train_acc", series)


def fig1_claims(runs: Mapping[int, Mapping[tuple[str, float], Any]]) -> list[ClaimResult]:
    """Figure 1 from {seed: {(norm, lr): history}} (LR 0.1 and 0.5)."""
    faster, test, lr05 = {}, {}, {}
    for seed, r in runs.items():
        std, bn = r[("none", 0.1)], r[("batch", 0.1)]
        faster[seed] = mean_gap(_acc(bn), _acc(std), st.total(bn), "mid")
        test[seed] = st.last(st.eval_accuracy_curve(bn)) - st.last(st.eval_accuracy_curve(std))
        if ("none", 0.5) in r and ("batch", 0.5) in r:
            b5, s5 = r[("batch", 0.5)], r[("none", 0.5)]
            lr05[seed] = mean_gap(_acc(b5), _acc(s5), st.total(b5), "late")
    out = [
        claim("fig1-bn-trains-faster", "Fig. 1a", "With BatchNorm the VGG trains faster (LR 0.1)",
              f"BN - Standard, mean training-batch accuracy (points), {st.describe('mid')}", faster,
              mean_gap(_paper_acc("bn_lr0.1"), _paper_acc("standard_lr0.1"), VGG, "mid"), FASTER),
        claim("fig1-bn-test-accuracy", "Fig. 1b", "BN's final test accuracy is higher (LR 0.1)",
              "BN - Standard, final test accuracy (points)", test,
              st.last(paper.curve("fig1b_test_acc", "bn_lr0.1")) - st.last(paper.curve("fig1b_test_acc",
                                                                                       "standard_lr0.1")),
              TEST)]
    if lr05:
        out.append(claim(
            "fig1-lr05-standard-fails", "Fig. 1a", "At LR 0.5 the Standard VGG fails to train while the BN VGG trains",
            f"BN - Standard at LR 0.5, mean training-batch accuracy (points; diverged = chance), {st.describe('late')}",
            lr05, mean_gap(_paper_acc("bn_lr0.5"), _paper_acc("standard_lr0.5"), VGG, "late"), LR05))
    return out


def our_drift(h: Mapping[str, Any], layers: Sequence[int]) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, moment): |change| between recorded steps, every recorded unit} of one run."""
    return {(k, m): act.moment_drift(h, k)[key] for k in layers for m, key in MOMENTS.items()}


def paper_drift(series: str) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, moment): |change| every 100 steps} of one network in the paper's Figure 8a."""
    return {(k, m): paper.curve("fig8a_moment_change_step", series, moment=m, layer=k).values
            for k in FIG8_LAYERS for m in MOMENTS}


def fig2_claims(runs: Mapping[int, Mapping[str, Any]], layers: Sequence[int] = FIG8_LAYERS) -> list[ClaimResult]:
    """Figures 2 and 8 and the control, from {seed: {norm: history}} (norms none, batch, noisy, noise_only)."""
    share, drift, control = {}, {}, {}
    for seed, r in runs.items():
        std, bn, noisy = r["none"], r["batch"], r["noisy"]
        share[seed] = lead_share(_acc(noisy), _acc(bn), _acc(std), st.total(bn))
        diverged = any(Run.of(h).diverged for h in (std, noisy))
        drift[seed] = float("nan") if diverged else drift_ratio(our_drift(noisy, layers), our_drift(std, layers))
        if "noise_only" in r:
            control[seed] = control_loss(_acc(r["noise_only"]), _acc(std), st.total(std))
    p = {s: paper.curve("fig2a_train_acc", s) for s in ("standard", "bn", "noisy_bn")}
    out = [
        claim("fig2-noisy-bn-trains", "Fig. 2a", '"Noisy" BN trains about as well as BN, and better than Standard',
              f"(noisy BN - Standard) / (BN - Standard), mean training-batch accuracy, {st.describe('mid')}",
              share, lead_share(p["noisy_bn"], p["bn"], p["standard"], VGG), SHARE),
        claim("fig8-noisy-bn-drifts-more", "Fig. 8a", "Noisy BN's layer inputs drift more than the Standard network's",
              f"noisy BN / Standard, median step-to-step change of a unit's mean and variance, median over layers "
              f"{', '.join(map(str, layers))} (ours: recorded steps and 4 units; paper: every 100 steps, 1 unit)",
              drift, drift_ratio(paper_drift("noisy_bn"), paper_drift("standard")), DRIFT)]
    if control:
        out.append(claim(
            "control-noise-without-bn", "Sec. 2.1 (text)", "The same noise injected into the Standard network "
            "prevents it from training", "(Standard - Standard with noise) / (Standard - chance), mean "
            "training-batch accuracy, last tenth of training", control, None, CONTROL, text_value=1.0))
    return out
