"""What a chapter will train on this machine, and about how long that takes, said before it starts.

The estimate is an extrapolation, not a promise. Measured here, once per model shape (model, norm,
width, batch, data) among the runs not yet cached: a few training steps of the run's own config after a
warm-up, one probed step per probe (its extra cost over a plain step) and one evaluation on a slice of
the evaluation images. Estimated: a run's time = steps x step + measurements x probe extra +
evaluations x evaluation, as if every step cost what the measured ones did (data loading,
checkpoints and compilation are left out). Runs already in the run cache cost ~0 and are not measured;
a run with a checkpoint (interrupted) still counts in full.

Without the device at hand, `python -m bnlib.book --estimate --profile gpu` estimates each chapter on an
assumed GPU by counting FLOPs and operations instead of timing (`Assumed`, `assumed_cost`): the README's T4
table. The cost meter only: which runs each chapter plans is the chapter registry's (`bnlib.book`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from bnlib import checks, dln_step, runs
from bnlib.execution import env_flag, exact_numerics, execution_options, prepare_execution
from bnlib.models import NoiseConfig
from bnlib.probes.base import Probe, StepContext, rng_state
from bnlib.profiles import PROFILES, Profile
from bnlib.runs import Planned
from bnlib.train import RunConfig, Task, batch_indices, build_task, evaluate, run_device

# A Colab T4, assumed (see README): 8.1 TFLOP/s fp32 peak, about half of it sustained by cuDNN's fp32
# convolutions at batch 128; about 10 us of host-side overhead per launched operation.
T4_FLOPS_PER_S = 4.0e12
T4_OP_S = 10e-6
LONG_S = 6 * 3600  # a plan estimated longer than this here stops before training, unless ALLOW_LONG (a busy
# machine inflates the estimate: chapter 1 at profile cpu, 38 min of training here, was estimated at 3.4 h under load)
ALLOW_LONG = "BNLIB_ALLOW_LONG"  # 1: train a plan however long it is estimated, or a GPU profile without a GPU
GPU_PROFILES = ("gpu", "paper")  # sized for a GPU: days of training on a CPU
MEASURED_STEPS = 3  # timed training steps per model shape (after one warm-up step)
EVAL_SLICE = 512  # images timed for the evaluation cost, scaled up to the run's evaluation set


@dataclass(frozen=True)
class Cost:
    """Seconds on this device for one model shape."""

    step_s: float  # one training step: forward, backward, SGD update
    eval_s: float  # one evaluation of the run (all its evaluation images)
    probe_s: dict[str, float] = field(default_factory=dict)  # extra seconds of one measurement, by probe name


@dataclass(frozen=True)
class Plan:
    """How many runs a chapter needs, how many are cached, and the estimated time for the rest."""

    runs: int
    cached: int
    seconds: float  # estimated, for the runs not in the cache
    device: str
    measured: tuple[str, ...]  # one line per measured model shape: what was timed


def counts(config: RunConfig, probes: Iterable[Probe]) -> tuple[int, int, dict[str, int]]:
    """(training steps, evaluations, measurements per probe name) a full run of `config` makes."""
    steps = config.steps
    evals = len(range(0, steps, config.eval_every)) + 1  # the loop's cadence, plus the final one
    return steps, evals, {p.name: len(range(0, steps, p.every)) for p in probes}


def run_seconds(config: RunConfig, probes: Iterable[Probe], cost: Cost) -> float:
    """Estimated seconds of one run from the per-step, per-evaluation and per-measurement costs."""
    steps, evals, measurements = counts(config, probes)
    return steps * cost.step_s + evals * cost.eval_s + sum(n * cost.probe_s[name] for name, n in measurements.items())


def shape(config: RunConfig) -> RunConfig:
    """What a step's cost depends on: the config without lr, seed, length, cadence or noise level."""
    return config.replace(lr=0.1, seed=0, steps=1, eval_every=1, noise=NoiseConfig())


Meter = Callable[[Callable[[], object]], float]  # runs a piece of work, returns its seconds


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timer(work: Callable[[], object]) -> float:
    """Wall seconds of `work` here (waiting for the GPU, if any, before and after)."""
    _sync()
    start = time.perf_counter()
    work()
    _sync()
    return time.perf_counter() - start


