"""Colab: every chapter installs bnlib where it is missing, from the release (pyproject's version, tag v<version>)
at the ONE repository URL in _config.yml; the README's badges and the launch buttons open that same tag
(tools.stamp_colab keeps them in step)."""

from __future__ import annotations

import ast
import os
import shutil
import sys
import types
from pathlib import Path

import nbformat
import pytest

import bnlib
from bnlib import book
from tools import stamp_colab

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_the_install_cells_readme_and_launch_buttons_name_the_release_at_the_repository_url():
    assert stamp_colab.problems(ROOT) == []


def test_the_package_version_is_the_release_the_chapters_install():
    version = stamp_colab.version(ROOT)
    assert bnlib.__version__ == version
    requirement = stamp_colab.repository(ROOT).pip_requirement()
    assert requirement.endswith(f'@v{version}"')
    assert all(requirement in stamp_colab.setup_cell(nbformat.read(p, as_version=4)).source for p in CHAPTERS)


def test_every_chapter_is_reached_from_the_toc():
    assert stamp_colab.chapter_notebooks(ROOT) == [p for p in stamp_colab.chapter_notebooks(ROOT) if p in CHAPTERS]
    assert set(stamp_colab.chapter_notebooks(ROOT)) == set(CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_install_cell_installs_only_where_bnlib_is_missing_and_leaves_drive_commented(path):
    cell = stamp_colab.setup_cell(nbformat.read(path, as_version=4))
    assert cell is not None, f"{path.name}: the first code cell must be the install cell"
    # IPython's `!pip` is not Python: read it as a comment so the cell parses, then find where it sits
    tree = ast.parse(cell.source.replace("!pip", "pass  # pip"))
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "find_spec" in ast.unparse(n.test)]
    assert len(guards) == 1 and "is None" in ast.unparse(guards[0].test)
    pip = [i + 1 for i, line in enumerate(cell.source.splitlines()) if "pip install" in line]
    assert pip and all(guards[0].body[0].lineno <= n <= guards[0].end_lineno for n in pip)
    assert cell.source.splitlines()[-1] == "# book.use_drive()", "the Drive opt-in: one commented line"
    assert cell.metadata.get("tags") == ["remove-cell"], "plumbing: not on the book's pages"


def test_links_and_install_name_the_same_tag():
    repo = stamp_colab.Repository("https://github.com/o/r", "2.0.1", "", "https://colab.research.google.com")
    assert repo.colab_link("chapters/a.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/v2.0.1/chapters/a.ipynb"
    assert repo.pip_requirement() == '"bnlib @ git+https://github.com/o/r@v2.0.1"'
    with pytest.raises(ValueError, match="repository.url"):
        _ = stamp_colab.Repository("https://gitlab.com/o/r", "1", "", "x").slug


def _copy_book(tmp_path: Path) -> None:
    for name in ("_config.yml", "_toc.yml", "README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters", ignore=shutil.ignore_patterns("*.md"))


def test_stamp_rewrites_every_place_from_config_and_version(tmp_path):
    """Change the URL and the version in a copy of the book; stamping brings everything in line."""
    _copy_book(tmp_path)
    old = stamp_colab.repository(ROOT).url
    new = "https://github.com/someone-else/fork-of-the-book"
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace(old, new))
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'version = "{bnlib.__version__}"', 'version = "9.9.9"', 1))
    found = stamp_colab.problems(tmp_path)
    assert any("install cell differs" in f for f in found) and any("repository.branch" in f for f in found)

    changed = stamp_colab.stamp(tmp_path)

    assert stamp_colab.problems(tmp_path) == []
    assert {tmp_path / "README.md", config} <= set(changed) and len(changed) == len(CHAPTERS) + 2
    for path in (tmp_path / "chapters").glob("*.ipynb"):
        text = path.read_text()
        assert f"git+{new}@v9.9.9" in text and old not in text
    assert "github/someone-else/fork-of-the-book/blob/v9.9.9/chapters/" in (tmp_path / "README.md").read_text()
    assert "branch: v9.9.9" in config.read_text()
    assert stamp_colab.stamp(tmp_path) == [], "stamping twice changes nothing"


def test_the_check_reports_an_edited_install_cell(tmp_path):
    _copy_book(tmp_path)
    first = tmp_path / "chapters" / CHAPTERS[0].name
    nb = nbformat.read(first, as_version=4)
    cell = stamp_colab.setup_cell(nb)
    cell.source = cell.source.replace("# book.use_drive()", "book.use_drive()")
    nbformat.write(nb, first)
    assert any(first.name in f and "install cell differs" in f for f in stamp_colab.problems(tmp_path))


def test_use_drive_mounts_and_points_the_cache_there(monkeypatch):
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("BNLIB_CACHE", raising=False)
    path = book.use_drive("my-runs")
    assert mounted == ["/content/drive"] and str(path) == "/content/drive/MyDrive/my-runs"
    assert os.environ["BNLIB_CACHE"] == str(path)


def test_use_drive_outside_colab_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)
    with pytest.raises(RuntimeError, match="needs Google Colab"):
        book.use_drive()
