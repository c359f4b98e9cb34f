"""The paper-scale command, exercised at profile smoke on one cheap chapter in a scratch copy of the book."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import reproduce

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "06_theory_checks"


def _book(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(ROOT / "chapters" / f"{CHAPTER}.ipynb", root / "chapters")
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: index\nchapters:\n  - file: chapters/{CHAPTER}\n")
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.reproduce", "--profile", "smoke", "--root", str(root),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)  # a hang guard only


def test_reproduce_runs_each_chapter_once_and_reports_its_time(tmp_path):
    root = _book(tmp_path)
    first = _run(root)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    out = root / "_build" / "executed" / "smoke" / f"{CHAPTER}.ipynb"
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'profile = "smoke"' in "".join(injected[0]["source"])
    assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    seconds = json.loads((out.parent / "timings.json").read_text())[CHAPTER]
    assert seconds > 0 and f"{seconds:.1f}" in first.stdout and "executed" in first.stdout

    stamp = out.stat().st_mtime_ns
    again = _run(root)  # a repeated (or resumed) run skips the chapters that finished
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "skipped (already executed)" in again.stdout
    assert out.stat().st_mtime_ns == stamp


def test_bad_arguments_name_what_is_allowed(tmp_path):
    root = _book(tmp_path)
    with pytest.raises(ValueError, match="profile must be one of"):
        reproduce.reproduce(root, "huge")
    with pytest.raises(ValueError, match="matches no chapter"):
        reproduce.reproduce(root, "smoke", only=["99"])
