"""The deep linear network's training step written out: forward and backward through the linear chain and its
norms without autograd or module calls, and the SGD update as one operation.

Why: a DLN step is 25 products of a 10 x 10 weight with 10 x 1000 activations each way, so little arithmetic
that under autograd most of a step is per-operation overhead (module calls, graph building, the optimiser's
loop over 25 to 73 tensors): 1.6 ms (no norm) to 10 ms (l_p norms) a step on one CPU thread, 16 to 105 s for
the paper's 10,000 steps. Written out, a step is a few hundred tensor operations and no graph (0.3 to 2.5 ms):
activations stay features-first (10 x N, where a product takes half the time and per-unit statistics are row
reductions) in buffers allocated once, and the parameters and running statistics each live in one flat tensor
(the model's tensors become views of it: same objects, same values), so the update and each statistic's
running average are one operation each. `python -m tools.bench --only dln` (the repository's benchmark)
measures both.

What it computes: the loss, gradients, SGD update and running statistics of the module path (the model's
forward, autograd and torch.optim.SGD), in another order of floating-point operations: they agree to ~1e-15 in
float64 and to float32 rounding over steps (tests/test_dln_step.py). Over 10,000 float32 steps at the edge of
stability rounding differences grow at the loss spikes, as with any rounding change (another thread count):
on the Standard run at LR 1e-6 either path's loss differs from a float64 run's by up to 26% at an early spike
and by ~1e-5 elsewhere. A run stays bitwise reproducible for a given thread count.
Updates are in place, so checkpoints, evaluation and probes see the model as they always do. A probed step also
runs the module path's forward and backward (BN running statistics restored after it), so probes see the
gradients and activations they would see without this step; the update always comes from here, so a probe
never changes the trajectory. Covered: norms none, batch, l1, l2 and linf under plain SGD (no momentum, no
weight decay), on the CPU; other runs train through autograd. `BNLIB_DLN_FAST=0` turns it off (e.g. to compare).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bnlib.execution import env_flag
from bnlib.models import DLN, LpNorm
from bnlib.probes.base import Probe, StepContext, rng_state

if TYPE_CHECKING:
    from bnlib.train import RunConfig, Task

NORMS = ("none", "batch", "l1", "l2", "linf")
ENV = "BNLIB_DLN_FAST"


def enabled() -> bool:
    """$BNLIB_DLN_FAST: 1 (the default) uses the written-out step where it applies, 0 never."""
    return env_flag(ENV, True)


def applies(config: RunConfig, optimizer: torch.optim.Optimizer) -> bool:
    """Whether `config` trains through the written-out step: a DLN with a covered norm under plain SGD."""
    groups = optimizer.param_groups
    return (config.model == "dln" and config.norm in NORMS and enabled() and type(optimizer) is torch.optim.SGD
            and len(groups) == 1 and groups[0]["momentum"] == 0 and groups[0]["weight_decay"] == 0
            and not groups[0]["maximize"])


def pack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One flat tensor holding `tensors`' values, each tensor re-pointed to a view of it (the same Python object
    with the same values: modules, optimiser and state dicts keep working)."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    for t, view in zip(tensors, views(flat, tensors), strict=True):
        t.data = view
    return flat


def views(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Consecutive views of `flat` shaped as `tensors`."""
    return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]


class _Norm:
    """What both norms share: layer i's rows of the packed parameters, gradients and batch statistics, as columns
    (d x 1) that broadcast over a features-first activation."""

    def __init__(self, fast: FastDLN, i: int, module: nn.Module, stats: int) -> None:
        self.eps, self.inv_n, self.n = module.eps, fast.inv_n, fast.n
        self.weight = fast.norm_weight[i]
        self.weight_col, self.bias_col = self.weight.view(-1, 1), fast.norm_bias[i].view(-1, 1)
        self.dweight, self.dbias = fast.grad_norm_weight[i], fast.grad_norm_bias[i]
        self.stats = [fast.stats[j, i].view(-1, 1) for j in range(stats)]
        self.input3, self.dz3 = fast.pre_norm[i], fast.d_out[i]  # (1, d, n): what ATen's BN kernel takes
        self.input, self.dz = self.input3[0], self.dz3[0]


