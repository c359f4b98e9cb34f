"""Every curve the paper plotted that our runs also record, paired, with the distance between them.

Runs and the paper differ in length, so both are put on the fraction of training (0..1) and compared
at matched fractions: the mean absolute gap in accuracy points, in decades for the quantities the
paper plots on log axes (losses, ICS, landscape), in plain units for cosines. Chapter 07 draws them.
Our runs come keyed by seed ({seed: Runs}): the distance is measured for every seed, so a gap that
one seed opens and another closes shows in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnlib import paper
from bnlib import stats as st
from bnlib.paper import Curve

Runs = dict[str, Any]  # one seed's runs: {"vgg": {(norm, lr): history}, "dln": {norm: history}}
COLOURS = {"none": "tab:blue", "batch": "tab:orange", "noisy": "tab:green", "l1": "tab:green", "l2": "tab:red",
           "linf": "tab:purple"}
NAMES = {"none": "Standard", "batch": "+BN", "noisy": '+"noisy" BN', "l1": "+l1", "l2": "+l2", "linf": "+l_inf"}
SERIES = {"none": "standard", "batch": "bn", "noisy": "noisy_bn", "l1": "l1", "l2": "l2", "linf": "linf"}
UNITS = {"points": "accuracy points", "decades": "decades (log10)", "cos": "cosine units"}


@dataclass(frozen=True)
class Pair:
    """One of our curves and the paper's counterpart."""

    panel: str  # e.g. "Fig. 1a: training accuracy, LR 0.1"
    network: str  # our norm
    unit: str  # a key of UNITS
    model: str  # "vgg" or "dln": the paper's run length
    ours: Callable[[Runs], tuple[Curve, int]]  # -> (our curve, our run's steps)
    theirs: Callable[[], Curve]


def smoothed_batch_accuracy(history: dict[str, Any]) -> Curve:
    """Training-batch accuracy (%) as a running mean over 1/30 of the run (one batch is noisy)."""
    c = st.batch_accuracy_curve(history)
    w = max(1, len(c.values) // 30)
    return Curve(c.steps[w - 1:], st.trailing_mean(c.values, w)[w - 1:])


def _vgg(key: tuple[str, float], get: Callable[[dict[str, Any]], Curve]) -> Callable[[Runs], tuple[Curve, int]]:
    return lambda runs: (get(runs["vgg"][key]), st.total(runs["vgg"][key]))


def _dln(norm: str, get: Callable[[dict[str, Any]], Curve]) -> Callable[[Runs], tuple[Curve, int]]:
    return lambda runs: (get(runs["dln"][norm]), st.total(runs["dln"][norm]))


def _landscape(key: str) -> Callable[[dict[str, Any]], Curve]:
    return lambda h: st.landscape_curves(h)[key]


def pairs() -> list[Pair]:
    """Every (our curve, the paper's) pair the book can compare, panel by panel."""
    out = []
    for lr in (0.1, 0.5):
        for norm in ("none", "batch"):
            out.append(Pair(f"Fig. 1a: training accuracy, LR {lr:g}", norm, "points", "vgg",
                            _vgg((norm, lr), smoothed_batch_accuracy),
                            lambda n=norm, r=lr: paper.curve("fig1a_train_acc", f"{SERIES[n]}_lr{r:g}")))
    for norm in ("none", "batch"):
        out.append(Pair("Fig. 1b: test accuracy, LR 0.1", norm, "points", "vgg",
                        _vgg((norm, 0.1), lambda h: st.eval_accuracy_curve(h, "test")),
                        lambda n=norm: paper.curve("fig1b_test_acc", f"{SERIES[n]}_lr0.1")))
    for norm in ("none", "batch", "noisy"):
        out.append(Pair("Fig. 2a: training accuracy", norm, "points", "vgg", _vgg((norm, 0.1), smoothed_batch_accuracy),
                        lambda n=norm: paper.curve("fig2a_train_acc", SERIES[n])))
    for norm in ("none", "batch"):
        s = SERIES[norm]
        out += [Pair("Fig. 3 (top): ||G - G'||, layer #5, LR 0.1", norm, "decades", "vgg",
                     _vgg((norm, 0.1), lambda h: st.ics_curve(h, 5, "l2")),
                     lambda s=s: paper.curve("fig3a_vgg_ics_l2", s, lr=0.1, layer=5)),
                Pair("Fig. 3 (top): cos(G, G'), layer #5, LR 0.1", norm, "cos", "vgg",
                     _vgg((norm, 0.1), lambda h: st.ics_curve(h, 5, "cos")),
                     lambda s=s: paper.curve("fig3a_vgg_ics_cos", s, lr=0.1, layer=5)),
                Pair("Fig. 3 (bottom): DLN training loss, LR 1e-6", norm, "decades", "dln", _dln(norm, st.loss_curve),
                     lambda s=s: paper.curve("fig3b_dln_train_loss", s, lr=1e-6)),
                Pair("Fig. 3 (bottom): DLN cos(G, G'), layer #9, LR 1e-6", norm, "cos", "dln",
                     _dln(norm, lambda h: st.ics_curve(h, 9, "cos")),
                     lambda s=s: paper.curve("fig3b_dln_ics_cos", s, lr=1e-6, layer=9))]
    for model, files in (("vgg", ("fig4a", "fig4b", "fig4c")), ("dln", ("fig10a", "fig10b", "fig10c"))):
        from bnlib.claims.landscape import paper_curve

        for panel, (key, text) in st.LANDSCAPE_MEASURES.items():
            for norm in ("none", "batch"):
                ours = _vgg((norm, 0.1), _landscape(key)) if model == "vgg" else _dln(norm, _landscape(key))
                out.append(Pair(f"Fig. {files[ord(panel) - 97][3:]}: {model.upper()} {text}", norm, "decades", model,
                                ours, lambda m=model, p=panel, s=SERIES[norm]: paper_curve(m, p, s)))
    for norm in ("none", "batch", "l1", "l2", "linf"):
        out += [Pair("Fig. 5a: l_p, VGG training accuracy", norm, "points", "vgg",
                     _vgg((norm, 0.1), smoothed_batch_accuracy),
                     lambda s=SERIES[norm]: paper.curve("fig5a_vgg_lp_train_acc", s)),
                Pair("Fig. 5b: l_p, DLN training loss", norm, "decades", "dln", _dln(norm, st.loss_curve),
                     lambda s=SERIES[norm]: paper.curve("fig5b_dln_lp_train_loss", s))]
    return out


def distances(runs: Mapping[int, Runs]) -> list[dict[str, Any]]:
    """Per pair: panel, network, the mean gap at 20 matched fractions of training for each seed of `runs`
    ({seed: Runs}; column "seed N"), their mean over the seeds (with more than one), and the unit."""
    if not runs:
        raise ValueError("runs must map at least one seed to its canonical runs ({seed: Runs})")
    rows = []
    for p in pairs():
        theirs = p.theirs()
        gaps = {}
        for seed, r in runs.items():
            ours, total = p.ours(r)
            gaps[f"seed {seed}"] = st.distance(ours, total, theirs, paper.TOTAL_STEPS[p.model], log=p.unit == "decades")
        row: dict[str, Any] = {"panel": p.panel, "network": NAMES[p.network], **gaps}
        if len(gaps) > 1:
            finite = [g for g in gaps.values() if np.isfinite(g)]
            row["mean over seeds"] = float(np.mean(finite)) if finite else float("nan")
        rows.append({**row, "unit": UNITS[p.unit]})
    return rows
