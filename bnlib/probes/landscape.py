"""Section 3.2's landscape probes: how far the loss and the gradient move along the gradient.

At a probed step with weights w, batch B, loss L and gradient g (the one the optimiser is about
to use, read from .grad), for each step size eta we evaluate L(w - eta g) and grad L(w - eta g)
on the same batch, in training-mode BN (the loss the optimiser sees; noisy BN redraws the
step's own noise), and record:
- the loss at each eta (the "loss landscape" is its range over eta),
- ||g - grad L(w - eta g)|| (the "gradient predictiveness" is its range over eta),
- ||g - grad L(w - eta g)|| / ||eta g||, whose max over eta is the "effective beta-smoothness".
This is an evaluation, not a step: everything is restored afterwards (`preserved`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bnlib.probes.base import Probe, StepContext, preserved, set_rng_state
from bnlib.probes.hessian import HessianProbe
from bnlib.profiles import Profile

# step sizes as multiples of the run's learning rate (paper: [1/2, 4] x LR for VGG, [1/100, 30] x LR for the DLN)
VGG_ETA_FACTORS = (0.5, 1.0, 2.0, 4.0)
DLN_ETA_FACTORS = (0.01, 0.1, 1.0, 3.0, 10.0, 30.0)
# the Hessian probe is several times dearer than the landscape probe: it runs this many times less often
HESSIAN_EVERY_FACTOR = 3
# caps on Lanczos products: the probe stops earlier once both ends' residuals meet its tolerance
VGG_HESSIAN_ITERS = 50
# the VGG's largest eigenvalues recorded (and converged to the tolerance, within the cap): the later-work chapter's
# outlier eigenvalues (Ghorbani et al. 2019)
VGG_HESSIAN_TOP_K = 5
# The DLN's, chosen from measurements of the canonical cpu runs (Standard and +BN at LR 1e-6; `python -m
# tools.bench --only dln` prints the costs): every measurement met the tolerance (1e-2 of the spectral norm)
# within 6 to 20 products, its top eigenvalue then within 1% of a converged reference (tolerance 1e-6), so a
# cap of 30 never stops one early and bounds what one measurement can cost. From step 250 on, both runs' top
# eigenvalue sits at 2 / LR (edge of stability): every 5 x dln_probe_every steps (8 points at the cpu profile,
# was 14) draws that line as well, at about 6% of either run's CPU time.
DLN_HESSIAN_ITERS = 30
DLN_HESSIAN_EVERY_FACTOR = 5


def _flat_norm(tensors: Sequence[torch.Tensor]) -> float:
    return float(torch.stack([t.double().norm() for t in tensors]).norm())


class LandscapeProbe(Probe):
    """Loss and gradient along -g at step sizes eta = factor x LR (Figure 4, 10, 11)."""

    name = "landscape"

    def __init__(self, every: int, eta_factors: Sequence[float] = VGG_ETA_FACTORS) -> None:
        super().__init__(every)
        factors = tuple(float(f) for f in eta_factors)
        if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
            raise ValueError(f"landscape probe: eta_factors must be a non-empty list of positive numbers, "
                             f"got {eta_factors!r}")
        self.eta_factors = tuple(sorted(factors))

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every, "eta_factors": list(self.eta_factors)}

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        return landscape_at(ctx, [f * ctx.lr for f in self.eta_factors])


def landscape_at(ctx: StepContext, etas: Sequence[float]) -> dict[str, Any]:
    """The record for one step: per-eta loss, gradient change, step length, and the derived ranges."""
    model = ctx.model
    params = [p for p in model.parameters() if p.requires_grad]
    g = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    g_norm = _flat_norm(g)
    losses, gdiffs, lengths = [], [], []
    with preserved(model):
        w0 = [p.detach().clone() for p in params]
        for eta in etas:
            with torch.no_grad():
                for p, w, gi in zip(params, w0, g, strict=True):
                    p.copy_(w - eta * gi)
            if ctx.rng_before_forward:  # noisy BN: the same noise draw as the training step
                set_rng_state(ctx.rng_before_forward)
            loss = ctx.loss_fn(model, ctx.x, ctx.y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            diff = [gi - (gj if gj is not None else torch.zeros_like(gi)) for gi, gj in zip(g, grads, strict=True)]
            losses.append(float(loss.detach()))
            gdiffs.append(_flat_norm(diff))
            lengths.append(eta * g_norm)
    ratios = [d / s if s > 0 else float("nan") for d, s in zip(gdiffs, lengths, strict=True)]
    # np.min/np.max propagate NaN, so a blown-up evaluation shows as NaN rather than being skipped
    return {
        "eta": list(etas), "loss": losses, "gdiff": gdiffs, "step_norm": lengths,
        "loss0": float(ctx.loss), "grad_norm": g_norm,
        "loss_min": float(np.min(losses)), "loss_max": float(np.max(losses)),
        "gdiff_min": float(np.min(gdiffs)), "gdiff_max": float(np.max(gdiffs)), "beta_eff": float(np.max(ratios)),
    }


def _records(history: dict[str, Any], name: str = "landscape") -> list[dict[str, Any]]:
    records = history.get("probes", {}).get(name)
    if records is None:
        raise ValueError(f"this run carries no {name!r} probe records; probes present: "
                         f"{sorted(history.get('probes', {}))}")
    return records


def landscape_series(history: dict[str, Any]) -> dict[str, np.ndarray]:
    """Figure 4/10's three measures over training: steps, loss range, gradient-change range, beta_eff."""
    recs = _records(history)
    keys = ("loss_min", "loss_max", "gdiff_min", "gdiff_max", "beta_eff")
    out = {"steps": np.array([r["step"] for r in recs], dtype=int)}
    out.update({k: np.array([r[k] for r in recs], dtype=float) for k in keys})
    return out


def gradient_change_curves(history: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 11: per probed step, the step sizes eta and ||g - grad L(w - eta g)|| at each."""
    return [{"step": r["step"], "eta": np.array(r["eta"], dtype=float), "gdiff": np.array(r["gdiff"], dtype=float)}
            for r in _records(history)]


def vgg_probes(profile: Profile) -> list[Probe]:
    """Landscape every probe_every steps; the (dearer) Hessian's top `VGG_HESSIAN_TOP_K` and bottom eigenvalues 3x
    less often; and, on the runs that carry it, the same Hessian with the normalisation's running statistics
    every other of those points."""
    every = HESSIAN_EVERY_FACTOR * profile.probe_every
    return [LandscapeProbe(profile.probe_every, VGG_ETA_FACTORS),
            HessianProbe(every, iters=VGG_HESSIAN_ITERS, top_k=VGG_HESSIAN_TOP_K),
            HessianProbe(2 * every, iters=VGG_HESSIAN_ITERS, top_k=VGG_HESSIAN_TOP_K, statistics="running")]


def dln_probes(profile: Profile) -> list[Probe]:
    """Landscape every dln_probe_every steps over [1/100, 30] x LR; Hessian 5x less often, at most 30 products."""
    return [LandscapeProbe(profile.dln_probe_every, DLN_ETA_FACTORS),
            HessianProbe(DLN_HESSIAN_EVERY_FACTOR * profile.dln_probe_every, iters=DLN_HESSIAN_ITERS)]
