"""An interrupted run resumes bitwise where an uninterrupted one ends: real signals to a child process,
an exception inside a probe, an exception on an unprobed step. Noisy BN makes any half-step visible
(its noise is drawn in the forward pass, BN running statistics move there too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bnlib.probes.base import Probe, StepContext
from bnlib.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(model="vgg", norm="noisy", lr=0.05, steps=12, batch_size=16, width=1 / 16, dataset="synthetic",
              n_train=128, n_test=64, eval_every=4)

CHILD = """
import signal, sys, torch
# Ctrl-C's handler, as in a foreground Python: a job started in the background by a shell without job control
# (a CI runner, nohup ... &) inherits SIGINT ignored, and a run then rightly keeps ignoring it
signal.signal(signal.SIGINT, signal.default_int_handler)
torch.set_num_threads({threads})
from bnlib.probes.base import Probe
from bnlib.train import RunConfig, train

class Wait(Probe):
    name = "wait"

    def measure(self, ctx):
        if ctx.step == 5:  # mid-step: noise drawn, BN statistics moved, update not yet applied
            print("ready", flush=True)
            sys.stdin.readline()  # the parent sends its signal while we wait here
        return {{}}

train(RunConfig(**{config!r}), [Wait(every=5)], progress=False, checkpoint={path!r}, checkpoint_every=1000)
print("finished", flush=True)
"""


def _same(a: dict, b: dict) -> None:
    assert torch.equal(a["step_loss"], b["step_loss"])
    assert torch.equal(a["step_acc"], b["step_acc"])
    assert a["evals"] == b["evals"]
    assert a["steps_done"] == b["steps_done"] == CONFIG["steps"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_mid_step_checkpoints_a_whole_step_and_resumes_bitwise(tmp_path, sig):
    path = tmp_path / "run.pt"
    code = CHILD.format(threads=torch.get_num_threads(), config=CONFIG, path=str(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    child.send_signal(sig)
    out, err = child.communicate("go\n")
    assert "finished" not in out and child.returncode != 0, err
    if sig == signal.SIGTERM:
        assert child.returncode == -signal.SIGTERM  # the default action, after the checkpoint
    else:
        assert "KeyboardInterrupt" in err
    saved = torch.load(path, weights_only=True)
    assert 6 <= saved["history"]["steps_done"] < CONFIG["steps"]  # step 5 finished first
    resumed = train(RunConfig(**CONFIG), progress=False, checkpoint=path)
    _same(resumed, train(RunConfig(**CONFIG), progress=False))


class Failing(Probe):
    """Raises inside its measurement at `at` (after forward and backward, before the update)."""

    name = "failing"

    def __init__(self, every: int, at: int, error: type[BaseException]) -> None:
        super().__init__(every)
        self.at, self.error = at, error

    def measure(self, ctx: StepContext) -> dict:
        if ctx.step == self.at:
            raise self.error("out of memory (simulated)")
        return {"step_seen": ctx.step}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_inside_a_probe_checkpoints_the_start_of_that_step(tmp_path, error):
    config, path = RunConfig(**CONFIG), tmp_path / "run.pt"
    with pytest.raises(error, match="out of memory"):
        train(config, [Failing(3, at=9, error=error)], progress=False, checkpoint=path, checkpoint_every=1000)
    assert torch.load(path, weights_only=True)["history"]["steps_done"] == 9
    resumed = train(config, [Failing(3, at=-1, error=error)], progress=False, checkpoint=path)
    plain = train(config, [Failing(3, at=-1, error=error)], progress=False)
    _same(resumed, plain)
    assert resumed["probes"]["failing"] == plain["probes"]["failing"]


def test_an_exception_mid_step_without_a_copy_keeps_the_last_whole_checkpoint(tmp_path, monkeypatch):
    """An unprobed step keeps no start-of-step copy: the periodic checkpoint (step 6) stays the resume point."""
    config, path = RunConfig(**CONFIG), tmp_path / "run.pt"
    real_step = torch.optim.SGD.step
    calls = []

    def failing_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 8:  # the update of step 7: its forward already ran
            raise RuntimeError("CUDA error (simulated)")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", failing_step)
    with pytest.raises(RuntimeError, match="simulated"):
        train(config, progress=False, checkpoint=path, checkpoint_every=3)
    monkeypatch.setattr(torch.optim.SGD, "step", real_step)
    assert torch.load(path, weights_only=True)["history"]["steps_done"] == 6
    _same(train(config, progress=False, checkpoint=path), train(config, progress=False))
