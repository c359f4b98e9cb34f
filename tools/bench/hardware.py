"""Sections `utilization` and `layers`: the profile's VGG training step held against the machine.

`utilization`: the step's FLOPs (counted from the model's layers) per second, against this machine's
fp32 peak on the same threads (the best of a few large square matmuls), and our step (bnlib.train.train)
against a bare eager step on the same in-memory tensors: the loop's own overhead.
`layers`: each weight layer's forward + backward time in isolation, with its FLOPs and FLOP/s, so the
reader sees where the step's time goes and why narrow convolutions stay far from the peak.

FLOP convention: a multiply-add is 2 FLOPs; only conv and linear layers are counted (BatchNorm, ReLU,
pooling, the loss and the SGD update are memory-bound, a few FLOPs per activation, and are not).
Backward = 2 x forward (gradient of the input and of the weight, each a product as big as the forward),
except the first layer, whose input gradient is never computed (the images need none): 1 x forward.
torch.utils.flop_counter.FlopCounterMode counts the same way; the section prints both as a cross-check.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bnlib import losses
from bnlib.models import PaperNumbered
from bnlib.train import Task, batch_indices, build_task
from tools.bench.loop import bare_step, batch, vgg_task
from tools.bench.util import (
    best_of,
    heading,
    num,
    percent,
    positive_ratio,
    ratio,
    scaled,
    table,
    train_step_seconds,
)


@dataclass
class LayerCost:
    """One weight layer of the step: what it computes and its FLOPs, forward and backward."""

    number: int  # the paper's layer number (bnlib.models.PaperNumbered.layer)
    shape: str
    forward: float
    backward: float

    @property
    def total(self) -> float:
        return self.forward + self.backward


def forward_flops(module: nn.Module, inp: torch.Size, out: torch.Size) -> float:
    """2 x multiply-adds of one conv or linear forward, from its input and output shapes."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return 2.0 * math.prod(out) * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return 2.0 * math.prod(out) * module.in_features
    raise TypeError(f"not a weight layer: {type(module).__name__}")


def describe(module: nn.Module, inp: torch.Size) -> str:
    if isinstance(module, nn.Conv2d):
        return f"conv {module.in_channels}->{module.out_channels} @{inp[-2]}x{inp[-1]}"
    return f"linear {module.in_features}->{module.out_features}"


def block_inputs(model: PaperNumbered, x: torch.Tensor) -> list[torch.Tensor]:
    """Each numbered block's input on batch x, from one training-mode forward of a copy (the model
    itself, BN running statistics included, stays untouched)."""
    model = copy.deepcopy(model).train()
    inputs: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].detach())) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return inputs


def weight_module(model: PaperNumbered, k: int) -> nn.Module:
    """The conv or linear module of block k (the VGG's classifier block is Flatten + Linear)."""
    layer = model.block(k).layer
    return layer[-1] if isinstance(layer, nn.Sequential) else layer


def layer_costs(model: PaperNumbered, x: torch.Tensor) -> list[LayerCost]:
    """FLOPs of every weight layer of a training step on batch x (see the module's convention)."""
    costs = []
    for k, inp in enumerate(block_inputs(model, x), start=1):
        module = weight_module(model, k)
        with torch.no_grad():
            out = model.block(k).layer(inp).shape
        fwd = forward_flops(module, inp.shape, out)
        costs.append(LayerCost(k, describe(module, inp.shape), fwd, fwd if k == 1 else 2 * fwd))
    return costs


