"""Figure 3's claims, computed from the canonical runs: BN does not reduce ICS (Definition 2.1).

Each curve is summarised by its median over the probed steps (finite values only), so one
noisy measurement cannot decide a verdict, both over the whole run and over its second half
(so that a phase where one network has not started learning yet, with tiny gradients and so a
tiny ||G - G'||, cannot decide it alone). With fewer than MIN_POINTS probed steps per curve
(profile smoke) the verdict is "inconclusive".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bnlib.claims import ClaimResult
from bnlib.experiments import ics as ex
from bnlib.probes.ics import DLN_LAYERS, VGG_LAYERS, ics_series
from bnlib.profiles import Profile, resolve

CHAPTER = "03_ics_optimization_view"
NAMES = {"none": "Standard", "batch": "+BN"}
SIMILAR = 0.5  # "similar or higher" ICS: median l2 of BN >= 0.5 x Standard's (a factor 2 on the paper's log axis)
FAR_LESS = 0.5  # "far less correlated": median cos of BN at least 0.5 below Standard's
LEARNING = 0.2  # VGG: a run ending below this training accuracy (2 x chance) has not started learning
MIN_POINTS = 5  # probed steps a curve needs before its median decides anything
LOWER = 0.05  # "partly": BN's median cos below Standard's by at least this much everywhere, but not far


def _median(history: dict[str, Any], layer: int, key: str, stat: Any = np.median, late: bool = False) -> float:
    """Median (or `stat`) over the probed steps (`late`: the second half) of l2, cos, g_norm or rel = l2 / g_norm."""
    s = ics_series(history, layer)
    values = s["l2"] / s["g_norm"] if key == "rel" else s[key]
    if late:
        values = values[s["steps"] >= s["steps"].max() / 2]
    values = values[np.isfinite(values)]
    return float(stat(values)) if len(values) else float("nan")


def _summary(runs: ex.Runs, layers: tuple[int, ...], key: str, stat: Any = np.median,
             late: bool = False) -> dict[str, dict[str, float]]:
    """{"LR …, #k": {"none": median, "batch": median}} over every (lr, layer)."""
    lrs = sorted({lr for _, lr in runs}, reverse=True)
    return {f"LR {lr:g}, #{k}": {norm: _median(runs[(norm, lr)], k, key, stat, late) for norm in ex.NORMS}
            for lr in lrs for k in layers}


def _final_train_acc(history: dict[str, Any]) -> float:
    """The last evaluated training accuracy (NaN when the run has none)."""
    accs = [e["train_acc"] for e in history.get("evals", []) if "train_acc" in e]
    return float(accs[-1]) if accs else float("nan")


def _enough(runs: ex.Runs, layers: tuple[int, ...]) -> bool:
    """Every curve has at least MIN_POINTS finite measurements."""
    return all(np.isfinite(ics_series(h, k)["l2"]).sum() >= MIN_POINTS for h in runs.values() for k in layers)


def _verdict(holds: list[bool], finite: bool) -> str:
    if not finite or not holds:
        return "inconclusive"
    if all(holds):
        return "reproduced"
    return "partly" if any(holds) else "not reproduced"


def vgg_claim(runs: ex.Runs, layers: tuple[int, ...] = VGG_LAYERS) -> ClaimResult:
    """BN's ICS >= SIMILAR x Standard's, over the LRs at which both networks learned at all.

    A network still at chance has tiny gradients and so a tiny ||G - G'||: comparing against it
    says nothing about ICS, so such learning rates are left out (and named); none left: inconclusive.
    """
    l2, l2_late = _summary(runs, layers, "l2"), _summary(runs, layers, "l2", late=True)
    ratios = {name: d["batch"] / d["none"] for name, d in l2.items()}
    ratios_late = {name: d["batch"] / d["none"] for name, d in l2_late.items()}
    stalled = sorted({lr for (norm, lr), h in runs.items() if _final_train_acc(h) < LEARNING}, reverse=True)
    used = [f"LR {lr:g}, #{k}" for lr in sorted({lr for _, lr in runs}, reverse=True) if lr not in stalled
            for k in layers]
    both = [*(ratios[n] for n in used), *(ratios_late[n] for n in used)]
    finite = all(np.isfinite(r) for r in both) and _enough(runs, layers)
    holds = [r >= SIMILAR for r in both]
    measured = "; ".join(f"{name}: {d['batch']:.2g} vs {d['none']:.2g} (x{ratios[name]:.2g})" for name, d in l2.items())
    if stalled:
        measured += (f" [left out: LR {', '.join(f'{lr:g}' for lr in stalled)}, where a network ended below "
                     f"{LEARNING:.0%} training accuracy]")
    return ClaimResult(
        id="fig3-vgg-ics-not-lower", figure="Fig. 3 (top)",
        claim="VGG: networks with BatchNorm show similar or higher ICS (||G - G'||_2) than Standard ones",
        measured=f"median ||G - G'||, BN vs Standard: {measured}",
        paper="BN's l2 difference similar to or above Standard's at LR 0.1 and 0.01, layers #5 and #10",
        verdict=_verdict(holds, finite), chapter=CHAPTER,
        details={"median_l2": l2, "ratio_bn_over_standard": ratios, "threshold_ratio": SIMILAR,
                 "stalled_lrs": stalled, "final_train_acc": {f"{NAMES.get(n, n)} at LR {lr:g}": _final_train_acc(h)
                                                             for (n, lr), h in sorted(runs.items())},
                 "median_l2_second_half": l2_late, "ratio_bn_over_standard_second_half": ratios_late,
                 "median_l2_over_g_norm": _summary(runs, layers, "rel"), "median_cos": _summary(runs, layers, "cos")})


def dln_claim(runs: ex.Runs, layers: tuple[int, ...] = DLN_LAYERS) -> ClaimResult:
    cos, cos_late = _summary(runs, layers, "cos"), _summary(runs, layers, "cos", late=True)
    gaps = {name: d["none"] - d["batch"] for name, d in cos.items()}
    gaps_late = {name: d["none"] - d["batch"] for name, d in cos_late.items()}
    both = [*gaps.values(), *gaps_late.values()]
    finite = all(np.isfinite(g) for g in both) and _enough(runs, layers)
    holds = [g >= FAR_LESS for g in both]
    if finite and not any(holds) and all(g >= LOWER for g in both):
        verdict = "partly"  # lower everywhere, but not far lower
    else:
        verdict = _verdict(holds, finite)
    measured = "; ".join(f"{name}: {d['batch']:.3f} vs {d['none']:.3f}" for name, d in cos.items())
    return ClaimResult(
        id="fig3-dln-bn-decorrelates", figure="Fig. 3 (bottom)",
        claim="DLN: with BatchNorm, G and G' are far less correlated (lower cos) than in the standard network",
        measured=f"median cos(G, G'), BN vs Standard: {measured}",
        paper="Standard: cos ~ 1 (almost no ICS); +BN: G and G' almost uncorrelated",
        verdict=verdict, chapter=CHAPTER,
        details={"median_cos": cos, "gap_standard_minus_bn": gaps, "median_cos_second_half": cos_late,
                 "gap_standard_minus_bn_second_half": gaps_late, "median_l2": _summary(runs, layers, "l2"),
                 "threshold_gap": FAR_LESS, "threshold_lower": LOWER,
                 "min_cos": _summary(runs, layers, "cos", np.min)})


def claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0) -> list[ClaimResult]:
    """Figure 3's two claims from the canonical runs of `profile` (trained on first use, then cached)."""
    p = resolve(profile)
    return [vgg_claim(ex.vgg_runs(p, dataset, seed, progress=False)), dln_claim(ex.dln_runs(p, seed, progress=False))]


