"""The training loop: plain SGD, seeded, resumable, divergence-aware, with probe hooks.

Per-step losses stay on the device and are read back only at the evaluation cadence, so a GPU
never waits on the host; divergence (a non-finite loss) is found there and recorded, not raised.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import tqdm.auto
import tqdm.std
from torch import nn

from bnlib import data as bdata
from bnlib.models import DLN, NORMS, VGG, NoiseConfig
from bnlib.probes.base import Probe, StepContext, rng_state, set_rng_state
from bnlib.widgets import in_kernel_with_widgets

MODELS = ("vgg", "dln")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results (and so its cache key)."""

    model: str = "vgg"
    norm: str = "none"
    lr: float = 0.1
    steps: int = 1000
    batch_size: int = 128  # VGG only: the DLN trains full-batch on all dln_points
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    width: float = 1.0  # VGG channel multiplier
    dataset: str = "auto"
    n_train: int | None = None
    n_test: int | None = None
    eval_every: int = 100
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    dln_points: int = 1000
    dln_depth: int = 25
    dln_dim: int = 10

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: {list(NORMS)}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        for name in ("steps", "batch_size", "eval_every", "dln_points", "dln_depth", "dln_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {self.momentum}, {self.weight_decay}")
        if self.dataset not in bdata.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {list(bdata.DATASETS)}")

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Task:
    """A model with its data and loss: what one training step needs."""

    model: nn.Module
    loss_fn: Any
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    dataset: str
    source: str


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


