"""The deep linear network's training step written out: forward and backward through the linear chain and its
norms without autograd or module calls, and the SGD update as one operation.

Why: a DLN step is 25 products of a 10 x 10 weight with 10 x 1000 activations each way, so little arithmetic
that under autograd most of a step is per-operation overhead (module calls, graph building, the optimiser's
loop over 25 to 73 tensors): 2 to 6 ms a step on one CPU thread, 20 to 60 s for the paper's 10,000 steps.
Written out, a step is a few hundred tensor operations and no graph: activations are kept features-first
(10 x N, where a product takes half the time and per-unit statistics are row reductions), the parameters and
the running statistics each live in one flat tensor (the model's tensors become views of it, same objects,
same values), so the update and each statistic's running average are one operation each.

What it computes: the loss, gradients, SGD update and running statistics of the module path (the model's
forward, autograd and torch.optim.SGD), in another order of floating-point operations, so the two agree to
rounding (tests/test_dln_step.py checks it against autograd in float64, and over steps in float32). Updates
are in place, so checkpoints, evaluation and probes see the model as they always do. A probed step also runs
the module path's forward and backward (BN running statistics restored after it), so probes see the gradients
and activations they would see without this step; the update always comes from here, so a probe never
changes the trajectory. Covered: norms none, batch, l1, l2 and linf under plain SGD (no momentum, no weight
decay); other runs train through autograd. `BNLIB_DLN_FAST=0` turns it off (e.g. to compare).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bnlib import checkpoint as ckpt
from bnlib.models import DLN, LpNorm
from bnlib.probes.base import Probe, StepContext, rng_state

if TYPE_CHECKING:
    from bnlib.train import RunConfig, _Loop

NORMS = ("none", "batch", "l1", "l2", "linf")
ENV = "BNLIB_DLN_FAST"


def enabled() -> bool:
    """$BNLIB_DLN_FAST: 1 (the default) uses the written-out step where it applies, 0 never."""
    value = os.environ.get(ENV, "").strip().lower()
    if value not in ("", "0", "1", "true", "false"):
        raise ValueError(f"{ENV} must be 0 or 1, got {value!r}")
    return value in ("", "1", "true")


def applies(config: RunConfig, optimizer: torch.optim.Optimizer) -> bool:
    """Whether `config` trains through the written-out step: a DLN with a covered norm under plain SGD."""
    groups = optimizer.param_groups
    return (config.model == "dln" and config.norm in NORMS and enabled() and type(optimizer) is torch.optim.SGD
            and len(groups) == 1 and groups[0]["momentum"] == 0 and groups[0]["weight_decay"] == 0
            and not groups[0]["maximize"])


def pack(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One flat tensor holding `tensors`' values, each tensor re-pointed to a view of it (the same Python
    object and values: modules, optimiser and state dicts keep working); (flat, views of it shaped alike)."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    views = like(flat, tensors)
    for t, view in zip(tensors, views, strict=True):
        t.data = view
    return flat, views


def like(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of `flat`, consecutive, shaped as `tensors`."""
    sizes = [t.numel() for t in tensors]
    return [part.view(t.shape) for part, t in zip(flat.split(sizes), tensors, strict=True)]


