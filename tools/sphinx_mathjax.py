"""A Sphinx extension that serves MathJax from the built book itself, so formulas render offline.

Sphinx loads MathJax from a CDN by default; the book must work with no network. The MathJax 3 files
come from the PyPI package django-static-mathjax (pinned in requirements.txt; plain files, no
dependencies): the one bundle the book needs (tex-mml-chtml.js) and its web fonts are copied into
``_static/mathjax/`` and ``mathjax_path`` points there. Enabled in _config.yml (sphinx.local_extensions).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

BUNDLE = "tex-mml-chtml.js"
FONTS = Path("output") / "chtml" / "fonts" / "woff-v2"  # where the bundle looks for its fonts, next to itself


def mathjax_dir() -> Path:
    """The MathJax 3 es5 folder shipped by django-static-mathjax."""
    try:
        import mathjax
    except ImportError as err:
        raise RuntimeError("tools.sphinx_mathjax needs the package django-static-mathjax "
                           "(pip install -r requirements.txt)") from err
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_local(app: Any, config: Any) -> None:
    if not (mathjax_dir() / BUNDLE).exists():
        raise RuntimeError(f"{mathjax_dir() / BUNDLE} is missing: reinstall django-static-mathjax")
    config.mathjax_path = f"mathjax/{BUNDLE}"


def _copy(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(mathjax_dir() / BUNDLE, target / BUNDLE)
    shutil.copytree(mathjax_dir() / FONTS, target / FONTS, dirs_exist_ok=True)


def setup(app: Any) -> dict[str, Any]:
    # MathJax on every page, not only on pages with formulas: the navigation shows every chapter's title,
    # and a title with a formula would otherwise stay raw TeX on the pages without one.
    app.set_html_assets_policy("always")
    app.connect("config-inited", _use_local)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