def sum_squared_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The DLN loss ||W_25 ... W_1 x - A x||^2 summed over the dataset (paper's loss scale)."""
    return (model(x) - y).pow(2).sum()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_task(config: RunConfig, device: torch.device | str = "cpu") -> Task:
    """Model (seeded init) and data for `config`, all on `device`."""
    torch.manual_seed(config.seed)
    if config.model == "dln":
        model = DLN(config.norm, config.dln_depth, config.dln_dim, config.noise).to(device)
        x, y, _ = bdata.regression_data(config.dln_points, config.dln_dim, seed=config.seed, device=device)
        return Task(model, sum_squared_error, x, y, None, None, "dln-gaussian", "x ~ N(0, I), y = A x, A Gaussian")
    images = bdata.load(config.dataset, device, config.n_train, config.n_test)
    torch.manual_seed(config.seed)  # data loading must not shift the init
    model = VGG(config.norm, config.width, images.channels, images.num_classes, config.noise).to(device)
    return Task(model, cross_entropy, images.x_train, images.y_train, images.x_test, images.y_test,
                images.name, images.source)


def batch_indices(n: int, batch_size: int, step: int, seed: int, device: torch.device) -> torch.Tensor:
    """Indices of step `step`'s batch: a fresh seeded permutation per epoch, so a resumed run
    draws exactly the batches an uninterrupted one would, with no sampler state to save."""
    if batch_size >= n:
        return torch.arange(n, device=device)
    epoch, within = divmod(step, n // batch_size)
    return _epoch_permutation(n, seed, epoch, device)[within * batch_size:(within + 1) * batch_size]


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """One permutation per epoch, drawn once (redrawing 60k indices every step cost ~2 ms)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen).to(device)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, classify: bool,
             chunk: int | None = None) -> dict[str, float]:
    """Mean loss (and accuracy) in eval mode; restores the model's mode afterwards.

    Chunks of 256 images are ~30% faster than 1000 on a CPU (cache-sized); a GPU wants big ones.
    """
    chunk = chunk or (1000 if x.is_cuda else 256)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        out = model(x[i:i + chunk])
        yb = y[i:i + chunk]
        if classify:
            total_loss += nn.functional.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
        else:
            total_loss += (out - yb).pow(2).sum().item()
    model.train(was_training)
    result = {"loss": total_loss / len(x) if classify else total_loss}
    if classify:
        result["acc"] = correct / len(x)
    return result


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false"):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return value in ("1", "true")


def execution_options(channels_last: bool | None = None, compile_model: bool | None = None) -> dict[str, bool]:
    """How to execute (not what to compute): arguments, else $BNLIB_CHANNELS_LAST / $BNLIB_COMPILE (0 or 1).

    Both are off by default and, like the device, not part of a run's cache key: they change the
    order of floating-point operations, not the model, the data or the precision (always fp32;
    bnlib offers no mixed precision, because the probes measure differences of losses and
    gradients that bf16/fp16 rounding would swamp). They pay off on a CUDA GPU (tensor-core
    friendly layout, fused kernels); `python -m bnlib.bench --only speedups` measures them.
    """
    return {"channels_last": _env_flag("BNLIB_CHANNELS_LAST") if channels_last is None else bool(channels_last),
            "compile": _env_flag("BNLIB_COMPILE") if compile_model is None else bool(compile_model)}


def prepare_execution(model: nn.Module, x: torch.Tensor,
                      options: dict[str, bool]) -> tuple[nn.Module, torch.Tensor, Any]:
    """(model, images, training forward) under `options` from execution_options; the model is the same
    object (its layout changed in place) and stays what probes and evaluation call."""
    if options["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, torch.compile(model) if options["compile"] else model


def train(config: RunConfig, probes: Sequence[Probe] = (), device: torch.device | str | None = None,
          checkpoint: Path | str | None = None, checkpoint_every: int = 500, progress: bool = True,
          stop_after: int | None = None, channels_last: bool | None = None,
          compile_model: bool | None = None) -> dict[str, Any]:
    """Train `config`, calling probes at their cadence; returns the run's history.

    With `checkpoint`, state is saved every `checkpoint_every` steps and on interruption, and a
    later call resumes from it, ending exactly where an uninterrupted run would. `stop_after`
    halts after that many steps (used to test resuming) and leaves the checkpoint in place.
    `channels_last` and `compile_model` (VGG only; see `execution_options`) speed up the
    training step; probed steps always run the plain module, so probes see the eager model.
    """
    device = torch.device(device) if device is not None else default_device()
    task = build_task(config, device)
    model, loss_fn = task.model, task.loss_fn
    classify = config.model == "vgg"
    options = execution_options(channels_last, compile_model) if classify else execution_options(False, False)
    model, task.x_train, forward = prepare_execution(model, task.x_train, options)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    history: dict[str, Any] = {
        "config": config.as_dict(), "dataset": task.dataset, "data_source": task.source, "device": str(device),
        "step_loss": torch.full((config.steps,), float("nan")), "step_acc": torch.full((config.steps,), float("nan")),
        "evals": [], "probes": {p.name: [] for p in probes}, "diverged_at": None, "steps_done": 0, "seconds": 0.0,
        "execution": options,
    }
    start = 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False, map_location=device)
        if state["history"]["config"] == history["config"]:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = state["history"]
            history["execution"] = options  # how this segment runs (the results do not depend on it)
            set_rng_state(state["rng"])
            start = history["steps_done"]
            # an interruption mid-step may have left records for the step being redone
            history["evals"] = [r for r in history["evals"] if r["step"] < start]
            history["probes"] = {name: [r for r in records if r["step"] < start]
                                 for name, records in history["probes"].items()}
    step_loss = torch.full((config.steps,), float("nan"), device=device)
    step_acc = torch.full((config.steps,), float("nan"), device=device)
    checked = start  # steps below this index are already in history["step_loss"]

    def flush(upto: int) -> None:
        """Copy device-side step losses into the history and look for divergence."""
        nonlocal checked
        if upto <= checked:
            return
        losses = step_loss[checked:upto].cpu()
        history["step_loss"][checked:upto] = losses
        history["step_acc"][checked:upto] = step_acc[checked:upto].cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad) and history["diverged_at"] is None:
            history["diverged_at"] = checked + int(bad[0])
        checked = upto

    def do_eval(step: int) -> None:
        row: dict[str, float] = {"step": step}
        if classify:
            n = len(task.x_test)
            for split, (x, y) in {"train": (task.x_train[:n], task.y_train[:n]),
                                  "test": (task.x_test, task.y_test)}.items():
                for k, v in evaluate(model, loss_fn, x, y, True).items():
                    row[f"{split}_{k}"] = v
        else:
            row["train_loss"] = evaluate(model, loss_fn, task.x_train, task.y_train, False)["loss"]
        history["evals"].append(row)

    def save_checkpoint(step: int) -> None:
        if checkpoint:
            flush(step)
            history["steps_done"] = step
            _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state(),
                          "history": history}, checkpoint)

    batch_size = config.batch_size if classify else len(task.x_train)  # the DLN is full-batch GD
    model.train()
    began = time.perf_counter() - history["seconds"]
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    # a widget bar only where a person watches; in builds it would leave dead widget state in pages
    bar_class = tqdm.auto.tqdm if in_kernel_with_widgets() else tqdm.std.tqdm
    bar = bar_class(range(start, end), initial=start, total=config.steps, disable=not progress,
               desc=f"{config.model}/{config.norm} lr={config.lr:g}", leave=False)
    step = start
    try:
        for step in bar:
            if checkpoint and step > start and step % checkpoint_every == 0:
                save_checkpoint(step)
            if step % config.eval_every == 0:
                flush(step)
                if history["diverged_at"] is not None:
                    break
                do_eval(step)
                bar.set_postfix(loss=f"{history['step_loss'][step - 1].item():.3g}" if step else "-")
            idx = batch_indices(len(task.x_train), batch_size, step, config.seed, device)
            x, y = task.x_train[idx], task.y_train[idx]
            wanted = [p for p in probes if p.wants(step)]
            rng = rng_state() if wanted else {}
            for p in wanted:
                p.before_forward(model, step)
            optimizer.zero_grad(set_to_none=True)
            out = (model if wanted else forward)(x)
            loss = nn.functional.cross_entropy(out, y) if classify else (out - y).pow(2).sum()
            loss.backward()
            step_loss[step] = loss.detach()
            if classify:
                step_acc[step] = (out.detach().argmax(1) == y).float().mean()
            if wanted:
                ctx = StepContext(model, x, y, loss.detach(), loss_fn, config.lr, step, rng, optimizer)
                for p in wanted:
                    history["probes"][p.name].append({"step": step, **p.measure(ctx)})
            optimizer.step()
        else:
            step = end
            flush(end)
            if end == config.steps and history["diverged_at"] is None:
                do_eval(end)
    except BaseException:
        save_checkpoint(step)  # keep what was computed, then let the interruption through
        raise
    finally:
        bar.close()
    flush(step)
    history["steps_done"] = step
    history["seconds"] = time.perf_counter() - began
    if stop_after is not None and step < config.steps and history["diverged_at"] is None:
        save_checkpoint(step)
    return history
