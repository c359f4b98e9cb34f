"""Claims of Figures 1, 2 and 8 (chapters 01 and 02), computed from the canonical cached runs.

Accuracies are evaluation-mode accuracies on the training / test images at the evaluation
cadence (noisy BN's noise is off in evaluation, as Algorithm 1 is a training-time operation).
Every threshold is a named constant below; a comparison between networks is "inconclusive"
when the reference (+BN at LR 0.1) did not reach MIN_TRAINED accuracy, i.e. the profile's
runs are too short to say anything (e.g. profile smoke).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bnlib.claims import ClaimResult
from bnlib.experiments import distributions as exp
from bnlib.probes import activations as act
from bnlib.profiles import Profile, resolve

CH1, CH2 = "01_ics_distributions", "02_noise_injection"
CHANCE = 0.10  # ten classes
MIN_TRAINED = 0.50  # final train accuracy a run must reach to count as "trains"
NEAR_CHANCE = CHANCE + 0.10  # at or below this final train accuracy a run "fails to train"
FASTER_GAP = 0.02  # BN ahead of Standard by at least this (train acc at mid-training): reproduced
TEST_GAP = 0.01  # BN's final test accuracy ahead by at least this: reproduced (paper: 83% vs 80%)
NOISY_TOLERANCE = 0.05  # noisy BN within this of BN's final train accuracy: "about as well"
CLEARLY_WORSE = 0.10  # a gap this large counts as clearly worse
DRIFT_RATIO = 2.0  # median noisy/Standard raw moment-drift ratio for "reproduced" (and the scale-free one > 1)


def final_acc(history: dict[str, Any], split: str = "train") -> float:
    """Last evaluation's accuracy; a diverged run counts as chance."""
    if history.get("diverged_at") is not None:
        return CHANCE
    rows = [e for e in history["evals"] if f"{split}_acc" in e]
    return float(rows[-1][f"{split}_acc"]) if rows else float("nan")


