"""What every probe shares: the step context it sees, and a guard that keeps the run untouched."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepContext:
    """A training step as a probe sees it: after backward (grads in .grad), before the update."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor
    loss_fn: LossFn
    lr: float
    step: int
    rng_before_forward: dict[str, Any] = field(default_factory=dict)
    optimizer: torch.optim.Optimizer | None = None


def rng_state() -> dict[str, Any]:
    """CPU and (if present) CUDA generator states, enough to replay a step's noise draws."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Restore parameters, buffers (BN running stats), grads, train/eval mode and RNG on exit.

    Probes evaluate the loss at other weights, in training mode: without this, BN running
    statistics, the noise RNG and the optimiser's gradients would all be disturbed.
    """
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {n: m.training for n, m in model.named_modules()}
    rng = rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n])
                p.grad = grads[n]
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        for n, m in model.named_modules():
            m.training = modes[n]
        set_rng_state(rng)


class Probe:
    """A measurement taken every `every` steps. Subclasses set `name` and implement `measure`.

    `spec()` enters the run's cache key, so give every knob that changes results to `__init__`
    and list it in `params`.
    """

    name = "probe"

    def __init__(self, every: int) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"{self.name} probe: every must be an int >= 1, got {every!r}")
        self.every = every

    @property
    def params(self) -> dict[str, Any]:
        return {"every": self.every}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    def wants(self, step: int) -> bool:
        return step % self.every == 0

    def before_forward(self, model: nn.Module, step: int) -> None:
        """Called on wanted steps before the training forward pass (e.g. to add hooks)."""

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError
