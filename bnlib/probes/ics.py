"""Internal covariate shift in the optimisation view (Santurkar et al. 2018, Definition 2.1).

For layer i at step t, on the training batch (x_t, y_t) of that step:

    G  = grad_{W_i} L(W_1^t,   ..., W_{i-1}^t,   W_i^t, ..., W_k^t)
    G' = grad_{W_i} L(W_1^t+1, ..., W_{i-1}^t+1, W_i^t, ..., W_k^t)

ICS is ||G - G'||_2 (0 when the earlier layers' update leaves layer i's gradient alone) and
cos(G, G') (1 likewise). "Layers 1..i-1" means every parameter of blocks 1..i-1 (weights,
biases, BN gamma/beta), moved by exactly the update the optimiser is about to apply.

Which noise sample: with noisy BatchNorm the loss is random. G is the gradient under the noise
drawn in this step's forward pass, so G' is taken under the SAME draw (the RNG is reset to its
state before that forward pass). With fresh noise, ||G - G'|| would mostly measure the noise,
which is there whether or not earlier layers move, and not the shift the definition is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlib.probes.base import Probe, StepContext, preserved, set_rng_state
from bnlib.profiles import Profile

VGG_LAYERS = (5, 10)  # Figure 3, top
DLN_LAYERS = (9, 17)  # Figure 3, bottom


def sgd_step(param: nn.Parameter, optimizer: torch.optim.Optimizer | None, lr: float) -> torch.Tensor:
    """The change `optimizer.step()` would make to `param` now (torch.optim.SGD semantics).

    Reads lr, momentum, dampening, nesterov, weight decay and maximize from the param group and
    the momentum buffer from the optimiser state, without touching either. With no optimiser:
    plain SGD at `lr`.
    """
    g = param.grad.detach()
    if optimizer is None:
        return -lr * g
    if not isinstance(optimizer, torch.optim.SGD):
        raise TypeError(f"ICS probe: optimizer must be torch.optim.SGD (or None), got {type(optimizer).__name__}")
    group = next((grp for grp in optimizer.param_groups if any(p is param for p in grp["params"])), None)
    if group is None:
        raise ValueError("ICS probe: a parameter of the model is not in the optimizer's param groups")
    d = -g if group.get("maximize", False) else g
    if group["weight_decay"]:
        d = d + group["weight_decay"] * param.detach()
    momentum = group["momentum"]
    if momentum:
        buf = optimizer.state.get(param, {}).get("momentum_buffer")
        buf = d.clone() if buf is None else buf * momentum + (1 - group["dampening"]) * d
        d = d + momentum * buf if group["nesterov"] else buf
    return -group["lr"] * d


class ICSProbe(Probe):
    """||G - G'||_2, cos(G, G') and ||G|| for each requested layer (paper numbering).

    Cost: one extra forward pass and one backward pass (stopping at W_i) per layer, in training
    mode (batch statistics, as the training step), inside `preserved` so the run is untouched.
    Layers are visited in increasing order so the earlier blocks' updates accumulate in place.
    """

    name = "ics"

    def __init__(self, every: int, layers: Sequence[int]) -> None:
        super().__init__(every)
        layers = tuple(layers)
        if not layers or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in layers):
            raise ValueError(f"ICS probe: layers must be a non-empty list of ints >= 1, got {layers!r}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"ICS probe: layers must not repeat, got {layers!r}")
        self.layers = tuple(sorted(layers))

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every, "layers": list(self.layers)}

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        model = ctx.model
        n = getattr(model, "num_layers", None)
        if n is None or max(self.layers) > n:
            raise ValueError(f"ICS probe: layers {list(self.layers)} must lie in 1..{n} for this model")
        weights = [model.layer(k).weight for k in self.layers]
        grads = [w.grad.detach().clone() for w in weights]  # G: the training step's own gradient
        # the update of every parameter of blocks 1..max(layers)-1, computed before anything moves
        updates = [[(p, sgd_step(p, ctx.optimizer, ctx.lr)) for p in model.block(b).parameters() if p.grad is not None]
                   for b in range(1, max(self.layers))]
        record: dict[str, Any] = {"layers": list(self.layers), "l2": [], "cos": [], "g_norm": [], "gp_norm": []}
        with preserved(model):
            done = 1  # blocks 1..done-1 have taken their step
            for k, w, g in zip(self.layers, weights, grads, strict=True):
                with torch.no_grad():
                    for b in range(done, k):
                        for p, delta in updates[b - 1]:
                            p.add_(delta)
                done = k
                set_rng_state(ctx.rng_before_forward)  # same noise sample as the training step
                loss = ctx.loss_fn(model, ctx.x, ctx.y)
                (gp,) = torch.autograd.grad(loss, w)
                record["l2"].append((g - gp).norm().item())
                record["cos"].append(nn.functional.cosine_similarity(g.flatten(), gp.flatten(), dim=0).item())
                record["g_norm"].append(g.norm().item())
                record["gp_norm"].append(gp.norm().item())
        return record


def ics_series(history: dict[str, Any], layer: int) -> dict[str, np.ndarray]:
    """The ICS records of `layer` over training: steps, l2 = ||G - G'||, cos(G, G'), g_norm = ||G||."""
    records = history.get("probes", {}).get(ICSProbe.name)
    if not records:
        raise ValueError("ics_series: this run carries no 'ics' probe records")
    if layer not in records[0]["layers"]:
        raise ValueError(f"ics_series: layer must be one of the probed layers {records[0]['layers']}, got {layer!r}")
    j = records[0]["layers"].index(layer)
    out = {"steps": np.array([r["step"] for r in records], dtype=np.int64)}
    for key in ("l2", "cos", "g_norm", "gp_norm"):
        out[key] = np.array([r[key][j] for r in records], dtype=np.float64)
    return out


def vgg_probes(profile: Profile) -> list[Probe]:
    """Figure 3 (top): layers #5 and #10, every profile.probe_every steps."""
    return [ICSProbe(profile.probe_every, VGG_LAYERS)]


def dln_probes(profile: Profile) -> list[Probe]:
    """Figure 3 (bottom): layers #9 and #17, every profile.dln_probe_every steps."""
    return [ICSProbe(profile.dln_probe_every, DLN_LAYERS)]
