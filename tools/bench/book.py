"""Sections `book` (projected time of the book's canonical runs at a profile) and `gpu` (the same at
profile paper on CUDA). Step and evaluation times come from bnlib.train.train runs of each canonical
config (differences of run lengths), probe costs from section `probes`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch

from bnlib.experiments import common
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig
from tools.bench.loop import section_loop
from tools.bench.probes import section_probes
from tools.bench.util import (
    heading,
    num,
    positive_ratio,
    quiet_config,
    ratio,
    scaled,
    table,
    timed_train,
    train_step_seconds,
)

EVAL_RUN_STEPS = 3  # a run evaluating at every step evaluates EVAL_RUN_STEPS - 1 times more than a quiet one


def canonical_config(model: str, norm: str, profile: Profile, dataset: str) -> RunConfig:
    return common.vgg_config(profile, norm, 0.1, dataset) if model == "vgg" else common.dln_config(profile, norm, 1e-6)


def eval_seconds(config: RunConfig, device: torch.device) -> tuple[float | None, float | None]:
    """Seconds per evaluation as train() runs it (wall, CPU): a short run evaluating at every step against
    the same run evaluating only at its ends."""
    every = timed_train(config.replace(steps=EVAL_RUN_STEPS, eval_every=1), device)
    quiet = timed_train(quiet_config(config, EVAL_RUN_STEPS), device)
    return (positive_ratio(every[0] - quiet[0], EVAL_RUN_STEPS - 1),
            positive_ratio(every[1] - quiet[1], EVAL_RUN_STEPS - 1))


def probe_seconds(probes: Sequence[dict[str, Any]]) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """Wall and CPU seconds of each probe's work per training step (section 2), by model and probe name."""
    out = {}
    for r in probes:
        if r.get("probe") and "cost_steps" in r:
            out[(r["model"], r["probe"])] = (ratio(product(r["cost_steps"], r["plain_s"]), r["every"]),
                                             ratio(product(r["cost_cpu"], r["plain_cpu_s"]), r["every"]))
    return out


def product(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a * b


def run_seconds(steps: int, evals: int, per_step: float | None, per_eval: float | None,
                probes: Sequence[float | None]) -> float | None:
    """steps x (step + the carried probes' per-step cost) + evals x evaluation; n/a if any part is."""
    if per_step is None or per_eval is None or any(p is None for p in probes):
        return None
    return steps * (per_step + sum(p for p in probes if p is not None)) + evals * per_eval


def total(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def project_book(profile: Profile, dataset: str, device: torch.device, warmup: int, steps: int,
                 probes: Sequence[dict[str, Any]] = ()) -> None:
    """Sum over the canonical runs (common.REGISTRY: the figures' runs, widget runs aside) of steps x step
    time + evaluations + the measurements of the probes each carries (costs from section 2)."""
    probe_s = probe_seconds(probes)
    book_runs = common.canonical()
    rows, all_wall, all_cpu = [], [], []
    for model, norm in dict.fromkeys((m, n) for m, n, _ in book_runs):
        config = canonical_config(model, norm, profile, dataset)
        # a DLN step takes about a millisecond: ten times the steps for a time above the clock's noise
        per_step = train_step_seconds(config, device, warmup, steps if model == "vgg" else 10 * steps)
        per_eval = eval_seconds(config, device)
        lrs = [lr for m, n, lr in book_runs if (m, n) == (model, norm)]
        n_steps = profile.vgg_steps if model == "vgg" else profile.dln_steps
        evals = n_steps // (profile.eval_every if model == "vgg" else profile.dln_probe_every) + 1
        run_s, run_cpu = [], []
        for lr in lrs:  # each canonical run pays only for the probes it carries
            carried = [cost for (m, name), cost in probe_s.items()
                       if m == model and name in common.carried(model, norm, lr)]
            run_s.append(run_seconds(n_steps, evals, per_step[0], per_eval[0], [c[0] for c in carried]))
            run_cpu.append(run_seconds(n_steps, evals, per_step[1], per_eval[1], [c[1] for c in carried]))
        all_wall += run_s
        all_cpu += run_cpu
        rows.append([f"{model}/{norm}", ", ".join(f"{lr:g}" for lr in lrs), scaled(per_step[0], 1000),
                     scaled(per_step[1], 1000), per_eval[0], n_steps, scaled(biggest(run_s), 1 / 60),
                     scaled(biggest(run_cpu), 1 / 60), scaled(total(run_s), 1 / 60)])
    print(table(["run", "LRs", "ms/step", "CPU ms/step", "s/eval", "steps", "max min/run", "CPU max min/run",
                 "min (all LRs)"], rows))
    have_probes = bool(probe_s)
    print(f"projected canonical runs of the book at profile {profile.name} on {device}: "
          f"{fmt_min(total(all_wall))} min wall at this machine's load, {fmt_min(total(all_cpu))} CPU-min "
          f"({len(book_runs)} runs from the paper's figures; probes "
          f"{'included, at section 2 costs' if have_probes else 'NOT included (none measured)'}; widget runs, "
          f"notebook kernels and plotting not included). With {torch.get_num_threads()} torch thread(s), "
          f"CPU-min / threads is a lower bound on the wall time of the machine to oneself.")


def biggest(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) or not values else max(v for v in values if v is not None)


def fmt_min(seconds: float | None) -> str:
    return num(scaled(seconds, 1 / 60), ".1f")


def section_book(args: argparse.Namespace, profile: str, device: str, probes: Sequence[dict[str, Any]]) -> None:
    p = resolve(profile)
    heading(f"5a. Projected time of the book's canonical runs, profile {p.name}, device {device}")
    project_book(p, args.dataset, torch.device(device), args.warmup, args.steps, probes)


def section_gpu(args: argparse.Namespace, run_probes: bool) -> None:
    heading("5b. GPU: paper profile (VGG width 1, batch 128, 15,000 steps)")
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}")
    paper = resolve("paper")
    config = canonical_config("vgg", "batch", paper, args.dataset)
    per_step = train_step_seconds(config, device, args.warmup, args.steps)[0]
    per_eval = eval_seconds(config, device)[0]
    run_s = run_seconds(paper.vgg_steps, paper.vgg_steps // paper.eval_every + 1, per_step, per_eval, [])
    print(f"VGG/BN paper profile: {num(scaled(per_step, 1000), '.2f')} ms/step, "
          f"{num(ratio(paper.batch_size, per_step), ',.0f')} images/s; one {paper.vgg_steps:,}-step run "
          f"with evaluations: {fmt_min(run_s)} min (probes excluded)")
    section_loop(args, "paper", "cuda")
    gpu_probes = section_probes(args, "paper", "cuda") if run_probes else []
    project_book(paper, args.dataset, device, args.warmup, args.steps, gpu_probes)
