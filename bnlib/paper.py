"""The paper's own curves: data recovered from the vector graphics of arXiv 1805.11604 v3.

The CSV files and their README (provenance, method, columns, accuracy) ship with bnlib in
`bnlib/paper_data/`, byte-identical to the project's `shared/paper-figures/`, so a Colab install
has them too. Read them with numpy and csv only (no pandas). `readme()` gives the provenance.
"""

from __future__ import annotations

import csv
import io
import re
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np

FOLDER = "paper_data"  # a plain data folder inside the bnlib package (no __init__.py)
# Training length of the paper's runs, by model: VGG 15k SGD steps, the DLN 10k full-batch steps.
TOTAL_STEPS = {"vgg": 15_000, "dln": 10_000}
TEXT_COLUMNS = ("series", "moment", "network")


class Curve(NamedTuple):
    """One curve over training: steps and values (float arrays of the same length)."""

    steps: np.ndarray
    values: np.ndarray


def _folder():  # noqa: ANN202 (a Traversable)
    return resources.files("bnlib").joinpath(FOLDER)


def files() -> list[str]:
    """Names of the CSV files shipped with bnlib (sorted)."""
    return sorted(f.name for f in _folder().iterdir() if f.name.endswith(".csv"))


def readme() -> str:
    """The data's README: where the numbers come from and how accurate they are."""
    return _folder().joinpath("README.md").read_text(encoding="utf-8")


def figure_of(name: str) -> str:
    """'Fig. 4' for 'fig4a_loss_landscape' or 'fig4a_loss_landscape.csv'."""
    match = re.match(r"fig(\d+)", name)
    if not match:
        raise ValueError(f"not a paper-figure file name (fig<N>...): {name!r}")
    return f"Fig. {match.group(1)}"


def label(name: str) -> str:
    """The legend label of a digitized curve: 'paper, digitized from Fig. N'."""
    return f"paper, digitized from {figure_of(name)}"


@lru_cache(maxsize=64)
def read(name: str) -> dict[str, np.ndarray]:
    """One file as {column: array}: text columns as str arrays, the others as float arrays."""
    name = name if name.endswith(".csv") else f"{name}.csv"
    if name not in files():
        raise ValueError(f"no paper-figure file {name!r}; available: {files()}")
    text = _folder().joinpath(name).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    out = {}
    for j, col in enumerate(header):
        values = [r[j] for r in body]
        out[col] = np.array(values) if col in TEXT_COLUMNS else np.array(values, dtype=float)
    return out


def _select(name: str, series: str, where: dict[str, float | str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = read(name)
    key = "series" if "series" in data else "network"
    keep = data[key] == series
    if not keep.any():
        raise ValueError(f"{name}: series must be one of {sorted(set(data[key]))}, got {series!r}")
    for col, value in where.items():
        if col not in data:
            raise ValueError(f"{name}: no column {col!r} to select on; columns: {list(data)}")
        keep &= data[col] == value if col in TEXT_COLUMNS else np.isclose(data[col], float(value))
    if not keep.any():
        raise ValueError(f"{name}: no rows for series {series!r} with {where}")
    return data, keep


def curve(name: str, series: str, column: str = "value", **where: float | str) -> Curve:
    """One series of a file as a Curve over steps; `where` selects on other columns (lr=0.1, layer=5)."""
    data, keep = _select(name, series, where)
    if column not in data:
        raise ValueError(f"{name}: column must be one of {list(data)}, got {column!r}")
    order = np.argsort(data["step"][keep], kind="stable")
    return Curve(data["step"][keep][order], data[column][keep][order])


def band(name: str, series: str, **where: float | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, lower, upper) of a shaded band (Figs 4a-b, 10a-b, 12b-c, 13b-c)."""
    lower, upper = curve(name, series, "lower", **where), curve(name, series, "upper", **where)
    return lower.steps, lower.values, upper.values


def width(name: str, series: str, **where: float | str) -> Curve:
    """A band's width (upper - lower) over steps: the range over the step sizes, as the paper defines (a), (b)."""
    steps, lower, upper = band(name, series, **where)
    return Curve(steps, upper - lower)


def step_size_curves(name: str, network: str) -> dict[int, Curve]:
    """Fig. 11: {estimated training step: Curve(eta, gradient change)} of one network's panel."""
    data, keep = _select(name, network, {})
    out = {}
    for index in np.unique(data["curve_index"][keep]):
        rows = keep & (data["curve_index"] == index)
        order = np.argsort(data["eta"][rows])
        out[int(data["train_step_est"][rows][0])] = Curve(data["eta"][rows][order], data["value"][rows][order])
    return out
