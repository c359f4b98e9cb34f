"""Section 4's statements as claims, each verdict computed from fresh float64 draws (bnlib.theory)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bnlib import theory
from bnlib.claims import ClaimResult, Rule, claim
from bnlib.profiles import Profile


@lru_cache(maxsize=4)
def results(draws: int = 100, seed: int = 0) -> dict[str, Any]:
    """theory.run_all, computed once per (draws, seed) and shared by the chapter and its claims."""
    return theory.run_all(draws=draws, seed=seed)


def default_draws(profile: Profile) -> int:
    """Draws per batch size: cheap everywhere, fewer at smoke."""
    return 20 if profile.name == "smoke" else 100


# Share of draws on which a statement holds: the text says every draw (1.0); below 0.5 it fails more often than not.
HOLDS = Rule(null=0.5, margin=0.0, factor=1.0, varies_by_seed=False)  # a share over many draws


def _statement(id_: str, figure: str, text: str, summary: dict[str, Any], seed: int, details: dict[str, Any]
               ) -> ClaimResult:
    kind = "equality" if summary.get("equality") else f"worst slack {summary.get('worst_slack', float('nan')):.2g}"
    return claim(id_, figure, text, f"share of {summary['n']} random float64 draws on which it holds ({kind})",
                 {seed: summary["frac_holds"]}, None, HOLDS, text_value=1.0, details=details)


def claims(draws: int, seed: int) -> list[ClaimResult]:
    """One claim per Section 4 statement, on `draws` random draws per batch size seeded by `seed`; the paper
    plotted nothing for them, so each is graded against its text (holds on every draw)."""
    r = results(draws, seed)
    printed, corrected = r["thm41"]["printed_1_over_sqrt_m"], r["thm41"]["corrected_1_over_m"]
    lem, obs = r["lemma45"], r["obs43"]
    lemma = min((lem["ray"], lem["per_unit"]), key=lambda d: d["frac_holds"])
    return [
        _statement("thm41-printed", "Thm 4.1 (printed)", "Thm 4.1 as printed (last term 1/sqrt(m)) holds", printed,
                   seed, printed),
        _statement("thm41-corrected", "Thm 4.1 (1/m)", "Thm 4.1 with 1/m in the last term holds", corrected, seed,
                   corrected),
        _statement("thm42", "Thm 4.2", "Thm 4.2: quadratic form of the Hessian along the gradient is bounded",
                   r["thm42"], seed, r["thm42"]),
        _statement("obs43", "Obs 4.3", "Obs 4.3: gamma = sigma_j, beta = mu_j gives the same activations",
                   {"n": obs["n"], "frac_holds": float(obs["holds"]), "equality": obs["holds"]}, seed, obs),
        _statement("lemma45", "Lemma 4.5", "Lemma 4.5: a BN optimum is closer to W0 when <W0, W*> > 0",
                   {**lemma, "n": lem["n_positive"]}, seed, {"n": lem["n_positive"], "ray": lem["ray"],
                                                             "per_unit": lem["per_unit"]}),
    ]
