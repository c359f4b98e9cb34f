"""Each chapter's "By hand" cell (tagged `by-hand`) agrees with the run it checks, and its check is able to fail:
the cell's own source, with one line changed to a plausible misreading of the paper, must raise AssertionError.

The cells run here on one-step smoke-width runs that carry the probe they read (the chapters run them on their
canonical runs), so the test stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from bnlib import runs
from bnlib.experiments.common import vgg_config
from bnlib.probes.activations import ActivationProbe
from bnlib.probes.ics import ICSProbe
from bnlib.probes.landscape import VGG_ETA_FACTORS, LandscapeProbe
from bnlib.profiles import PROFILES
from bnlib.record import Run

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
SMOKE = PROFILES["smoke"]

# (chapter, the line as the cell has it, the misreading put in its place)
WRONG = [
    (1, "var = ((values - mean) ** 2).sum() / len(values)", "var = ((values - mean) ** 2).sum() / (len(values) - 1)"),
    (2, "by_hand = s * a + m", "by_hand = m * a + s"),
    (3, "for k in range(1, layer):", "for k in range(1, model.num_layers + 1):"),  # G' after moving ALL layers
    (4, "p.copy_(wi - eta * gi)", "p.copy_(wi + eta * gi)"),  # a step up the gradient
    (5, "units.abs().pow(p).mean(1).pow(1 / p)",  # the scale taken after the mean is removed
     "(units - units.mean(1, keepdim=True)).abs().pow(p).mean(1).pow(1 / p)"),
]


def by_hand_cell(number: int) -> str:
    nb = nbformat.read(next(CHAPTERS.glob(f"0{number}_*.ipynb")), as_version=4)
    cells = [c.source for c in nb.cells if "by-hand" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"chapter {number} needs exactly one cell tagged by-hand, has {len(cells)}"
    return cells[0]


def _run(norm: str, probes: list[Any], cache: Path) -> Run:
    config = vgg_config(SMOKE, norm, 0.1, "synthetic", steps=1)
    return Run.of(runs.run(config, probes, progress=False, cache=cache))


def namespace(number: int, cache: Path) -> dict[str, Any]:
    """The names the chapter's cell reads, bound to one-step runs carrying its probe."""
    if number == 1:
        return {"fig1": {0: {("batch", 0.1): _run("batch", [ActivationProbe(1, list(range(1, 14)))], cache)}},
                "seeds": (0,), "layers": (3, 11), "unit": 0}
    if number == 2:
        return {"seeds": (0,)}
    if number == 3:
        return {"vgg": {0: {("batch", 0.1): _run("batch", [ICSProbe(1, (5, 10))], cache)}}, "seeds": (0,),
                "vgg_lrs": (0.1,), "vgg_layers": (5, 10)}
    if number == 4:
        return {"vgg": {0: {"+BN": _run("batch", [LandscapeProbe(1, VGG_ETA_FACTORS)], cache)}}, "seeds": (0,)}
    return {"vgg": {0: {norm: _run(norm, [], cache) for norm in ("l1", "l2", "linf")}}, "seeds": (0,)}


@pytest.mark.parametrize(("number", "line", "wrong"), WRONG, ids=[f"chapter-{w[0]}" for w in WRONG])
def test_by_hand_agrees_with_the_run_and_rejects_a_misreading(number, line, wrong, tmp_path, capsys):
    source = by_hand_cell(number)
    names = namespace(number, tmp_path)
    exec(compile(source, f"chapter {number} by-hand", "exec"), dict(names))  # agrees: no AssertionError
    assert "by hand" in capsys.readouterr().out
    assert line in source, f"chapter {number}'s by-hand cell no longer has the line {line!r}"
    with pytest.raises(AssertionError):
        exec(compile(source.replace(line, wrong), f"chapter {number} by-hand, misread", "exec"), dict(names))


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_by_hand_cells_are_short_and_plain(number):
    """At most about 20 lines of code (comments and prints aside), and no bnlib helper computes the quantity."""
    source = by_hand_cell(number)
    code = [line for line in source.splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "print(", "f\"", "from ", "import "))]
    assert len(code) <= 26, f"chapter {number}: {len(code)} lines"
    imports = [line for line in source.splitlines() if line.startswith(("from bnlib", "import bnlib"))]
    allowed = {"from bnlib.experiments.common import first_step", "from bnlib.models import NoiseConfig, inject_noise"}
    assert set(imports) <= allowed, imports
