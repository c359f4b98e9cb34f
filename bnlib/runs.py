"""Runs cached on disk, keyed by their full config AND a fingerprint of the code that made them.

Chapters share runs through this cache: the same (config, probes) asked for twice trains once.
A change to the library code a run used (the core modules and the probes it carried) changes
the key, so a stale result is never served. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bnlib import data as bdata
from bnlib.probes.base import Probe
from bnlib.train import RunConfig, _save_atomic, train

CORE_MODULES = ("data", "models", "train", "runs", "probes/base")
_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """$BNLIB_CACHE, or ~/.cache/bnlib (point it at Google Drive on Colab to survive disconnects)."""
    return Path(os.environ.get("BNLIB_CACHE") or Path.home() / ".cache" / "bnlib")


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
    if config.model == "vgg":
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    payload = {"config": config.as_dict(), "probes": [p.spec() for p in probes], "code": code_fingerprint(probes)}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run(config: RunConfig, probes: Sequence[Probe] = (), device: torch.device | str | None = None,
        progress: bool = True, cache: Path | str | None = None) -> dict[str, Any]:
    """The run's history, from the cache when present, else trained (resuming a checkpoint)."""
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ValueError(f"probe names must be unique within a run, got {names}")
    if config.model == "vgg":
        config = config.replace(dataset=bdata.resolve_name(config.dataset))
    root = Path(cache) if cache else cache_dir()
    key = run_key(config, probes)
    result_path = root / "runs" / f"{key}.pt"
    if result_path.exists():
        return torch.load(result_path, weights_only=False)
    checkpoint = root / "checkpoints" / f"{key}.pt"
    history = train(config, probes, device=device, checkpoint=checkpoint, progress=progress)
    history["key"] = key
    history["probe_specs"] = [p.spec() for p in probes]
    _save_atomic(history, result_path)
    checkpoint.unlink(missing_ok=True)
    return history


def is_cached(config: RunConfig, probes: Sequence[Probe] = (), cache: Path | str | None = None) -> bool:
    root = Path(cache) if cache else cache_dir()
    return (root / "runs" / f"{run_key(config, probes)}.pt").exists()
