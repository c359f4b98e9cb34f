"""Placeholder: filled by the issue that builds this probe."""

from __future__ import annotations

from bnlib.probes.base import Probe
from bnlib.profiles import Profile


def vgg_probes(profile: Profile) -> list[Probe]:
    """The probes of this module that every canonical VGG run carries, at the profile's cadence."""
    return []


def dln_probes(profile: Profile) -> list[Probe]:
    """The probes of this module that every canonical DLN run carries."""
    return []
