"""Files that check themselves: atomic writes, loads that cannot run code, bad files moved aside.

Runs, checkpoints and converted datasets are torch files read with `weights_only=True`, whose
unpickler builds only tensors, containers and plain values: a file in a shared cache folder (a
Google Drive) cannot execute code. numpy arrays (probe records) are stored as tagged tensors and
rebuilt on load, so no numpy type needs to be allowed. A file that cannot be read, or holds
something other than what was asked for, is renamed `*.corrupt` with a warning naming it, and
the caller recomputes: never a raw unpickling traceback, never a wrong result.
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

_ARRAY, _SCALAR = "__bnlib_ndarray__", "__bnlib_npscalar__"


class BadFile(Exception):
    """A stored file that is unreadable or holds something other than what its name promises."""


class NotWritable(OSError):
    """A folder bnlib must write to (the run cache) cannot be written."""


def encode(obj: Any) -> Any:
    """`obj` with numpy arrays and scalars replaced by tagged tensors (exact dtype and values)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("cannot store a numpy object array: it could carry arbitrary objects")
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return {_SCALAR: torch.from_numpy(np.asarray(obj)).clone()}
    return _map(obj, encode)


def _map(obj: Any, fn: Any) -> Any:
    """`fn` applied to a container's items; the very same container when nothing changed (a model's
    state_dict keeps its `_metadata`)."""
    if isinstance(obj, dict):
        items = [(k, fn(v)) for k, v in obj.items()]
        return obj if all(new is old for (_, new), old in zip(items, obj.values(), strict=True)) else type(obj)(items)
    if isinstance(obj, (list, tuple)):
        values = [fn(v) for v in obj]
        return obj if all(new is old for new, old in zip(values, obj, strict=True)) else type(obj)(values)
    return obj


def decode(obj: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _ARRAY in obj:
            return obj[_ARRAY].numpy()
        if len(obj) == 1 and _SCALAR in obj:
            return obj[_SCALAR].numpy()[()]
    return _map(obj, decode)


def save_atomic(obj: Any, path: Path) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a random part beside the pid: two machines writing one shared folder (a Drive cache) can have the same pid
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{secrets.token_hex(6)}")
    try:
        torch.save(encode(obj), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, map_location: Any = None) -> Any:
    """The stored object; BadFile (never a raw unpickling error) when the file cannot be read safely."""
    try:
        return decode(torch.load(path, weights_only=True, map_location=map_location))
    except (OSError, MemoryError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise BadFile(f"cannot read {path}: {err}") from err
    except Exception as err:  # truncated zip, empty file, a pickle of disallowed types, ...
        detail = type(err).__name__ + (f": {str(err).strip().splitlines()[0][:200]}" if str(err).strip() else "")
        raise BadFile(f"{path} is not a readable bnlib file ({detail})") from err


def move_aside(path: Path, why: str) -> Path:
    """Rename a bad file to `<name>.corrupt` (kept for inspection, out of the way) and warn, naming both."""
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    try:
        os.replace(path, target)
    except OSError as err:
        warnings.warn(f"{why}; could not move {path} aside ({err}): it will be overwritten", stacklevel=3)
        return path
    warnings.warn(f"{why}; moved it to {target.name} and will recompute", stacklevel=3)
    return target


def check_writable(folder: Path, what: str) -> None:
    """Make `folder` and write a scratch file there now, so a bad folder fails before hours of training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise NotWritable(f"{what} {folder} is not a writable folder ({err.strerror or err}); "
                                 f"point it at a folder you can write to") from err