def cpu_timer(work: Callable[[], object]) -> float:
    """CPU seconds of `work` in this process: other work on a shared machine does not inflate it. With CUDA,
    whose work this process's CPU time does not see, wall seconds with synchronisation (`timer`)."""
    if torch.cuda.is_available():
        return timer(work)
    start = time.process_time()
    work()
    return time.process_time() - start


def count(work: Callable[[], object]) -> tuple[int, int]:
    """(FLOPs, tensor operations) of `work`: torch's FLOP counter, and one count per dispatched operation
    (on a GPU each is at least one kernel launch). Imported here: only the offline estimate needs them."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class OpCounter(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.ops += 1
            return func(*args, **(kwargs or {}))

    flops, ops = FlopCounterMode(display=False), OpCounter()
    with flops, ops:
        work()
    return flops.get_total_flops(), ops.ops


@dataclass(frozen=True)
class Assumed:
    """A meter for a device that is not here: it counts instead of timing. Seconds = max(FLOPs x batch_scale /
    flops_per_s, operations x op_s): torch's FLOP counter (convolutions and matmuls, forward, backward and
    double backward) at an assumed sustained throughput, or the per-operation launch overhead when that is
    larger (small models such as the DLN)."""

    flops_per_s: float
    op_s: float
    batch_scale: float = 1.0

    def __call__(self, work: Callable[[], object]) -> float:
        flops, ops = count(work)
        return max(flops * self.batch_scale / self.flops_per_s, ops * self.op_s)


def measure(config: RunConfig, probes: Iterable[Probe] = (), steps: int = MEASURED_STEPS,
            device: str | None = None, meter: Meter = timer, written_out: bool = True) -> Cost:
    """Time `steps` training steps of `config` after one warm-up step, one probed step per probe, and
    an evaluation slice; on the device and in the memory layout the run would train in (eager; a DLN through
    bnlib.dln_step's written-out step where train() takes it, unless `written_out` is False)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    device = run_device(config, device)
    with exact_numerics(device):
        return _measure(config, list(probes), steps, device, meter, written_out)


def _measure(config: RunConfig, probes: list[Probe], steps: int, device: torch.device, meter: Meter,
             written_out: bool) -> Cost:
    """`measure` on `device`, in the memory layout the run trains in (compilation aside)."""
    task = build_task(config, device)
    layout = execution_options(None, False, device) if config.model == "vgg" else execution_options(False, False)
    model, x_train, _ = prepare_execution(task.model.train(), task.x_train, layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    n = config.batch_size if config.on_images else len(x_train)
    idx = batch_indices(len(x_train), n, 0, config.seed, x_train.device)
    x, y = x_train[idx], task.y_train[idx]

    fast = dln_step.for_run(config, task, optimizer) if written_out else None  # the DLN's step as train() runs it

    def step(probe: Probe | None = None) -> None:
        if fast is not None:
            if probe is not None:
                dln_step.probe_records(task, optimizer, config.lr, 0, [probe])
            fast.step()
            return
        rng = rng_state()
        if probe is not None:
            probe.before_forward(model, 0)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model, x, y)
        loss.backward()
        if probe is not None:
            probe.measure(StepContext(model, x, y, loss.detach(), task.loss_fn, config.lr, 0, rng, optimizer))
        optimizer.step()

    step()  # warm-up: first-call allocations, kernel selection
    step_s = sum(meter(step) for _ in range(steps)) / steps
    probe_s = {p.name: max(0.0, meter(lambda p=p: step(p)) - step_s) for p in probes}
    return Cost(step_s, _eval_seconds(config, task, model, meter), probe_s)


def probe_cost(config: RunConfig, probes: Iterable[Probe], meter: Meter = timer, steps: int = MEASURED_STEPS,
               device: str | None = None) -> dict[str, float]:
    """The book's one probe-cost measurement (the plan, chapters 3 and 4 and the bench read it): `step_s`, one
    plain training step, and per probe name the extra one measurement adds to a step, in training steps."""
    cost = measure(config, probes, steps, device, meter)
    per_step = {name: s / cost.step_s if cost.step_s > 0 else float("nan") for name, s in cost.probe_s.items()}
    return {"step_s": cost.step_s, **per_step}


def _eval_seconds(config: RunConfig, task: Task, model: torch.nn.Module, meter: Meter) -> float:
    """One evaluation as the loop does it (VGG: the test set and as many training images; DLN: all
    points), timed on a slice of at most EVAL_SLICE images and scaled up."""
    if config.on_images:
        xs, ys, total = task.x_test, task.y_test, 2 * len(task.x_test)
    else:
        xs, ys, total = task.x_train, task.y_train, len(task.x_train)
    xs, ys = xs[:EVAL_SLICE], ys[:EVAL_SLICE]
    return meter(lambda: evaluate(model, task.loss_fn, xs, ys, config.on_images)) * total / len(xs)


def assumed_cost(config: RunConfig, probes: Iterable[Probe], flops_per_s: float, op_s: float, batch: int = 8,
                 test_images: int = 10_000) -> Cost:
    """The cost on a device that is not here, counted on the CPU with `Assumed`; a deep linear network, which trains
    on the CPU even where a GPU is (bnlib.train.run_device), is timed on this CPU instead. The VGG is counted on
    `batch` images of the synthetic set (1 input channel; CIFAR-10's 3 add ~1% of the FLOPs) and scaled
    to the run's batch, since its FLOPs are linear in the batch; its evaluation covers 2 x n_test images
    (`test_images` when n_test is None: CIFAR-10's test split)."""
    if config.model == "dln":  # it trains on the CPU beside a GPU (train.run_device): its written-out step, timed here
        return measure(config, probes, device="cpu")
    small = config.replace(batch_size=min(batch, config.batch_size), n_train=None, n_test=batch, dataset="synthetic")
    scale = config.batch_size / small.batch_size
    cost = measure(small, probes, steps=1, device="cpu", meter=Assumed(flops_per_s, op_s, scale))
    per_image = cost.eval_s / scale / (2 * batch)
    return Cost(cost.step_s, per_image * 2 * (config.n_test or test_images), cost.probe_s)


def describe_shape(config: RunConfig, cost: Cost) -> str:
    """One line: which shape was timed and what each part costs."""
    c = config
    what = (f"{c.network} {c.norm}, width {c.width:g}, batch {c.batch_size}" if c.model == "vgg"
            else f"{c.network} {c.norm}, width {c.mlp_width}, batch {c.batch_size}" if c.model == "mlp"
            else f"{c.network} {c.norm}, {c.dln_depth} x {c.dln_dim}x{c.dln_dim}, {c.dln_points} points")
    probes = ", ".join(f"{name} +{duration(s)}" for name, s in cost.probe_s.items()) or "none"
    return f"{what}: step {duration(cost.step_s)}, evaluation {duration(cost.eval_s)}, probe measurements: {probes}"


def make_plan(planned: Iterable[Planned], measure_fn: Callable[[RunConfig, list[Probe]], Cost] = measure,
              cached: Callable[[RunConfig, list[Probe]], bool] = runs.is_cached) -> Plan:
    """Count the runs, look them up in the cache, and estimate the rest from one measurement per shape."""
    everything = runs.unique(planned)
    todo = [(config, probes) for config, probes in everything if not cached(config, probes)]
    groups: dict[RunConfig, tuple[RunConfig, dict[str, Probe]]] = {}
    for config, probes in todo:
        first, union = groups.setdefault(shape(config), (config, {}))
        for p in probes:
            union.setdefault(p.name, p)
    costs = {key: measure_fn(first, list(union.values())) for key, (first, union) in groups.items()}
    seconds = sum(run_seconds(config, probes, costs[shape(config)]) for config, probes in todo)
    measured = tuple(describe_shape(groups[key][0], cost) for key, cost in costs.items())
    return Plan(len(everything), len(everything) - len(todo), seconds, device_name(), measured)


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({torch.get_num_threads()} threads)"


def duration(seconds: float) -> str:
    """A time in the unit that reads best (ms, s, min, h)."""
    if seconds < 1:
        return f"{1e3 * seconds:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


SMALLER = {"paper": ("gpu", "smoke"), "gpu": ("cpu", "smoke"), "cpu": ("smoke",)}  # the next profiles down


def smaller(profile: Profile) -> str:
    """The smaller profiles, said as the parameter to set ('' at smoke, the smallest)."""
    names = SMALLER.get(profile.name, ("smoke",) if profile.name != "smoke" else ())
    return " or ".join(f'profile="{n}" (VGG width {PROFILES[n].vgg_width:g}, {PROFILES[n].vgg_steps:,} steps)'
                       for n in names)


def runtime_note(plan: Plan, profile: Profile) -> str:
    """What this runtime has, said before anything trains: the GPU's name and memory; without one, that the profile
    trains on the CPU, for how long, and how to get a GPU (on Colab: its menu)."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB of memory."
    todo = plan.runs - plan.cached
    cost = f"its {todo} runs to train take about {duration(plan.seconds)}" if todo else "nothing to train"
    where = ("On Colab, Runtime > Change runtime type > a GPU (e.g. T4), then run the notebook again from the top"
             if "google.colab" in sys.modules else "On a machine with a CUDA GPU")
    return (f"No GPU here: profile {profile.name!r} trains on the CPU ({cost}). {where}, the chapters run the "
            f"full-width 'gpu' profile instead.")


def text(plan: Plan, profile: Profile, knobs: str = "") -> str:
    """The plan as the chapter prints it, after what the runtime has (`runtime_note`)."""
    head = (f"{runtime_note(plan, profile)}\nPlan on this machine ({plan.device}, profile {profile.name!r}): "
            f"{plan.runs} runs, {plan.cached} already in the run cache.")
    if plan.cached == plan.runs:
        return head + " Nothing to train: every figure comes from the cache (~0 s)."
    lines = [head, f"Estimated time for the {plan.runs - plan.cached} to train: about {duration(plan.seconds)} "
             "(an estimate: each run's steps, evaluations and probe measurements x the costs measured just now).",
             f"Measured here (mean of {MEASURED_STEPS} steps after a warm-up; each probe once, as its extra over a "
             f"plain step; evaluation timed on up to {EVAL_SLICE} images and scaled):"]
    lines += [f"  {line}" for line in plan.measured]
    cheaper = " or ".join(part for part in (smaller(profile), knobs) if part)
    lines.append(f"Smaller: {cheaper or 'nothing smaller than profile smoke'}.")
    return "\n".join(lines)


def show(planned: Iterable[Planned], profile: Profile, knobs: str = "") -> Plan:
    """Print the chapter's plan (what it trains here and the estimated time) and return it; stop first
    (BadParameter) when it is far too big for this machine (`refuse_without_gpu`, `refuse_long`)."""
    planned = list(planned)
    refuse_without_gpu(planned, profile)
    plan = make_plan(planned)
    print(text(plan, profile, knobs))
    refuse_long(plan, profile)
    return plan


def matmul_rate(n: int = 1024) -> float:
    """This CPU's fp32 FLOP/s on an n x n matrix product (the best of three): what the VGG's convolutions
    reach at best, so a time from it is a lower bound."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / min(timer(lambda: a @ b) for _ in range(3))


def refuse_without_gpu(planned: list[Planned], profile: Profile) -> None:
    """A profile sized for a GPU (`gpu`, `paper`) stops before anything trains when torch sees no GPU, naming
    a lower bound on the time here (the runs' FLOPs, counted, at this CPU's matrix-product rate); $BNLIB_ALLOW_LONG=1
    trains anyway."""
    if profile.name not in GPU_PROFILES or torch.cuda.is_available() or env_flag(ALLOW_LONG, False):
        return
    todo = [(config, probes) for config, probes in runs.unique(planned) if not runs.is_cached(config, probes)]
    if not todo:
        return
    rate = matmul_rate()
    bound = make_plan(todo, lambda config, probes: assumed_cost(config, probes, rate, 0.0)).seconds
    raise checks.BadParameter(
        f"profile {profile.name!r} is sized for a GPU and torch sees none here: its {len(todo)} runs to train need "
        f"at least {duration(bound)} on this CPU (their FLOPs at its measured {rate / 1e9:.0f} GFLOP/s, a lower "
        f'bound). Use profile="cpu" (the laptop scale) or profile="smoke", or set {ALLOW_LONG}=1 to train it here.')


def refuse_long(plan: Plan, profile: Profile) -> None:
    """A plan estimated over LONG_S on this machine stops before training; $BNLIB_ALLOW_LONG=1 trains anyway."""
    if plan.seconds <= LONG_S or env_flag(ALLOW_LONG, False):
        return
    cheaper = smaller(profile)
    raise checks.BadParameter(
        f"the plan is estimated at {duration(plan.seconds)} on this machine ({plan.device}), over "
        f"{duration(LONG_S)}: use {cheaper or 'fewer runs'}, or set {ALLOW_LONG}=1 to train it anyway.")
