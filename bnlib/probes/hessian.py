"""Beyond the paper: the real local smoothness, the top eigenvalue of the training-loss Hessian.

The paper's "effective beta-smoothness" is a finite-difference estimate along -g; the Hessian's
extreme eigenvalues give the beta of the loss near w in every direction (beta = max |lambda|).
We get them by Lanczos on Hessian-vector products (PyHessian uses power iteration; Lanczos
needs fewer products for the same accuracy), each product a double backward pass:
`torch.autograd.grad(grad, params, grad_outputs=v)` through a graph built with `create_graph=True`.
We use double backward rather than torch.func transforms on purpose:
forward-mode / functional transforms over training-mode BatchNorm (batch statistics, in-place
running-stat updates) are a known trap, and double backward is the same autograd path the
training step takes. The loss is the training-mode loss on the step's batch (the one the
optimiser sees); noisy BN replays the step's noise. The model is left exactly as found.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlib import checks
from bnlib.probes.base import LossFn, Probe, StepContext, preserved, set_rng_state


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def lanczos(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, iters: int = 20,
            tol: float = 1e-3, seed: int = 0, rng: dict[str, Any] | None = None, which: str = "both",
            trace: list[float] | None = None) -> dict[str, float]:
    """Extreme Hessian eigenvalues of the training-mode loss by Lanczos on Hessian-vector products.

    Lanczos (full reorthogonalisation) needs far fewer products than power iteration and gives both
    ends of the spectrum. The basis is one preallocated matrix and each reorthogonalisation is two
    matrix-vector products (classical Gram-Schmidt, done twice: as accurate as subtracting one vector
    at a time, and one pass over the basis instead of k on a memory-bound full-width GPU run).
    Iterates until the residual of the extreme Ritz pair(s) named by `which` ("both", or "top") is
    below `tol` relative to the spectral norm (it bounds the eigenvalue's error), or `iters` products
    (the cap) are spent. Returns `top_eig`, `min_eig`, the products
    used, each end's relative residual, the one the stopping rule reads (`rel_residual`) and
    `converged` (False: the cap stopped it); `trace` receives the top Ritz value after every product.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if which not in ("both", "top"):
        raise ValueError(f"which must be 'both' or 'top', got {which!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    shapes = [p.shape for p in params]
    with preserved(model):
        if rng:  # replay the training step's noise draw (noisy BN)
            set_rng_state(rng)
        loss = loss_fn(model, x, y)
        grads = torch.autograd.grad(loss, params, create_graph=True)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            parts = list(torch.split(v, [math.prod(s) for s in shapes]))
            vs = [t.view(s) for t, s in zip(parts, shapes, strict=True)]
            return _flat(torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)).detach()

        n = sum(math.prod(s) for s in shapes)
        dtype, device = params[0].dtype, params[0].device
        v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)
        basis = torch.empty(min(iters, n), n, dtype=dtype, device=device)  # row k: the k-th Lanczos vector
        basis[0] = v / v.norm()
        alphas: list[float] = []
        betas: list[float] = []
        result: dict[str, Any] = {}
        cap = min(iters, n)
        for k in range(1, cap + 1):
            q = basis[:k]
            w = hvp(q[-1])
            alphas.append(float(w @ q[-1]))
            for _ in range(2):  # full reorthogonalisation against every earlier vector, twice for stability
                w = w - (q @ w) @ q
            beta = float(w.norm())
            theta, s = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
            scale = max(abs(theta[-1]), abs(theta[0]), 1e-30)  # the spectral norm estimate
            top_res, min_res = beta * abs(s[-1, -1]) / scale, beta * abs(s[-1, 0]) / scale
            residual = top_res if which == "top" else max(top_res, min_res)
            exhausted = beta <= 1e-12 * scale or k == n  # an invariant subspace: the Ritz values are exact
            if trace is not None:
                trace.append(float(theta[-1]))
            result = {"top_eig": float(theta[-1]), "min_eig": float(theta[0]), "iters": k,
                      "rel_residual": float(residual), "top_residual": float(top_res),
                      "min_residual": float(min_res), "converged": bool(residual <= tol or exhausted)}
            if not math.isfinite(beta) or result["converged"] or k == cap:
                break
            betas.append(beta)
            basis[k] = w / beta
    return result


def top_eigenvalue(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, iters: int = 20,
                   tol: float = 1e-3, seed: int = 0, rng: dict[str, Any] | None = None) -> float:
    """The largest eigenvalue of the Hessian of loss_fn(model, x, y) in training mode; the model is untouched."""
    return lanczos(model, loss_fn, x, y, iters, tol, seed, rng, which="top")["top_eig"]


def finite_difference_hessian(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor,
                              rng: dict[str, Any] | None = None, h: float = 1e-5) -> np.ndarray:
    """The full Hessian by central differences of first-order gradients (no double backward), symmetrised.

    The independent reference for tiny models: 2 x (number of parameters) gradient evaluations,
    so use float64 models with at most a few hundred parameters. Runs on a copy of the model.
    """
    model = copy.deepcopy(model)
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def grad_at(w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(w, params)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        if rng:
            set_rng_state(rng)
        return _flat(torch.autograd.grad(loss_fn(model, x, y), params))

    cols = []
    for i in range(len(flat)):
        e = torch.zeros_like(flat)
        e[i] = h
        cols.append((grad_at(flat + e) - grad_at(flat - e)) / (2 * h))
    hess = torch.stack(cols, 1).detach().cpu().numpy()
    return (hess + hess.T) / 2


MAX_ITERS = 50  # the probe's default cap on Hessian-vector products per measurement


class HessianProbe(Probe):
    """Top and bottom Hessian eigenvalue of the step's training loss: Lanczos until both ends' relative
    residuals meet `tol`, or `iters` HVPs (the cap; each record says whether it converged)."""

    name = "hessian"

    def __init__(self, every: int, iters: int = MAX_ITERS, tol: float = 1e-2, seed: int = 0) -> None:
        super().__init__(every)
        checks.check_int("hessian probe: iters", iters, 1)
        checks.check_number("hessian probe: tol", tol, 0, 1)
        checks.check_seed(seed, "hessian probe: seed")
        self.iters, self.tol, self.seed = iters, tol, seed

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every, "iters": self.iters, "tol": self.tol, "seed": self.seed}

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        return lanczos(ctx.model, ctx.loss_fn, ctx.x, ctx.y, self.iters, self.tol, self.seed + ctx.step,
                       ctx.rng_before_forward)


def hessian_series(history: dict[str, Any]) -> dict[str, np.ndarray]:
    """Steps, top and bottom eigenvalue, beta = max |eigenvalue|, products used, residuals and whether
    each measurement converged, over training."""
    records = history.get("probes", {}).get("hessian")
    if records is None:
        raise ValueError(f"this run carries no 'hessian' probe records; probes present: "
                         f"{sorted(history.get('probes', {}))}")
    top = np.array([r["top_eig"] for r in records], dtype=float)
    bottom = np.array([r["min_eig"] for r in records], dtype=float)
    return {"steps": np.array([r["step"] for r in records], dtype=int),
            "top_eig": top, "min_eig": bottom, "beta": np.maximum(np.abs(top), np.abs(bottom)),
            "iters": np.array([r["iters"] for r in records], dtype=int),
            "rel_residual": np.array([r["rel_residual"] for r in records], dtype=float),
            **{k: np.array([r.get(k, np.nan) for r in records], dtype=float) for k in ("top_residual", "min_residual")},
            "converged": np.array([r.get("converged", False) for r in records], dtype=bool)}
