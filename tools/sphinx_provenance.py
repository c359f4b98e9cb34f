"""A Sphinx extension that puts what built the book on every page: a banner naming the profile, the images the
VGG runs trained on, the short commit and the build date.

A reader comparing a number with their own needs to know which build they are looking at; a published site may
be days behind the repository. The banner is the theme's announcement bar (pydata-sphinx-theme, under
sphinx-book-theme), so it sits above every page in the theme's own light and dark colours. Enabled in
_config.yml (sphinx.local_extensions).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any


def commit(root: Path) -> str:
    """The short commit of the repository at `root` (with "+ local changes" when its tree differs), else
    $GITHUB_SHA's, else "an unknown commit"."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60).stdout.strip()

    try:
        short = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        short, dirty = "", False
    if not short:
        return os.environ.get("GITHUB_SHA", "")[:7] or "an unknown commit"
    return f"{short} + local changes" if dirty else short


def banner(root: Path, today: datetime.date | None = None) -> str:
    """The banner's text: profile, dataset actually used, commit and date (UTC)."""
    from bnlib import book, data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cifar10 is not available": the chapters say it where it matters
        setup = book.common(None, "auto")
        dataset = data.resolve_name(setup.dataset)
    day = (today or datetime.datetime.now(datetime.timezone.utc).date()).isoformat()
    return f"Built {day} from commit {commit(root)}: profile {setup.profile.name}, VGG runs on {dataset}"


def _announce(app: Any, config: Any) -> None:
    options = dict(config.html_theme_options or {})
    options["announcement"] = banner(Path(app.srcdir))
    config.html_theme_options = options


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _announce)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
