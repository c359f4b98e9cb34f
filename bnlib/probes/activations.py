"""Layer-input distributions of a few fixed random units, recorded as small histograms and moments.

A unit is a channel of a conv layer (its distribution is over batch x height x width) or a
coordinate of a linear layer (over the batch). Values are read at the output of
`model.block(k).norm`, i.e. what the non-linearity sees, during the training forward pass
itself: a forward hook added in `before_forward` fires once and removes itself, so the run
computes exactly what it would without the probe (no extra forward, no RNG use).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlib.probes.base import Probe, StepContext
from bnlib.profiles import Profile

NAME = "activations"


def unit_choice(num_units: int, count: int, seed: int, layer: int) -> list[int]:
    """The fixed random units of a layer: seeded by (seed, layer), never touching the global RNG."""
    gen = torch.Generator().manual_seed(seed * 1009 + layer)
    return sorted(torch.randperm(num_units, generator=gen)[:count].tolist())


def unit_samples(out: torch.Tensor, units: Sequence[int]) -> torch.Tensor:
    """(U, samples): each unit's values over batch (linear) or batch x H x W (conv)."""
    picked = out.detach()[:, list(units)]
    return picked.transpose(0, 1).reshape(len(units), -1)


def summarize(values: torch.Tensor, bins: int) -> dict[str, np.ndarray]:
    """Per-unit mean, (population) variance, and a `bins`-bin histogram over the unit's own range."""
    v = values.double()
    mean, var = v.mean(dim=1), v.var(dim=1, unbiased=False)
    lo, hi = v.amin(dim=1), v.amax(dim=1)
    counts = torch.zeros(len(v), bins, dtype=torch.int64)
    for i in range(len(v)):
        if not (torch.isfinite(lo[i]) and torch.isfinite(hi[i])):
            continue  # a diverged unit: moments are NaN/inf, the histogram stays empty
        if hi[i] - lo[i] < 1e-12:  # constant unit: a unit-wide range centred on the value
            lo[i], hi[i] = lo[i] - 0.5, hi[i] + 0.5
        # on the CPU: CUDA's histc has no deterministic kernel (it raises under exact_numerics on a GPU)
        counts[i] = torch.histc(v[i].cpu(), bins=bins, min=lo[i].item(), max=hi[i].item()).round().long()
    as_np = {"mean": mean, "var": var, "lo": lo, "hi": hi}
    return {**{k: t.cpu().numpy() for k, t in as_np.items()}, "counts": counts.numpy()}


class ActivationProbe(Probe):
    """Histograms and moments of `units` fixed random units per layer in `layers` (paper numbering)."""

    name = NAME

    def __init__(self, every: int, layers: Sequence[int], units: int = 4, bins: int = 40, seed: int = 0) -> None:
        super().__init__(every)
        layers = list(layers)
        if not layers or not all(isinstance(k, int) and k >= 1 for k in layers):
            raise ValueError(f"activations probe: layers must be a non-empty list of ints >= 1, got {layers!r}")
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"activations probe: units must be an int >= 1, got {units!r}")
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"activations probe: bins must be an int >= 2, got {bins!r}")
        self.layers, self.units, self.bins, self.seed = layers, units, bins, seed
        self._handles: list[Any] = []
        self._records: dict[int, dict[str, Any]] = {}

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every, "layers": self.layers, "units": self.units, "bins": self.bins, "seed": self.seed}

    def _hook(self, layer: int):
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            if layer in self._records:  # only the training forward, never a later probe's re-forward
                return
            units = unit_choice(out.shape[1], self.units, self.seed, layer)
            with torch.no_grad():
                self._records[layer] = {"units": np.array(units), **summarize(unit_samples(out, units), self.bins)}

        return hook

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_forward(self, model: nn.Module, step: int) -> None:
        self._remove_hooks()
        self._records = {}
        for k in self.layers:
            self._handles.append(model.block(k).norm.register_forward_hook(self._hook(k)))

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        self._remove_hooks()
        records, self._records = self._records, {}
        missing = [k for k in self.layers if k not in records]
        if missing:
            raise RuntimeError(f"activations probe: layers {missing} were not reached by the forward pass")
        return {"layers": records}


def vgg_probes(profile: Profile) -> list[Probe]:
    """All 13 conv layers, 4 units each, at a 5x finer cadence than the heavier probes."""
    return [ActivationProbe(max(1, profile.probe_every // 5), layers=list(range(1, 14)))]


def dln_probes(profile: Profile) -> list[Probe]:
    """Figure 9's layers 1, 11 and 24 of the DLN, every dln_probe_every steps: its ridge plots draw at most 40
    rows (40 records at the cpu profile) and no claim reads the DLN's, so a finer cadence would only add probed
    steps (each runs the module path's forward and backward beside the written-out step: bnlib.dln_step)."""
    return [ActivationProbe(profile.dln_probe_every, layers=[1, 11, 24])]


# ---- accessors on a run's history (used by chapters, plots and claims) ----

def _records(history: dict[str, Any], layer: int) -> list[dict[str, Any]]:
    records = history.get("probes", {}).get(NAME)
    if not records:
        raise ValueError(f"this run has no {NAME!r} probe records (probes: {sorted(history.get('probes', {}))})")
    if layer not in records[0]["layers"]:
        raise ValueError(f"layer must be one of the recorded layers {sorted(records[0]['layers'])}, got {layer!r}")
    return records


def units(history: dict[str, Any], layer: int) -> np.ndarray:
    """Indices (channel / coordinate) of the layer's recorded units."""
    return np.asarray(_records(history, layer)[0]["layers"][layer]["units"])


def histograms(history: dict[str, Any], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps[T], edges[T, U, B+1], counts[T, U, B]) of the layer's recorded units."""
    records = _records(history, layer)
    steps = np.array([r["step"] for r in records])
    lo = np.stack([r["layers"][layer]["lo"] for r in records])
    hi = np.stack([r["layers"][layer]["hi"] for r in records])
    counts = np.stack([r["layers"][layer]["counts"] for r in records])
    frac = np.linspace(0.0, 1.0, counts.shape[-1] + 1)
    edges = lo[..., None] + (hi - lo)[..., None] * frac
    return steps, edges, counts


def moments(history: dict[str, Any], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps[T], mean[T, U], var[T, U]) of the layer's recorded units (variance over the samples)."""
    records = _records(history, layer)
    steps = np.array([r["step"] for r in records])
    mean = np.stack([r["layers"][layer]["mean"] for r in records])
    var = np.stack([r["layers"][layer]["var"] for r in records])
    return steps, mean, var


def moment_drift(history: dict[str, Any], layer: int) -> dict[str, np.ndarray]:
    """Figure 8's drift: step-to-step changes (between consecutive records) and shifts from the first.

    Keys: steps[T]; d_steps[T-1] (the later step of each pair); abs_dmean, abs_dvar [T-1, U]
    = abs(mu_t+1 - mu_t), abs(var_t+1 - var_t); mean_shift, var_shift [T, U] = mu_t - mu_0, var_t - var_0.
    """
    steps, mean, var = moments(history, layer)
    return {"steps": steps, "d_steps": steps[1:], "abs_dmean": np.abs(np.diff(mean, axis=0)),
            "abs_dvar": np.abs(np.diff(var, axis=0)), "mean_shift": mean - mean[:1], "var_shift": var - var[:1]}