def _count(values: dict[str, Any], test: Any) -> str:
    """'k of n' for how many entries pass `test`."""
    return f"{sum(bool(test(v)) for v in values.values())} of {len(values)}"


def _stalled_note(details: dict[str, Any]) -> str:
    accs = ", ".join(f"{k}: {v:.0%}" for k, v in details["final_train_acc"].items())
    lrs = ", ".join(f"{lr:g}" for lr in details["stalled_lrs"])
    return (f"At LR {lrs} a network had not started learning by the end of the run (final training accuracy "
            f"{accs}); its tiny gradients make its ICS tiny too, so that LR is left out of the verdict.")


def summary(results: list[ClaimResult], profile: Profile | str | None = None) -> str:
    """The chapter's closing note in Markdown: the measured medians and verdicts, written from `results`."""
    p = resolve(profile)
    by_id = {r.id: r for r in results}
    lines = []
    vgg = by_id.get("fig3-vgg-ics-not-lower")
    if vgg is not None:
        d = vgg.details
        rows = [f"| {name} | {l2['none']:.3g} | {l2['batch']:.3g} | {d['ratio_bn_over_standard'][name]:.3g} | "
                f"{d['ratio_bn_over_standard_second_half'][name]:.3g} | "
                f"{d['median_l2_over_g_norm'][name]['none']:.3f} | {d['median_l2_over_g_norm'][name]['batch']:.3f} | "
                f"{d['median_cos'][name]['none']:.3f} | {d['median_cos'][name]['batch']:.3f} |"
                for name, l2 in d["median_l2"].items()]
        lines += [f"**VGG** (profile `{p.name}`: {p.vgg_width:g}x widths, {p.vgg_steps} steps; medians over the "
                  f"probed steps). Verdict on \"similar or higher ICS with BatchNorm\": **{vgg.verdict}**.", "",
                  "| LR, layer | l2 Std | l2 +BN | ratio | ratio, 2nd half | l2/‖G‖ Std | l2/‖G‖ +BN "
                  "| cos Std | cos +BN |",
                  "|---|---|---|---|---|---|---|---|---|", *rows, "",
                  f"BatchNorm's median l2 difference is at least {SIMILAR:g} x the Standard network's in "
                  f"{_count(d['ratio_bn_over_standard'], lambda r: r >= SIMILAR)} (LR, layer) pairs over the whole run "
                  f"and in {_count(d['ratio_bn_over_standard_second_half'], lambda r: r >= SIMILAR)} over its second "
                  "half; relative to the layer's own gradient norm it is larger in "
                  f"{_count(d['median_l2_over_g_norm'], lambda v: v['batch'] > v['none'])}. "
                  + (_stalled_note(d) if d["stalled_lrs"] else ""), ""]
    dln = by_id.get("fig3-dln-bn-decorrelates")
    if dln is not None:
        d = dln.details
        rows = [f"| {name} | {d['median_l2'][name]['none']:.3g} | {d['median_l2'][name]['batch']:.3g} | "
                f"{cos['none']:.4f} | {cos['batch']:.4f} | {d['median_cos_second_half'][name]['none']:.4f} | "
                f"{d['median_cos_second_half'][name]['batch']:.4f} | {d['min_cos'][name]['none']:.3f} | "
                f"{d['min_cos'][name]['batch']:.3f} |" for name, cos in d["median_cos"].items()]
        lines += [f"**Deep linear network** ({p.dln_steps} full-batch steps on {p.dln_points} points; medians over the "
                  f"probed steps). Verdict on \"BatchNorm's G and G' far less correlated\": **{dln.verdict}**.", "",
                  "| LR, layer | l2 Std | l2 +BN | cos Std | cos +BN | cos Std, 2nd half | cos +BN, 2nd half "
                  "| min cos Std | min cos +BN |", "|---|---|---|---|---|---|---|---|---|", *rows, "",
                  f"BatchNorm's median cosine is at least {FAR_LESS:g} below the Standard network's in "
                  f"{_count(d['gap_standard_minus_bn'], lambda g: g >= FAR_LESS)} (LR, layer) pairs over the whole run "
                  f"({_count(d['gap_standard_minus_bn_second_half'], lambda g: g >= FAR_LESS)} over its second half), "
                  "and below it at "
                  f"all in {_count(d['gap_standard_minus_bn'], lambda g: g > 0)}; BatchNorm's ICS (median l2) is "
                  f"the larger in {_count(d['median_l2'], lambda v: v['batch'] > v['none'])}."]
    return "\n".join(lines)
