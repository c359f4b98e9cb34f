"""A Sphinx extension that re-executes every page when bnlib's code or the build's profile changed.

Sphinx rebuilds only the pages whose own source changed, so after an edit to a probe or a plot in
bnlib the chapters would keep their old outputs (stale figures and verdicts). This extension keeps a
fingerprint of bnlib's sources and of $BNLIB_PROFILE / $BNLIB_CACHE in the build environment and,
when it differs, marks every page outdated: the notebooks re-execute (myst-nb's `force` mode) and
take their runs from the bnlib cache, whose keys already say which runs the change invalidates.
With nothing changed, nothing re-executes. Enabled in _config.yml (sphinx.local_extensions).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import bnlib

PACKAGE = Path(bnlib.__file__).resolve().parent  # the installed library the pages import, not this folder
ENVIRONMENT = ("BNLIB_PROFILE", "BNLIB_CACHE", "BNLIB_DATASET")


def fingerprint() -> str:
    """Hash of every bnlib source file and of the environment variables that change what pages show."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    for name in ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()[:16]


def _outdated(app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    current = fingerprint()
    if getattr(env, "bnlib_fingerprint", None) == current:
        return []
    env.bnlib_fingerprint = current  # pickled with the environment, read by the next build
    return sorted(env.found_docs - added - removed)


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
