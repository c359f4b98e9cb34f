"""The training loop: plain SGD, seeded, resumable, divergence-aware, with probe hooks.

Per-step losses stay on the device and are read back only at the evaluation cadence, so a GPU
never waits on the host; divergence (a non-finite loss) is found there and recorded, not raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import tqdm.std
from torch import nn

from bnlib import checkpoint as ckpt
from bnlib import checks, dln_step, losses
from bnlib import data as bdata
from bnlib.execution import exact_numerics, execution_options, keep_freed_memory, prepare_execution, provenance
from bnlib.models import DLN, MLP, NORMS, VGG, VGG_LAYOUTS, NoiseConfig, check_noise
from bnlib.probes.base import Probe, StepContext, rng_state, set_rng_state

MODELS = ("vgg", "dln", "mlp")  # the MLP: the later-work chapter's fully connected network, on images as the VGG
# A tqdm-like factory (called with total, initial, desc, leave, disable; the bar has update, set_postfix and
# close), chosen by the caller (bnlib.runs passes bnlib.widgets.progress_bar): the loop knows no front end.
ProgressBar = Callable[..., Any]


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
    vgg_depth: int = 16  # VGG-11, -13, -16 (the paper's) or -19 (bnlib.models.VGG_LAYOUTS)
    mlp_depth: int = 8  # MLP only: linear layers, the classifier included
    mlp_width: int = 128

    def __post_init__(self) -> None:
        """Check every field up front (a bad value must not train first) and normalise numbers' types."""
        checks.check_choice("model", self.model, MODELS)
        checks.check_choice("norm", self.norm, NORMS)
        checks.check_choice("dataset", self.dataset, bdata.DATASETS)
        numbers = {"lr": checks.check_number("lr", self.lr, 0, low_open=True),
                   "momentum": checks.check_number("momentum", self.momentum, 0, 1, high_open=True),
                   "weight_decay": checks.check_number("weight_decay", self.weight_decay, 0),
                   "width": checks.check_number("width", self.width, 0, checks.WIDTH_MAX, low_open=True),
                   "seed": checks.check_seed(self.seed),
                   "n_train": checks.check_optional_int("n_train", self.n_train),
                   "n_test": checks.check_optional_int("n_test", self.n_test)}
        for name in ("steps", "batch_size", "eval_every", "dln_points", "dln_depth", "dln_dim", "mlp_width"):
            numbers[name] = checks.check_int(name, getattr(self, name), 1)
        numbers["mlp_depth"] = checks.check_int("mlp_depth", self.mlp_depth, 2)
        if checks.check_int("vgg_depth", self.vgg_depth, 11, 19) not in VGG_LAYOUTS:
            raise checks.BadParameter(f"vgg_depth must be one of {list(VGG_LAYOUTS)}, got {self.vgg_depth}")
        check_noise(self.noise)
        if self.on_images and self.n_train is not None and self.batch_size > self.n_train:
            raise checks.BadParameter(f"batch_size ({self.batch_size}) must be <= n_train ({self.n_train}): "
                                      f"a batch cannot hold more images than the training set")
        for name, value in numbers.items():
            object.__setattr__(self, name, value)  # 1 -> 1.0 for lr, numpy ints -> int: one cache key per run

    @property
    def on_images(self) -> bool:
        """Whether the model classifies images in mini-batches (the VGG, the MLP), not the DLN's regression."""
        return self.model != "dln"

    @property
    def network(self) -> str:
        """A word for the network, its depth added where it is not the paper's ("VGG-11", "MLP-8", "DLN-5")."""
        depth, paper = {"vgg": (self.vgg_depth, 16), "dln": (self.dln_depth, 25),
                        "mlp": (self.mlp_depth, None)}[self.model]
        return self.model.upper() + ("" if depth == paper else f"-{depth}")

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Task:
    """A model with its data and loss: what one training step needs."""

    model: nn.Module
    loss_fn: losses.Loss  # the model's one loss (bnlib.losses): the step, evaluation and the probes all use it
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    dataset: str
    source: str


def run_device(config: RunConfig, device: torch.device | str | None = None) -> torch.device:
    """Where `config` trains: `device` when given; else the DLN on the CPU (its written-out step is CPU-only; on a
    GPU its 10 x 10 chain is hundreds of tiny kernel launches a step) and the VGG on CUDA when present."""
    if device is None and config.model == "dln":
        return torch.device("cpu")
    return checks.device(device)


