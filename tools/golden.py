"""Golden hashes: proof, bitwise and cheap, that a refactoring did not change what the runs compute.

``python -m tools.golden --write golden.json`` trains every run the book plans (``bnlib.book.book_plan``) at a
small profile (``smoke`` by default, on the synthetic set) into a fresh, temporary run cache, one thread, and
stores one hash per run of what it computed: the step losses and accuracies, the evaluations, every probe
record, where it diverged and how far it got (never its timing or how it executed). After the change,
``python -m tools.golden --check golden.json`` trains them again and lists every run whose hash differs (exit 1).
A run is named by its config, not by its cache key: the key covers the code's fingerprint, which a refactoring
changes on purpose. Compare on one machine: another CPU rounds differently.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

RESULTS = ("step_loss", "step_acc", "evals", "probes", "diverged_at", "steps_done")  # what a run computed


def _feed(digest: Any, value: Any) -> None:
    """Hash `value` exactly: tensors by dtype, shape and bytes, floats by their hex form, containers in order."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        digest.update(b"{")
        for k in sorted(value, key=str):
            digest.update(repr(k).encode())
            _feed(digest, value[k])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for v in value:
            _feed(digest, v)
        digest.update(b"]")
    elif isinstance(value, float):
        digest.update(value.hex().encode())
    else:
        digest.update(repr(value).encode())


def digest(history: dict[str, Any]) -> str:
    """The hash of what a run computed (RESULTS of its history), bit for bit."""
    h = hashlib.sha256()
    for key in RESULTS:
        h.update(key.encode())
        _feed(h, history[key])
    return h.hexdigest()[:16]


def name(config: Any, probes: list[Any]) -> str:
    """A run's name from its config and probes (stable across code changes, unlike its cache key)."""
    defaults = dataclasses.asdict(type(config)())  # only the fields a run sets: a new field at its default renames none
    fields = json.dumps({k: v for k, v in dataclasses.asdict(config).items() if v != defaults.get(k, object())},
                        sort_keys=True, default=str)
    short = hashlib.sha256(fields.encode()).hexdigest()[:8]
    return (f"{config.model} {config.norm} lr {config.lr:g} seed {config.seed} "
            f"[{'/'.join(sorted(p.name for p in probes))}] {short}")


def golden(profile: str, dataset: str) -> dict[str, str]:
    """{run name: hash} for every run of the book at `profile`, trained now into a temporary cache."""
    from bnlib import book, runs

    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bnlib-golden-") as cache:
        for config, probes in book.book_plan(book.common(profile, dataset)):
            out[name(config, probes)] = digest(runs.run(config, probes, progress=False, cache=cache))
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--dataset", default="synthetic")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", type=Path, help="store the hashes here")
    what.add_argument("--check", type=Path, help="compare with the hashes stored here")
    args = parser.parse_args(argv)
    now = golden(args.profile, args.dataset)
    if args.write:
        args.write.write_text(json.dumps(now, indent=1) + "\n")
        print(f"{len(now)} runs at profile {args.profile} ({args.dataset}) hashed into {args.write}")
        return 0
    before = json.loads(args.check.read_text())
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for k in changed:
        print(f"differs: {k}: {before.get(k, 'absent')} -> {now.get(k, 'absent')}")
    print(f"{len(now)} runs, {len(changed)} differ from {args.check}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
