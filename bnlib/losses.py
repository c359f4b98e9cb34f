"""Each model's loss, defined once: the training step, evaluation, every probe, the plan and the bench use it.

A `Loss` is a criterion on the model's outputs plus the reduction training applies to a batch: the VGG
minimises the batch mean of the cross-entropy, the DLN the squared error summed over its whole dataset
(the paper's loss scale). Evaluation sums the same criterion over a split, chunk by chunk, and reports it
in the training's reduction (the mean per image for the VGG, the sum for the DLN). Training and the
probes therefore cannot disagree about the loss: change a criterion here and all of them change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Criterion = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
REDUCTIONS = ("mean", "sum")


def _cross_entropy(out: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y, reduction=reduction)


def _squared_error(out: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
    """The squared error over every output coordinate, summed (or averaged over the examples)."""
    total = (out - y).pow(2).sum()
    return total if reduction == "sum" else total / len(out)


@dataclass(frozen=True)
class Loss:
    """A model's loss; `reduction` is how training reduces a batch ("mean" or "sum").

    Calling it as `loss(model, x, y)` runs the forward pass (what probes call); `of(out, y)` scores
    outputs already computed (the training step reads its accuracy from the same outputs).
    """

    name: str
    criterion: Criterion
    reduction: str

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"loss {self.name}: reduction must be one of {REDUCTIONS}, got {self.reduction!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.of(model(x), y)

    def of(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(out, y, self.reduction)

    def summed(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss summed over the examples: what evaluation adds up chunk by chunk."""
        return self.criterion(out, y, "sum")

    def over_split(self, total: float, n: int) -> float:
        """A split's summed loss (`n` examples) in the training's reduction."""
        return total / n if self.reduction == "mean" else total


cross_entropy = Loss("cross-entropy", _cross_entropy, "mean")
sum_squared_error = Loss("sum of squared errors", _squared_error, "sum")
BY_MODEL: dict[str, Loss] = {"vgg": cross_entropy, "mlp": cross_entropy, "dln": sum_squared_error}


def for_model(model: str) -> Loss:
    """The loss `model` ("vgg", "mlp" or "dln") trains on, looked up when a task is built."""
    return BY_MODEL[model]
