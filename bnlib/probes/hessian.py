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
from bnlib.models import LpNorm
from bnlib.probes.base import LossFn, Probe, StepContext, preserved, set_rng_state


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _ritz(alphas: list[float], betas: list[float], beta: float, top_k: int, which: str) -> dict[str, Any]:
    """The Ritz values of the Lanczos tridiagonal so far and their residuals relative to the spectral norm
    (`beta` times the last component of each Ritz vector bounds that eigenvalue's error), and the residual the
    stopping rule reads: the worst of the `top_k` largest pairs' (and of the smallest pair's, for "both")."""
    theta, s = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
    scale = max(abs(theta[-1]), abs(theta[0]), 1e-30)  # the spectral norm estimate
    residuals = beta * np.abs(s[-1]) / scale
    top, top_res = theta[::-1][:top_k], residuals[::-1][:top_k]
    worst = float(top_res.max()) if which == "top" else float(max(top_res.max(), residuals[0]))
    return {"top_eig": float(theta[-1]), "min_eig": float(theta[0]), "top_eigs": [float(t) for t in top],
            "top_residuals": [float(r) for r in top_res], "rel_residual": worst, "top_residual": float(top_res[0]),
            "min_residual": float(residuals[0]), "scale": scale}


def lanczos(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, iters: int = 20,
            tol: float = 1e-3, seed: int = 0, rng: dict[str, Any] | None = None, which: str = "both",
            trace: list[float] | None = None, top_k: int = 1) -> dict[str, Any]:
    """Extreme Hessian eigenvalues of the training-mode loss by Lanczos on Hessian-vector products.

    Lanczos (full reorthogonalisation) needs far fewer products than power iteration and gives both ends of the
    spectrum. The basis is one preallocated matrix; each reorthogonalisation is two matrix-vector products
    (classical Gram-Schmidt, twice: as accurate as one vector at a time, in one pass over the basis).
    Iterates until the residuals (`_ritz`) of the `top_k` largest Ritz pairs, and of the smallest for `which`
    "both", are below `tol`, or `iters` products (the cap) are spent. Returns `_ritz`'s values, `rms_eig`
    (||H q|| for the random unit start q), the products used and `converged` (False: the cap stopped it);
    `trace` receives the top Ritz value after every product.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if which not in ("both", "top"):
        raise ValueError(f"which must be 'both' or 'top', got {which!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    shapes = [p.shape for p in params]
    with preserved(model):
        if rng:  # replay the training step's noise draw (noisy BN)
            set_rng_state(rng)
        grads = torch.autograd.grad(loss_fn(model, x, y), params, create_graph=True)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            vs = [t.view(s) for t, s in zip(torch.split(v, [math.prod(s) for s in shapes]), shapes, strict=True)]
            return _flat(torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)).detach()

        n = sum(math.prod(s) for s in shapes)
        dtype, device = params[0].dtype, params[0].device
        v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)
        cap = min(iters, n)
        basis = torch.empty(cap, n, dtype=dtype, device=device)  # row k: the k-th Lanczos vector
        basis[0] = v / v.norm()
        alphas, betas = [], []  # the tridiagonal matrix's diagonal and off-diagonal
        result: dict[str, Any] = {}
        for k in range(1, cap + 1):
            q = basis[:k]
            w = hvp(q[-1])
            if k == 1:  # ||H q|| for a random unit q: its square estimates tr(H^2) / n, the mean squared eigenvalue
                rms = float(w.norm())
            alphas.append(float(w @ q[-1]))
            for _ in range(2):  # full reorthogonalisation against every earlier vector, twice for stability
                w = w - (q @ w) @ q
            beta = float(w.norm())
            ritz = _ritz(alphas, betas, beta, top_k, which)
            exhausted = beta <= 1e-12 * ritz.pop("scale") or k == n  # an invariant subspace: the Ritz values are exact
            if trace is not None:
                trace.append(ritz["top_eig"])
            result = {**ritz, "rms_eig": rms, "iters": k,
                      "converged": bool((ritz["rel_residual"] <= tol and k >= top_k) or exhausted)}
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
STATISTICS = ("batch", "running")


def normalise_with_running_statistics(model: nn.Module) -> None:
    """Put every normalisation layer that keeps running statistics (BatchNorm, l_p) in evaluation mode, and only
    those: the loss is then the one the network computes at test time, everything else as in training."""
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, LpNorm)):
            m.eval()


class HessianProbe(Probe):
    """The Hessian's top `top_k` and bottom eigenvalues at the step's weights and batch: Lanczos until the residuals
    of those Ritz pairs meet `tol`, or `iters` HVPs (the cap; each record says whether it converged).

    `statistics` "batch": the training-mode loss (the optimiser's); "running": the same weights and batch with the
    normalisation layers using their running (population) statistics (`normalise_with_running_statistics`),
    recorded under the name "hessian_running" so that a run can carry both."""

    def __init__(self, every: int, iters: int = MAX_ITERS, tol: float = 1e-2, seed: int = 0, top_k: int = 1,
                 statistics: str = "batch") -> None:
        super().__init__(every)
        checks.check_int("hessian probe: iters", iters, 1)
        checks.check_number("hessian probe: tol", tol, 0, 1)
        checks.check_seed(seed, "hessian probe: seed")
        checks.check_int("hessian probe: top_k", top_k, 1, iters)
        checks.check_choice("hessian probe: statistics", statistics, STATISTICS)
        self.iters, self.tol, self.seed, self.top_k, self.statistics = iters, tol, seed, top_k, statistics
        self.name = "hessian" if statistics == "batch" else "hessian_running"

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every, "iters": self.iters, "tol": self.tol, "seed": self.seed, "top_k": self.top_k,
                "statistics": self.statistics}

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        with preserved(ctx.model):
            if self.statistics == "running":
                normalise_with_running_statistics(ctx.model)
            return lanczos(ctx.model, ctx.loss_fn, ctx.x, ctx.y, self.iters, self.tol, self.seed + ctx.step,
                           ctx.rng_before_forward, top_k=self.top_k)


def hessian_series(history: dict[str, Any], probe: str = "hessian") -> dict[str, np.ndarray]:
    """Steps, top and bottom eigenvalue, beta = max |eigenvalue|, products used, residuals and whether
    each measurement converged, over training, of the records of `probe` ("hessian", or "hessian_running"); with
    `top_eigs` and `top_residuals` (one row per record, NaN where a record holds fewer)."""
    records = history.get("probes", {}).get(probe)
    if records is None:
        raise ValueError(f"this run carries no {probe!r} probe records; probes present: "
                         f"{sorted(history.get('probes', {}))}")
    top = np.array([r["top_eig"] for r in records], dtype=float)
    bottom = np.array([r["min_eig"] for r in records], dtype=float)
    k = max((len(r.get("top_eigs", ())) for r in records), default=0)
    return {"steps": np.array([r["step"] for r in records], dtype=int),
            "top_eig": top, "min_eig": bottom, "beta": np.maximum(np.abs(top), np.abs(bottom)),
            "iters": np.array([r["iters"] for r in records], dtype=int),
            "rel_residual": np.array([r["rel_residual"] for r in records], dtype=float),
            **{k: np.array([r.get(k, np.nan) for r in records], dtype=float) for k in ("top_residual", "min_residual")},
            **{name: np.array([[*r.get(name, ()), *[np.nan] * (k - len(r.get(name, ())))] for r in records],
                              dtype=float).reshape(len(records), k) for name in ("top_eigs", "top_residuals")},
            "converged": np.array([r.get("converged", False) for r in records], dtype=bool)}
