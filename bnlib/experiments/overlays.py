"""The runs chapter 8 sets beside the paper's curves: the canonical runs of chapters 1, 2 and 5 at one seed."""

from __future__ import annotations

from typing import Any

from bnlib.experiments import distributions, lp
from bnlib.profiles import Profile


def canonical_runs(profile: Profile, dataset: str, seed: int) -> dict[str, dict[Any, Any]]:
    """{"vgg": {(norm, lr): run}, "dln": {norm: run}}: the cached canonical runs every overlay reads (trained on
    first use), in the shape `bnlib.claims.overlays` takes."""
    vgg = dict(distributions.fig1_runs(profile, dataset, seed))
    vgg[("noisy", 0.1)] = distributions.fig2_runs(profile, dataset, seed, control=False)["noisy"]
    vgg.update({(norm, 0.1): h for norm, h in lp.vgg_runs(profile, dataset, seed).items()})
    return {"vgg": vgg, "dln": lp.dln_runs(profile, seed)}
