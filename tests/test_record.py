"""The typed run record (one divergence rule) and the registry of canonical runs (which probes each carries)."""

from __future__ import annotations

import math

import pytest
import torch

from bnlib.experiments import common
from bnlib.profiles import resolve
from bnlib.record import CHANCE, Run

SMOKE = resolve("smoke")


def history(acc: list[float], diverged_at: int | None = None, evals: list[dict] | None = None) -> dict:
    """A history with what the record reads: config, per-step loss and accuracy, evaluations, probes."""
    n = len(acc)
    return {"config": {"model": "vgg", "norm": "batch", "lr": 0.1, "steps": n}, "dataset": "synthetic",
            "step_acc": torch.tensor(acc), "step_loss": 1 - torch.tensor(acc), "steps_done": n,
            "diverged_at": diverged_at, "evals": evals or [], "probes": {"ics": [{"step": 0}]}}


def test_final_accuracy_one_rule_for_both_modes():
    evals = [{"step": 0, "train_acc": 0.2, "test_acc": 0.1}, {"step": 100, "train_acc": 0.9, "test_acc": 0.8}]
    run = Run(history([0.0] * 90 + [1.0] * 10, evals=evals))
    assert run.final_acc("train", "batch") == pytest.approx(1.0)  # mean over the last tenth of the steps
    assert run.final_acc("test") == pytest.approx(0.8) and run.final_acc("train") == pytest.approx(0.9)
    assert not run.diverged and run.status() == "finite throughout"
    diverged = Run(history([0.5] * 100, diverged_at=50, evals=evals))
    assert diverged.final_acc("train", "batch") == diverged.final_acc("test") == CHANCE
    assert diverged.status() == "diverged at step 50" and math.isnan(diverged.final_loss())
    assert (diverged.step_acc()[50:] == CHANCE).all() and diverged.step_acc()[49] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="split must be 'train'"):
        run.final_acc("test", "batch")


def test_a_run_is_a_read_only_mapping_with_probe_records():
    h = history([0.5] * 4)
    run = Run.of(h)
    assert Run.of(run) is run and run["dataset"] == "synthetic" and run.get("probes") is h["probes"]
    assert run.probe("ics") == [{"step": 0}] and run.steps == 4 and run.model == "vgg"
    with pytest.raises(KeyError, match="carries no 'landscape' probe"):
        run.probe("landscape")
    short = Run(history([0.5] * 10, diverged_at=8)).truncated(5)
    assert len(short.step_acc()) == 5 and not short.diverged and short.steps_done == 5


# The probes each canonical run carried before the registry (VGG_READS / DLN_READS), and since chapter 7 the +BN VGG's
# Hessian with running statistics: run keys depend on them.
BEFORE = {("vgg", "none", 0.1): "activations hessian ics landscape", ("vgg", "batch", 0.1): "activations hessian "
          "hessian_running ics landscape", ("vgg", "none", 0.5): "activations", ("vgg", "batch", 0.5): "activations",
          ("vgg", "noisy", 0.1): "activations", ("vgg", "noise_only", 0.1): "activations",
          ("vgg", "none", 0.01): "ics", ("vgg", "batch", 0.01): "ics",
          **{("vgg", n, 0.1): "activations landscape" for n in ("l1", "l2", "linf")},
          ("dln", "none", 1e-6): "activations hessian ics landscape",
          ("dln", "batch", 1e-6): "activations hessian ics landscape",
          ("dln", "none", 1e-7): "ics", ("dln", "batch", 1e-7): "ics",
          **{("dln", n, 1e-6): "landscape" for n in ("l1", "l2", "linf")}}


def test_registry_keeps_every_canonical_runs_probes():
    assert {run: " ".join(common.carried(*run)) for run in common.canonical()} == BEFORE


def test_a_run_outside_the_registry_carries_only_what_its_figure_reads():
    _, probes = common.planned(SMOKE, "fig1", "none", 0.3)
    assert [p.name for p in probes] == ["activations"]
    _, probes = common.planned(SMOKE, "fig5-vgg", "none", 0.5)  # canonical (activations) + what Figure 5 reads
    assert [p.name for p in probes] == ["activations", "landscape"]
    _, probes = common.planned(SMOKE, "fig4", "batch", 0.1)
    assert [p.name for p in probes] == ["activations", "ics", "landscape", "hessian", "hessian_running"]
    _, probes = common.planned(SMOKE, "fig4", "none", 0.1)  # no running statistics without BatchNorm
    assert [p.name for p in probes] == ["activations", "ics", "landscape", "hessian"]
    with pytest.raises(ValueError, match="figure must be one of"):
        common.planned(SMOKE, "fig99", "none", 0.1)
