"""A chapter's plan: which runs it trains (the same list its run functions train), which are cached, and an
estimate whose accounting is checked here with made-up costs (nothing here depends on timing)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch

from bnlib import book, plan, runs
from bnlib.experiments import distributions, ics, landscape, lp
from bnlib.probes.activations import ActivationProbe
from bnlib.probes.ics import ICSProbe
from bnlib.profiles import resolve

SMOKE, PAPER = resolve("smoke"), resolve("paper")


def test_run_seconds_counts_steps_evaluations_and_probe_measurements(tiny_vgg):
    config = tiny_vgg.replace(steps=100, eval_every=30)  # evaluations at 0, 30, 60, 90 and the final one
    probes = [ActivationProbe(10, layers=[1]), ICSProbe(25, (5, 10))]  # 10 and 4 measurements
    cost = plan.Cost(step_s=2.0, eval_s=3.0, probe_s={"activations": 0.5, "ics": 7.0})
    assert plan.counts(config, probes) == (100, 5, {"activations": 10, "ics": 4})
    assert plan.run_seconds(config, probes, cost) == 100 * 2.0 + 5 * 3.0 + 10 * 0.5 + 4 * 7.0


def test_one_measurement_per_shape_and_cached_runs_cost_nothing(tiny_vgg, tiny_dln, cache):
    calls = []

    def fake_measure(config, probes):
        calls.append((config.model, config.norm))
        return plan.Cost(1.0, 0.0, {p.name: 10.0 for p in probes})

    probe = [ICSProbe(4, (5, 10))]
    planned = [(tiny_vgg, probe), (tiny_vgg.replace(lr=0.2), probe), (tiny_vgg, probe), (tiny_dln, [])]
    got = plan.make_plan(planned, fake_measure)
    assert (got.runs, got.cached) == (3, 0)  # the repeat counts once
    assert sorted(calls) == [("dln", "batch"), ("vgg", "batch")]  # lr does not change a step's cost
    assert got.seconds == 2 * (12 + 10 * 3) + 20

    (cache / "runs").mkdir(parents=True)
    (cache / "runs" / f"{runs.run_key(tiny_dln, [])}.pt").touch()  # as if trained: is_cached looks for the file
    calls.clear()
    assert plan.make_plan(planned, fake_measure).cached == 1
    assert calls == [("vgg", "batch")]

    def must_not_measure(config, probes):
        raise AssertionError("a cached run was measured")

    done = plan.make_plan([(tiny_dln, [])], must_not_measure)
    assert (done.runs, done.cached, done.seconds) == (1, 1, 0.0)
    assert "Nothing to train" in plan.text(done, SMOKE)


def test_measure_times_the_run_and_each_probe(tiny_vgg):
    cost = plan.measure(tiny_vgg, [ActivationProbe(1, layers=[2]), ICSProbe(1, (5, 10))], steps=1)
    assert cost.step_s > 0 and cost.eval_s > 0
    assert set(cost.probe_s) == {"activations", "ics"} and min(cost.probe_s.values()) >= 0
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        plan.measure(tiny_vgg, steps=0)


def test_the_text_says_what_is_measured_and_what_makes_it_smaller(tiny_vgg):
    got = plan.Plan(runs=5, cached=2, seconds=600.0, device="CPU (2 threads)", measured=("VGG batch: step 1 ms",))
    out = plan.text(got, PAPER, knobs="fewer learning_rates")
    assert "5 runs, 2 already in the run cache" in out and "about 10 min" in out and "estimate" in out
    assert "VGG batch: step 1 ms" in out and 'profile="gpu"' in out and "fewer learning_rates" in out


@pytest.fixture
def trained(monkeypatch):
    """Record the runs that the experiment functions ask for, instead of training them."""
    keys: list[str] = []

    def fake_run(config, probes=(), progress=True, **kw):
        keys.append(runs.run_key(config, probes))
        return {"step_loss": torch.zeros(config.steps), "step_acc": torch.zeros(config.steps), "evals": [],
                "steps_done": config.steps}

    monkeypatch.setattr(runs, "run", fake_run)
    return keys


def keys(planned):
    return {runs.run_key(config, probes) for config, probes in planned}


def test_chapters_train_exactly_their_plans(trained):
    """One source of truth: what a chapter's cells (and claim checks) train is what its plan lists."""
    d, s = SMOKE, "synthetic"
    distributions.fig2_runs(d, s, lr=0.5), distributions.noise_grid(d, s, scales=(0.0, 1.0, 3.0), lr=0.5)
    distributions.fig2_runs(d, s)  # the claim check, at the paper's rate
    assert set(trained) == keys(distributions.chapter2_plan(d, s, (0,), lr=0.5, scales=(0.0, 1.0, 3.0)))

    trained.clear()
    ics.vgg_runs(d, s, layers=(2, 3)), ics.dln_runs(d, lrs=(1e-7,), layers=(3, 4)), ics.fig9_runs(d, lr=1e-7)
    ics.vgg_runs(d, s), ics.dln_runs(d, lrs=(1e-7,))  # the claim check: default layers, the chapter's rates
    assert set(trained) == keys(ics.chapter_plan(d, s, (0,), dln_lrs=(1e-7,), vgg_layers=(2, 3), dln_layers=(3, 4)))

    trained.clear()
    landscape.vgg_runs(d, s), landscape.dln_runs(d), landscape.lr_grid(d, s, lrs=(0.1, 1.0))
    assert set(trained) == keys(landscape.chapter_plan(d, s, (0,), grid_lrs=(0.1, 1.0)))


