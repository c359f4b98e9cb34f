"""The chapter registry (bnlib.book) is the book: one entry per chapter notebook, in order, with its title, and the
one call that checks a chapter's parameters and resolves its profile once."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from bnlib import book
from bnlib.checks import BadParameter
from bnlib.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("0*.ipynb"))


def test_one_entry_per_chapter_notebook_in_book_order():
    assert [c.notebook for c in book.CHAPTERS.values()] == [p.stem for p in NOTEBOOKS]
    assert list(book.CHAPTERS) == [int(p.stem[:2]) for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_entry_carries_its_notebooks_title(path):
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    title = re.match(r"# (.+)", first.source).group(1).strip()
    assert book.CHAPTERS[int(path.stem[:2])].title == title


def test_setup_resolves_the_profile_and_the_seeds_once():
    setup = book.setup(7, profile="smoke", dataset="synthetic", seeds=None)
    assert setup == (PROFILES["smoke"], "synthetic", (0,)) and setup.profile is PROFILES["smoke"]
    assert book.setup(7, profile=PROFILES["cpu"], dataset="auto", seeds=[2, 0]).seeds == (2, 0)
    with pytest.raises(BadParameter, match="chapter must be one of"):
        book.setup(10, profile=None, dataset="auto", seeds=None)
    with pytest.raises(BadParameter, match="profile must be None or one of"):
        book.setup(7, profile=3, dataset="auto", seeds=None)


def test_the_book_plan_is_the_union_of_the_chapters_plans_once_each():
    setup = book.common("smoke", "synthetic")
    plans = book.chapter_plans(setup)
    assert list(plans) == ["01", "02", "03", "04", "05", "07"]  # the chapters that train runs
    every = [run for planned in plans.values() for run in planned]
    assert len(book.book_plan(setup)) == len({(repr(c), tuple(p.name for p in ps)) for c, ps in every}) < len(every)


def test_claim_groups_take_more_seeds_only_at_the_books_own_seeds():
    """At profile cpu the groups marked `more` are graded on seeds 0-5, and the book plans their runs; a reader who
    picks other seeds gets exactly those; a group not marked stays at three."""
    cpu = book.common("cpu", "synthetic")
    landscape = book.CLAIM_GROUPS["landscape-dln"]
    assert landscape.more and landscape.seeds(cpu) == (0, 1, 2, 3, 4, 5)
    assert landscape.seeds(book.common("cpu", "synthetic", (0, 1))) == (0, 1)
    assert book.CLAIM_GROUPS["fig2"].seeds(cpu) == (0, 1, 2)
    seeds_planned = {config.seed for config, _ in landscape.plan(cpu)}
    assert seeds_planned == set(range(6))
    keys = {(repr(c), tuple(p.name for p in ps)) for c, ps in book.book_plan(cpu)}
    assert all((repr(c), tuple(p.name for p in ps)) in keys for c, ps in landscape.plan(cpu))
    with pytest.raises(BadParameter, match="more_seeds"):
        PROFILES["cpu"].replace(more_seeds=(2, 3))


def test_prepare_checks_then_plans_trains_and_shows_the_setup_line_in_that_order(monkeypatch):
    calls = []
    monkeypatch.setattr(book.plan, "show",
                        lambda planned, profile, knobs="": calls.append(("plan", len(planned), knobs)))
    monkeypatch.setattr(book.runs, "train_all", lambda planned: calls.append(("train", len(planned))))
    monkeypatch.setattr(book.runs, "made_on", lambda planned: ["Some CPU"])
    monkeypatch.setattr("IPython.display.display", lambda obj: calls.append(("display", obj.data)))
    params = {"profile": "smoke", "dataset": "synthetic", "seeds": None}
    with pytest.raises(BadParameter, match="grid_lrs"):
        book.prepare(4, **params, grid_lrs=(0.1, 0.1))
    assert calls == [], "a bad parameter stops before anything is planned or trained"
    s = book.prepare(4, **params, grid_lrs=(0.1, 1.0))
    expected = len(book.CHAPTERS[4].planned(s, grid_lrs=(0.1, 1.0)))
    assert expected < len(book.CHAPTERS[4].planned(s)), "the chapter's own parameters reach its plan"
    assert calls[:2] == [("plan", expected, "fewer `seeds` or `grid_lrs`"), ("train", expected)]
    assert calls[2][0] == "display" and "Some CPU" in calls[2][1] and "`smoke`" in calls[2][1]
    calls.clear()
    book.prepare(6, **params, draws=None)  # trains nothing: only the setup line
    assert [c[0] for c in calls] == ["display"]


def test_bnlib_dataset_names_what_auto_means(monkeypatch):
    monkeypatch.setenv("BNLIB_DATASET", "synthetic")
    assert book.common("smoke", "auto").dataset == "synthetic"
    assert book.common("smoke", "fashion-mnist").dataset == "fashion-mnist"  # a named dataset wins
    monkeypatch.setenv("BNLIB_DATASET", "mnist")
    with pytest.raises(BadParameter, match=r"unknown \$BNLIB_DATASET 'mnist'"):
        book.common("smoke", "auto")