def build_task(config: RunConfig, device: torch.device | str = "cpu") -> Task:
    """Model (seeded init) and data for `config`, all on `device`."""
    torch.manual_seed(config.seed)
    if config.model == "dln":
        model = DLN(config.norm, config.dln_depth, config.dln_dim, config.noise).to(device)
        x, y, _ = bdata.regression_data(config.dln_points, config.dln_dim, seed=config.seed, device=device)
        return Task(model, losses.for_model("dln"), x, y, None, None, "dln-gaussian",
                    "x ~ N(0, I), y = A x, A Gaussian")
    images = bdata.load(config.dataset, device, config.n_train, config.n_test)
    if config.batch_size > len(images.x_train):
        raise checks.BadParameter(f"batch_size ({config.batch_size}) must be <= the {len(images.x_train)} training "
                                  f"images of {images.name}: a batch cannot hold more images than the training set")
    torch.manual_seed(config.seed)  # data loading must not shift the init
    if config.model == "mlp":
        model = MLP(config.norm, config.mlp_depth, config.mlp_width, images.x_train[0].numel(), images.num_classes,
                    config.noise).to(device)
    else:
        model = VGG(config.norm, config.width, images.channels, images.num_classes, config.noise,
                    config.vgg_depth).to(device)
    return Task(model, losses.for_model(config.model), images.x_train, images.y_train, images.x_test, images.y_test,
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
def evaluate(model: nn.Module, loss_fn: losses.Loss, x: torch.Tensor, y: torch.Tensor, classify: bool,
             chunk: int | None = None) -> dict[str, float]:
    """The split's loss in the training's reduction (and accuracy) in eval mode; restores the model's mode.

    Chunks of 256 images are ~30% faster than 1000 on a CPU (cache-sized); a GPU wants big ones.
    """
    chunk = chunk or (1000 if x.is_cuda else 256)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        out = model(x[i:i + chunk])
        yb = y[i:i + chunk]
        total_loss += loss_fn.summed(out, yb).item()
        if classify:
            correct += (out.argmax(1) == yb).sum().item()
    model.train(was_training)
    result = {"loss": loss_fn.over_split(total_loss, len(x))}
    if classify:
        result["acc"] = correct / len(x)
    return result


@dataclass
class _Loop:
    """What a run carries from step to step (the loop's state, without closures)."""

    config: RunConfig
    task: Task
    forward: Any  # the training forward (maybe compiled); probed steps call task.model itself
    optimizer: torch.optim.Optimizer
    history: dict[str, Any]
    step_loss: torch.Tensor  # on the device, read back only at flush
    step_acc: torch.Tensor
    checked: int = 0  # steps below this index are already in history["step_loss"]
    in_step: bool = False  # True between a step's first state change and its update
    start_of_step: dict[str, Any] | None = None  # whole state before the probed step in flight
    saved_at: int | None = None
    step: int = 0  # the step in flight, or the boundary the loop stands at
    fast: dln_step.FastDLN | None = None  # the DLN's written-out step, where it applies (bnlib.dln_step)

    @property
    def classify(self) -> bool:
        return self.config.on_images

    def flush(self, upto: int) -> None:
        """Copy device-side step losses into the history and look for divergence."""
        if upto <= self.checked:
            return
        losses = self.step_loss[self.checked:upto].cpu()
        self.history["step_loss"][self.checked:upto] = losses
        self.history["step_acc"][self.checked:upto] = self.step_acc[self.checked:upto].cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad) and self.history["diverged_at"] is None:
            self.history["diverged_at"] = self.checked + int(bad[0])
        self.checked = upto

    def evaluate(self, step: int) -> None:
        task, row = self.task, {"step": step}
        if self.classify:
            n = len(task.x_test)
            for split, (x, y) in {"train": (task.x_train[:n], task.y_train[:n]),
                                  "test": (task.x_test, task.y_test)}.items():
                for k, v in evaluate(task.model, task.loss_fn, x, y, True).items():
                    row[f"{split}_{k}"] = v
        else:
            row["train_loss"] = evaluate(task.model, task.loss_fn, task.x_train, task.y_train, False)["loss"]
        self.history["evals"].append(row)

    def train_step(self, step: int, probes: Sequence[Probe], keep_start: bool) -> None:
        """One SGD step (probes measure between backward and update); `keep_start` copies the whole
        state first on probed steps, so an exception inside a probe can fall back to it."""
        config, model, optimizer = self.config, self.task.model, self.optimizer
        wanted = [p for p in probes if p.wants(step)]
        self.start_of_step = ckpt.state_now(model, optimizer, copy_tensors=True) if wanted and keep_start else None
        self.in_step = True
        if self.fast is not None:  # the DLN's written-out step: the probes measure first, through the module
            records = dln_step.probe_records(self.task, optimizer, config.lr, step, wanted) if wanted else []
            for p, record in zip(wanted, records, strict=True):
                self.history["probes"][p.name].append(record)
            self.step_loss[step] = self.fast.step()
            self.in_step, self.start_of_step = False, None
            return
        batch_size = config.batch_size if self.classify else len(self.task.x_train)  # the DLN is full-batch GD
        idx = batch_indices(len(self.task.x_train), batch_size, step, config.seed, self.task.x_train.device)
        x, y = self.task.x_train[idx], self.task.y_train[idx]
        rng = rng_state() if wanted else {}
        for p in wanted:
            p.before_forward(model, step)
        optimizer.zero_grad(set_to_none=True)
        out = (model if wanted else self.forward)(x)
        loss = self.task.loss_fn.of(out, y)
        loss.backward()
        self.step_loss[step] = loss.detach()
        if self.classify:
            self.step_acc[step] = (out.detach().argmax(1) == y).float().mean()
        if wanted:
            ctx = StepContext(model, x, y, loss.detach(), self.task.loss_fn, config.lr, step, rng, optimizer)
            for p in wanted:
                self.history["probes"][p.name].append({"step": step, **p.measure(ctx)})
        optimizer.step()
        self.in_step, self.start_of_step = False, None

    def save(self, path: Path | None, step: int) -> None:
        """Checkpoint the whole state at the boundary before `step` (the start-of-step copy mid-step;
        nothing when mid-step without one: the last checkpoint on disk is then the whole state)."""
        if path is None or self.saved_at == step or (self.in_step and self.start_of_step is None):
            return
        state = self.start_of_step if self.in_step else ckpt.state_now(self.task.model, self.optimizer)
        self.flush(step)
        self.history["steps_done"] = step
        ckpt.save(path, state, self.history)
        self.saved_at = step


