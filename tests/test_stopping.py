"""Stopping is clean, on real processes (bnlib.pool under runs.train_all): the pool's owner killed outright leaves
no worker training; Ctrl-C to the whole process group (a terminal's, Jupyter's stop button) stops every worker at a
step boundary, checkpointed, says what happened, and the next start resumes bitwise; a profile far too big for the
machine stops before anything trains. Every owner is started in its own session, as a terminal starts a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bnlib import book, plan, pool, runs
from bnlib.checks import BadParameter
from bnlib.profiles import PROFILES
from bnlib.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 120  # only against hangs: a busy machine slows every start (a worker imports torch first)
OWNER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal's foreground job (CI starts us ignoring it)
from bnlib import runs
from bnlib.train import RunConfig, train

if __name__ == "__main__":
    configs = [RunConfig(model="vgg", norm="batch", lr=0.05, steps={steps}, batch_size=16, width=1 / 16,
                         dataset="synthetic", n_train=128, n_test=64, eval_every=250, seed=seed) for seed in range({n})]
    print("trained", runs.train_all([(c, []) for c in configs], workers=2, cache=sys.argv[1]), flush=True)
"""


SLOW_OWNER = """
import os, signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
from bnlib import runs
from bnlib.probes.base import Probe
from bnlib.train import RunConfig


class Slow(Probe):
    \"\"\"Every step long, as a probed step at full scale is (a Hessian takes seconds): a stop arrives mid-step.\"\"\"

    name = "slow"

    def measure(self, ctx):
        (Path(sys.argv[1]) / f"step-{ctx.step}-{os.getpid()}").touch()  # one file per worker at each step
        time.sleep(1.0)
        return {}


if __name__ == "__main__":
    configs = [RunConfig(model="vgg", norm="batch", lr=0.05, steps=1_000, batch_size=16, width=1 / 16,
                         dataset="synthetic", n_train=128, n_test=64, eval_every=250, seed=seed) for seed in range(5)]
    print("trained", runs.train_all([(c, [Slow(1)]) for c in configs], workers=2, cache=sys.argv[1]), flush=True)
"""


def _configs(steps: int, n: int) -> list[RunConfig]:
    return [RunConfig(model="vgg", norm="batch", lr=0.05, steps=steps, batch_size=16, width=1 / 16,
                      dataset="synthetic", n_train=128, n_test=64, eval_every=250, seed=seed) for seed in range(n)]


def _owner(tmp_path: Path, cache: Path, steps: int = 0, n: int = 0, code: str = OWNER) -> subprocess.Popen:
    script = tmp_path / "owner.py"
    script.write_text(code.format(steps=steps, n=n) if code is OWNER else code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(script), str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, start_new_session=True)


def _state(pid: int) -> str | None:
    """The process's state letter, or None when it is gone (a zombie counts as gone: it no longer runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return None
    return None if state in ("Z", "X") else state


def _workers(owner: int) -> list[int]:
    """The pool's worker processes of `owner` (multiprocessing's spawned children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == owner and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def owners():
    """The owners a test starts, and their workers, killed at its end whatever happened (a failing test must not
    leave training behind)."""
    started: list[subprocess.Popen] = []
    yield started
    for owner in started:
        for pid in _workers(owner.pid):
            os.kill(pid, signal.SIGKILL)
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)


