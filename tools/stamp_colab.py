"""Keep the repository URL in ONE place (_config.yml `repository.url`) and copy it where Colab needs it.

Two places use it: each chapter's first code cell, which installs bnlib on Colab (and only there) with
`pip install "bnlib @ git+URL"`, and the README's table of "Open in Colab" links. The check also wants,
in every chapter that trains, the commented cell after it that points the run cache at Google Drive.
After changing the URL in _config.yml, run ``python -m tools.stamp_colab``; ``--check`` only reports
(tests/test_colab.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

_PIP = re.compile(r'"bnlib @ git\+[^"]*"')
_BADGES_START = "<!-- colab-badges:start (written by python -m tools.stamp_colab) -->"
_BADGES_END = "<!-- colab-badges:end -->"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


@dataclass(frozen=True)
class Repository:
    """The book's repository as _config.yml states it."""

    url: str  # e.g. https://github.com/owner/name
    branch: str
    path_to_book: str
    colab_url: str  # the Colab front end, e.g. https://colab.research.google.com

    @property
    def slug(self) -> str:
        """owner/name, from a github.com URL."""
        match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.url)
        if not match:
            raise ValueError(f"repository.url in _config.yml must be https://github.com/OWNER/NAME, got {self.url!r}")
        return match.group(1)

    def pip_requirement(self) -> str:
        """What the Colab setup cell installs."""
        return f'"bnlib @ git+{self.url}"'

    def colab_link(self, notebook: str) -> str:
        """The Colab URL that opens `notebook` (a path relative to the book root) from GitHub."""
        path = "/".join(p for p in (self.path_to_book.strip("/"), notebook) if p)
        return f"{self.colab_url.rstrip('/')}/github/{self.slug}/blob/{self.branch}/{path}"


def repository(root: Path) -> Repository:
    """Read `repository` and `launch_buttons.colab_url` from root/_config.yml."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{root / '_config.yml'} has no repository.url")
    colab = (config.get("launch_buttons") or {}).get("colab_url") or "https://colab.research.google.com"
    return Repository(repo["url"], repo.get("branch", "main"), repo.get("path_to_book", "") or "", colab)


def chapter_notebooks(root: Path) -> list[Path]:
    """The chapter notebooks in _toc.yml order."""
    import yaml

    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((root / "_toc.yml").read_text()))
    paths = [root / (f if f.endswith(".ipynb") else f + ".ipynb") for f in files]
    return [p for p in paths if p.exists()]


def setup_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The first code cell, if it is the Colab setup cell (it mentions google.colab)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code[0] if code and "google.colab" in code[0].source else None


def drive_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The code cell right after the setup cell, if it is the commented Google Drive cell (it names BNLIB_CACHE)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code[1] if len(code) > 1 and "BNLIB_CACHE" in code[1].source and "drive.mount" in code[1].source else None


def trains(nb: nbformat.NotebookNode) -> bool:
    """Whether the chapter trains runs: it then prints its plan first (bnlib.plan.show)."""
    return any(c.cell_type == "code" and "plan.show(" in c.source for c in nb.cells)


def title(nb: nbformat.NotebookNode) -> str:
    """The notebook's title: the first '# ' heading of its first markdown cell."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            return ""
    return ""


def badge_table(root: Path, repo: Repository) -> str:
    """The README's table: one Colab badge per chapter."""
    rows = ["| chapter | open it |", "|---|---|"]
    for path in chapter_notebooks(root):
        rel = path.relative_to(root).as_posix()
        name = title(nbformat.read(path, as_version=4)) or path.stem
        rows.append(f"| {name} | [![Open In Colab]({BADGE})]({repo.colab_link(rel)}) |")
    return "\n".join([_BADGES_START, *rows, _BADGES_END])


def problems(root: Path) -> list[str]:
    """Everything that disagrees with _config.yml's repository, and training chapters without their (commented)
    Google Drive cell; empty when all is stamped."""
    repo = repository(root)
    found = []
    for path in chapter_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        cell = setup_cell(nb)
        if cell is None:
            found.append(f"{path.name}: the first code cell is not the Colab setup cell")
            continue
        installs = _PIP.findall(cell.source)
        if installs != [repo.pip_requirement()]:
            found.append(f"{path.name}: setup cell installs {installs}, expected [{repo.pip_requirement()}]")
        drive = drive_cell(nb)
        if trains(nb) and drive is None:
            found.append(f"{path.name}: trains runs but has no Google Drive cell right after the setup cell")
        elif drive is not None and any(line.strip() and not line.lstrip().startswith("#")
                                       for line in drive.source.splitlines()):
            found.append(f"{path.name}: the Google Drive cell must stay commented (it runs in the book build)")
    readme = (root / "README.md").read_text()
    expected = {repo.colab_link(p.relative_to(root).as_posix()) for p in chapter_notebooks(root)}
    linked = set(re.findall(re.escape(repo.colab_url.rstrip("/")) + r"/github/[^)\s\"]+", readme))
    for link in sorted(expected - linked):
        found.append(f"README.md: no Colab link {link}")
    for link in sorted(linked - expected):
        found.append(f"README.md: Colab link {link} is not one of the chapters at repository.url")
    return found


def stamp(root: Path) -> list[Path]:
    """Rewrite the setup cells and the README's badge table from _config.yml; returns changed files."""
    repo = repository(root)
    changed = []
    for path in chapter_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        cell = setup_cell(nb)
        if cell is None:
            raise ValueError(f"{path}: the first code cell must be the Colab setup cell (it mentions google.colab)")
        new = _PIP.sub(repo.pip_requirement(), cell.source)
        if new != cell.source:
            cell.source = new
            nbformat.write(nb, path)
            changed.append(path)
    readme_path = root / "README.md"
    readme = readme_path.read_text()
    table = badge_table(root, repo)
    if _BADGES_START in readme and _BADGES_END in readme:
        before, rest = readme.split(_BADGES_START, 1)
        new_readme = before + table + rest.split(_BADGES_END, 1)[1]
    else:
        raise ValueError(f"{readme_path} needs the markers {_BADGES_START!r} and {_BADGES_END!r}")
    if new_readme != readme:
        readme_path.write_text(new_readme)
        changed.append(readme_path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stamp_colab", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the book's root (default: here)")
    parser.add_argument("--check", action="store_true", help="only report what disagrees; exit 1 if anything")
    args = parser.parse_args(argv)
    if args.check:
        found = problems(args.root)
        print("\n".join(found) or "all Colab links agree with _config.yml")
        return 1 if found else 0
    changed = stamp(args.root)
    print(json.dumps([str(p) for p in changed]) if changed else "nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
