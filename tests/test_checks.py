"""Each chapter checks its parameters in the cell after `parameters`: defaults pass, bad values say why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bnlib import book, checks

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("0*.ipynb"))


def _parameters(path: Path) -> dict:
    """The chapter's defaults, by running its `parameters` cell."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)
    return values


def _check_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    i = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    return nb.cells[i + 1].source


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_checks_all_its_parameters_right_after_the_parameters_cell(path):
    number = int(path.stem[:2])
    source = _check_cell(path)
    calls = [n for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.Call) and ast.unparse(n.func) == "book.prepare"]
    assert len(calls) == 1 and ast.literal_eval(calls[0].args[0]) == number, source
    params = _parameters(path)
    assert all(f"{name}={name}" in source for name in params), (sorted(params), source)
    book.setup(number, **params)  # the defaults pass


BAD = [
    (1, {"seeds": "abc"}, r"seeds must be a list or tuple of one or more values, got 'abc' \(str\)"),
    (1, {"seeds": (0, 1.5)}, r"seeds\[1\] must be an int .*got 1.5 \(float\)"),
    (1, {"seeds": [True]}, r"seeds\[0\] must be an int .*\(bool\)"),
    (1, {"seeds": (2, 2)}, r"seeds must not repeat a seed, got \(2, 2\)"),
    (9, {"widths": (0.125, 0)}, r"widths\[1\] must be a finite number in \(0, 64\], got 0"),
    (9, {"rerun": "yes"}, "rerun must be"),
    (1, {"profile": "huge"}, "unknown profile 'huge'"),
    (1, {"profile": 3}, "profile must be None or one of"),
    (1, {"dataset": "mnist"}, r"unknown dataset 'mnist' \(str\); allowed"),
    (1, {"learning_rates": (0.2, 0.5)}, "learning_rates must include 0.1: Figure 1c, the moment-drift table"),
    (1, {"learning_rates": 0.1}, "learning_rates must be a list or tuple"),
    (1, {"learning_rates": (0.1, -1)}, r"learning_rates\[1\] must be a finite number > 0, got -1"),
    (1, {"learning_rates": (0.1, float("nan"))}, r"learning_rates\[1\] must be a finite number > 0, got nan"),
    (1, {"layers": (3, 14)}, r"layers\[1\] must be one of the layers 1..13, got 14"),
    (1, {"unit": 4}, r"unit must be an int in \[0, 3\], got 4"),
    (2, {"noise_scales": (0.0, -1.0)}, r"noise_scales\[1\] must be a finite number >= 0"),
    (2, {"noise_scales": (1.0, float("inf"))}, r"noise_scales\[1\] must be a finite number >= 0, got inf"),
    (2, {"lr": 0}, "lr must be a finite number > 0, got 0"),
    (3, {"vgg_layers": (5,)}, "vgg_layers must be a list or tuple of 2 values"),
    (3, {"dln_layers": (9, 26)}, r"dln_layers\[1\] must be one of the layers 1..25"),
    (3, {"dln_lrs": ()}, "dln_lrs must be a list or tuple of one or more values"),
    (4, {"grid_lrs": (0.1, 0.1)}, "grid_lrs must not repeat a value"),
    (5, {"dln_lr": "1e-6"}, r"dln_lr must be a finite number > 0, got '1e-6' \(str\)"),
    (6, {"draws": 0}, "draws must be None or an int >= 1, got 0"),
]


@pytest.mark.parametrize(("number", "change", "message"), BAD)
def test_a_bad_chapter_parameter_says_what_is_allowed(number, change, message):
    params = {**_parameters(CHAPTERS[number - 1]), **change}
    with pytest.raises(checks.BadParameter, match=message):
        book.setup(number, **params)


def test_other_values_a_reader_may_choose_pass():
    book.setup(1, profile="smoke", dataset="synthetic", seeds=[7, 0], learning_rates=[0.05, 0.1, 1.0],
                   layers=[1, 13], unit=3)
    book.setup(2, profile=None, dataset="auto", seeds=None, lr=0.02, layers=(1,), unit=0, noise_scales=[0, 8])
    with pytest.raises(checks.BadParameter, match="chapter 4 has no parameter"):
        book.setup(4, profile=None, dataset="auto", seeds=None, grid_lrs=(0.1,), typo=1)


def test_papermill_with_bad_seeds_fails_with_the_clear_message(tmp_path):
    result = subprocess.run([str(Path(sys.executable).parent / "papermill"), str(CHAPTERS[0]),
                             str(tmp_path / "out.ipynb"), "-y", "seeds: [0, -1]"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert "seeds[1] must be an int in [0, 4294967295], got -1" in result.stdout + result.stderr
