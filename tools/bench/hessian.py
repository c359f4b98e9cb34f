"""Section `hessian`: our top Hessian eigenvalue (bnlib.probes.hessian.lanczos) against PyHessian's
power iteration (optional: `pip install pyhessian`), in time, Hessian-vector products and accuracy.

Products are counted without touching torch or either method: a gradient hook on every parameter sees
each gradient computed with respect to it, once per torch.autograd.grad or backward call, so the calls
after the first (the gradient itself) are the Hessian-vector products.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bnlib import losses
from bnlib.probes.hessian import lanczos
from tools.bench.loop import bare_step, batch, vgg_task
from tools.bench.util import heading, ratio, scaled, sync, table


class GradientCalls:
    """Counts the gradient computations that reach a model's parameters, and keeps one estimate per
    product: <g_prev, g> / |g_prev|, power iteration's eigenvalue estimate (its next vector is the last
    product normalised; NaN for the first, from a random vector), so PyHessian's trajectory is read
    without changing it."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.calls = 0
        self.estimates: list[float] = []
        self._prev: list[torch.Tensor] | None = None
        self._parts: dict[int, torch.Tensor] = {}
        self._count = len(params)
        self._handles = [p.register_hook(self._hook(i)) for i, p in enumerate(params)]

    def _hook(self, i: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self._parts[i] = grad.detach().reshape(-1).clone()
            if len(self._parts) == self._count:
                self._complete([self._parts[j] for j in range(self._count)])
                self._parts = {}
        return hook

    def _complete(self, parts: list[torch.Tensor]) -> None:
        if self._prev is not None and self.calls >= 2:  # calls: 0 the gradient, 1 the first product (random v)
            dot = sum(float(a @ b) for a, b in zip(self._prev, parts, strict=True))
            norm = math.sqrt(sum(float(a @ a) for a in self._prev))
            estimate = ratio(dot, norm)
            self.estimates.append(math.nan if estimate is None else estimate)
        elif self.calls == 1:
            self.estimates.append(math.nan)  # the first product's vector is PyHessian's random start
        self._prev = parts
        self.calls += 1

    @property
    def products(self) -> int:
        return max(0, self.calls - 1)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def counted(model: nn.Module) -> Iterator[GradientCalls]:
    calls = GradientCalls([p for p in model.parameters() if p.requires_grad])
    try:
        yield calls
    finally:
        calls.remove()


class KeepMode(nn.Module):
    """Wraps a model so PyHessian's `model.eval()` leaves it in training mode (BN on batch statistics),
    the mode our probes measure the landscape in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def eval(self) -> KeepMode:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def run_timed(model: nn.Module, fn: Callable[[nn.Module], float], device: torch.device) -> dict[str, Any]:
    """fn(model) with its seconds, Hessian-vector products and power-iteration estimates."""
    sync(device)
    t0 = time.perf_counter()
    with counted(model) as calls:
        value = float(fn(model))
    sync(device)
    return {"value": value, "seconds": time.perf_counter() - t0, "hvps": calls.products, "trajectory": calls.estimates}


def pyhessian_top(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tol: float, max_iter: int) -> float:
    from pyhessian import hessian

    with warnings.catch_warnings():  # PyHessian's backward(create_graph=True) warns about a ref cycle
        warnings.simplefilter("ignore", UserWarning)
        h = hessian(KeepMode(model), losses.for_model("vgg").of, data=(x, y), cuda=x.is_cuda)
        return h.eigenvalues(maxIter=max_iter, tol=tol, top_n=1)[0][0]


def measure(args: argparse.Namespace, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            device: torch.device) -> dict[str, dict[str, Any]]:
    """Ours, PyHessian at the same tolerance, and a tight-tolerance PyHessian reference, each after an
    untimed warm-up (the process's first double backward) and each on its own copy of the model."""
    iters, tol = args.hessian_iters, args.hessian_tol
    results: dict[str, dict[str, Any]] = {}
    ritz: list[float] = []  # our top Ritz value after each product: the estimate's trajectory
    loss = losses.for_model("vgg")
    lanczos(copy.deepcopy(model), loss, x, y, iters=2, seed=0)
    results["ours"] = run_timed(copy.deepcopy(model), lambda m: lanczos(
        m, loss, x, y, iters=iters, tol=tol, seed=0, which="top", trace=ritz)["top_eig"], device)
    results["ours"]["trajectory"] = ritz
    try:
        import pyhessian  # noqa: F401
    except ImportError as err:
        results["pyhessian"] = {"error": f"not installed ({err}); .venv/bin/pip install pyhessian"}
        return results
    pyhessian_top(copy.deepcopy(model), x, y, tol, 2)
    torch.manual_seed(0)
    results["pyhessian"] = run_timed(copy.deepcopy(model), lambda m: pyhessian_top(m, x, y, tol, iters), device)
    if args.hessian_reference:
        torch.manual_seed(1)
        results["reference"] = run_timed(copy.deepcopy(model),
                                         lambda m: pyhessian_top(m, x, y, tol / 100, 3 * iters), device)
    return results


def first_within(estimates: Sequence[float], reference: float, tol: float) -> int | None:
    """Products a method needed for its estimate to come within tol of the reference (None: never)."""
    hits = [i + 1 for i, q in enumerate(estimates) if abs(q - reference) <= tol * abs(reference)]
    return hits[0] if hits else None


def per_hvp(r: dict[str, Any]) -> float | None:
    return ratio(r["seconds"], r["hvps"])


def rel(a: float, b: float) -> float | None:
    return ratio(abs(a - b), abs(b))


def report(results: dict[str, dict[str, Any]], tol: float) -> None:
    """Agreement, time per product and time at equal accuracy; 'n/a' wherever a figure cannot be formed."""
    ours, py, ref = results["ours"], results["pyhessian"], results.get("reference")
    agreement = f"agreement: ours vs PyHessian relative difference {fmt_e(rel(ours['value'], py['value']))}"
    if ref:
        agreement += (f"; relative difference from the reference: ours {fmt_e(rel(ours['value'], ref['value']))}, "
                      f"PyHessian {fmt_e(rel(py['value'], ref['value']))}")
    print(agreement)
    print(f"time ours/PyHessian (each at tolerance {tol:g} under its own stopping rule) = "
          f"{fmt_e(ratio(ours['seconds'], py['seconds']))} in total, {fmt_e(ratio(per_hvp(ours), per_hvp(py)))} per "
          f"HVP (< 1: ours is faster)")
    if not ref:
        return
    # power iteration: PyHessian's own run, or (when its stopping rule quit early) the reference run
    power = "pyhessian" if first_within(py["trajectory"], ref["value"], tol) else "reference"
    ours_n = first_within(ours["trajectory"], ref["value"], tol)
    power_n = first_within(results[power]["trajectory"], ref["value"], tol)
    if ours_n and power_n:
        at_equal = ratio(scaled(per_hvp(ours), ours_n), scaled(per_hvp(results[power]), power_n))
        print(f"equal accuracy (within {tol:g} of the reference): ours after {ours_n} HVPs, PyHessian's power "
              f"iteration ({power} run) after {power_n}; time ours/PyHessian at equal accuracy = {fmt_e(at_equal)} "
              f"(< 1: ours is faster)")
    else:
        print(f"equal accuracy (within {tol:g} of the reference): ours after {ours_n or 'none'} of "
              f"{ours['hvps']} HVPs, PyHessian after {power_n or 'none'} of {results[power]['hvps']}")


def fmt_e(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}" if abs(value) < 0.01 else f"{value:.2f}"


LABELS = {"ours": "ours (bnlib.probes.hessian.top_eigenvalue)", "pyhessian": "PyHessian 0.1 (hessian(...).eigenvalues)",
          "reference": "PyHessian, tol / 100, up to 3 x HVPs (reference value)"}


def section_hessian(args: argparse.Namespace, profile: str, device: str) -> None:
    p, dev, config, task = vgg_task(profile, args.dataset, device)
    heading(f"3. Hessian top eigenvalue: ours vs PyHessian (VGG/BN width {p.vgg_width:g}, one batch of "
            f"{p.batch_size}, training-mode BN for both)")
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    task.model.train()
    for step in range(args.warmup):  # leave initialisation so the spectrum is a trained one's
        bare_step(task.model, optimizer, *batch(task, config, step))
    x, y = task.x_train[:config.batch_size], task.y_train[:config.batch_size]
    results = measure(args, task.model, x, y, dev)
    rows = [[LABELS[k], r.get("value"), r.get("hvps"), r.get("seconds"), scaled(per_hvp(r), 1000) if "hvps" in r
             else None, r.get("error", "")] for k, r in results.items()]
    print(table(["method", "top eigenvalue", "HVPs", "seconds", "ms/HVP", "note"], rows))
    print(f"each: at most {args.hessian_iters} Hessian-vector products (HVPs), tolerance {args.hessian_tol:g} under "
          f"its own stopping rule (ours: see bnlib.probes.hessian; PyHessian: power iteration, relative change of "
          f"the estimate); model after {args.warmup} SGD steps; batch = the first {config.batch_size} training "
          f"images; seconds include building the gradient graph; HVPs counted by gradient hooks.")
    if "error" not in results["pyhessian"]:
        report(results, args.hessian_tol)
