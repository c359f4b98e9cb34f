"""Scaling the paper down: how long a Standard VGG sits at chance, against width and seed.

At Glorot initialisation the signal shrinks through 13 ReLU blocks, so the network starts as a
near-constant function and plain SGD at LR 0.1 needs a seed-dependent number of steps to leave
chance. `escape` measures that number for one (width, seed); `search` runs a grid of them in
parallel (bnlib.pool) and `python -m bnlib.experiments.scaling` writes the table the appendix
chapter plots. `init_signal` measures the shrinking itself.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from bnlib import checks, pool
from bnlib import stats as st
from bnlib.paper import Curve
from bnlib.record import Run
from bnlib.train import RunConfig, build_task, train

WINDOW = 25  # training batches in the rolling accuracy (the issue's and the figures' smoothing)
LEVELS = (0.2, 0.5)  # "left chance" and "trains": rolling training-batch accuracy thresholds
MEASURED = Path(__file__).resolve().parent.parent / "measured" / "escape_search.csv"  # README beside it
FIELDS = ("width", "seed", "lr", "layout", "max_steps", "steps_to_20", "steps_to_50", "acc_at_end", "steps_run",
          "seconds")


def rolling(acc: np.ndarray) -> np.ndarray:
    """Mean of the last WINDOW batch accuracies at every step (NaN before a full window)."""
    return st.trailing_mean(acc, WINDOW)


def first_step_at(acc: np.ndarray, level: float) -> int | None:
    """First step whose rolling accuracy (over a full window) reaches `level`, else None."""
    step = st.first_reaching(Curve(np.arange(len(acc), dtype=float), np.asarray(acc, float)), level, WINDOW)
    return int(step) if np.isfinite(step) else None


def escape_config(width: float, seed: int, max_steps: int, dataset: str = "auto", lr: float = 0.1,
                  norm: str = "none") -> RunConfig:
    """The cpu-scale Standard VGG of the search: batch 128, plain SGD, evaluated only at the end."""
    return RunConfig(model="vgg", norm=norm, lr=lr, steps=max_steps, batch_size=128, seed=seed, width=width,
                     dataset=dataset, n_test=1000, eval_every=max_steps)


def escape(width: float, seed: int, max_steps: int, dataset: str = "auto", lr: float = 0.1, norm: str = "none",
           chunk: int = 100) -> dict[str, float | int | None]:
    """Train until the rolling training accuracy passes 50% (or `max_steps`); the steps to 20% and 50%.

    Trains in chunks through `train(stop_after=...)` and its checkpoint, so the steps are exactly
    those of one uninterrupted run; stopping early only skips the steps after the answer is known.
    """
    checks.check_int("max_steps", max_steps, WINDOW)
    checks.check_int("chunk", chunk, 1)
    config = escape_config(width, seed, max_steps, dataset, lr, norm)
    began, done, acc = time.perf_counter(), 0, np.empty(0)
    with tempfile.TemporaryDirectory(prefix="bnlib-escape-") as tmp:
        ckpt = Path(tmp) / "run.pt"
        while done < max_steps:
            history = train(config, checkpoint=ckpt, stop_after=chunk, progress=False)
            done = history["steps_done"]
            acc = history["step_acc"][:done].numpy()
            if history["diverged_at"] is not None or first_step_at(acc, LEVELS[1]) is not None:
                break
    layout = "channels_last" if history["execution"]["channels_last"] else "contiguous"
    return {"width": width, "seed": seed, "lr": lr, "layout": layout, "max_steps": max_steps,
            "steps_to_20": first_step_at(acc, LEVELS[0]), "steps_to_50": first_step_at(acc, LEVELS[1]),
            "acc_at_end": float(rolling(acc)[-1]) if len(acc) else float("nan"), "steps_run": int(len(acc)),
            "seconds": round(time.perf_counter() - began, 1)}


def search(widths: Sequence[float], seeds: Sequence[int], max_steps: int, dataset: str = "auto",
           workers: int | None = None, lr: float = 0.1) -> list[dict]:
    """`escape` for every (width, seed), concurrently on the machine's cores; rows in grid order."""
    jobs = [(escape, (w, s, max_steps, dataset, lr)) for w in widths for s in seeds]
    return pool.map_jobs(jobs, workers)


@torch.no_grad()
def init_signal(width: float, seed: int = 0, dataset: str = "auto", n: int = 256) -> list[float]:
    """Standard deviation of each block's output (13 convs, then the logits) at initialisation on
    `n` training images: how much of the (unit-variance) input survives to each depth."""
    task = build_task(escape_config(width, seed, WINDOW, dataset).replace(n_test=None))
    x, stds = task.x_train[:n], []
    for block in task.model.blocks:
        x = block(x)
        stds.append(float(x.std()))
    return stds


def shape_check(by_seed: Mapping[int, Mapping[tuple[str, float], Run]]) -> list[dict[str, object]]:
    """The paper's Figure 1 shape, one row per seed of {seed: {(norm, lr): run}} (LR 0.1 and 0.5): Standard
    at LR 0.1 passes 50% (25-step training-batch accuracy) within a third of the run, BatchNorm is ahead
    at a tenth of it, Standard at LR 0.5 never leaves chance (never above 20%) and BatchNorm at 0.5 trains."""
    rows = []
    for seed, runs in by_seed.items():
        acc = {key: rolling(run.step_acc()) for key, run in runs.items()}  # a diverged run: chance from then on
        steps = runs[("none", 0.1)].steps
        early = steps // 10
        std50 = first_step_at(runs[("none", 0.1)].step_acc(), LEVELS[1])
        rows.append({
            "seed": seed, "Standard LR 0.1: steps to 50%": std50 if std50 is not None else "never",
            "by a third of the run": "yes" if std50 is not None and std50 <= steps // 3 else "NO",
            f"at step {early}: BN / Standard (%)": f"{100 * acc[('batch', 0.1)][early]:.0f} / "
                                                   f"{100 * acc[('none', 0.1)][early]:.0f}",
            "Standard LR 0.5: highest (%)": f"{100 * _highest(acc[('none', 0.5)]):.0f}"
                                            + ("" if runs[("none", 0.5)].diverged_at is None else " (diverged)"),
            "BN LR 0.5: last (%)": f"{100 * acc[('batch', 0.5)][-1]:.0f}"})
    return rows


def _highest(values: np.ndarray) -> float:
    """The largest finite value (NaN if none: a run shorter than the rolling window)."""
    finite = values[np.isfinite(values)]
    return float(finite.max()) if len(finite) else float("nan")


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    def value(text: str) -> float | int | str | None:
        if text == "":
            return None
        try:
            return float(text) if "." in text or "e" in text else int(text)
        except ValueError:
            return text
    with open(path, newline="") as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def measured() -> list[dict]:
    """The search as measured for the book (bnlib/measured/README.md says how, where and when)."""
    return read_csv(MEASURED)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bnlib.experiments.scaling",
                                     description="Steps a Standard VGG needs to leave chance, per width and seed.")
    parser.add_argument("--widths", type=float, nargs="+", default=[1 / 16, 1 / 8, 1 / 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--dataset", default="auto")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default: 0.1, the paper's)")
    parser.add_argument("--workers", type=int, default=None, help="concurrent runs (default: one per core)")
    parser.add_argument("--out", type=Path, default=MEASURED, help=f"CSV file to write (default: {MEASURED})")
    args = parser.parse_args(argv)
    rows = search(args.widths, args.seeds, args.max_steps, args.dataset, args.workers, args.lr)
    write_csv(rows, args.out)
    for row in rows:
        print(row, flush=True)


if __name__ == "__main__":
    main()
