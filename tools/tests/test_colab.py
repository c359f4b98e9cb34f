"""Colab: every chapter installs bnlib there (only there) from the ONE repository URL in _config.yml, and
the README links every chapter to Colab at that URL (tools.stamp_colab keeps them in step)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import nbformat
import pytest

from tools import stamp_colab

ROOT = Path(__file__).resolve().parents[2]
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


TRAINING = [p for p in CHAPTERS if stamp_colab.trains(nbformat.read(p, as_version=4))]


def test_chapters_that_train_are_the_experiment_chapters_and_the_overlay_chapter():
    # chapter 7 reads every canonical run (trained there when a reader opens it first, e.g. on Colab)
    assert [p.name[:2] for p in TRAINING] == ["01", "02", "03", "04", "05", "07", "08"]  # 08: Figure 1 shape check


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_the_drive_cell_sits_between_setup_and_parameters_and_matches_the_readme(path):
    nb = nbformat.read(path, as_version=4)
    cell = stamp_colab.drive_cell(nb)
    assert cell is not None, f"{path.name}: no Google Drive cell right after the setup cell"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[1] is cell and "parameters" in code[2].metadata.get("tags", [])
    lines = cell.source.splitlines()
    assert all(line.startswith("#") for line in lines), "the cell must do nothing outside Colab: keep it commented"
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("from google.colab import drive", 1)[1].split("```", 1)[0]
    wanted = ["from google.colab import drive", *[line for line in snippet.splitlines() if line.strip()]]
    assert all(f"# {line}" in lines for line in wanted), f"{path.name}: the Drive cell differs from the README's"


def test_the_check_reports_a_missing_or_live_drive_cell(tmp_path):
    for name in ("_config.yml", "_toc.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters", ignore=shutil.ignore_patterns("*.md"))
    first, second = (tmp_path / "chapters" / p.name for p in TRAINING[:2])
    nb = nbformat.read(first, as_version=4)
    cell = stamp_colab.drive_cell(nb)
    cell.source = cell.source.replace("# drive.mount", "drive.mount")
    nbformat.write(nb, first)
    nb = nbformat.read(second, as_version=4)
    nb.cells.remove(stamp_colab.drive_cell(nb))
    nbformat.write(nb, second)
    found = stamp_colab.problems(tmp_path)
    assert any(first.name in f and "stay commented" in f for f in found)
    assert any(second.name in f and "no Google Drive cell" in f for f in found)