def acc_at(history: dict[str, Any], step: int, split: str = "train") -> tuple[int, float]:
    """(step, accuracy) of the last evaluation at or before `step` (chance after a divergence)."""
    rows = [e for e in history["evals"] if e["step"] <= step and f"{split}_acc" in e]
    diverged = history.get("diverged_at")
    if not rows or (diverged is not None and diverged <= step):
        return step, CHANCE
    return int(rows[-1]["step"]), float(rows[-1][f"{split}_acc"])


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def fig1_claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0) -> list[ClaimResult]:
    """Figure 1: BN trains faster and generalises better; at LR 0.5 Standard fails while BN trains."""
    p = resolve(profile)
    runs = exp.fig1_runs(p, dataset, seed)
    std, bn = runs[("none", 0.1)], runs[("batch", 0.1)]
    ok = final_acc(bn) >= MIN_TRAINED
    results = []

    mid, std_mid = acc_at(std, p.vgg_steps // 2)
    _, bn_mid = acc_at(bn, p.vgg_steps // 2)
    gap = bn_mid - std_mid
    results.append(ClaimResult(
        "fig1-bn-trains-faster", "With BatchNorm the VGG trains faster (LR 0.1)", "Fig. 1a",
        f"train acc at step {mid}: BN {_pct(bn_mid)} vs Standard {_pct(std_mid)} (gap {100 * gap:+.1f} pts)",
        "BN curve clearly above Standard through training",
        ("reproduced" if gap >= FASTER_GAP else "partly" if gap > 0 else "not reproduced") if ok else "inconclusive",
        CH1, {"step": mid, "bn": bn_mid, "standard": std_mid, "threshold": FASTER_GAP}))

    bn_test, std_test = final_acc(bn, "test"), final_acc(std, "test")
    gap = bn_test - std_test
    results.append(ClaimResult(
        "fig1-bn-test-accuracy", "BN's final test accuracy is higher (LR 0.1)", "Fig. 1b",
        f"BN {_pct(bn_test)} vs Standard {_pct(std_test)} (gap {100 * gap:+.1f} pts)",
        "83% vs 80% on CIFAR-10 at 15k steps",
        ("reproduced" if gap >= TEST_GAP else "partly" if gap > 0 else "not reproduced") if ok else "inconclusive",
        CH1, {"bn": bn_test, "standard": std_test, "threshold": TEST_GAP}))

    std5, bn5 = runs[("none", 0.5)], runs[("batch", 0.5)]
    s5, b5 = final_acc(std5), final_acc(bn5)
    std_fails, bn_trains = s5 <= NEAR_CHANCE, b5 >= MIN_TRAINED
    verdict = ("reproduced" if std_fails and bn_trains else
               "partly" if bn_trains and b5 - s5 >= CLEARLY_WORSE else "not reproduced")
    diverged = f", diverged at step {std5['diverged_at']}" if std5.get("diverged_at") is not None else ""
    results.append(ClaimResult(
        "fig1-lr05-standard-fails", "At LR 0.5 the Standard VGG fails to train while the BN VGG trains", "Fig. 1a",
        f"final train acc: Standard {_pct(s5)}{diverged}; BN {_pct(b5)}",
        "Standard stays near chance (10%); BN trains",
        verdict if ok else "inconclusive", CH1,
        {"standard": s5, "bn": b5, "near_chance": NEAR_CHANCE, "min_trained": MIN_TRAINED,
         "standard_diverged_at": std5.get("diverged_at")}))
    return results


def drift_ratios(runs: dict[str, dict[str, Any]], layers: tuple[int, ...] = exp.FIG2_LAYERS,
                 relative: bool = False) -> dict[str, float]:
    """Mean abs(mu_t+1 - mu_t) and abs(var_t+1 - var_t) (over units and recorded steps), noisy BN / Standard.

    With `relative`, each unit's changes are first divided by its typical sd (var by its typical
    variance): a scale-free check that a large raw ratio is not only the networks' different scales.
    """
    ratios = {}
    for layer in layers:
        per_net = {}
        for norm in ("noisy", "none"):
            drift = act.moment_drift(runs[norm], layer)
            typical_var = np.nanmean(act.moments(runs[norm], layer)[2], axis=0) if relative else 1.0
            per_net[norm] = {"abs_dmean": np.nanmean(drift["abs_dmean"] / np.sqrt(typical_var)),
                             "abs_dvar": np.nanmean(drift["abs_dvar"] / typical_var)}
        for key in ("abs_dmean", "abs_dvar"):
            ratios[f"layer {layer} {key}"] = float(per_net["noisy"][key] / per_net["none"][key])
    return ratios


def fig2_claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0) -> list[ClaimResult]:
    """Figure 2 and 8 and the text's control: noisy BN trains like BN though its distributions drift more."""
    p = resolve(profile)
    runs = exp.fig2_runs(p, dataset, seed)
    std, bn, noisy, ctrl = (runs[k] for k in ("none", "batch", "noisy", "noise_only"))
    ok = final_acc(bn) >= MIN_TRAINED
    results = []

    a_std, a_bn, a_noisy = final_acc(std), final_acc(bn), final_acc(noisy)
    close, above = a_noisy >= a_bn - NOISY_TOLERANCE, a_noisy >= a_std
    mid = {name: acc_at(run, p.vgg_steps // 2) for name, run in (("noisy", noisy), ("bn", bn), ("standard", std))}
    results.append(ClaimResult(
        "fig2-noisy-bn-trains", '"Noisy" BN trains about as well as BN, and better than Standard (LR 0.1)', "Fig. 2",
        f"final train acc (the verdict's): noisy BN {_pct(a_noisy)}, BN {_pct(a_bn)}, Standard {_pct(a_std)}; "
        f"at step {mid['bn'][0]}: {_pct(mid['noisy'][1])}, {_pct(mid['bn'][1])}, {_pct(mid['standard'][1])}",
        "noisy BN's curve close to BN's, above Standard's",
        ("reproduced" if close and above else "partly" if close or above else "not reproduced") if ok
        else "inconclusive", CH2,
        {"noisy": a_noisy, "bn": a_bn, "standard": a_std, "tolerance": NOISY_TOLERANCE,
         "mid_training": {k: v[1] for k, v in mid.items()}}))

    if any(r.get("diverged_at") is not None for r in (std, noisy)):
        ratios, rel, verdict = {}, {}, "inconclusive"
        measured = "a run diverged: drift not comparable"
    else:
        ratios, rel = drift_ratios(runs), drift_ratios(runs, relative=True)
        values, rel_values = np.array(list(ratios.values())), np.array(list(rel.values()))
        median, rel_median = float(np.median(values)), float(np.median(rel_values))
        verdict = ("reproduced" if median >= DRIFT_RATIO and (values > 1).all() and rel_median > 1 else
                   "partly" if median > 1 else "not reproduced")
        measured = (f"noisy/Standard drift ratio, layers {', '.join(map(str, exp.FIG2_LAYERS))}: median {median:.2g} "
                    f"(min {values.min():.2g}, max {values.max():.2g}; {int((values > 1).sum())}/{len(values)} > 1); "
                    f"relative to each unit's scale: median {rel_median:.2g}")
    results.append(ClaimResult(
        "fig8-noisy-bn-drifts-more", "Noisy BN's layer inputs drift more than the Standard network's", "Figs. 2, 8",
        measured, "noisy BN: larger step-to-step and cumulative changes of mean and variance", verdict, CH2,
        {"ratios": ratios, "relative_ratios": rel, "ratio_threshold": DRIFT_RATIO}))

    a_ctrl = final_acc(ctrl)
    fails, worse = a_ctrl <= NEAR_CHANCE, a_std - a_ctrl >= CLEARLY_WORSE
    std_trains = a_std >= MIN_TRAINED
    diverged = f", diverged at step {ctrl['diverged_at']}" if ctrl.get("diverged_at") is not None else ""
    results.append(ClaimResult(
        "control-noise-without-bn", "The same noise injected into the Standard network prevents it from training",
        "Sec. 2.1 (text)", f"final train acc: Standard + noise {_pct(a_ctrl)}{diverged}; Standard {_pct(a_std)}",
        "does not train", ("reproduced" if fails else "partly" if worse else "not reproduced") if std_trains
        else "inconclusive", CH2, {"control": a_ctrl, "standard": a_std, "near_chance": NEAR_CHANCE}))
    return results


def claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0) -> list[ClaimResult]:
    """All claims of chapters 01 and 02 (the scoreboard calls this)."""
    return fig1_claims(profile, dataset, seed) + fig2_claims(profile, dataset, seed)
