"""A Sphinx extension for how the book's pages read: its one stylesheet (tools/static/bnlib.css: code wraps at
the page's width instead of scrolling sideways, on a phone too). Enabled in _config.yml (sphinx.local_extensions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"


def _add_static(app: Any) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _add_static)
    app.add_css_file("bnlib.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
