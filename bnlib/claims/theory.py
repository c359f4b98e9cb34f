"""Section 4's statements as claims, each verdict computed from fresh float64 draws (bnlib.theory)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bnlib import theory
from bnlib.claims import ClaimResult
from bnlib.profiles import Profile, resolve

CHAPTER = "06_theory_checks"


@lru_cache(maxsize=4)
def results(draws: int = 100, seed: int = 0) -> dict[str, Any]:
    """theory.run_all, computed once per (draws, seed) and shared by the chapter and its claims."""
    return theory.run_all(draws=draws, seed=seed)


def default_draws(profile: Profile | str | None) -> int:
    """Draws per batch size: cheap everywhere, fewer at smoke."""
    return 20 if resolve(profile).name == "smoke" else 100


def _verdict(frac: float) -> str:
    return "reproduced" if frac == 1.0 else ("partly" if frac >= 0.9 else "not reproduced")


def _fmt(s: dict[str, Any]) -> str:
    kind = "equality" if s["equality"] else f"worst slack {s['worst_slack']:.2g}"
    return f"holds on {s['frac_holds']:.0%} of {s['n']} draws ({kind})"


def claims(profile: Profile | str | None = None, dataset: str = "auto", draws: int | None = None,
           seed: int = 0) -> list[ClaimResult]:
    """One ClaimResult per Section 4 statement. `dataset` is unused (no data here); kept for the
    common signature."""
    r = results(draws or default_draws(profile), seed)
    printed, corrected = r["thm41"]["printed_1_over_sqrt_m"], r["thm41"]["corrected_1_over_m"]
    lem = r["lemma45"]
    obs = r["obs43"]
    return [
        ClaimResult("thm41-printed", "Thm 4.1 as printed: last term (1/sqrt(m)) <g, y_hat>^2", "Thm 4.1 (printed)",
                    _fmt(printed), "inequality holds", _verdict(printed["frac_holds"]), CHAPTER, printed),
        ClaimResult("thm41-corrected", "Thm 4.1 with 1/m in the last term", "Thm 4.1 (1/m)", _fmt(corrected),
                    "(the form in later notes)", _verdict(corrected["frac_holds"]), CHAPTER, corrected),
        ClaimResult("thm42", "Thm 4.2: quadratic form of the Hessian along the gradient", "Thm 4.2",
                    _fmt(r["thm42"]), "inequality holds", _verdict(r["thm42"]["frac_holds"]), CHAPTER, r["thm42"]),
        ClaimResult("obs43", "Obs 4.3: gamma = sigma_j, beta = mu_j gives the same activations", "Obs 4.3",
                    f"max rel. difference {obs['max_rel_activation_diff']:.1e} over {obs['n']} draws",
                    "identical", "reproduced" if obs["holds"] else "not reproduced", CHAPTER, obs),
        ClaimResult("lemma45", "Lemma 4.5: a BN optimum closer to W0 when <W0, W*> > 0", "Lemma 4.5",
                    f"{_fmt(lem['ray'])} along c W*; {_fmt(lem['per_unit'])} with per-unit scaling",
                    "inequality holds", _verdict(min(lem["ray"]["frac_holds"], lem["per_unit"]["frac_holds"])),
                    CHAPTER, {"n": lem["n_positive"], "ray": lem["ray"], "per_unit": lem["per_unit"]}),
    ]