def _start(config: RunConfig, device: torch.device, options: dict[str, bool]) -> _Loop:
    """A fresh run: seeded model and data, SGD, an empty history."""
    task = build_task(config, device)
    task.model, task.x_train, forward = prepare_execution(task.model, task.x_train, options)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    history: dict[str, Any] = {
        "config": config.as_dict(), "dataset": task.dataset, "data_source": task.source, "device": str(device),
        "step_loss": torch.full((config.steps,), float("nan")), "step_acc": torch.full((config.steps,), float("nan")),
        "evals": [], "probes": {}, "diverged_at": None, "steps_done": 0, "seconds": 0.0,
        # the thread count changes the rounding order and so, on a plateau, the trajectory: recorded, not keyed
        "execution": {**options, "threads": torch.get_num_threads(), **provenance(device)},
    }
    nan = torch.full((config.steps,), float("nan"), device=device)
    fast = dln_step.for_run(config, task, optimizer)
    if config.model == "dln":
        history["execution"] = {**history["execution"], "dln_fast": fast is not None}
    return _Loop(config, task, forward, optimizer, history, nan, nan.clone(), fast=fast)


def _resume(loop: _Loop, path: Path) -> int:
    """Load a whole-step checkpoint of this run if there is a good one; the step to go on from."""
    state = ckpt.load(path, loop.history["config"])
    if state is None or not ckpt.restore(state, loop.task.model, loop.optimizer, path):
        return 0
    history = state["history"]
    history["execution"] = loop.history["execution"]  # how this segment runs (results do not depend on it)
    set_rng_state(state["rng"])
    start = history["steps_done"]
    # records at or after `start` belong to steps that will be redone
    history["evals"] = [r for r in history["evals"] if r["step"] < start]
    history["probes"] = {name: [r for r in records if r["step"] < start] for name, records in history["probes"].items()}
    loop.history, loop.checked, loop.saved_at, loop.step = history, start, start, start
    return start


def check_arguments(config: Any, probes: Any) -> None:
    """`config` a RunConfig, `probes` a list of Probes with distinct names (train and runs.run share this)."""
    if not isinstance(config, RunConfig):
        raise checks.BadParameter(f"config must be a bnlib.train.RunConfig, got {type(config).__name__}")
    if not isinstance(probes, (list, tuple)) or not all(isinstance(p, Probe) for p in probes):
        raise checks.BadParameter(f"probes must be a list of bnlib Probe objects, got {probes!r}")
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise checks.BadParameter(f"probe names must be unique within a run, got {names}")


def _bar(progress: bool | ProgressBar, config: RunConfig, start: int) -> Any:
    """The run's bar: `progress` is a ProgressBar factory, True for plain text (tqdm), False for none."""
    factory = tqdm.std.tqdm if isinstance(progress, bool) else progress
    return factory(total=config.steps, initial=start, disable=progress is False, leave=False,
                   desc=f"{config.model}/{config.norm} lr={config.lr:g}")


