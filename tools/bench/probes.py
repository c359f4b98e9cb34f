"""Section `probes`: each default probe's cost per measurement, in training steps, by bnlib.plan.measure
(the measurement the chapters' plans use), by wall and by CPU clock.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bnlib import plan
from bnlib.experiments import common
from bnlib.probes.base import Probe
from bnlib.profiles import Profile, resolve
from bnlib.train import RunConfig
from tools.bench.util import (
    heading,
    percent,
    ratio,
    scaled,
    table,
    train_step_seconds,
)


def probe_cost(config: RunConfig, probe: Probe, plain: tuple[float | None, float | None], reps: int,
               device: torch.device) -> dict[str, Any]:
    """Extra cost of one measurement, in training steps, by wall and by CPU clock: `bnlib.plan.measure` (the
    book's one probe-cost measurement: a probed step against plain ones, after a warm-up)."""
    row: dict[str, Any] = {"probe": probe.name, "every": probe.every, "plain_s": plain[0], "plain_cpu_s": plain[1]}
    try:
        for key, meter in (("cost_steps", plan.timer), ("cost_cpu", plan.cpu_timer)):
            cost = plan.measure(config, [probe], reps, str(device), meter)
            row[key] = ratio(cost.probe_s[probe.name], cost.step_s)
        row["share"] = ratio(row["cost_steps"], probe.every)
        row["share_cpu"] = ratio(row["cost_cpu"], probe.every)
    except Exception as err:  # report a probe that fails here instead of losing the whole table
        row["error"] = f"{type(err).__name__}: {err}"
    return row


def probe_costs(profile: Profile, dataset: str, device: torch.device, warmup: int, steps: int,
                reps: int) -> list[dict[str, Any]]:
    """For every default probe of the canonical runs: its cost per measurement, in plain steps."""
    results = []
    setups = (("vgg", common.vgg_config(profile, "batch", 0.1, dataset), common.default_probes(profile, "vgg")),
              ("dln", common.dln_config(profile, "batch", 1e-6), common.default_probes(profile, "dln")))
    for model_name, config, probes in setups:
        if not probes:
            results.append({"model": model_name, "probe": None})
            continue
        plain = train_step_seconds(config, device, warmup, steps)
        results += [{"model": model_name, **probe_cost(config, probe, plain, reps, device)} for probe in probes]
    return results


def section_probes(args: argparse.Namespace, profile: str, device: str) -> list[dict[str, Any]]:
    p = resolve(profile)
    heading(f"2. Probe cost per measurement, in training steps (profile {p.name}, device {device}, norm batch)")
    results = probe_costs(p, args.dataset, torch.device(device), args.warmup, args.steps, args.probe_reps)
    rows: list[list[Any]] = []
    share: dict[str, float | None] = {"vgg": 0.0, "dln": 0.0}
    share_cpu: dict[str, float | None] = {"vgg": 0.0, "dln": 0.0}
    for r in results:
        if r["probe"] is None:
            rows.append([r["model"], "(no default probes defined yet)"] + [None] * 6)
        elif "error" in r:
            rows.append([r["model"], r["probe"], r["every"], scaled(r["plain_s"], 1000), "error", r["error"][:60],
                         None, None])
        else:
            share[r["model"]] = add(share[r["model"]], r["share"])
            share_cpu[r["model"]] = add(share_cpu[r["model"]], r["share_cpu"])
            rows.append([r["model"], r["probe"], r["every"], scaled(r["plain_s"], 1000), r["cost_steps"],
                         percent(r["share"]), r["cost_cpu"], percent(r["share_cpu"])])
    print(table(["model", "probe", "every", "plain step ms", "cost (steps)", "share of run", "CPU cost (steps)",
                 "CPU share"], rows))
    print(f"total probe overhead at this cadence: VGG {percent(share['vgg'])}, DLN {percent(share['dln'])} of a "
          f"plain run's step time (CPU time: VGG {percent(share_cpu['vgg'])}, DLN {percent(share_cpu['dln'])}; "
          f"budget: 25%). cost = (a probed step - the mean of {args.probe_reps} plain steps) / plain step "
          f"(bnlib.plan.measure); plain step ms = difference of a long and a short train() run.")
    return results


def add(total: float | None, value: float | None) -> float | None:
    """A sum that becomes n/a as soon as one term is."""
    return None if total is None or value is None else total + value
