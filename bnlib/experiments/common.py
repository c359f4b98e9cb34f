"""The canonical runs every chapter shares: one per (model, norm, lr, seed, profile, dataset).

A canonical run carries the default probes that the chapters read from it (the union, when
several chapters share it: VGG/BN at LR 0.1 has histograms, ICS, landscape and Hessian records).
A run the table does not name carries every default probe. Since a run's cache key covers the
code of exactly the probes it carries, a change to one probe retrains only the runs carrying it.

Every run function trains a `Planned` (config, probes) that a `*_plan` function lists first, so
a chapter can say what it will train (bnlib.plan) from the same source that trains it.
"""

from __future__ import annotations

from typing import Any

from bnlib import runs
from bnlib.models import NoiseConfig
from bnlib.probes import activations, ics, landscape
from bnlib.probes.base import Probe
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig

PROBE_MODULES = (activations, ics, landscape)
ALL = ("activations", "ics", "landscape", "hessian")

Planned = tuple[RunConfig, list[Probe]]  # what one cached run trains: its config and the probes it carries

# (norm, lr) -> the probes the chapters read from that canonical run
VGG_READS: dict[tuple[str, float], tuple[str, ...]] = {
    ("none", 0.1): ALL, ("batch", 0.1): ALL,  # chapters 1-4
    ("none", 0.5): ("activations",), ("batch", 0.5): ("activations",),  # ch. 1, Figure 1 at LR 0.5
    ("noisy", 0.1): ("activations",), ("noise_only", 0.1): ("activations",),  # ch. 2
    ("none", 0.01): ("ics",), ("batch", 0.01): ("ics",),  # ch. 3, Figure 3 at LR 0.01
    **{(norm, 0.1): ("activations", "landscape") for norm in ("l1", "l2", "linf")},  # ch. 5
}
DLN_READS: dict[tuple[str, float], tuple[str, ...]] = {
    ("none", 1e-6): ALL, ("batch", 1e-6): ALL,  # ch. 3 (Figures 3 and 9), 4, 5
    ("none", 1e-7): ("ics",), ("batch", 1e-7): ("ics",),  # ch. 3
    **{(norm, 1e-6): ("landscape",) for norm in ("l1", "l2", "linf")},  # ch. 5
}


def vgg_config(profile: Profile | str | None, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
               steps: int | None = None, noise: NoiseConfig = NoiseConfig()) -> RunConfig:
    """VGG run config at the profile's scale (paper: width 1, batch 128, 15k steps)."""
    p = resolve(profile)
    return RunConfig(model="vgg", norm=norm, lr=lr, steps=steps or p.vgg_steps, batch_size=p.batch_size,
                     seed=seed, width=p.vgg_width, dataset=dataset, n_train=p.n_train, n_test=p.n_test,
                     eval_every=p.eval_every, noise=noise)


def dln_config(profile: Profile | str | None, norm: str, lr: float, seed: int = 0,
               steps: int | None = None) -> RunConfig:
    """DLN run config (25 x 10x10, full batch of dln_points, paper: 1000 points, 10k steps)."""
    p = resolve(profile)
    return RunConfig(model="dln", norm=norm, lr=lr, steps=steps or p.dln_steps, dln_points=p.dln_points,
                     seed=seed, eval_every=max(1, p.dln_probe_every))


def vgg_probes(profile: Profile | str | None) -> list[Probe]:
    p = resolve(profile)
    return [probe for module in PROBE_MODULES for probe in module.vgg_probes(p)]


def dln_probes(profile: Profile | str | None) -> list[Probe]:
    p = resolve(profile)
    return [probe for module in PROBE_MODULES for probe in module.dln_probes(p)]


def _carried(probes: list[Probe], names: tuple[str, ...]) -> list[Probe]:
    return [probe for probe in probes if probe.name in names]


def vgg_planned(profile: Profile | str | None, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
                **kw: Any) -> Planned:
    """The canonical VGG run's config and the default probes VGG_READS names for it."""
    probes = _carried(vgg_probes(profile), VGG_READS.get((norm, lr), ALL))
    return vgg_config(profile, norm, lr, dataset, seed, **kw), probes


def dln_planned(profile: Profile | str | None, norm: str, lr: float, seed: int = 0, **kw: Any) -> Planned:
    """The canonical DLN run's config and the default probes DLN_READS names for it."""
    return dln_config(profile, norm, lr, seed, **kw), _carried(dln_probes(profile), DLN_READS.get((norm, lr), ALL))


def train_planned(planned: Planned, progress: bool = True) -> dict[str, Any]:
    """The history of a planned run (from the cache when present, else trained)."""
    config, probes = planned
    return runs.run(config, probes, progress=progress)


def vgg_run(profile: Profile | str | None, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
            progress: bool = True, **kw: Any) -> dict[str, Any]:
    """The canonical VGG run (cached), with the default probes VGG_READS names for it."""
    return train_planned(vgg_planned(profile, norm, lr, dataset, seed, **kw), progress)


def dln_run(profile: Profile | str | None, norm: str, lr: float, seed: int = 0, progress: bool = True,
            **kw: Any) -> dict[str, Any]:
    """The canonical DLN run (cached), with the default probes DLN_READS names for it."""
    return train_planned(dln_planned(profile, norm, lr, seed, **kw), progress)
