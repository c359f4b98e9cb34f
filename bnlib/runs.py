"""Runs cached on disk, keyed by their full config AND a fingerprint of the code that made them.

Chapters share runs through this cache: the same (config, probes) asked for twice trains once.
A change to the library code a run used (the core modules and the probes it carried) changes
the key, so a stale result is never served. Files are written atomically and
checked when read (`bnlib.store`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from bnlib import checkpoint as ckpt
from bnlib import checks, pool, store
from bnlib import data as bdata
from bnlib.checks import BadParameter
from bnlib.probes.base import Probe
from bnlib.train import RunConfig, check_arguments, run_device, train

Planned = tuple[RunConfig, list[Probe]]  # what one cached run trains: its config and the probes it carries
# The code a run's key fingerprints: the loop (train) with every module it imports, and this cache
# (tests/test_layers.py keeps the list exact); a probe's own file is keyed only in the runs that carry it.
CORE_MODULES = ("checks", "data", "execution", "losses", "models", "store", "train", "dln_step", "checkpoint", "runs",
                "probes/base")
_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """$BNLIB_CACHE, or ~/.cache/bnlib (point it at Google Drive on Colab to survive disconnects)."""
    return Path(os.environ.get("BNLIB_CACHE") or Path.home() / ".cache" / "bnlib")


def _root(cache: Path | str | None) -> Path:
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise BadParameter(f"cache must be a folder path or None ($BNLIB_CACHE), got {cache!r} "
                           f"({type(cache).__name__})")
    return Path(cache) if cache else cache_dir()


def code_fingerprint(probes: Sequence[Probe] = ()) -> str:
    """Hash of the source of the core modules plus the modules defining `probes`."""
    files = {(_PACKAGE_DIR / f"{m}.py").resolve() for m in CORE_MODULES}
    files |= {Path(inspect.getsourcefile(type(p))).resolve() for p in probes}
    digest = hashlib.sha256()
    for f in sorted(files):
        inside = f.is_relative_to(_PACKAGE_DIR)  # probes defined elsewhere are keyed by file name
        digest.update((f.relative_to(_PACKAGE_DIR).as_posix() if inside else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def run_key(config: RunConfig, probes: Sequence[Probe] = ()) -> str:
    """The cache key: config (with `auto` dataset resolved) + probe specs + code fingerprint."""
    if config.on_images:
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    payload = {"config": config.as_dict(), "probes": [p.spec() for p in probes], "code": code_fingerprint(probes)}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_result(path: Path, key: str, config: RunConfig) -> dict[str, Any] | None:
    """The cached history at `path` if it is a finished run of exactly `config` under `key`, else None
    (a bad file is moved aside with a warning, so the run is recomputed)."""
    if not path.exists():
        return None
    try:
        history = store.load(path)
        if not isinstance(history, dict) or history.get("key") != key:
            raise store.BadFile(f"{path} holds another run than {key}")
        if history.get("config") != config.as_dict():
            raise store.BadFile(f"{path} holds a run of another config")
        done = history.get("steps_done")
        if not (isinstance(done, int) and 0 <= done <= config.steps
                and len(history.get("step_loss", ())) == config.steps):
            raise store.BadFile(f"{path} holds an incomplete run record")
        return history
    except store.BadFile as err:
        store.move_aside(path, f"run cache: {err}")
        return None


def run(config: RunConfig, probes: Sequence[Probe] = (), device: torch.device | str | None = None,
        progress: bool = True, cache: Path | str | None = None) -> dict[str, Any]:
    """The run's history, from the cache when present, else trained (resuming a checkpoint).

    The cache folder is checked writable before anything trains; a cached file that is unreadable
    or holds another run is moved aside (with a warning) and the run is trained again.
    """
    check_arguments(config, probes)
    checks.check_bool("progress", progress)
    device = run_device(config, device)
    found = cached(config, probes, cache)
    if found is not None:
        return found
    if config.on_images:
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    root = _root(cache)
    key = run_key(config, probes)
    result_path = root / "runs" / f"{key}.pt"
    for folder in ("runs", "checkpoints"):
        store.check_writable(root / folder, "the run cache ($BNLIB_CACHE or cache=)")
    checkpoint = root / "checkpoints" / f"{key}.pt"
    bar = _widget_aware_bar() if progress else False
    history = train(config, probes, device=device, checkpoint=checkpoint, progress=bar)
    history["key"] = key
    history["probe_specs"] = [p.spec() for p in probes]
    store.save_atomic(history, result_path)
    checkpoint.unlink(missing_ok=True)
    return history


def cached(config: RunConfig, probes: Sequence[Probe] = (), cache: Path | str | None = None) -> dict[str, Any] | None:
    """The run's finished history from the cache, else None (a bad file is moved aside, as `load_result` does)."""
    if config.on_images:
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    key = run_key(config, probes)
    return load_result(_root(cache) / "runs" / f"{key}.pt", key, config)


