"""bnlib's layers, read from the package docstring, hold in its source: every import (module- or function-level;
`if TYPE_CHECKING:` blocks aside) points down or within its layer, there is no import cycle and no import by name
at run time; and the run cache fingerprints exactly the loop and what it imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import bnlib
from bnlib import runs

PACKAGE = Path(bnlib.__file__).resolve().parent


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layers() -> dict[str, int]:
    """{module: layer number} from the docstring's numbered list; a package's name covers its modules."""
    declared = {}
    for number, names in re.findall(r"^(\d+)\. .+: ([\w, ]+)$", bnlib.__doc__, re.M):
        for short in names.split(", "):
            declared[f"bnlib.{short}"] = int(number)
    out = {}
    for module in MODULES:
        if module == "bnlib" or module.endswith(".__main__"):
            continue  # the package's own docstring and the entry points above every layer
        owners = [d for d in declared if module == d or module.startswith(d + ".")]
        assert len(owners) == 1, f"{module} is in {len(owners)} declared layers ({owners}): add it to one"
        out[module] = declared[owners[0]]
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return hidden


def imports_of(module: str, source: str) -> set[str]:
    """The bnlib modules `module`'s source imports, with the packages each import runs on the way."""
    tree = ast.parse(source)
    hidden = _type_checking_nodes(tree)
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in MODULES}
    return found - {module}


GRAPH = {m: imports_of(m, p.read_text()) for m, p in MODULES.items()}


def test_every_module_has_one_layer():
    assert set(layers()) == set(MODULES) - {"bnlib"} - {m for m in MODULES if m.endswith(".__main__")}


def test_imports_point_down():
    layer = layers()
    upward = [f"{m} (layer {layer[m]}) imports {t} (layer {layer[t]})" for m, targets in GRAPH.items()
              if m in layer for t in sorted(targets) if layer[t] > layer[m]]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (depth-first search)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def hidden_imports(source: str) -> list[str]:
    """Imports by name at run time, which the graph cannot see: __import__, importlib (its `resources`, which
    reads the package's data files, aside)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "__import__":
            found.append("__import__")
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "importlib"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "importlib":
            found += [f"{node.module}.{a.name}" for a in node.names]
    return [name for name in found if name != "importlib.resources"]


def test_nothing_is_imported_by_name_at_run_time():
    assert {m: hidden_imports(p.read_text()) for m, p in MODULES.items() if hidden_imports(p.read_text())} == {}
    assert hidden_imports("import importlib\nm = importlib.import_module('bnlib.book')\n") == ["importlib"]
    assert hidden_imports("from importlib import import_module, resources\n") == ["importlib.import_module"]
    assert hidden_imports("x = __import__('bnlib')\n") == ["__import__"]


def test_the_graph_sees_function_level_and_relative_imports():
    found = imports_of("bnlib.plots.seeds", "def f():\n    from bnlib.claims import landscape\n"
                                            "from . import paper\nif TYPE_CHECKING:\n    import bnlib.book\n")
    assert found == {"bnlib.claims", "bnlib.claims.landscape", "bnlib.plots", "bnlib.plots.paper"}


def test_the_run_key_fingerprints_the_loop_and_everything_it_imports():
    loop, todo = set(), ["bnlib.train"]
    while todo:
        module = todo.pop()
        if module not in loop:
            loop.add(module)
            todo += sorted(GRAPH[module])
    keyed = {"bnlib." + m.replace("/", ".") for m in runs.CORE_MODULES}
    assert keyed == (loop | {"bnlib.runs"}) - {"bnlib.probes"}, (
        f"runs.CORE_MODULES misses {sorted(loop - keyed - {'bnlib.probes'})}, "
        f"has {sorted(keyed - loop - {'bnlib.runs'})} beyond the loop")


def test_the_profile_is_resolved_once_at_the_top():
    """Only the chapter registry turns a profile's name into a Profile; everything below takes the Profile."""
    callers = sorted(m for m, path in MODULES.items() if m not in ("bnlib.profiles", "bnlib.book") and any(
        isinstance(node, ast.Call) and ast.unparse(node.func) in ("resolve", "profiles.resolve")
        for node in ast.walk(ast.parse(path.read_text()))))
    assert callers == [], f"resolve a profile only in bnlib.book: {callers}"


@pytest.mark.parametrize("module", ["bnlib.checks"])
def test_the_validators_import_nothing_of_bnlib(module):
    assert GRAPH[module] == set()
