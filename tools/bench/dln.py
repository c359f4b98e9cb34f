"""Section `dln`: the deep linear network's canonical runs at the profile's length, in CPU seconds: the written-out
step (bnlib.dln_step) without and with each run's probes, the probes' share of the run, and the autograd step
it replaced (timed over --dln-autograd-steps and scaled to the run's length).

Whole train() calls, one after another in this process, timed by its CPU clock (on a shared machine other
work inflates the wall clock, hardly this one): what a run costs, evaluations and probed steps included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from bnlib import dln_step
from bnlib.experiments import common
from bnlib.probes.base import Probe, StepContext
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig, train
from tools.bench.util import heading, percent, ratio, table

LR = 1e-6  # the canonical DLN runs every figure reads: Standard and +BN carry every probe, the l_p ones landscape
NORMS = ("none", "batch", "l1", "l2", "linf")


class Timed(Probe):
    """A probe as it is, also adding up the CPU seconds of its measurements (not of the probed step's forward
    and backward, which the probes of a step share)."""

    def __init__(self, inner: Probe) -> None:
        super().__init__(inner.every)
        self.inner, self.name, self.seconds, self.records = inner, inner.name, 0.0, 0

    def wants(self, step: int) -> bool:
        return self.inner.wants(step)

    def before_forward(self, model: nn.Module, step: int) -> None:
        self.inner.before_forward(model, step)

    def measure(self, ctx: StepContext) -> dict[str, Any]:
        start = time.process_time()
        record = self.inner.measure(ctx)
        self.seconds += time.process_time() - start
        self.records += 1
        return record


@contextlib.contextmanager
def autograd_step() -> Iterator[None]:
    """Within: DLN runs train through autograd (BNLIB_DLN_FAST=0), as before bnlib.dln_step."""
    before = os.environ.get(dln_step.ENV)
    os.environ[dln_step.ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[dln_step.ENV]
        else:
            os.environ[dln_step.ENV] = before


@contextlib.contextmanager
def probe_clock() -> Iterator[list[float]]:
    """Within: the CPU seconds of every probed step's probe work (bnlib.dln_step.probe_records: the module's
    forward and backward for the probes, and their measurements) add up in the one-item list it yields, timed
    where it happens rather than as the difference of two noisy whole runs."""
    spent = [0.0]
    original = dln_step.probe_records

    def timed(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - start

    dln_step.probe_records = timed
    try:
        yield spent
    finally:
        dln_step.probe_records = original


def cpu_seconds(config: RunConfig, probes: Sequence[Probe] = ()) -> tuple[float, dict[str, Any]]:
    """(process CPU seconds, history) of one whole train() call."""
    start = time.process_time()
    history = train(config, list(probes), device="cpu", progress=False)
    return time.process_time() - start, history


def measure_run(config: RunConfig, probes: Sequence[Probe], autograd_steps: int) -> dict[str, Any]:
    """One canonical run: plain and probed (written-out step), and the autograd step's plain time scaled up."""
    cpu_seconds(config.replace(steps=min(20, config.steps)))  # the process's lazy set-up, not counted
    plain, _ = cpu_seconds(config)
    timed = [Timed(p) for p in probes]
    with probe_clock() as spent:
        probed, history = cpu_seconds(config, timed)
    n = min(autograd_steps, config.steps)
    with autograd_step():
        before = cpu_seconds(config.replace(steps=n))[0] * config.steps / n
    return {"config": config, "plain": plain, "probed": probed, "probe_s": spent[0], "autograd": before,
            "probes": timed, "history": history}


def hessian_note(history: dict[str, Any]) -> str:
    """The Hessian records' products and convergence, the figures its cap and cadence were chosen from."""
    records = history["probes"].get("hessian", [])
    if not records:
        return ""
    iters = [r["iters"] for r in records]
    return (f"{len(records)} measurements, {min(iters)}-{max(iters)} products each, "
            f"{sum(r['converged'] for r in records)} converged")


def rows_of(result: dict[str, Any]) -> tuple[list[Any], list[list[Any]]]:
    """The run's row (times, speed-up, probe share) and one row per probe (its measurements' share)."""
    config, plain, probed, extra = result["config"], result["plain"], result["probed"], result["probe_s"]
    run = [f"dln/{config.norm} lr {config.lr:g}", result["autograd"], plain, ratio(result["autograd"], plain),
           probed, extra, percent(ratio(extra, probed)), ",".join(p.name for p in result["probes"]) or "none"]
    rows = [[f"dln/{config.norm}", p.name, p.every, p.records, p.seconds, percent(ratio(p.seconds, probed)),
             hessian_note(result["history"]) if p.name == "hessian" else ""] for p in result["probes"]]
    measured = sum(p.seconds for p in result["probes"])
    if result["probes"]:
        rows.append([f"dln/{config.norm}", "(module pass, hooks)", "", "", extra - measured,
                     percent(ratio(extra - measured, probed)), "the probed steps' forward and backward"])
    return run, rows


def section_dln(args: argparse.Namespace, profile: str, norms: Sequence[str] = NORMS) -> list[dict[str, Any]]:
    p: Profile = resolve(profile)
    heading(f"2b. Deep linear network: a {p.dln_steps:,}-step run (profile {p.name}, {p.dln_points} points, "
            f"CPU seconds, {torch.get_num_threads()} thread(s))")
    results, runs, probes = [], [], []
    for norm in norms:
        config, carried = common.planned(p, "fig10" if norm in ("none", "batch") else "fig5-dln", norm, LR)
        result = measure_run(config, carried, args.dln_autograd_steps)
        run, rows = rows_of(result)
        results.append(result)
        runs.append(run)
        probes += rows
    print(table(["run", "autograd s", "written-out s", "speed-up", "with probes s", "of it probes s", "probe share",
                 "probes"], runs))
    print(table(["run", "probe", "every", "records", "CPU s", "share of run", "note"], probes))
    timed = min(args.dln_autograd_steps, p.dln_steps)
    print(f"autograd s: the step bnlib.dln_step replaced (BNLIB_DLN_FAST=0), {timed:,} steps timed and scaled to "
          f"{p.dln_steps:,}; written-out s: the same run as train() now runs it, no "
          f"probes; with probes: the run's canonical probes (what the figures read of it), of which the probed "
          f"steps' probe work (timed inside the run: each probed step runs the module's forward and backward once "
          f"for its probes, then each probe measures); probe share = that / with probes; bound at the cpu profile: "
          f"{percent(common.DLN_PROBE_SHARE)} (the cadences were chosen for it).")
    return results