def _until(condition: Callable[[], bool], seconds: float = BOUND_S) -> float:
    """Seconds until `condition` holds (polled); fails the test after `seconds`."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < seconds, f"still not true after {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - began


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_killed_owner_leaves_no_worker_training(tmp_path, owners):
    cache = tmp_path / "cache"
    owners.append(owner := _owner(tmp_path, cache, steps=1_000_000, n=2))  # runs that would train for hours
    _until(lambda: len(list((cache / "checkpoints").glob("*.pt"))) == 2)  # both workers are training
    workers = _workers(owner.pid)
    assert len(workers) == 2
    owner.kill()  # SIGKILL: the owner can do nothing, as when a kernel dies
    owner.wait()
    gone = _until(lambda: not any(_state(pid) for pid in workers), seconds=30)
    print(f"both workers gone {gone:.1f} s after their owner was killed")


def test_ctrl_c_stops_every_worker_at_a_step_and_the_next_start_resumes_bitwise(tmp_path, owners):
    cache, steps = tmp_path / "cache", 1_000
    owners.append(owner := _owner(tmp_path, cache, steps=steps, n=3))  # two train, one waits in the queue
    _until(lambda: len(list((cache / "checkpoints").glob("*.pt"))) == 2)  # both past their step-500 checkpoint
    workers = _workers(owner.pid)
    os.killpg(owner.pid, signal.SIGINT)  # what a terminal's Ctrl-C and Jupyter's stop button do
    out, err = owner.communicate(timeout=BOUND_S)
    assert owner.returncode != 0 and "KeyboardInterrupt" in err and "trained" not in out, err[-2000:]
    assert not any(_state(pid) for pid in workers), "a worker outlived the interrupt"
    assert "Stopped: 0 of 3 runs finished, 2 checkpointed, 1 not started." in out, out
    saved = {c.seed: runs.checkpointed_step(c, [], cache) for c in _configs(steps, 3)}
    assert saved[2] is None and all(500 <= saved[s] < steps for s in (0, 1)), saved

    owners.append(again := _owner(tmp_path, cache, steps=steps, n=3))
    out, err = again.communicate(timeout=4 * BOUND_S)
    assert again.returncode == 0 and "trained 3" in out, err[-2000:]
    assert "Resuming 2 run(s) from their checkpoints" in out and f"at step {saved[0]:,}" in out, out

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, pool.cores() // 2))  # what each of the owner's two workers had
    try:
        for config in _configs(steps, 3)[:2]:
            whole = train(config, progress=False)  # the same run, never interrupted
            resumed = runs.cached(config, [], cache)
            assert torch.equal(resumed["step_loss"], whole["step_loss"]) and resumed["evals"] == whole["evals"]
    finally:
        torch.set_num_threads(threads)


def test_a_stop_mid_step_ends_every_worker_and_starts_no_queued_run(tmp_path, owners):
    """Both workers mid-step when the stop comes: the first to reach its step's end dies, and the executor then
    sends the other a second SIGTERM, which stops it at once; it must end too, not take the next queued run."""
    cache = tmp_path / "cache"
    cache.mkdir()
    owners.append(owner := _owner(tmp_path, cache, code=SLOW_OWNER))
    _until(lambda: len(list(cache.glob("step-2-*"))) == 2)  # both workers are past step 2 of a run
    workers = _workers(owner.pid)
    os.killpg(owner.pid, signal.SIGINT)
    out, err = owner.communicate(timeout=BOUND_S)
    assert owner.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    assert not any(_state(pid) for pid in workers), "a worker outlived the interrupt"
    assert "Stopped: 0 of 5 runs finished, 2 checkpointed, 3 not started." in out, out


def test_a_gpu_profile_without_a_gpu_stops_before_training(tiny_vgg, cache, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(plan.ALLOW_LONG, raising=False)
    with pytest.raises(BadParameter, match=r"profile 'gpu' is sized for a GPU .* at least .*BNLIB_ALLOW_LONG=1"):
        plan.show([(tiny_vgg, [])], PROFILES["gpu"])
    assert capsys.readouterr().out == ""  # nothing timed, nothing trained
    monkeypatch.setattr(book, "book_plan", lambda setup: [(tiny_vgg, [])])
    with pytest.raises(BadParameter, match="sized for a GPU"):
        book.main(["--train", "--profile", "paper"])  # make book's pool too
    assert not runs.is_cached(tiny_vgg)
    monkeypatch.setenv(plan.ALLOW_LONG, "1")
    assert plan.show([(tiny_vgg, [])], PROFILES["gpu"]).runs == 1  # opted in: the plan is made and printed


def test_a_plan_estimated_over_six_hours_stops(monkeypatch):
    monkeypatch.delenv(plan.ALLOW_LONG, raising=False)
    long = plan.Plan(runs=9, cached=0, seconds=7 * 3600, device="CPU", measured=())
    with pytest.raises(BadParameter, match=r'estimated at 7 h .* over 6 h: use profile="smoke"'):
        plan.refuse_long(long, PROFILES["cpu"])
    plan.refuse_long(plan.Plan(9, 0, 5 * 3600, "CPU", ()), PROFILES["cpu"])  # under the bound: goes on
    monkeypatch.setenv(plan.ALLOW_LONG, "1")
    plan.refuse_long(long, PROFILES["cpu"])
