"""The settings page (chapters/configuration.md) says what the code does: every BNLIB_* variable that bnlib or
tools/ reads is listed and nothing else, and every profile field with each profile's value as in the code."""

from __future__ import annotations

import ast
import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import pytest

from bnlib.profiles import PROFILES, Profile

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "chapters" / "configuration.md"
VARIABLE = re.compile(r"BNLIB_[A-Z0-9_]+")


def _table(heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (cells stripped) of the Markdown table under `## heading`."""
    section = PAGE.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")]
    return rows[0], rows[2:]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `code` span, got {cell!r}"
    return match.group(1)


def variables_read_by(folder: Path) -> set[str]:
    """Every BNLIB_* name that appears as a whole string constant in the folder's Python sources: how the code
    names a variable it reads (os.environ.get("BNLIB_X"), ENV = "BNLIB_X", _env_flag("BNLIB_X", ...)).
    Docstrings mention them inside longer strings and are not counted."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value):
                names.add(node.value)
    return names


def test_the_page_lists_exactly_the_variables_the_code_reads():
    _, rows = _table("Environment variables")
    listed = [_code(row[0]) for row in rows]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    read = variables_read_by(ROOT / "bnlib") | variables_read_by(ROOT / "tools")
    assert "BNLIB_PROFILE" in read and "BNLIB_DLN_FAST" in read  # the scan finds module constants too
    assert not read - set(listed), f"read by the code, missing from {PAGE.name}: {sorted(read - set(listed))}"
    assert not set(listed) - read, f"listed in {PAGE.name}, read by no code: {sorted(set(listed) - read)}"
    for row in rows:
        assert len(row) == 4 and all(row), f"every variable says what it does, its default and what is allowed: {row}"


def test_the_scan_sees_a_new_variable(tmp_path):
    (tmp_path / "m.py").write_text('import os\nX = os.environ.get("BNLIB_NEW", "")\n"""mentions $BNLIB_OLD"""\n')
    assert variables_read_by(tmp_path) == {"BNLIB_NEW"}


def _literal(text: str) -> object:
    """A page cell's value: a Python literal, or a fraction written a/b (widths read better as 1/8)."""
    if re.fullmatch(r"\d+/\d+", text):
        return float(Fraction(text))
    return ast.literal_eval(text)


def test_the_page_lists_every_profile_field_with_the_codes_values():
    header, body = _table("Profiles: the scale of the runs")
    columns = [_code(cell) for cell in header[3:]]
    assert columns == list(PROFILES), f"one column per profile, in the code's order: {columns}"
    rows = {_code(row[0]): row for row in body}
    fields = [f.name for f in dataclasses.fields(Profile) if f.name != "name"]
    assert list(rows) == fields, f"the page's fields {list(rows)} are not Profile's {fields}"
    for field, row in rows.items():
        assert row[1] and row[2], f"{field}: what it sets and what is allowed"
        for name, cell in zip(columns, row[3:], strict=True):
            assert _literal(_code(cell)) == getattr(PROFILES[name], field), f"{field} at profile {name}: {cell}"


@pytest.mark.parametrize("text,value", [("1/16", 0.0625), ("10_000", 10_000), ("None", None), ("(0, 1)", (0, 1))])
def test_page_values_read_as_python(text, value):
    assert _literal(text) == value