@contextlib.contextmanager
def _saved_on_error(loop: _Loop, path: Path | None) -> Iterator[None]:
    """On an interruption or error, checkpoint what is whole and re-raise (a failed save only warns)."""
    try:
        yield
    except BaseException:
        try:
            loop.save(path, loop.step)
        except Exception as err:  # stacklevel 4: past contextlib and train, at train's caller
            warnings.warn(f"could not save the checkpoint {path} after an error: {err}", stacklevel=4)
        raise


def _steps(loop: _Loop, probes: Sequence[Probe], start: int, end: int, path: Path | None, every: int,
           held: ckpt.HeldSignals, bar: Any) -> tuple[int, bool]:
    """Steps start..end-1; (the step reached, whether all ran). Stops early on divergence; a held
    signal is delivered at a step boundary, after a checkpoint of the whole state there."""
    for step in range(start, end):
        loop.step = step
        if held.pending is not None or (step > start and step % every == 0):
            loop.save(path, step)
            if held.pending is not None:
                held.deliver()
        if step % loop.config.eval_every == 0:
            loop.flush(step)
            if loop.history["diverged_at"] is not None:
                return step, False  # diverged
            loop.evaluate(step)
            bar.set_postfix(loss=f"{loop.history['step_loss'][step - 1].item():.3g}" if step else "-")
        loop.train_step(step, probes, keep_start=path is not None)
        bar.update()
    loop.step = end
    if held.pending is not None:
        loop.save(path, end)
    return end, True


def train(config: RunConfig, probes: Sequence[Probe] = (), device: torch.device | str | None = None,
          checkpoint: Path | str | None = None, checkpoint_every: int = 500, progress: bool | ProgressBar = True,
          stop_after: int | None = None, channels_last: bool | None = None,
          compile_model: bool | None = None) -> dict[str, Any]:
    """Train `config`, calling probes at their cadence; returns the run's history.

    With `checkpoint`, the whole state is saved every `checkpoint_every` steps and when the run is
    interrupted (Ctrl-C, SIGTERM, an exception), and a later call resumes from it, ending bitwise
    where an uninterrupted run would (see bnlib.checkpoint for how a step is kept whole).
    `stop_after` halts after that many steps (used to test resuming) and leaves the checkpoint.
    `channels_last` and `compile_model` (VGG only; see `execution_options`) speed up the training
    step; probed steps always run the plain module, so probes see the eager model.
    `progress`: True for a plain text bar, False for none, or a `ProgressBar` the caller chooses.
    """
    check_arguments(config, probes)
    checks.check_int("checkpoint_every", checkpoint_every, 1)
    if not (isinstance(progress, bool) or callable(progress)):
        raise checks.BadParameter(f"progress must be True, False or a tqdm-like bar factory, got {progress!r}")
    checks.check_optional_int("stop_after", stop_after, 0)
    device = run_device(config, device)
    if device.type == "cpu":
        keep_freed_memory()  # host-memory reuse serves CPU kernels only; a GPU's activations live on the GPU
    vgg = config.model == "vgg"
    options = execution_options(channels_last, compile_model, device) if vgg else execution_options(False, False)
    with exact_numerics(device):  # true fp32 and repeatable kernels on CUDA while the run trains, restored after
        return _train(config, probes, device, options, checkpoint, checkpoint_every, progress, stop_after)


def _train(config: RunConfig, probes: Sequence[Probe], device: torch.device, options: dict[str, bool],
           checkpoint: Path | str | None, checkpoint_every: int, progress: bool | ProgressBar,
           stop_after: int | None) -> dict[str, Any]:
    """`train`'s loop, under its numerics: start or resume, the steps, the last evaluation."""
    loop = _start(config, device, options)
    path = Path(checkpoint) if checkpoint else None
    start = _resume(loop, path) if path else 0
    for p in probes:
        loop.history["probes"].setdefault(p.name, [])
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    began = time.perf_counter() - loop.history["seconds"]
    bar = _bar(progress, config, start)
    with ckpt.HeldSignals() as held, contextlib.closing(bar), _saved_on_error(loop, path):
        step, finished = _steps(loop, probes, start, end, path, checkpoint_every, held, bar)
        if finished:
            loop.flush(end)
            if end == config.steps and loop.history["diverged_at"] is None:
                loop.evaluate(end)
    loop.flush(step)
    loop.history["steps_done"] = step
    loop.history["seconds"] = time.perf_counter() - began
    if stop_after is not None and step < config.steps and loop.history["diverged_at"] is None:
        loop.save(path, step)
    return loop.history
