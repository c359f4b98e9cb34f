"""The scoreboard as a picture: every claim's seeds against the paper's value and the verdict rule's bands."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bnlib.claims import ClaimResult, Rule, band

VERDICT_COLOURS = {"reproduced": "#2e7d32", "partly": "#b8860b", "not reproduced": "#c62828",
                   "inconclusive": "#757575"}


def _offsets(r: ClaimResult, rule: Rule) -> tuple[list[float], tuple[float, float] | None, float | None]:
    """The seeds', the interval's and the reference's positions on the claim's own axis (offsets from its null:
    log10 of the ratio on a log rule, the difference on a linear one; + is the claim's direction)."""
    seeds = [rule.offset(v) for v in r.ours if math.isfinite(v) and (v > 0 or rule.scale == "linear")]
    interval = None if r.interval is None else tuple(sorted(rule.offset(v) for v in r.interval))
    reference = r.paper if r.paper is not None else r.text_value
    return seeds, interval, None if reference is None else rule.offset(reference)


def scoreboard_figure(results: Sequence[ClaimResult]) -> Figure:
    """One row per claim, each on its own axis (offsets from the claim's null, the claim's direction to the right):
    the no-difference band (grey, the rule's margin), the paper's value (black diamond) with the band within the
    rule's factor of it (blue), our seeds (dots) and the 95% interval of their mean (bar), coloured by verdict."""
    # 5.8 in wide: the page shows it at about its own size, so 11-12 pt text reads as large as the body text
    fig, axes = plt.subplots(len(results), 1, figsize=(5.8, 0.62 * len(results) + 1.4), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        rule = Rule(**{**r.rule, "text": tuple(r.rule["text"])})
        seeds, interval, reference = _offsets(r, rule)
        margin = math.log10(rule.margin) if rule.scale == "log" else rule.margin
        shown = [*seeds, *(interval or ()), *([reference] if reference is not None else []), -margin, margin, 0.0]
        lo, hi = min(shown), max(shown)
        pad = 0.12 * (hi - lo) or 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ax.axvspan(-margin, margin, color="0.85", lw=0) if margin > 0 else ax.axvline(0, color="0.6", lw=1)
        if reference is not None:
            if rule.factor is not None and reference != 0:
                ax.axvspan(*band(reference, rule), color="#cfe3f6", lw=0)
            ax.plot([reference], [0], "D", color="black", ms=6, zorder=4)
        colour = VERDICT_COLOURS[r.verdict]
        if interval is not None and len(seeds) > 1:
            ax.errorbar([(interval[0] + interval[1]) / 2], [0], xerr=[[(interval[1] - interval[0]) / 2]],
                        color=colour, capsize=4, lw=2, zorder=3)
        ax.plot(seeds, [0] * len(seeds), "o", color=colour, ms=5, alpha=0.8, zorder=5, mec="white", mew=0.6)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=11, length=2, pad=1)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.set_ylim(-1, 1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_title(r.id + (" (log)" if rule.scale == "log" else ""), fontsize=12, loc="left", pad=2)
        n = len(r.seeds)
        decided_by = "1 computation" if not rule.varies_by_seed else f"{n} seed{'s' if n != 1 else ''}"
        ax.set_title(f"{r.verdict}, {decided_by}", fontsize=12, loc="right", pad=2, color=colour)
    fig.suptitle("Each claim on its own axis (log: log10 of a ratio; else a\ndifference): our seeds (dots), their "
                 "mean's 95% interval\n(bar), the paper's value (diamond) and its factor band (blue);\ngrey: no "
                 "difference. To the right: the claim holds.", fontsize=12, x=0.02, ha="left", y=1.0)
    fig.tight_layout(h_pad=0.6)
    return fig
