"""Check a built book's links offline: ``python -m tools.linkcheck _build/html``.

Every internal link (a page, a file, an image, a script, with or without ``#anchor``) must resolve to a file of the
build, and every anchor to an element with that id on the target page; external links (http, https, mailto)
cannot be checked offline and are counted, not followed. Prints what is broken and exits 1 when anything is.
Sphinx's own ``linkcheck`` builder needs the network for the external ones and does not check anchors of pages
the build wrote itself the way a reader's browser resolves them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

EXTERNAL = ("http", "https", "mailto", "data", "javascript", "tel")
LINKING = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src", "source": "src"}


class _Page(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.ids.add(str(values[name]))
        target = values.get(LINKING.get(tag, ""))
        if target is not None and not (tag == "link" and values.get("rel") in ("preconnect", "dns-prefetch")):
            self.links.append(target)


@dataclass
class Report:
    """What the check found: broken links (page, link, why) and the external links it could not follow."""

    pages: int = 0
    internal: int = 0
    external: set[str] = field(default_factory=set)
    broken: list[tuple[str, str, str]] = field(default_factory=list)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _pages(root: Path) -> Iterator[Path]:
    """The pages a reader opens: not the theme's template fragments under _static/ nor the sources."""
    yield from sorted(p for p in root.rglob("*.html") if p.relative_to(root).parts[0] not in ("_static", "_sources"))


def check(root: Path) -> Report:
    """Check every page under `root` (a built book's html folder)."""
    root = root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: build the book first (jupyter-book build .)")
    parsed = {path: _parse(path) for path in _pages(root)}
    report = Report(pages=len(parsed))
    for path, page in parsed.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in EXTERNAL or link.startswith("//"):
                report.external.add(link)
                continue
            report.internal += 1
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = path.relative_to(root).as_posix()
            if not target.is_file():
                report.broken.append((where, link, "no such file in the build"))
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    report.broken.append((where, link, f"no element with id {parts.fragment!r} on that page"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.linkcheck", description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, nargs="?", default=Path("_build/html"), help="the built book's html folder")
    args = parser.parse_args(argv)
    report = check(args.html)
    for page, link, why in report.broken:
        print(f"BROKEN {page}: {link} ({why})")
    print(f"{report.pages} pages, {report.internal} internal links checked, {len(report.broken)} broken; "
          f"{len(report.external)} distinct external links not checkable offline")
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())
