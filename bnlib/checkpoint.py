"""Checkpoints that only ever hold whole training steps, and signals held until a step is whole.

A step changes state in several places (the noise RNG and BN running statistics in the forward
pass, parameters and momentum in the update); a checkpoint taken between them resumes into a
different run. So:

- Ctrl-C (SIGINT) and SIGTERM are held while a step is in flight: at the next step boundary the
  run saves a checkpoint and hands the signal to the handler that was there before (Ctrl-C then
  raises KeyboardInterrupt, SIGTERM ends the process). A second signal stops at once, like an
  exception.
- An exception in the middle of a step (an out-of-memory error inside a probe, say) saves the state
  from the start of that step when there is one: probed steps keep a copy of it, since probes are
  where foreign and memory-hungry code runs, and they cost several steps anyway. An unprobed step
  keeps no copy (that would copy the model and optimiser every step): its run resumes from the last
  periodic checkpoint, which is still whole.
"""

from __future__ import annotations

import copy
import signal
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnlib import store
from bnlib.probes.base import rng_state

FORMAT = 2  # bump when the layout changes: older files are moved aside and the run restarts


def state_now(model: nn.Module, optimizer: torch.optim.Optimizer, copy_tensors: bool = False) -> dict[str, Any]:
    """Model, optimiser and RNG state as they are now (copied when the run goes on changing them)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state()}
    if copy_tensors:
        state["model"] = {k: v.detach().clone() for k, v in state["model"].items()}
        state["optimizer"] = copy.deepcopy(state["optimizer"])
    return state


def save(path: Path, state: dict[str, Any], history: dict[str, Any]) -> None:
    store.save_atomic({**state, "format": FORMAT, "history": history}, path)


def load(path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it is a whole-step state of the run `config`; None when there is
    none, and None with a warning (the file moved aside) when it is unreadable or another run's."""
    if not path.exists():
        return None
    try:
        state = store.load(path, map_location="cpu")
        _check(state, path, config)
        return state
    except store.BadFile as err:
        store.move_aside(path, f"checkpoint: {err}")
        return None


def _check(state: Any, path: Path, config: dict[str, Any]) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise store.BadFile(f"{path} is not a checkpoint of this bnlib version")
    history = state.get("history")
    if not isinstance(history, dict) or history.get("config") != config:
        raise store.BadFile(f"{path} holds another run than the one asked for")
    done = history.get("steps_done")
    if not (isinstance(done, int) and 0 <= done <= config["steps"]
            and len(history.get("step_loss", ())) == config["steps"]):
        raise store.BadFile(f"{path} holds an inconsistent step count ({done!r})")


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> bool:
    """Load `state` into the model and optimiser; False (file moved aside) if it does not fit them."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return True
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        store.move_aside(path, f"checkpoint: {path} does not fit this model ({type(err).__name__})")
        return False


class HeldSignals:
    """Within `with HeldSignals() as held:`, SIGINT/SIGTERM only set `held.pending`; `deliver()` passes
    it on to the previous handler once the state is whole. Main thread only (elsewhere Python
    cannot install handlers, and nothing is held)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not None and previous is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        if self.pending is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name} during a step: stopping at once")
        self.pending = signum

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def deliver(self) -> None:
        """Re-raise the held signal under the previous handler; if that handler returns, hold again."""
        signum, self.pending = self.pending, None
        self._restore()
        if signum is not None:
            signal.raise_signal(signum)
        self.__enter__()

    def __exit__(self, kind: Any, *rest: Any) -> None:
        pending = self.pending
        self._restore()
        if pending is not None and kind is None:
            self.pending = None
            signal.raise_signal(pending)
