"""Named run scales, so one notebook serves a test (smoke), a laptop (cpu) and the paper (paper).

Resolution order: an explicit name, then the BNLIB_PROFILE environment variable, then the
hardware (`gpu` when CUDA is available, `cpu` otherwise; `paper` is one argument away). The chapter
registry (`bnlib.book`) resolves once; everything below it takes the `Profile` itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from bnlib import checks
from bnlib.checks import BadParameter


@dataclass(frozen=True)
class Profile:
    """Every scale knob a chapter needs; the paper's values live in PROFILES['paper']."""

    name: str
    # VGG on images
    vgg_width: float  # channel multiplier on the VGG-16 widths (1.0 = 64..512 channels)
    vgg_steps: int  # SGD steps per run (paper: 15,000)
    batch_size: int  # paper: 128
    n_train: int | None  # training images used (None = the whole split)
    n_test: int | None  # test images used for evaluation (None = the whole split)
    eval_every: int  # steps between accuracy evaluations
    probe_every: int  # steps between probe measurements (histograms, ICS, landscape)
    # deep linear network
    dln_steps: int  # full-batch GD steps (paper: 10,000)
    dln_points: int  # dataset size = batch (paper: 1000)
    dln_probe_every: int
    # short runs behind the interactive controls
    widget_steps: int
    # every canonical run is trained once per seed; figures show their mean and spread, verdicts use all
    seeds: tuple[int, ...] = (0,)
    # more seeds for the claim groups the verdict rule cannot decide at `seeds` and that are cheap enough to train
    # again (bnlib.book.ClaimGroup.more): graded on seeds + more_seeds; empty for none
    more_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise BadParameter(f"profile field 'name' must be a non-empty str, got {self.name!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "name" or (value is None and field.name in ("n_train", "n_test")):
                continue
            if field.name == "seeds":
                checks.check_seeds("profile field 'seeds'", value)
                continue
            if field.name == "more_seeds":
                if value != ():
                    checks.check_seeds("profile field 'more_seeds'", value)
                if set(value) & set(self.seeds):
                    raise BadParameter(f"profile field 'more_seeds' {value!r} must not repeat a seed of 'seeds' "
                                       f"{self.seeds!r}")
                continue
            label = f"profile field {field.name!r}"
            if field.name == "vgg_width":
                checks.check_number(label, value, 0, checks.WIDTH_MAX, low_open=True)
            elif field.name in ("n_train", "n_test"):
                checks.check_optional_int(label, value)
            else:
                checks.check_int(label, value, 1)
        if self.n_train is not None and self.n_train < self.batch_size:
            raise BadParameter(f"profile field 'n_train' ({self.n_train}) must be >= batch_size "
                               f"({self.batch_size}), or None for the whole split")

    def replace(self, **changes: object) -> Profile:
        """A copy with some knobs changed (validated like the original)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            allowed = [f.name for f in dataclasses.fields(self)]
            raise BadParameter(f"unknown profile field(s) {sorted(unknown)}; allowed: {allowed}")
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", vgg_width=1 / 16, vgg_steps=24, batch_size=32, n_train=512, n_test=256,
        eval_every=8, probe_every=8, dln_steps=60, dln_points=200, dln_probe_every=20, widget_steps=8,
    ),
    # 1/8 width and 1,800 steps: the Standard VGG's plateau at Glorot init lasts a seed-dependent few hundred
    # steps (chapter 09_scaling_down measures it): all six measured seeds at this width passed 50% by step 563
    # with the default channels-last layout, but the plain layout took seed 1 to step 1,224 (a heavy tail)
    "cpu": Profile(
        name="cpu", vgg_width=1 / 8, vgg_steps=1800, batch_size=128, n_train=None, n_test=1000,
        eval_every=75, probe_every=75, dln_steps=10_000, dln_points=1000, dln_probe_every=250,
        widget_steps=150, seeds=(0, 1, 2), more_seeds=(3, 4, 5),
    ),
    # one Colab-class GPU (a T4): full width over the first 3,000 steps, where Figures 1-4's differences show
    "gpu": Profile(
        name="gpu", vgg_width=1.0, vgg_steps=3_000, batch_size=128, n_train=None, n_test=None,
        eval_every=300, probe_every=100, dln_steps=10_000, dln_points=1000, dln_probe_every=250,
        widget_steps=300,
    ),
    "paper": Profile(
        name="paper", vgg_width=1.0, vgg_steps=15_000, batch_size=128, n_train=None, n_test=None,
        eval_every=500, probe_every=500, dln_steps=10_000, dln_points=1000, dln_probe_every=250,
        widget_steps=1000,
    ),
}


def resolve(name: str | Profile | None = None) -> Profile:
    """The profile to use: explicit name, else $BNLIB_PROFILE, else by hardware."""
    if isinstance(name, Profile):
        return name
    if name is None or name == "":
        name = os.environ.get("BNLIB_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; allowed: {sorted(PROFILES)} (argument or BNLIB_PROFILE)")
    return PROFILES[name]