def test_chapter_plans_follow_their_parameters():
    assert len(runs.unique(distributions.chapter1_plan(SMOKE, "synthetic", (0,)))) == 4
    assert len(runs.unique(distributions.chapter1_plan(SMOKE, "synthetic", (0,), lrs=(0.05,)))) == 6
    assert len(runs.unique(ics.chapter_plan(SMOKE, "synthetic", (0,)))) == 8
    # other layers: runs carrying only an ICS probe, besides the canonical runs of Figure 9 and the claims
    assert len(runs.unique(ics.chapter_plan(SMOKE, "synthetic", (0,), vgg_layers=(2, 3), dln_layers=(3, 4)))) == 16
    assert len(runs.unique(landscape.chapter_plan(SMOKE, "synthetic", (0,), grid_lrs=(0.1, 1.0)))) == 8
    # every seed trains Figure 3 and the claims' runs; Figure 9 (one seed shown) only the first seed
    assert len(runs.unique(ics.chapter_plan(SMOKE, "synthetic", (0, 1)))) == 16
    two = runs.unique(ics.chapter_plan(SMOKE, "synthetic", (2, 1), dln_lrs=(1e-7,)))
    assert len(two) == 14 and {c.seed for c, _ in two} == {1, 2}
    assert {c.seed for c, probes in two if c.model == "dln" and any(p.name == "activations" for p in probes)} == {2}
    assert len(runs.unique(lp.chapter_plan(SMOKE, "synthetic", (0,)))) == 10


CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb"))
TRAINS = re.compile(r"\b(\w+_runs|noise_grid|lr_grid)\(")  # the calls that train runs


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_plan_is_printed_by_the_one_setup_call_before_any_cell_that_trains(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    parameters = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    prepare = [i for i, c in enumerate(code) if "book.prepare(" in c.source]
    trains = [i for i, c in enumerate(code) if TRAINS.search(c.source)]
    assert prepare == [parameters + 1], f"{path.name}: book.prepare at {prepare}, parameters at {parameters}"
    assert not any("plan.show(" in c.source or "train_all(" in c.source for c in code), "one plan, printed by prepare"
    assert all(i > prepare[0] for i in trains)


def test_the_assumed_meter_counts_flops_and_operations_instead_of_timing():
    a, b = torch.ones(64, 32), torch.ones(32, 16)
    assert plan.Assumed(flops_per_s=1e6, op_s=0.0)(lambda: a @ b) == 2 * 64 * 32 * 16 / 1e6
    assert plan.Assumed(flops_per_s=1e6, op_s=0.0, batch_scale=4)(lambda: a @ b) == 4 * 2 * 64 * 32 * 16 / 1e6
    assert plan.Assumed(flops_per_s=1e30, op_s=1.0)(lambda: (a + 1) * 2) == 2.0  # two operations, no FLOPs


def test_an_assumed_vgg_cost_does_not_depend_on_the_batch_it_was_counted_on(tiny_vgg):
    config = tiny_vgg.replace(batch_size=64, n_test=None)
    probes = [ICSProbe(1, (5, 10))]
    small, smaller = (plan.assumed_cost(config, probes, 1e9, 0.0, batch=b, test_images=100) for b in (4, 2))
    assert small.step_s == pytest.approx(smaller.step_s) and small.step_s > 0
    assert small.probe_s["ics"] == pytest.approx(smaller.probe_s["ics"]) and small.probe_s["ics"] > 0
    assert small.eval_s == pytest.approx(smaller.eval_s)


def test_spent_says_where_the_training_time_went_chapter_by_chapter(cache):
    """`python -m bnlib.book --spent` reads each cached run's own recorded seconds under the first chapter that
    plans it; a run not in the cache says so and adds nothing."""
    setup = book.common("smoke", "synthetic", (0,))
    first_config, first_probes = book.chapter_plans(setup)["01"][0]
    history = runs.run(first_config, first_probes, progress=False)
    text = book.spent(setup)
    chapters = [line for line in text.splitlines() if line.startswith("chapter ")]
    assert [line.split(":")[0] for line in chapters] == [f"chapter 0{n}" for n in (1, 2, 3, 4, 5, 7)]
    assert chapters[0].endswith(f"{history['seconds']:,.0f} s of training")
    assert f"{history['seconds']:7,.0f} s  VGG {first_config.norm} lr {first_config.lr:g} seed 0" in text
    listed = sum(int(line.split(": ")[1].split()[0]) for line in chapters)
    assert listed == len(book.book_plan(setup))  # every run once
    assert text.count("not cached") == listed - 1


def test_before_training_the_plan_says_what_the_runtime_has(monkeypatch):
    """Without CUDA: the profile trains on the CPU, for how long, and how to get a GPU (Colab's menu on Colab); with
    CUDA: the GPU's name and memory."""
    import sys
    import types

    got = plan.Plan(runs=5, cached=2, seconds=600.0, device="CPU", measured=())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    here = plan.text(got, SMOKE).splitlines()[0]
    assert here.startswith("No GPU here: profile 'smoke' trains on the CPU (its 3 runs to train take about 10 min)")
    assert "CUDA GPU" in here and "Runtime" not in here
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert "Runtime > Change runtime type" in plan.text(got, SMOKE).splitlines()[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30))
    assert plan.text(got, SMOKE).splitlines()[0] == "GPU: Tesla T4, 15 GiB of memory."