def flop_counter_total(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """torch's own count of one forward + backward (on a copy): the independent check of layer_costs."""
    model = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        losses.for_model("vgg")(model, x, y).backward()
    return counter.get_total_flops()


@functools.cache
def matmul_peak(n: int, reps: int, device: str, threads: int) -> float:
    """fp32 FLOP/s of the best of `reps` n x n matmuls after one warm-up (cached per bench run: the
    peak is a property of the machine and its thread count, not of a section)."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dev) for _ in range(2))
    (a @ b).sum()
    return ratio(2.0 * n**3, best_of(lambda: a @ b, dev, reps)) or math.nan


def bare_step_seconds(task: Task, lr: float, batch_size: int, seed: int, steps: int, warmup: int,
                      device: torch.device) -> float | None:
    """Seconds per bare eager step (forward, cross-entropy, backward, SGD) on the run's own batches,
    gathered before the clock starts."""
    n = len(task.x_train)
    batches = [(task.x_train[i], task.y_train[i])
               for i in (batch_indices(n, batch_size, k, seed, device) for k in range(warmup + steps))]
    optimizer = torch.optim.SGD(task.model.parameters(), lr=lr)
    task.model.train()
    for x, y in batches[:warmup]:
        bare_step(task.model, optimizer, x, y)

    def timed() -> None:
        for x, y in batches[warmup:]:
            bare_step(task.model, optimizer, x, y)

    return positive_ratio(best_of(timed, device, 1), steps)


def best(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def section_utilization(args: argparse.Namespace, profile: str, device: str) -> None:
    p, dev, config, task = vgg_task(profile, args.dataset, device)
    heading(f"6. FLOP/s of the VGG/BN training step vs this machine's fp32 peak; our loop vs a bare step "
            f"(width {p.vgg_width:g}, batch {p.batch_size}, profile {p.name}, device {device})")
    x, y = batch(task, config)
    costs = layer_costs(task.model, x)
    flops = sum(c.total for c in costs)
    counted = flop_counter_total(task.model, x, y)
    peak = matmul_peak(args.matmul_size, 5, device, torch.get_num_threads())
    ours, bare = [], []
    for _ in range(args.rounds):  # alternate, keep the best of each: both see the machine's load alike
        ours.append(train_step_seconds(config, dev, args.warmup, args.steps)[0])
        bare.append(bare_step_seconds(build_task(config, dev), config.lr, config.batch_size, config.seed,
                                      args.steps, args.warmup, dev))
    ours_s, bare_s = best(ours), best(bare)
    rows = [[f"peak: {args.matmul_size}x{args.matmul_size} fp32 matmul, best of 5", 2.0 * args.matmul_size**3,
             scaled(ratio(2.0 * args.matmul_size**3, peak), 1000), scaled(peak, 1e-9), "100%"]]
    for label, seconds in (("bare eager step (forward, cross-entropy, backward, SGD)", bare_s),
                           ("bnlib.train.train step", ours_s)):
        rate = ratio(flops, seconds)
        rows.append([label, flops, scaled(seconds, 1000), scaled(rate, 1e-9), percent(ratio(rate, peak))])
    print(table(["", "FLOPs", "ms", "GFLOP/s", "utilization"], rows))
    print(f"utilization (training step / machine peak, {torch.get_num_threads()} torch thread(s)): "
          f"{percent(ratio(ratio(flops, ours_s), peak))}")
    print(f"loop overhead (bnlib.train.train step / bare eager step - 1): {percent(overhead(ours_s, bare_s))} "
          f"(best of {args.rounds} alternating rounds, {args.steps} timed steps each; ours = difference of a long "
          f"and a short train() run)")
    print(f"FLOPs per step: {flops:,.0f} counted from the layers ({len(costs)} weight layers; backward = 2 x "
          f"forward, the first layer's input gradient not counted), {counted:,} by torch.utils.flop_counter; "
          f"BN, ReLU, pooling, loss and the update not counted.")


def overhead(ours: float | None, bare: float | None) -> float | None:
    r = ratio(ours, bare)
    return None if r is None else r - 1


def fwd_bwd_seconds(module: nn.Module, inp: torch.Tensor, needs_input_grad: bool, reps: int,
                    device: torch.device) -> float:
    """Best-of-`reps` seconds of module(inp) forward + backward, as in a training step."""
    inp = inp.detach().requires_grad_(needs_input_grad)
    with torch.no_grad():
        grad = torch.randn_like(module(inp))

    def once() -> None:
        module.zero_grad(set_to_none=True)
        inp.grad = None
        module(inp).backward(grad)

    once()
    return best_of(once, device, reps)


def channels_last(module: nn.Module, inp: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    if inp.dim() != 4:
        return module, inp
    return (copy.deepcopy(module).to(memory_format=torch.channels_last),
            inp.contiguous(memory_format=torch.channels_last))


def layer_rows(model: PaperNumbered, inputs: list[torch.Tensor], costs: list[LayerCost], peak: float, reps: int,
               device: torch.device) -> tuple[list[list[object]], float, float]:
    """Per weight layer: FLOPs, its own forward + backward time (default and channels_last layout) and
    FLOP/s, and its whole block's (with norm, ReLU, pooling). Returns rows and the two time sums."""
    rows: list[list[object]] = []
    layer_sum = block_sum = 0.0
    for cost, inp in zip(costs, inputs, strict=True):
        block = copy.deepcopy(model.block(cost.number)).train()  # a copy: the model's BN statistics stay
        needs_grad = cost.number > 1  # the images need no gradient
        layer_s = fwd_bwd_seconds(block.layer, inp, needs_grad, reps, device)
        cl_s = fwd_bwd_seconds(*channels_last(block.layer, inp), needs_grad, reps, device)
        block_s = fwd_bwd_seconds(block, inp, needs_grad, reps, device)
        layer_sum, block_sum = layer_sum + layer_s, block_sum + block_s
        rate = ratio(cost.total, layer_s)
        rows.append([f"#{cost.number}", cost.shape, cost.total / 1e6, 1000 * layer_s, scaled(rate, 1e-9),
                     percent(ratio(rate, peak)), 1000 * cl_s, 1000 * block_s])
    return rows, layer_sum, block_sum


def width_scan(model: PaperNumbered, costs: list[LayerCost], inputs: list[torch.Tensor], peak: float, reps: int,
               device: torch.device) -> tuple[int, list[list[object]]]:
    """The conv with the most FLOPs (the deepest of equals: the cheapest to widen), widened x1, x2, ...
    up to VGG-16's full 512 channels, same batch and resolution: what width alone does to FLOP/s."""
    k = max((c.total, c.number) for c in costs[:-1])[1]
    conv, inp = weight_module(model, k), inputs[k - 1]
    rows: list[list[object]] = []
    m = 1
    while max(conv.in_channels, conv.out_channels) * m <= 512:
        wide = nn.Conv2d(conv.in_channels * m, conv.out_channels * m, conv.kernel_size, conv.stride,
                         conv.padding).to(device)
        x = torch.randn(inp.shape[0], wide.in_channels, *inp.shape[2:], device=device)
        with torch.no_grad():
            flops = 3 * forward_flops(wide, x.shape, wide(x).shape)
        seconds = fwd_bwd_seconds(wide, x, True, reps, device)
        rate = ratio(flops, seconds)
        rows.append([f"x{m}", describe(wide, x.shape), flops / 1e6, 1000 * seconds, scaled(rate, 1e-9),
                     percent(ratio(rate, peak))])
        m *= 2
    return k, rows


def section_layers(args: argparse.Namespace, profile: str, device: str) -> None:
    p, dev, config, task = vgg_task(profile, args.dataset, device)
    heading(f"7. Per-layer forward + backward of the VGG/BN step (width {p.vgg_width:g}, batch {p.batch_size}, "
            f"profile {p.name}, device {device}), each layer alone on its real input")
    x, _ = batch(task, config)
    inputs, costs = block_inputs(task.model, x), layer_costs(task.model, x)
    peak = matmul_peak(args.matmul_size, 5, device, torch.get_num_threads())
    reps = max(3, args.rounds)
    rows, layer_sum, block_sum = layer_rows(task.model, inputs, costs, peak, reps, dev)
    print(table(["layer", "shape", "MFLOPs f+b", "ms", "GFLOP/s", "of peak", "ms channels_last",
                 "ms with BN+ReLU+pool"], rows))
    step = bare_step_seconds(task, config.lr, config.batch_size, config.seed, args.steps, args.warmup, dev)
    print(f"best of {reps}; peak = {num(scaled(peak, 1e-9))} GFLOP/s ({args.matmul_size}x{args.matmul_size} "
          f"matmul). Sum over layers: weight layers alone {1000 * layer_sum:.1f} ms, with BN+ReLU+pool "
          f"{1000 * block_sum:.1f} ms; the whole bare step {num(scaled(step, 1000), '.1f')} ms (the rest: loss, "
          f"SGD update, autograd bookkeeping).")
    k, scan = width_scan(task.model, costs, inputs, peak, reps, dev)
    print(f"\nlayer #{k} widened, same batch and resolution, up to VGG-16's full width (512 channels):")
    print(table(["width", "shape", "MFLOPs f+b", "ms", "GFLOP/s", "of peak"], scan))
    print(why(costs))


def why(costs: list[LayerCost]) -> str:
    """The printed reading of the two tables above, with this model's channel counts."""
    channels = [int(n) for c in costs[:-1] for n in c.shape.split()[1].split("->")]
    return f"""\
why the step stays below the peak: a 3x3 conv is a matrix product (batch*H*W) x (9*C_in) by (9*C_in) x C_out;
with {min(channels)}..{max(channels)} channels its inner and output dimensions are too small to keep the vector
units fed, so the time goes to memory traffic and per-operator overhead (microseconds per op, ~6 ops per layer, forward
and backward), and BN, ReLU and pooling add time with no FLOPs (last column minus the ms column).
what would get closer: wider layers (the table above: the same layer at more channels); channels_last
(its column; section speedups); torch.compile, which fuses BN+ReLU+pool (section speedups); batching
several runs into one step (seeds or learning rates as a grouped conv, or one larger batch); a GPU."""
