"""What every chapter says about how its figures were made: profile, dataset, device."""

from __future__ import annotations

from typing import Any

import torch

from bnlib import data as bdata
from bnlib.profiles import Profile, resolve


def setup_summary(profile: Profile | str | None, dataset: str = "auto") -> str:
    """One Markdown paragraph naming the profile, the dataset actually used, and the device."""
    p = resolve(profile)
    name = bdata.resolve_name(dataset)
    source = bdata._fetch_cached(name, True)[1]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    width = f"{p.vgg_width:g}x VGG-16 widths" if p.vgg_width != 1 else "full VGG-16 widths"
    return (f"**How this page was computed.** Profile `{p.name}` ({width}, {p.vgg_steps} SGD steps of batch "
            f"{p.batch_size}; DLN {p.dln_steps} full-batch steps on {p.dln_points} points) on **{source}**, "
            f"device: {device}, torch {torch.__version__}. The paper used CIFAR-10 at profile `paper`.")


def show_setup(profile: Profile | str | None, dataset: str = "auto") -> Any:
    from IPython.display import Markdown

    return Markdown(setup_summary(profile, dataset))
