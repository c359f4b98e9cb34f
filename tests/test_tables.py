"""The chapters' tables come from named functions (bnlib.tables): no page builds one inline."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from bnlib import tables

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("0*.ipynb"))
TABLE_CALLS = ("table", "seeds_table")


def inline_tables(source: str) -> list[str]:
    """The table calls of a cell whose arguments build rows there (a list, a comprehension or a lambda)."""
    shell = ("!", "%")  # IPython's shell escapes and magics are not Python: read them as `pass`
    tree = ast.parse("\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(shell)
                               else line for line in source.splitlines()))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in TABLE_CALLS:
            built = (ast.List, ast.ListComp, ast.DictComp, ast.GeneratorExp, ast.Lambda, ast.Dict)
            if any(isinstance(n, built) for arg in node.args for n in ast.walk(arg)):
                found.append(ast.unparse(node)[:80])
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_chapter_builds_a_table_inline(path):
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert [t for source in cells for t in inline_tables(source)] == []


def test_the_check_finds_an_inline_table():
    assert inline_tables('report.table([{"a": r.x} for r in runs], caption="c")')
    assert inline_tables("report.seeds_table(vgg, lambda run: {'x': 1}, LABELS)")
    assert not inline_tables("report.table(tables.final_accuracy(fig1), caption='c')")


def test_escape_search_rows_say_when_a_run_never_got_there():
    rows = tables.escape_search([{"width": 0.125, "seed": 3, "lr": 0.1, "layout": "channels_last", "steps_to_20": 120,
                                  "steps_to_50": None, "steps_run": 3000, "acc_at_end": 0.4321}])
    assert rows == [{"width": "0.125", "seed": 3, "LR": "0.1", "memory layout": "channels_last", "steps to 20%": 120,
                     "steps to 50%": "not by 3000", "last 25 steps (%)": "43"}]


def test_theorem_tables_read_every_convention():
    results = {"thm41_conventions": {"paper": {"a": {"frac_holds": 1.0, "equality": True, "worst_slack": 0.0},
                                               "b": {"frac_holds": 0.5, "equality": False, "worst_slack": -1.0}}},
               "thm42_conventions": {"paper": {"frac_holds": 0.25, "n": 4, "equality": False, "worst_slack": 2.0}}}
    assert [(r["form"], r["holds on"]) for r in tables.theorem41_conventions(results)] == [("a", "100%"), ("b", "50%")]
    assert tables.theorem42_conventions(results)[0]["holds on"] == "25% of 4"
