"""A run's record: the stored history (a dict, unchanged on disk) behind typed accessors.

Why: every consumer used to read the dict its own way (`h["diverged_at"]` or `.get`, final accuracy
four ways). Here each quantity is read once, under ONE divergence rule: from the step a run
diverged on, its accuracy is chance and its loss has no value (NaN). A `Run` is also a read-only
mapping over the history, so the probes' accessors (`bnlib.probes.*`) take it as they take a dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

CHANCE = 0.1  # accuracy of a guess among ten classes: what a diverged run counts as from its divergence on
SPLITS = ("train", "test")
MODES = ("eval", "batch")  # eval mode at the last evaluation; training-mode batches over the last steps


def _config_field(key: str, kind: type, doc: str) -> Any:
    """A read-only property for one config value (the config is the run's own dict, as stored)."""
    return property(lambda self: kind(self.config[key]), doc=doc)


@dataclass(frozen=True)
class Run(Mapping[str, Any]):
    """One run's history, read through accessors that agree on divergence."""

    history: Mapping[str, Any]

    @classmethod
    def of(cls, run: Run | Mapping[str, Any]) -> Run:
        """`run` as a Run (a history dict is wrapped, a Run returned as it is)."""
        return run if isinstance(run, Run) else cls(run)

    def __getitem__(self, key: str) -> Any:
        return self.history[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)

    def __len__(self) -> int:
        return len(self.history)

    @property
    def config(self) -> Mapping[str, Any]:
        return self.history["config"]

    model = _config_field("model", str, "'vgg' or 'dln'")
    norm = _config_field("norm", str, "the normalisation, e.g. 'batch'")
    lr = _config_field("lr", float, "the SGD learning rate")
    steps = _config_field("steps", int, "configured steps (a diverged run spans them, at chance from divergence on)")

    @property
    def steps_done(self) -> int:
        return int(self.history["steps_done"])

    @property
    def dataset(self) -> str:
        return str(self.history["dataset"])

    @property
    def diverged_at(self) -> int | None:
        """The first step whose loss was not finite, or None."""
        at = self.history.get("diverged_at")
        return None if at is None else int(at)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def status(self) -> str:
        """'diverged at step N' or 'finite throughout': how a table names the run's fate."""
        return f"diverged at step {self.diverged_at}" if self.diverged else "finite throughout"

    def step_loss(self) -> np.ndarray:
        """Training loss of every configured step (NaN where not run, and from a divergence on)."""
        loss = np.asarray(self.history["step_loss"], dtype=float)[:self.steps].copy()
        if self.diverged:
            loss[self.diverged_at:] = np.nan
        return loss

    def step_acc(self) -> np.ndarray:
        """Training-batch accuracy (0..1, training mode) of every configured step, chance from a divergence on."""
        acc = np.asarray(self.history["step_acc"], dtype=float)[:self.steps].copy()
        if self.diverged:
            acc[self.diverged_at:] = CHANCE
        return acc

    def eval_acc(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(steps, accuracy 0..1) in eval mode at the evaluation cadence; a diverged run ends at chance on its
        last configured step."""
        _check("split", split, SPLITS)
        rows = [e for e in self.history["evals"] if f"{split}_acc" in e]
        steps = np.array([e["step"] for e in rows], dtype=float)
        acc = np.array([e[f"{split}_acc"] for e in rows], dtype=float)
        if self.diverged:
            keep = steps < self.diverged_at
            steps, acc = np.append(steps[keep], self.steps), np.append(acc[keep], CHANCE)
        return steps, acc

    def final_acc(self, split: str = "test", mode: str = "eval", frac: float = 0.1) -> float:
        """Final accuracy (0..1): `mode` 'eval' is the last evaluation of `split`; 'batch' the mean
        training-batch accuracy over the last `frac` of the steps (split 'train' only). Chance if diverged."""
        _check("split", split, SPLITS)
        _check("mode", mode, MODES)
        if mode == "batch" and split != "train":
            raise ValueError("mode 'batch' measures the training batches: split must be 'train'")
        if self.diverged:
            return CHANCE
        if mode == "batch":
            return float(np.mean(_tail(self.step_acc(), frac)))
        _, acc = self.eval_acc(split)
        return float(acc[-1]) if len(acc) else float("nan")

    def final_loss(self, frac: float = 0.01) -> float:
        """Mean training loss over the last `frac` of the steps (training mode, what the optimiser sees); NaN
        if the run diverged."""
        return float("nan") if self.diverged else float(np.mean(_tail(self.step_loss(), frac)))

    def carries(self, probe: str) -> bool:
        return probe in self.history.get("probes", {})

    def probe(self, name: str) -> list[dict[str, Any]]:
        """The records of probe `name`, one per measured step; a clear error when the run does not carry it."""
        if not self.carries(name):
            raise KeyError(f"this run carries no {name!r} probe (it carries {sorted(self.history.get('probes', {}))})")
        return list(self.history["probes"][name])

    def truncated(self, steps: int) -> Run:
        """The first `steps` steps of this run, shaped like a short run's record (for the baselines)."""
        h = dict(self.history)
        h["step_loss"], h["step_acc"] = self.history["step_loss"][:steps], self.history["step_acc"][:steps]
        h["evals"] = [e for e in self.history["evals"] if e["step"] <= steps]
        h["steps_done"] = min(self.steps_done, steps)
        if self.diverged and self.diverged_at >= steps:
            h["diverged_at"] = None  # it diverged later than the part kept
        return Run(h)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _tail(values: np.ndarray, frac: float) -> np.ndarray:
    return values[-max(1, int(round(frac * len(values)))):]
