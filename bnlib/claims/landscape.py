"""Section 3.2's claims (Figures 4 and 10), computed from the canonical runs: BN smooths the landscape.

For each probed step we take Standard / +BN ratios of the three measures: the loss range over
the step sizes (max - min of L(w - eta g)), the gradient change (max over eta of
||g - grad L(w - eta g)||) and the effective beta-smoothness. A curve pair is summarised by the
median ratio over the probed steps (finite values only), so one noisy step cannot decide it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bnlib.claims import ClaimResult
from bnlib.experiments import landscape as ex
from bnlib.probes.hessian import hessian_series
from bnlib.probes.landscape import landscape_series
from bnlib.profiles import Profile, resolve

CHAPTER = "04_landscape_smoothness"
MEASURES = {"loss_range": "loss range", "gdiff": "gradient change", "beta_eff": "effective beta"}
CLEARLY = 2.0  # "smaller": the median Standard / BN ratio is at least this (a factor 2), else only the direction
SOME = 1.25  # "partly": at least one median ratio this far above 1 (a ratio of 1.05 is no difference at all)
ORDERS_FULL = 30.0  # "up to two orders of magnitude early": best early ratio >= 30 (within ~3x of 100 on a log axis)
ORDERS_PART = 3.0  # ... at least this: partly
EARLY_FRACTION = 1 / 3  # "early in training": the first third of the probed steps


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _measures(history: dict[str, Any]) -> dict[str, np.ndarray]:
    s = landscape_series(history)
    return {"steps": s["steps"], "loss_range": s["loss_max"] - s["loss_min"], "gdiff": s["gdiff_max"],
            "beta_eff": s["beta_eff"]}


def ratios(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per measure: steps, Standard / BN ratio per probed step, its median, its max early in training
    (first third of the probed steps) and its median late in training (second half), for the record."""
    std, bn = _measures(runs["Standard"]), _measures(runs["+BN"])
    steps = np.intersect1d(std["steps"], bn["steps"])
    i, j = np.searchsorted(std["steps"], steps), np.searchsorted(bn["steps"], steps)
    early = steps <= steps.min() + EARLY_FRACTION * (steps.max() - steps.min()) if len(steps) else steps
    late = steps >= np.median(steps) if len(steps) else steps
    out: dict[str, Any] = {"steps": steps}
    for key in MEASURES:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = std[key][i] / bn[key][j]
        ok = np.isfinite(r) & (r > 0)
        out[key] = {"per_step": r, "median": float(np.median(r[ok])) if ok.any() else float("nan"),
                    "early_max": float(np.max(r[ok & early])) if (ok & early).any() else float("nan"),
                    "late_median": _median(r[ok & late]),
                    "standard_median": _median(std[key]), "bn_median": _median(bn[key])}
    return out


def hessian_ratio(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Beyond the paper: median over probed steps of max |Hessian eigenvalue|, and Standard / BN."""
    med = {name: _median(hessian_series(h)["beta"]) for name, h in runs.items()}
    return {**med, "ratio": med["Standard"] / med["+BN"]}


def _smoother_claim(runs: dict[str, dict[str, Any]], model: str) -> ClaimResult:
    r = ratios(runs)
    medians = [r[k]["median"] for k in MEASURES]
    finite = all(np.isfinite(m) for m in medians)
    if not finite:
        verdict = "inconclusive"
    elif all(m >= CLEARLY for m in medians):
        verdict = "reproduced"
    elif any(m >= SOME for m in medians):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    measured = ", ".join(f"{name} x{r[k]['median']:.3g}" for k, name in MEASURES.items())
    fig = "Fig. 4" if model == "vgg" else "Fig. 10"
    what = "VGG at LR 0.1" if model == "vgg" else "deep linear network at LR 1e-6"
    return ClaimResult(
        id=f"{'fig4-vgg' if model == 'vgg' else 'fig10-dln'}-bn-smoother", figure=fig,
        claim=f"{what}: BN's loss range, gradient change and effective beta-smoothness are smaller than Standard's",
        measured=f"Standard / BN, median over training: {measured}",
        paper="all three smaller with BN (Standard / BN > 1 throughout training)",
        verdict=verdict, chapter=CHAPTER,
        details={"ratios": {k: {kk: vv for kk, vv in r[k].items() if kk != "per_step"} for k in MEASURES},
                 "per_step": {k: r[k]["per_step"].tolist() for k in MEASURES}, "steps": r["steps"].tolist(),
                 "threshold_clearly": CLEARLY, "threshold_partly": SOME, "hessian": hessian_ratio(runs)})


def _orders_claim(runs: dict[str, dict[str, Any]]) -> ClaimResult:
    r = ratios(runs)["gdiff"]
    best = r["early_max"]
    if not np.isfinite(best):
        verdict = "inconclusive"
    else:
        verdict = "reproduced" if best >= ORDERS_FULL else "partly" if best >= ORDERS_PART else "not reproduced"
    return ClaimResult(
        id="fig4-vgg-gradient-orders", figure="Fig. 4b",
        claim="VGG: gradient predictiveness differs by up to two orders of magnitude early in training",
        measured=f"largest Standard / BN gradient-change ratio in the first third of training: x{best:.3g}",
        paper="up to ~100x early in training",
        verdict=verdict, chapter=CHAPTER,
        details={"early_max": best, "threshold_reproduced": ORDERS_FULL, "threshold_partly": ORDERS_PART,
                 "early_fraction": EARLY_FRACTION})


def claims(profile: Profile | str | None = None, dataset: str = "auto", seed: int = 0) -> list[ClaimResult]:
    """Figures 4 and 10's claims from the canonical runs of `profile` (trained on first use, then cached)."""
    p = resolve(profile)
    vgg = ex.vgg_runs(p, dataset, seed, progress=False)
    dln = ex.dln_runs(p, seed, progress=False)
    return [_smoother_claim(vgg, "vgg"), _orders_claim(vgg), _smoother_claim(dln, "dln")]


def summary(results: list[ClaimResult], profile: Profile | str | None = None) -> str:
    """The chapter's closing note in Markdown: the Standard / BN ratios and verdicts, written from `results`."""
    p = resolve(profile)
    rows = []
    for r in results:
        if "ratios" not in r.details:
            continue
        model = "VGG" if r.id.startswith("fig4") else "DLN"
        rat, hess = r.details["ratios"], r.details["hessian"]
        cells = " | ".join(f"{rat[k]['median']:.3g} ({rat[k]['early_max']:.3g}; {rat[k]['late_median']:.3g})"
                           for k in MEASURES)
        rows.append(f"| {model} | {cells} | {hess['ratio']:.3g} | **{r.verdict}** |")
    verdicts = "; ".join(f"`{r.id}`: **{r.verdict}**" for r in results)
    return "\n".join([
        f"Profile `{p.name}` (VGG: {p.vgg_width:g}x widths, {p.vgg_steps} steps; DLN: {p.dln_steps} steps on "
        f"{p.dln_points} points). Ratios are Standard / BN (above 1: BN smoother): the median over the probed steps "
        f"(in brackets: the largest ratio in the first third of training; the median over the second half).", "",
        "| model | loss range | gradient change | effective beta | Hessian max abs(eig) | verdict |",
        "|---|---|---|---|---|---|", *rows, "", f"Verdicts: {verdicts}."])
