"""The canonical runs every chapter shares: one per (model, norm, lr, seed, profile, dataset).

Each canonical run carries every probe module's default probes, so a chapter asking for
VGG/BN at LR 0.1 gets the same cached run (with histograms, ICS and landscape records) as any
other chapter asking for it.
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


def vgg_run(profile: Profile | str | None, norm: str, lr: float, dataset: str = "auto", seed: int = 0,
            progress: bool = True, **kw: Any) -> dict[str, Any]:
    """The canonical VGG run (cached), with every default probe."""
    return runs.run(vgg_config(profile, norm, lr, dataset, seed, **kw), vgg_probes(profile), progress=progress)


def dln_run(profile: Profile | str | None, norm: str, lr: float, seed: int = 0, progress: bool = True,
            **kw: Any) -> dict[str, Any]:
    """The canonical DLN run (cached), with every default probe."""
    return runs.run(dln_config(profile, norm, lr, seed, **kw), dln_probes(profile), progress=progress)
