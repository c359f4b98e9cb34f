"""Seeds behind every canonical run, and the process pool that trains them side by side."""

import numpy as np
import pytest
import torch

from bnlib import book, pool, profiles, runs, stats
from bnlib.checks import BadParameter
from bnlib.experiments import distributions, scaling
from bnlib.plots import seeds as seed_plots
from bnlib.train import train


def test_profiles_carry_seeds_and_a_chapter_may_choose_others():
    assert book.common("cpu").seeds == (0, 1, 2)
    assert book.common("smoke").seeds == (0,)
    assert book.common("smoke", "auto", [3, 4]).seeds == (3, 4)
    with pytest.raises(BadParameter, match=r"seeds must not repeat a seed"):
        book.common("cpu", "auto", (1, 1))
    with pytest.raises(BadParameter, match=r"seeds must be a list or tuple"):
        book.common("cpu", "auto", 3)
    with pytest.raises(BadParameter, match=r"seeds\[1\] must be an int"):
        book.setup(7, profile="smoke", dataset="auto", seeds=[0, -1])
    with pytest.raises(BadParameter, match="profile field 'seeds'"):
        profiles.PROFILES["smoke"].replace(seeds=())


def test_a_chapter_plan_spans_its_seeds():
    one = distributions.chapter1_plan(profiles.resolve("smoke"), "synthetic", (0,))
    two = distributions.chapter1_plan(profiles.resolve("smoke"), "synthetic", (0, 5))
    assert len({runs.run_key(c, p) for c, p in two}) == 2 * len({runs.run_key(c, p) for c, p in one})
    assert {c.seed for c, _ in two} == {0, 5}


def test_spread_draws_every_seed_not_the_first():
    curves = [(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0])),
              (np.array([0, 1, 2, 3]), np.array([3.0, 0.0, 5.0, 7.0]))]
    x, mean, low, high = seed_plots.spread(curves)
    assert list(x) == [0, 1, 2, 3]
    assert list(low) == [1.0, 0.0, 3.0, 7.0] and list(high) == [3.0, 2.0, 5.0, 7.0]
    assert list(mean) == [2.0, 1.0, 4.0, 7.0]  # step 3: only the longer seed (the other ended, e.g. diverged)


def test_a_table_cell_over_seeds_says_mean_range_and_missing_seeds():
    assert stats.across_seeds([0.5]) == "0.5"
    assert stats.across_seeds([1.0, 2.0, 4.0], "{:.1f}") == "2.3 [1.0, 4.0]"
    assert stats.across_seeds([1.0, float("nan")], "{:.1f}") == "1.0 [1.0, 1.0] (1 of 2 seeds nan)"


def _square(x: int) -> int:
    return x * x


def test_pool_returns_results_in_job_order():
    assert pool.map_jobs([(_square, (k,)) for k in range(5)], workers=2) == [0, 1, 4, 9, 16]
    assert pool.map_jobs([(_square, (3,))], workers=1) == [9]
    with pytest.raises(BadParameter, match="workers must be an int"):
        pool.map_jobs([(_square, (3,))], workers=0)


def test_train_all_trains_what_is_missing_once_and_as_a_run_alone_would(tiny_vgg, tiny_dln, cache):
    planned = [(tiny_vgg, []), (tiny_dln, []), (tiny_vgg, [])]
    assert runs.train_all(planned, workers=2) == 2  # the repeat trains once
    assert runs.is_cached(tiny_vgg) and runs.is_cached(tiny_dln)
    assert runs.train_all(planned, workers=2) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, pool.cores() // 2))  # what each of the two workers had
    try:
        alone = train(tiny_vgg, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs.run(tiny_vgg)["step_loss"], alone["step_loss"])


def test_escape_steps_are_read_from_the_rolling_batch_accuracy():
    acc = np.r_[np.full(40, 0.1), np.full(40, 0.3), np.full(40, 0.9)]
    assert scaling.first_step_at(acc, 0.2) == 40 + 12  # the 25-step mean passes 0.2 halfway into the rise
    assert scaling.first_step_at(acc, 0.95) is None
    rolled = scaling.rolling(np.r_[np.zeros(24), np.ones(30)])
    assert np.isnan(rolled[:24]).all() and rolled[24] == pytest.approx(1 / 25) and rolled[-1] == 1.0  # full windows


def test_the_signal_shrinks_through_the_standard_vgg_at_initialisation():
    stds = scaling.init_signal(1 / 16, dataset="synthetic", n=64)
    assert len(stds) == 14  # 13 conv blocks and the logits
    assert stds[12] < stds[0] / 10  # orders of magnitude lost over 13 ReLU blocks at Glorot init


def test_make_book_trains_the_book_plan_first(tiny_vgg, tiny_dln, cache, monkeypatch, capsys):
    monkeypatch.setattr(book, "book_plan", lambda setup: [(tiny_vgg, []), (tiny_dln, [])])
    monkeypatch.setenv("BNLIB_WORKERS", "1")
    assert book.main(["--train", "--profile", "smoke"]) == 0
    assert runs.is_cached(tiny_vgg) and runs.is_cached(tiny_dln)
    assert "2 runs in the book, 2 trained now" in capsys.readouterr().out
