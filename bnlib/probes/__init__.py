"""Measurements taken during training that never change the trajectory they observe."""

from bnlib.probes.base import Probe, StepContext, preserved

__all__ = ["Probe", "StepContext", "preserved"]
