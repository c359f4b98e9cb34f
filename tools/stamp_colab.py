"""Keep the repository URL and the release in ONE place each and copy them where Colab needs them.

The URL lives in _config.yml (`repository.url`), the release in pyproject.toml (`project.version`, tag
`v<version>`). Three places use them: each chapter's first code cell, which installs bnlib where it is missing
(a fresh Colab runtime) from that release, `pip install "bnlib @ git+URL@v<version>"`, and holds the commented
one-line opt-in for the Google Drive run cache; the README's table of "Open in Colab" links; and the branch the
book's launch buttons open (`repository.branch`). Links and install name the same tag, so a chapter opened on
Colab runs the library of its own release. After changing the URL or the version, run
``python -m tools.stamp_colab``; ``--check`` only reports (tools/tests/test_colab.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

_BRANCH = re.compile(r"^(  branch: ).*$", re.MULTILINE)  # repository.branch in _config.yml
INSTALL_CELL = """\
# Setup. Where bnlib is missing (a fresh Colab runtime), install the release
# this book was built from. On Colab, uncomment the last line to keep the runs
# on Google Drive: a reconnected runtime then picks up where it stopped.
import importlib.util

if importlib.util.find_spec("bnlib") is None:
    !pip install -q {requirement}
from bnlib import book
# book.use_drive()"""
INSTALL_TAGS = ["remove-cell"]  # runs everywhere, shown in Colab and Jupyter, not on the book's pages
_BADGES_START = "<!-- colab-badges:start (written by python -m tools.stamp_colab) -->"
_BADGES_END = "<!-- colab-badges:end -->"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


@dataclass(frozen=True)
class Repository:
    """The book's repository as _config.yml states it."""

    url: str  # e.g. https://github.com/owner/name
    version: str  # the release, pyproject.toml's project.version; its tag is v<version>
    path_to_book: str
    colab_url: str  # the Colab front end, e.g. https://colab.research.google.com

    @property
    def tag(self) -> str:
        """The release's git tag: what the install cell, the Colab links and the launch buttons name."""
        return f"v{self.version}"

    @property
    def slug(self) -> str:
        """owner/name, from a github.com URL."""
        match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.url)
        if not match:
            raise ValueError(f"repository.url in _config.yml must be https://github.com/OWNER/NAME, got {self.url!r}")
        return match.group(1)

    def pip_requirement(self) -> str:
        """What the install cell installs: the release, by its tag."""
        return f'"bnlib @ git+{self.url}@{self.tag}"'

    def install_cell(self) -> str:
        """Every chapter's first code cell, exactly."""
        return INSTALL_CELL.format(requirement=self.pip_requirement())

    def colab_link(self, notebook: str) -> str:
        """The Colab URL that opens `notebook` (a path relative to the book root) of the release from GitHub."""
        path = "/".join(p for p in (self.path_to_book.strip("/"), notebook) if p)
        return f"{self.colab_url.rstrip('/')}/github/{self.slug}/blob/{self.tag}/{path}"


def version(root: Path) -> str:
    """pyproject.toml's project.version (read by pattern: tomllib needs Python 3.11)."""
    found = re.search(r'^version = "([^"]+)"$', (root / "pyproject.toml").read_text(), re.MULTILINE)
    if not found:
        raise ValueError(f"{root / 'pyproject.toml'} has no version = \"...\" line")
    return found.group(1)


def repository(root: Path) -> Repository:
    """Read `repository` and `launch_buttons.colab_url` from root/_config.yml, the version from pyproject.toml."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{root / '_config.yml'} has no repository.url")
    colab = (config.get("launch_buttons") or {}).get("colab_url") or "https://colab.research.google.com"
    return Repository(repo["url"], version(root), repo.get("path_to_book", "") or "", colab)


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
    """The first code cell, if it is the install cell (it installs bnlib with pip)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code[0] if code and "pip install" in code[0].source else None


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
    """Everything that disagrees with _config.yml's repository and pyproject.toml's version; empty when all is
    stamped."""
    repo = repository(root)
    found = []
    for path in chapter_notebooks(root):
        cell = setup_cell(nbformat.read(path, as_version=4))
        if cell is None:
            found.append(f"{path.name}: the first code cell is not the install cell")
        elif cell.source != repo.install_cell() or cell.metadata.get("tags") != INSTALL_TAGS:
            found.append(f"{path.name}: the install cell differs from the stamped one (tags {INSTALL_TAGS}), which "
                         f"installs {repo.pip_requirement()}")
    config = (root / "_config.yml").read_text()
    branches = [m.group(0).split(":", 1)[1].strip() for m in _BRANCH.finditer(config)]
    if branches != [repo.tag]:
        found.append(f"_config.yml: repository.branch is {branches}, expected [{repo.tag!r}] (the launch buttons)")
    readme = (root / "README.md").read_text()
    expected = {repo.colab_link(p.relative_to(root).as_posix()) for p in chapter_notebooks(root)}
    linked = set(re.findall(re.escape(repo.colab_url.rstrip("/")) + r"/github/[^)\s\"]+", readme))
    for link in sorted(expected - linked):
        found.append(f"README.md: no Colab link {link}")
    for link in sorted(linked - expected):
        found.append(f"README.md: Colab link {link} is not one of the chapters at repository.url")
    return found


def stamp(root: Path) -> list[Path]:
    """Rewrite the install cells, the launch buttons' branch and the README's badge table; returns changed files."""
    repo = repository(root)
    changed = []
    for path in chapter_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        cell = setup_cell(nb)
        if cell is None:
            raise ValueError(f"{path}: the first code cell must be the install cell (it runs pip install)")
        if cell.source != repo.install_cell() or cell.metadata.get("tags") != INSTALL_TAGS:
            cell.source = repo.install_cell()
            cell.metadata["tags"] = list(INSTALL_TAGS)
            nbformat.write(nb, path)
            changed.append(path)
    config_path = root / "_config.yml"
    config = config_path.read_text()
    new_config = _BRANCH.sub(lambda m: m.group(1) + repo.tag, config, count=1)
    if new_config != config:
        config_path.write_text(new_config)
        changed.append(config_path)
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
