"""Figures and distances drawn from several seeds: chapter 5's l_p figures and chapter 8's overlays must read
every seed's runs, not the first seed's (each test gives the seeds different values and checks the mean)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnlib import paper  # noqa: E402
from bnlib import stats as st  # noqa: E402
from bnlib.claims import overlays  # noqa: E402
from bnlib.plots import lp as lp_plots  # noqa: E402
from bnlib.plots import paper as paper_plots  # noqa: E402

STEPS = 60


def fake_run(model: str, norm: str, level: float) -> dict:
    """A run holding only what the figures read: its config, per-step accuracy and loss at `level`, and
    landscape records whose measures scale with `level`."""
    records = [{"step": t, "loss_min": level, "loss_max": 2 * level, "gdiff_min": level, "gdiff_max": 3 * level,
                "beta_eff": 10 * level} for t in range(0, STEPS, 10)]
    config = {"model": model, "norm": norm, "lr": 0.1, "steps": STEPS, "width": 0.125, "dataset": "synthetic",
              "batch_size": 32, "dln_points": 200}
    return {"config": config, "dataset": "synthetic", "diverged_at": None, "steps_done": STEPS, "evals": [],
            "step_acc": np.full(STEPS, level), "step_loss": np.full(STEPS, level),
            "probes": {"landscape": records}}


LEVELS = {0: 0.2, 1: 0.6}  # seed -> the value every curve of that seed sits at; their mean is 0.4


def lp_runs(model: str = "vgg") -> dict[int, dict[str, dict]]:
    return {seed: {n: fake_run(model, n, level) for n in ("none", "batch", "l1")} for seed, level in LEVELS.items()}


def _line(ax, label: str):
    found = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(found) == 1, [line.get_label() for line in ax.get_lines()]
    return found[0]


def test_chapter5_training_figure_draws_the_mean_and_the_band_of_every_seed():
    fig = lp_plots.training(lp_runs(), "vgg")
    ax = fig.axes[0]
    line = _line(ax, "Standard + BatchNorm (mean of 2 seeds)")
    assert np.allclose(np.asarray(line.get_ydata(), float)[STEPS // 30:], 40.0)  # not 20: the first seed's
    assert len(ax.collections) == 3  # one min-max band per network
    band = ax.collections[1].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(20.0) and band.max() == pytest.approx(60.0)
    assert any(line.get_label().startswith("paper, digitized") for line in fig.axes[1].get_lines())  # overlay kept
    assert any("mean of 2 seeds" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_chapter5_landscape_panels_average_the_seeds():
    fig = lp_plots.landscape_panels(lp_runs("dln"), "dln")
    beta = _line(fig.axes[3], "Standard + L1 (mean of 2 seeds)")
    assert np.allclose(beta.get_ydata(), 10 * 0.4)
    upper = _line(fig.axes[2], "Standard + L1 (mean of 2 seeds)")
    assert np.allclose(upper.get_ydata(), 3 * 0.4)
    plt.close(fig)


def test_one_seed_is_drawn_as_a_plain_line_and_named():
    fig = lp_plots.training({1: lp_runs()[1]}, "vgg", paper_data=False)
    assert _line(fig.axes[0], "Standard").get_ydata()[-1] == pytest.approx(60.0)
    assert not fig.axes[0].collections and any("Seed 1." in t.get_text() for t in fig.texts)
    plt.close(fig)


def _pairs() -> list[overlays.Pair]:
    """Two of the book's pairs (an accuracy and a log-axis loss), read through the real accessors."""
    return [overlays.Pair("Fig. 1a: training accuracy, LR 0.1", "batch", "points", "vgg",
                          overlays._vgg(("batch", 0.1), overlays.smoothed_batch_accuracy),
                          lambda: paper.curve("fig1a_train_acc", "bn_lr0.1")),
            overlays.Pair("Fig. 5b: l_p, DLN training loss", "batch", "decades", "dln",
                          overlays._dln("batch", st.loss_curve),
                          lambda: paper.curve("fig5b_dln_lp_train_loss", "bn"))]


def canonical() -> dict[int, overlays.Runs]:
    return {seed: {"vgg": {("batch", 0.1): fake_run("vgg", "batch", level)},
                   "dln": {"batch": fake_run("dln", "batch", level)}} for seed, level in LEVELS.items()}


def test_chapter7_distances_are_measured_on_every_seed(monkeypatch):
    monkeypatch.setattr(overlays, "pairs", _pairs)
    runs = canonical()
    rows = overlays.distances(runs)
    for row, p in zip(rows, _pairs(), strict=True):
        expected = {seed: st.distance(*p.ours(r), p.theirs(), paper.TOTAL_STEPS[p.model], log=p.unit == "decades")
                    for seed, r in runs.items()}
        assert expected[0] != pytest.approx(expected[1])  # the seeds differ, so the test can tell them apart
        assert [row["seed 0"], row["seed 1"]] == pytest.approx([expected[0], expected[1]])
        assert row["mean over seeds"] == pytest.approx((expected[0] + expected[1]) / 2)
    assert "mean over seeds" not in overlays.distances({1: runs[1]})[0]
    with pytest.raises(ValueError, match="at least one seed"):
        overlays.distances({})


def test_chapter7_overlays_draw_every_seeds_mean_beside_the_paper(monkeypatch):
    monkeypatch.setattr(overlays, "pairs", _pairs)
    fig = paper_plots.all_overlays(canonical())
    accuracy, loss = fig.axes[0], fig.axes[1]
    ours = _line(accuracy, "ours: +BN (mean of 2 seeds)")
    assert np.allclose(ours.get_ydata(), 40.0)
    assert np.allclose(_line(loss, "ours: +BN (mean of 2 seeds)").get_ydata(), 0.4)
    assert len(accuracy.collections) == 1 and len(accuracy.get_lines()) == 2  # our band; ours and the paper's
    assert "seeds 0, 1" in fig._suptitle.get_text()
    plt.close(fig)