def _widget_aware_bar() -> Any:
    """The widget-aware bar factory (bnlib.widgets), imported only when a bar is shown: the pool's quiet
    workers then never load the UI module (and matplotlib with it)."""
    from bnlib.widgets import progress_bar

    return progress_bar


def is_cached(config: RunConfig, probes: Sequence[Probe] = (), cache: Path | str | None = None) -> bool:
    """Whether a cache file exists for the run (run() still checks it before using it)."""
    return (_root(cache) / "runs" / f"{run_key(config, probes)}.pt").exists()


def _train_quietly(config: RunConfig, probes: Sequence[Probe], cache: Path | str | None) -> None:
    """One pool job: train into the cache (the history stays on disk; the parent reads it from there)."""
    run(config, probes, progress=False, cache=cache)


def unique(planned: Iterable[Planned]) -> list[Planned]:
    """The planned runs without repeats (chapters ask for a shared canonical run more than once)."""
    seen: dict[str, Planned] = {}
    for config, probes in planned:
        seen.setdefault(run_key(config, probes), (config, list(probes)))
    return list(seen.values())


def made_on(planned: Iterable[Planned], cache: Path | str | None = None) -> list[str]:
    """The devices the cached runs among `planned` record (the GPU's name or the CPU's model): one cache may hold
    runs from several machines, whose kernels round differently. Empty when none is cached."""
    names = set()
    for config, probes in unique(planned):
        history = cached(config, probes, cache)
        if history is not None:  # records from before provenance say only "cpu" or "cuda"
            names.add(history["execution"].get("device_name") or history["device"])
    return sorted(names)


def describe(config: RunConfig) -> str:
    """A run in a few words, for the lists a person reads: 'VGG batch lr 0.1 seed 0, 1,800 steps'."""
    return f"{config.network} {config.norm} lr {config.lr:g} seed {config.seed}, {config.steps:,} steps"


def checkpointed_step(config: RunConfig, probes: Sequence[Probe] = (), cache: Path | str | None = None) -> int | None:
    """The step a run's checkpoint holds (the run resumes there), or None without a usable checkpoint."""
    if config.on_images:
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    state = ckpt.load(_root(cache) / "checkpoints" / f"{run_key(config, probes)}.pt", config.as_dict())
    return None if state is None else state["history"]["steps_done"]


def stopped(jobs: Sequence[Planned], cache: Path | str | None = None) -> str:
    """What an interrupt left: the runs finished, checkpointed (at which step) and never started."""
    finished, kept, waiting = [], [], []
    for config, probes in jobs:
        if is_cached(config, probes, cache):
            finished.append(config)
        elif step := checkpointed_step(config, probes, cache):
            kept.append(f"{describe(config)}: at step {step:,}")
        else:
            waiting.append(config)
    lines = [f"Stopped: {len(finished)} of {len(jobs)} runs finished, {len(kept)} checkpointed, "
             f"{len(waiting)} not started.", *(f"  checkpointed {line}" for line in kept)]
    if kept or waiting:
        lines.append("Run the same cell or command again: checkpointed runs resume from their step.")
    return "\n".join(lines)


def train_all(planned: Iterable[Planned], workers: int | None = None,
              cache: Path | str | None = None) -> int:
    """Train every planned run that is not cached yet, `workers` at a time on this machine's cores
    (bnlib.pool; default one per core, one on a GPU); returns how many were trained.

    A chapter calls this right after printing its plan: the independent runs of all its seeds then train
    side by side, and its cells read them from the cache. The biggest runs start first, so that no
    core idles at the end waiting on one long run. Runs with a checkpoint resume from it (said first);
    an interrupt (Ctrl-C, Jupyter's stop button) stops every run at a step boundary, checkpointed, and
    says what finished, what was checkpointed at which step and what never started.
    """
    todo: dict[str, Planned] = {}
    for config, probes in planned:
        if not is_cached(config, probes, cache):
            todo.setdefault(run_key(config, probes), (config, list(probes)))
    jobs = sorted(todo.values(), key=lambda job: (job[0].model == "vgg", job[0].steps * job[0].width,
                                                  len(job[1])), reverse=True)
    workers = pool.default_workers() if workers is None else checks.check_int("workers", workers, 1)
    resuming = [(config, step) for config, probes in jobs if (step := checkpointed_step(config, probes, cache))]
    if resuming:
        print(f"Resuming {len(resuming)} run(s) from their checkpoints: "
              + "; ".join(f"{describe(config)} at step {step:,}" for config, step in resuming))
    try:
        if workers == 1:
            for config, probes in jobs:
                run(config, probes, cache=cache)
        else:
            pool.map_jobs([(_train_quietly, (config, probes, cache)) for config, probes in jobs], workers)
    except KeyboardInterrupt:
        print(stopped(jobs, cache))
        raise
    return len(jobs)