class _BatchNorm(_Norm):
    """nn.BatchNorm1d in training mode on features-first activations; the backward is ATen's own kernel."""

    def __init__(self, fast: FastDLN, i: int, module: nn.BatchNorm1d) -> None:
        super().__init__(fast, i, module, 3)
        self.eps_t = torch.tensor(module.eps, dtype=fast.inv_n.dtype, device=fast.inv_n.device)
        self.mean, self.var_eps, self.invstd = self.stats
        self.mean_row, self.invstd_row = fast.stats[0, i], fast.stats[2, i]
        self.da3 = fast.d_pre_norm[i]
        self.da = self.da3[0]

    def forward(self, a: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(a, self.inv_n, out=self.mean)
        c = a - self.mean
        torch.addmm(self.eps_t, c.square(), self.inv_n, out=self.var_eps)  # biased variance, as BN normalises with
        torch.rsqrt(self.var_eps, out=self.invstd)
        torch.mul(c, self.invstd * self.weight_col, out=out).add_(self.bias_col)

    def backward(self) -> torch.Tensor:
        torch.ops.aten.native_batch_norm_backward.out(
            self.dz3, self.input3, self.weight, None, None, self.mean_row, self.invstd_row, True, self.eps,
            [True] * 3, out0=self.da3, out1=self.dweight, out2=self.dbias)
        return self.da


class _LpNorm(_Norm):
    """bnlib.models.LpNorm in training mode on features-first activations, forward and backward."""

    def __init__(self, fast: FastDLN, i: int, module: LpNorm) -> None:
        super().__init__(fast, i, module, 5)
        self.p, self.tiny = module.p, torch.finfo(fast.inv_n.dtype).tiny
        self.ones = torch.ones_like(fast.inv_n)
        self.one = torch.ones((), dtype=fast.inv_n.dtype, device=fast.inv_n.device)
        self.mean, self.m, self.scale, self.q, self.coef = self.stats
        self.dweight_col, self.dbias_col = self.dweight.view(-1, 1), self.dbias.view(-1, 1)
        self.saved: tuple[torch.Tensor, ...] = ()

    def forward(self, a: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(a, self.inv_n, out=self.mean)
        c = a - self.mean
        ax = a.square() if self.p == 2 else a.abs()  # |a|^2 = a^2 exactly
        if self.p == float("inf"):
            torch.amax(ax, 1, keepdim=True, out=self.scale)
        else:  # clamped as LpNorm clamps (a unit that is 0 on the whole batch)
            torch.mm(ax, self.inv_n, out=self.m)
            torch.clamp_min(self.m, self.tiny, out=self.scale)
            if self.p == 2:
                self.scale.sqrt_()
        torch.add(self.scale, self.eps, out=self.q).reciprocal_()
        k = self.q * self.weight_col
        torch.mul(c, k, out=out).add_(self.bias_col)
        self.saved = (c, ax, k)

    def backward(self) -> torch.Tensor:
        """Through z = (a - mean(a)) k + bias with k = weight / (scale + eps); `coef` holds the layer's
        d loss / d scale per unit of sum(dz (a - mean)), times d scale / d a's common factor (see `coefficients`)."""
        (c, ax, k), a, dz = self.saved, self.input, self.dz
        torch.mm(dz, self.ones, out=self.dbias_col)  # sums over the samples
        dzc = torch.mm(dz * c, self.ones)
        torch.mul(dzc, self.q, out=self.dweight_col)
        coef = dzc * self.coef
        if self.p == 2:  # scale = sqrt(mean(a^2)): d scale / d a = a / (n scale)
            term = a * coef
        elif self.p == 1:  # scale = mean(|a|): d scale / d a = sign(a) / n
            term = a.sign().mul_(coef)
        else:  # scale = max |a|: sign(a) (= a / scale) at the maximum, shared between tied maxima as amax shares it
            at_max = torch.heaviside(ax - self.scale, self.one)
            shared = coef / torch.mm(at_max, self.ones)  # (before at_max changes in place)
            term = at_max.mul_(a).mul_(shared)
        return torch.sub(dz, self.dbias_col, alpha=1 / self.n).mul_(k).add_(term)


class FastDLN:
    """One run's written-out step over the model's own (packed) tensors; `step()` is one full-batch SGD step."""

    def __init__(self, model: DLN, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        (n, d), depth = x.shape, model.num_layers
        modules = [model.block(k).norm for k in range(1, depth)]
        kinds = {type(m) for m in modules}
        if not kinds <= {nn.Identity} and kinds not in ({nn.BatchNorm1d}, {LpNorm}):
            raise ValueError(f"the written-out DLN step covers no norm, BatchNorm1d or LpNorm, got {kinds}")
        self.kind = "none" if kinds <= {nn.Identity} else "batch" if kinds == {nn.BatchNorm1d} else "lp"
        normed = modules if self.kind != "none" else []
        weights = [model.layer(k).weight for k in range(1, depth + 1)]
        # packed weights first, then the norms' gains, then their shifts: each kind one block of rows
        params = weights + [m.weight for m in normed] + [m.bias for m in normed]
        if {id(p) for p in optimizer.param_groups[0]["params"]} != {id(p) for p in params} or len(params) != len(
                list(model.parameters())):
            raise ValueError("the written-out DLN step needs an optimiser over exactly the model's parameters")
        self.group, self.n = optimizer.param_groups[0], n
        self.flat = pack(params)
        self.flat_grad = torch.zeros_like(self.flat)
        self.grad_of = {id(p): g for p, g in zip(params, views(self.flat_grad, params), strict=True)}
        self.weights = [w.detach() for w in weights]
        self.weights_t = [w.t() for w in self.weights]
        self.grad_w = [self.grad_of[id(w)] for w in weights]
        self.inv_n = torch.full((n, 1), 1.0 / n, dtype=x.dtype, device=x.device)
        new = functools.partial(torch.zeros, dtype=x.dtype, device=x.device)
        self.h = [x.t().contiguous()] + [new(d, n) for _ in range(depth)]  # each layer's input and output
        self.h_t = [h.t() for h in self.h]
        self.yt = y.t().contiguous()
        self.d_out = [new(1, d, n) for _ in range(depth - 1)]  # the gradient of each hidden layer's output
        self.d_out2 = [t[0] for t in self.d_out]
        self.norms: list[_BatchNorm | _LpNorm | None] = [None] * depth
        if normed:
            self._norms(normed, new, d)

    def _norms(self, modules: list[nn.Module], new: Any, d: int) -> None:
        """The norm layers over packed rows (one per layer) of their gains and shifts, gradients, running and
        batch statistics, and the buffers their forward and backward write."""
        count, lp = len(modules), self.kind == "lp"
        settings = {(m.momentum, m.eps, getattr(m, "affine", True), getattr(m, "track_running_stats", True))
                    for m in modules}
        if len(settings) != 1 or next(iter(settings))[0] is None or not all(next(iter(settings))[2:]):
            raise ValueError(f"the written-out DLN step needs affine norms with running statistics and one momentum "
                             f"and eps, got (momentum, eps, affine, running statistics) {sorted(settings, key=str)}")
        self.momentum, self.eps = next(iter(settings))[:2]
        self.norm_weight, self.norm_bias = self.flat[-2 * count * d:].view(2, count, d)
        self.grad_norm_weight, self.grad_norm_bias = self.flat_grad[-2 * count * d:].view(2, count, d)
        names = ("running_mean", "running_scale") if lp else ("running_mean", "running_var", "num_batches_tracked")
        self.running = [pack([getattr(m, name) for m in modules]).view(count, -1) for name in names]
        self.stats = new(5 if lp else 3, count, d)  # per layer: mean, then (m, scale, q, coef) or (var + eps, invstd)
        self.pre_norm, self.d_pre_norm = ([new(1, d, self.n) for _ in range(count)] for _ in range(2))
        self.norms[:count] = [(_LpNorm if lp else _BatchNorm)(self, i, m) for i, m in enumerate(modules)]

    def coefficients(self) -> None:
        """The l_p norms' backward factors, all layers at once after the forward pass: d loss / d scale =
        -weight q^2 sum(dz (a - mean)) (q = 1 / (scale + eps)), zero where clamp_min clamped, times d scale / d a's
        common factor: 1 / n (l1), 1 / (n scale) (l2), 1 / scale (l_inf, then shared between tied maxima)."""
        _, m, scale, q, coef = self.stats
        torch.mul(q, q, out=coef).mul_(self.norm_weight).neg_()
        p = self.norms[0].p
        if p != float("inf"):
            coef.mul_(torch.heaviside(m - self.norms[0].tiny, self.norms[0].one))
        coef.div_(self.n if p == 1 else self.n * scale if p == 2 else scale)

    def loss(self) -> torch.Tensor:
        """Loss sum((out - y)^2) at the current weights; its gradient lands in `flat_grad` (`grad_of` maps each
        parameter to its part), the norms' batch statistics in `stats`."""
        h = self.h
        for i, (w, norm) in enumerate(zip(self.weights, self.norms, strict=True)):
            if norm is None:
                torch.mm(w, h[i], out=h[i + 1])
            else:
                torch.mm(w, h[i], out=norm.input)
                norm.forward(norm.input, h[i + 1])
        if self.kind == "lp":
            self.coefficients()
        r = h[-1] - self.yt
        da = r * 2  # d loss / d out
        for i in reversed(range(len(self.weights))):
            if self.norms[i] is not None:
                da = self.norms[i].backward()
            torch.mm(da, self.h_t[i], out=self.grad_w[i])
            if i:
                da = torch.mm(self.weights_t[i], da, out=self.d_out2[i - 1])
        return r.square().sum()

    def computes(self, loss_fn: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether this step's loss is the run's one loss `loss_fn` (what evaluation and the probes use) at the
        current weights, to float rounding: the written-out step implements the sum of squared errors, so a run
        whose loss is another (a changed definition) trains through autograd instead of on a stale copy."""
        with kept_buffers(model), torch.no_grad():
            expected = float(loss_fn(model, x, y))
        return math.isfinite(expected) and abs(float(self.loss()) - expected) <= 1e-4 * abs(expected)

    def step(self) -> torch.Tensor:
        """One SGD step in place (weights, then the norms' running statistics); returns the loss, on the device."""
        loss = self.loss()
        self.flat.add_(self.flat_grad, alpha=-self.group["lr"])
        if self.kind == "batch":  # BatchNorm1d: running_var tracks the unbiased variance; count the batch
            self.running[0].lerp_(self.stats[0], self.momentum)
            self.running[1].lerp_((self.stats[1] - self.eps).mul_(self.n / (self.n - 1)), self.momentum)
            self.running[2].add_(1)
        elif self.kind == "lp":
            self.running[0].lerp_(self.stats[0], self.momentum)
            self.running[1].lerp_(self.stats[2], self.momentum)
        return loss


def for_run(config: RunConfig, task: Task, optimizer: torch.optim.Optimizer) -> FastDLN | None:
    """The written-out step of this run, or None where it does not apply (the run then uses autograd). CPU only
    for now: nothing here is CPU-specific, but it has not been checked on a GPU yet."""
    model, x, y = task.model, task.x_train, task.y_train
    if not (isinstance(model, DLN) and x.device.type == "cpu" and applies(config, optimizer)):
        return None
    fast = FastDLN(model, x, y, optimizer)
    return fast if fast.computes(task.loss_fn, model, x, y) else None


@contextlib.contextmanager
def kept_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (BN running statistics) on exit: the module path's forward of a probed step
    must not count as a second training forward."""
    saved = [(b, b.clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)


def probe_records(task: Task, optimizer: torch.optim.Optimizer, lr: float, step: int,
                  wanted: Sequence[Probe]) -> list[dict[str, Any]]:
    """The wanted probes' records of `step`: the module path's forward and backward as the autograd step does
    them (hooks, .grad), BN running statistics restored after it, then each probe's measurement."""
    model = task.model
    rng = rng_state()
    for p in wanted:
        p.before_forward(model, step)
    with kept_buffers(model):
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model, task.x_train, task.y_train)
        loss.backward()
        ctx = StepContext(model, task.x_train, task.y_train, loss.detach(), task.loss_fn, lr, step, rng, optimizer)
        return [{"step": step, **p.measure(ctx)} for p in wanted]
