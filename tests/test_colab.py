"""Colab: every chapter installs bnlib there (only there) from the ONE repository URL in _config.yml, and
the README links every chapter to Colab at that URL (bnlib.stamp_colab keeps them in step)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import nbformat
import pytest

from bnlib import stamp_colab

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_the_setup_cells_and_readme_use_the_repository_url_of_config():
    assert stamp_colab.problems(ROOT) == []


def test_every_chapter_is_reached_from_the_toc():
    assert stamp_colab.chapter_notebooks(ROOT) == [p for p in stamp_colab.chapter_notebooks(ROOT) if p in CHAPTERS]
    assert set(stamp_colab.chapter_notebooks(ROOT)) == set(CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_setup_cell_installs_only_on_colab(path):
    cell = stamp_colab.setup_cell(nbformat.read(path, as_version=4))
    assert cell is not None, f"{path.name}: the first code cell must be the Colab setup cell"
    # IPython's `!pip` is not Python: read it as a call so the cell parses, then find where it sits
    tree = ast.parse(cell.source.replace("!pip", "pip_shell_escape #"))
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "google.colab" in ast.unparse(n.test)]
    assert guards, f"{path.name}: no `if \"google.colab\" in sys.modules:` guard"
    lines = cell.source.splitlines()
    pip = [i + 1 for i, line in enumerate(lines) if "pip install" in line]
    guard = guards[0]
    assert pip and all(guard.body[0].lineno <= n <= guard.end_lineno for n in pip), \
        f"{path.name}: pip install runs outside the Colab guard"


def test_colab_link_follows_the_book_launch_button_scheme():
    repo = stamp_colab.Repository("https://github.com/o/r", "dev", "", "https://colab.research.google.com")
    assert repo.colab_link("chapters/a.ipynb") == "https://colab.research.google.com/github/o/r/blob/dev/chapters/a.ipynb"
    assert repo.pip_requirement() == '"bnlib @ git+https://github.com/o/r"'
    with pytest.raises(ValueError, match="repository.url"):
        _ = stamp_colab.Repository("https://gitlab.com/o/r", "main", "", "x").slug


def test_stamp_rewrites_every_place_from_config(tmp_path):
    """Change the URL in a copy of the book; stamping brings the notebooks and README in line."""
    for name in ("_config.yml", "_toc.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters", ignore=shutil.ignore_patterns("*.md"))
    old = stamp_colab.repository(ROOT).url
    new = "https://github.com/someone-else/fork-of-the-book"
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace(old, new))
    assert stamp_colab.problems(tmp_path), "a changed URL must be reported before stamping"

    changed = stamp_colab.stamp(tmp_path)

    assert stamp_colab.problems(tmp_path) == []
    assert tmp_path / "README.md" in changed and len(changed) == len(CHAPTERS) + 1
    for path in (tmp_path / "chapters").glob("*.ipynb"):
        text = path.read_text()
        assert f"git+{new}" in text and old not in text
    readme = (tmp_path / "README.md").read_text()
    assert "github/someone-else/fork-of-the-book/blob/main/chapters/" in readme
    assert stamp_colab.stamp(tmp_path) == [], "stamping twice changes nothing"
