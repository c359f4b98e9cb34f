"""The Colab situation: bnlib built as a wheel, installed into an empty folder with no repository around it,
runs a chapter (smoke profile, synthetic data) under papermill from a directory outside the repository.
The wheel holds bnlib alone: the repository's tooling (tools/) stays out, and neither the chapters nor
bnlib import it."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "01_ics_distributions.ipynb"  # the cheapest chapter that trains
MARK = "BNLIB_IMPORTED_FROM="


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the sources beside tools/ (so the packaging config, not the copy,
    is what keeps the tooling out; an in-tree build would leave build/ behind)."""
    pytest.importorskip("setuptools", minversion="64",
                        reason="building offline (--no-build-isolation) needs setuptools>=64 in this environment")
    src = tmp_path_factory.mktemp("src")
    for package in ("bnlib", "tools"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(src))
    (found,) = out.glob("bnlib-*.whl")
    return found


def test_every_file_of_the_package_is_in_the_wheel(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "bnlib").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    assert any(f.endswith(".py") for f in files)
    missing = sorted(set(files) - names)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data] in pyproject.toml): {missing}"


def test_the_wheel_holds_bnlib_and_nothing_of_tools(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert "tools" not in tops and not [n for n in names if "tools/" in n or "bench" in n.split("/")]
    assert tops == {"bnlib", next(t for t in tops if t.endswith(".dist-info"))}, f"top-level entries: {sorted(tops)}"


def _imported_modules(source: str) -> set[str]:
    """The top-level names of every module that Python `source` imports (any depth of the syntax tree)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _page_code() -> dict[str, str]:
    """Each executable page's code as Python: the chapters' code cells (IPython's `!pip` lines translated as
    Jupyter runs them) and the landing page's MyST code cells."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell
    pages = {p.name: "\n".join(python(c.source) for c in nbformat.read(p, as_version=4).cells
                                if c.cell_type == "code") for p in sorted((ROOT / "chapters").glob("*.ipynb"))}
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", (ROOT / "index.md").read_text(), re.S)
    pages["index.md"] = "\n".join(re.sub(r"(?m)^:\w+:.*$", "", cell) for cell in cells)
    return pages


def test_the_chapters_and_bnlib_import_nothing_from_tools():
    pages = _page_code()
    assert len(pages) == 1 + len(list((ROOT / "chapters").glob("*.ipynb"))) and all(pages.values())
    for name, code in pages.items():
        imported = _imported_modules(code)
        assert "bnlib" in imported and "tools" not in imported, f"{name} imports {sorted(imported)}"
    for path in sorted((ROOT / "bnlib").rglob("*.py")):
        assert "tools" not in _imported_modules(path.read_text()), f"{path.relative_to(ROOT)} imports tools"


def test_a_chapter_runs_from_the_installed_wheel_alone(wheel: Path, tmp_path: Path):
    pytest.importorskip("papermill")
    site, outside = tmp_path / "site", tmp_path / "reader"
    site.mkdir()
    outside.mkdir()
    _pip("install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel))
    assert (site / "bnlib" / "plan.py").exists() and not (site / "bnlib" / ".." / "chapters").exists()

    nb = nbformat.read(CHAPTER, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import bnlib\nprint({MARK!r} + bnlib.__file__)"))
    nbformat.write(nb, outside / "chapter.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BNLIB_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), BNLIB_CACHE=str(tmp_path / "cache"), BNLIB_DATA=str(tmp_path / "data"),
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "papermill", "chapter.ipynb", "out.ipynb", "-k", "python3",
                           "-p", "profile", "smoke", "-p", "dataset", "synthetic", "--no-progress-bar"],
                          cwd=outside, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the chapter failed from the wheel:\n{done.stderr[-4000:]}"

    out = nbformat.read(outside / "out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs)
    imported = next(line for line in printed.splitlines() if line.startswith(MARK))[len(MARK):]
    assert Path(imported).resolve().is_relative_to(site.resolve()), f"the kernel imported bnlib from {imported}"
    assert "Plan on this machine" in printed and "profile 'smoke'" in printed
    assert list((tmp_path / "cache" / "runs").glob("*.pt")), "the runs went to BNLIB_CACHE"