class _BatchNorm:
    """nn.BatchNorm1d in training mode on features-first activations; its backward is ATen's own kernel."""

    def __init__(self, module: nn.BatchNorm1d, stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 grads: torch.Tensor, inv_n: torch.Tensor) -> None:
        if module.momentum is None or not module.affine or not module.track_running_stats:
            raise ValueError("the written-out DLN step needs BatchNorm1d with affine, running stats and a momentum")
        self.weight, self.eps, self.inv_n = module.weight.detach(), module.eps, inv_n
        self.weight_col, self.bias_col = self.weight.view(-1, 1), module.bias.detach().view(-1, 1)
        self.mean, self.var, self.invstd = (s.view(-1, 1) for s in stats)  # rows of the packed batch statistics
        self.mean_row, self.invstd_row = stats[0], stats[2]
        self.grads = grads  # (2, d): weight's and bias's rows of the packed gradient

    def forward(self, a: torch.Tensor) -> tuple[torch.Tensor, Any]:
        torch.mm(a, self.inv_n, out=self.mean)
        c = a - self.mean
        torch.mm(c.square(), self.inv_n, out=self.var)  # biased, as BN normalises with
        torch.rsqrt(self.var + self.eps, out=self.invstd)
        return (c * (self.invstd * self.weight_col)).add_(self.bias_col), a

    def backward(self, dz: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        da, dw, db = torch.ops.aten.native_batch_norm_backward(
            dz.unsqueeze(0), a.unsqueeze(0), self.weight, None, None, self.mean_row, self.invstd_row, True,
            self.eps, [True] * 3)
        torch.stack((dw, db), out=self.grads)
        return da.squeeze(0)


class _LpNorm:
    """bnlib.models.LpNorm in training mode on features-first activations, forward and backward."""

    def __init__(self, module: LpNorm, stats: tuple[torch.Tensor, torch.Tensor], grads: torch.Tensor,
                 inv_n: torch.Tensor) -> None:
        self.p, self.eps, self.n, self.inv_n = module.p, module.eps, len(inv_n), inv_n
        self.ones, self.one = torch.ones_like(inv_n), torch.ones((), dtype=inv_n.dtype, device=inv_n.device)
        self.weight_col, self.bias_col = module.weight.detach().view(-1, 1), module.bias.detach().view(-1, 1)
        self.tiny = torch.finfo(inv_n.dtype).tiny
        self.mean, self.scale = (s.view(-1, 1) for s in stats)
        self.dweight, self.dbias = (g.view(-1, 1) for g in grads)

    def forward(self, a: torch.Tensor) -> tuple[torch.Tensor, Any]:
        torch.mm(a, self.inv_n, out=self.mean)
        c = a - self.mean
        ax = a.square() if self.p == 2 else a.abs()  # |a|^2 = a^2 exactly
        m = None
        if self.p == float("inf"):
            torch.amax(ax, 1, keepdim=True, out=self.scale)
        else:  # clamped as LpNorm clamps (a unit that is 0 on the whole batch)
            m = torch.mm(ax, self.inv_n)
            torch.clamp_min(m, self.tiny, out=self.scale)
            if self.p == 2:
                self.scale.sqrt_()
        q = (self.scale + self.eps).reciprocal_()
        k = q * self.weight_col
        return (c * k).add_(self.bias_col), (a, ax, c, m, q, k)

    def backward(self, dz: torch.Tensor, saved: Any) -> torch.Tensor:
        a, ax, c, m, q, k = saved
        torch.mm(dz, self.ones, out=self.dbias)  # sums over the samples
        dzc = torch.mm(dz * c, self.ones)
        torch.mul(dzc, q, out=self.dweight)
        dscale = (dzc * self.weight_col).mul_(q.square()).neg_()  # through q = 1 / (scale + eps)
        if m is not None:  # clamp_min passes no gradient where it clamped (a float 0/1 mask: no bool casts)
            dscale.mul_(torch.heaviside(m - self.tiny, self.one))
        da = (dz - self.dbias / self.n).mul_(k)  # through z = (a - mean(a)) k + bias
        if self.p == 2:  # scale = sqrt(mean(a^2)): d scale / d a = a / (n scale)
            return da.add_(a * (dscale / (self.n * self.scale)))
        if self.p == 1:  # scale = mean(|a|): d scale / d a = sign(a) / n
            return da.add_(a.sign().mul_(dscale / self.n))
        # scale = max |a|: d scale / d a = sign(a) at the maximum, shared between tied maxima as autograd's amax
        # shares it; at a maximum sign(a) = a / scale exactly
        at_max = torch.heaviside(ax - self.scale, self.one)
        count = torch.mm(at_max, self.ones)
        return da.add_(at_max.mul_(a).mul_(dscale / (count * self.scale)))


class FastDLN:
    """One run's written-out step over the model's own (packed) tensors; `step()` is one full-batch SGD step."""

    def __init__(self, model: DLN, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        n, depth = len(x), model.num_layers
        params = list(model.parameters())
        if {id(p) for p in optimizer.param_groups[0]["params"]} != {id(p) for p in params}:
            raise ValueError("the written-out DLN step needs an optimiser over exactly the model's parameters")
        self.group, self.n = optimizer.param_groups[0], n
        self.xt, self.yt = x.t().contiguous(), y.t().contiguous()
        self.flat, _ = pack(params)
        self.flat_grad = torch.zeros_like(self.flat)
        grad_of = {id(p): g for p, g in zip(params, like(self.flat_grad, params), strict=True)}
        self.weights = [model.layer(k).weight.detach() for k in range(1, depth + 1)]
        self.weights_t = [w.t() for w in self.weights]
        self.grad_w = [grad_of[id(model.layer(k).weight)] for k in range(1, depth + 1)]
        modules = [model.block(k).norm for k in range(1, depth)]
        kinds = {type(m) for m in modules}
        if not kinds <= {nn.Identity} and kinds not in ({nn.BatchNorm1d}, {LpNorm}):
            raise ValueError(f"the written-out DLN step covers no norm, BatchNorm1d or LpNorm, got {kinds}")
        self.kind = "none" if kinds <= {nn.Identity} else "batch" if kinds == {nn.BatchNorm1d} else "lp"
        self.norms: list[_BatchNorm | _LpNorm | None] = [None] * depth
        if self.kind != "none":
            self._norms(modules, grad_of, torch.full((n, 1), 1.0 / n, dtype=x.dtype, device=x.device))

    def _norms(self, modules: list[nn.Module], grad_of: dict[int, torch.Tensor], inv_n: torch.Tensor) -> None:
        """The norm layers, their running statistics packed (one tensor per statistic) and the batch
        statistics each step writes (one row per layer)."""
        names = ("running_mean", "running_var", "num_batches_tracked") if self.kind == "batch" else (
            "running_mean", "running_scale")
        self.running = [pack([getattr(m, name) for m in modules])[0].view(len(modules), -1) for name in names]
        momenta = {m.momentum for m in modules}
        if len(momenta) != 1 or None in momenta:
            raise ValueError(f"the written-out DLN step needs one running-average momentum, got {momenta}")
        self.momentum = momenta.pop()
        d = modules[0].weight.numel()
        self.batch_stats = torch.zeros(3 if self.kind == "batch" else 2, len(modules), d, dtype=inv_n.dtype,
                                       device=inv_n.device)
        for k, m in enumerate(modules):
            dw, db = grad_of[id(m.weight)], grad_of[id(m.bias)]
            if self.kind == "batch":
                if db.data_ptr() != dw.data_ptr() + d * dw.element_size():
                    raise ValueError("the written-out DLN step needs each BN's weight and bias next to each other")
                grads = dw.as_strided((2, d), (d, 1))
                self.norms[k] = _BatchNorm(m, tuple(self.batch_stats[:, k]), grads, inv_n)
            else:
                self.norms[k] = _LpNorm(m, tuple(self.batch_stats[:, k]), (dw, db), inv_n)

    def loss(self) -> torch.Tensor:
        """Loss sum((out - y)^2) at the current weights; its gradient lands in `flat_grad` (the layout of the
        packed parameters), the norms' batch statistics in `batch_stats`."""
        h, inputs, saved = self.xt, [], []
        for w, norm in zip(self.weights, self.norms, strict=True):
            inputs.append(h)
            h = torch.mm(w, h)
            if norm is not None:
                h, s = norm.forward(h)
                saved.append(s)
        r = h - self.yt
        dh = r * 2  # d loss / d out
        for k in reversed(range(len(self.weights))):
            norm = self.norms[k]
            if norm is not None:
                dh = norm.backward(dh, saved.pop())
            torch.mm(dh, inputs[k].t(), out=self.grad_w[k])
            if k:
                dh = torch.mm(self.weights_t[k], dh)
        return r.square().sum()

    def step(self) -> torch.Tensor:
        """One SGD step in place (weights, then the norms' running statistics); returns the loss, on the device."""
        loss = self.loss()
        self.flat.add_(self.flat_grad, alpha=-self.group["lr"])
        if self.kind == "batch":  # BatchNorm1d: running_var tracks the unbiased variance; count the batch
            self.running[0].lerp_(self.batch_stats[0], self.momentum)
            self.running[1].lerp_(self.batch_stats[1] * (self.n / (self.n - 1)), self.momentum)
            self.running[2].add_(1)
        elif self.kind == "lp":
            self.running[0].lerp_(self.batch_stats[0], self.momentum)
            self.running[1].lerp_(self.batch_stats[1], self.momentum)
        return loss


def for_run(config: RunConfig, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            optimizer: torch.optim.Optimizer) -> FastDLN | None:
    """The written-out step of this run, or None where it does not apply (the run then uses autograd)."""
    return FastDLN(model, x, y, optimizer) if isinstance(model, DLN) and applies(config, optimizer) else None


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


def train_step(loop: _Loop, step: int, probes: Sequence[Probe], keep_start: bool) -> None:
    """bnlib.train's step for a run with `loop.fast`: on a probed step the module path's forward and backward
    first (probes measure between it and the update, as in the autograd step), then the written-out step."""
    wanted = [p for p in probes if p.wants(step)]
    loop.in_step = True
    if wanted:
        task, model = loop.task, loop.task.model
        loop.start_of_step = ckpt.state_now(model, loop.optimizer, copy_tensors=True) if keep_start else None
        rng = rng_state()
        for p in wanted:
            p.before_forward(model, step)
        with kept_buffers(model):
            loop.optimizer.zero_grad(set_to_none=True)
            loss = task.loss_fn(model, task.x_train, task.y_train)
            loss.backward()
            ctx = StepContext(model, task.x_train, task.y_train, loss.detach(), task.loss_fn, loop.config.lr, step,
                              rng, loop.optimizer)
            for p in wanted:
                loop.history["probes"][p.name].append({"step": step, **p.measure(ctx)})
    loop.step_loss[step] = loop.fast.step()
    loop.in_step, loop.start_of_step = False, None
