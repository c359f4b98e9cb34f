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


def _section(heading: str) -> str:
    return PAGE.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _tables(heading: str) -> list[tuple[list[str], list[list[str]]]]:
    """The header and the rows (cells stripped) of each Markdown table under `## heading`."""
    tables, rows = [], []
    for line in [*_section(heading).splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            tables.append((rows[0], rows[2:]))
            rows = []
    return tables


def _variables() -> dict[str, str]:
    """{variable: its list item's text} of the environment variables' list."""
    items = re.split(r"^- ", _section("Environment variables"), flags=re.M)[1:]
    return {re.match(r"`(BNLIB_\w+)`: ", item).group(1): " ".join(item.split()) for item in items}


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
    entries = _variables()
    listed = list(entries)
    assert len(re.findall(r"^- `BNLIB_", _section("Environment variables"), re.M)) == len(listed), "one item each"
    read = variables_read_by(ROOT / "bnlib") | variables_read_by(ROOT / "tools")
    assert "BNLIB_PROFILE" in read and "BNLIB_DLN_FAST" in read  # the scan finds module constants too
    assert not read - set(listed), f"read by the code, missing from {PAGE.name}: {sorted(read - set(listed))}"
    assert not set(listed) - read, f"listed in {PAGE.name}, read by no code: {sorted(set(listed) - read)}"
    for name, text in entries.items():
        assert re.search(r": \S.*\. \*Default\* \S.*\. \*Allowed\* \S", text), (
            f"{name} says what it does, then *Default* and *Allowed*: {text}")


def test_the_scan_sees_a_new_variable(tmp_path):
    (tmp_path / "m.py").write_text('import os\nX = os.environ.get("BNLIB_NEW", "")\n"""mentions $BNLIB_OLD"""\n')
    assert variables_read_by(tmp_path) == {"BNLIB_NEW"}


def _literal(text: str) -> object:
    """A page cell's value: a Python literal, or a fraction written a/b (widths read better as 1/8)."""
    if re.fullmatch(r"\d+/\d+", text):
        return float(Fraction(text))
    return ast.literal_eval(text)


def test_the_page_lists_every_profile_field_with_the_codes_values():
    (_, meaning), (header, values) = _tables("Profiles: the scale of the runs")
    fields = [f.name for f in dataclasses.fields(Profile) if f.name != "name"]
    for rows in (meaning, values):
        assert [_code(row[0]) for row in rows] == fields, f"the page's fields are not Profile's {fields}"
    assert all(len(row) == 3 and row[1] and row[2] for row in meaning), "each field: what it sets, what is allowed"
    columns = [_code(cell) for cell in header[1:]]
    assert columns == list(PROFILES), f"one column per profile, in the code's order: {columns}"
    for row in values:
        for name, cell in zip(columns, row[1:], strict=True):
            assert _literal(_code(cell)) == getattr(PROFILES[name], _code(row[0])), f"{row[0]} at {name}: {cell}"


@pytest.mark.parametrize("text,value", [("1/16", 0.0625), ("10_000", 10_000), ("None", None), ("(0, 1)", (0, 1))])
def test_page_values_read_as_python(text, value):
    assert _literal(text) == value
