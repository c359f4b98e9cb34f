"""The landscape probe (Section 3.2): checked against w - eta g built by hand, and shown to leave runs untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bnlib import stats as st
from bnlib.losses import cross_entropy, sum_squared_error
from bnlib.models import DLN, VGG
from bnlib.probes import landscape
from bnlib.probes.base import StepContext, rng_state, set_rng_state
from bnlib.probes.hessian import HessianProbe
from bnlib.profiles import resolve
from bnlib.train import train


def _task(model_name: str, norm: str):
    torch.manual_seed(0)
    if model_name == "vgg":
        return VGG(norm, width=1 / 16, in_channels=1), cross_entropy, torch.randn(8, 1, 32, 32), \
            torch.randint(0, 10, (8,))
    x = torch.randn(32, 4)
    return DLN(norm, depth=5, dim=4), sum_squared_error, x, x @ torch.randn(4, 4)


def _direct(model, loss_fn, x, y, rng, etas):
    """By hand: deep copies, w - eta g written into the copy, loss and autograd gradient there."""
    base = copy.deepcopy(model)
    set_rng_state(rng)
    loss_fn(base, x, y).backward()
    g = [p.grad.clone() for p in base.parameters()]
    out = {"loss": [], "gdiff": [], "step_norm": []}
    for eta in etas:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p, gi in zip(m.parameters(), g, strict=True):
                p -= eta * gi
        set_rng_state(rng)
        loss = loss_fn(m, x, y)
        loss.backward()
        out["loss"].append(loss.item())
        out["gdiff"].append(torch.cat([(gi - p.grad).flatten() for gi, p in zip(g, m.parameters(), strict=True)])
                            .norm().item())
        out["step_norm"].append(eta * torch.cat([gi.flatten() for gi in g]).norm().item())
    return out


@pytest.mark.parametrize("case", [("vgg", "none"), ("vgg", "batch"), ("vgg", "noisy"), ("dln", "batch")])
def test_matches_direct_computation_and_restores(case):
    model, loss_fn, x, y = _task(*case)
    model.train()
    lr = 0.05 if case[0] == "vgg" else 1e-3
    factors = (0.5, 1.0, 2.0, 4.0)
    rng = rng_state()
    want = _direct(model, loss_fn, x, y, rng, [f * lr for f in factors])
    set_rng_state(rng)
    loss = loss_fn(model, x, y)
    loss.backward()
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    rng_after = torch.get_rng_state()
    ctx = StepContext(model, x, y, loss.detach(), loss_fn, lr, 0, rng, None)
    rec = landscape.LandscapeProbe(1, factors).measure(ctx)
    for key in ("loss", "gdiff", "step_norm"):
        np.testing.assert_allclose(rec[key], want[key], rtol=1e-4)
    ratios = np.array(want["gdiff"]) / np.array(want["step_norm"])
    assert rec["beta_eff"] == pytest.approx(ratios.max(), rel=1e-4)
    assert rec["loss_max"] - rec["loss_min"] == pytest.approx(np.ptp(want["loss"]), rel=1e-3, abs=1e-6)
    assert rec["gdiff_max"] == pytest.approx(max(want["gdiff"]), rel=1e-4)
    # nothing moved: weights, BN running statistics, gradients, RNG, mode
    assert all(torch.equal(a, b) for a, b in zip(state.values(), model.state_dict().values(), strict=True))
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters(), strict=True))
    assert torch.equal(torch.get_rng_state(), rng_after)
    assert model.training


@pytest.mark.parametrize("norm", ["batch", "noisy"])
def test_probed_run_is_bit_identical(tiny_vgg, norm):
    cfg = tiny_vgg.replace(norm=norm)
    plain = train(cfg, [], progress=False)
    probed = train(cfg, [landscape.LandscapeProbe(3), HessianProbe(6, iters=2)], progress=False)
    assert torch.equal(plain["step_loss"], probed["step_loss"])
    assert plain["evals"] == probed["evals"]  # eval mode uses the BN running statistics
    series = landscape.landscape_series(probed)
    assert list(series["steps"]) == [0, 3, 6, 9]
    assert np.all(series["loss_min"] <= series["loss_max"]) and np.all(series["gdiff_min"] <= series["gdiff_max"])
    assert np.all(series["beta_eff"] > 0)
    curves = landscape.gradient_change_curves(probed)
    assert [c["step"] for c in curves] == [0, 3, 6, 9]
    np.testing.assert_allclose(curves[0]["eta"], [0.5 * cfg.lr, cfg.lr, 2 * cfg.lr, 4 * cfg.lr])
    assert curves[1]["gdiff"].max() == pytest.approx(series["gdiff_max"][1])


def test_dln_run_identical(tiny_dln):
    plain = train(tiny_dln, [], progress=False)
    probed = train(tiny_dln, landscape.dln_probes(resolve("smoke").replace(dln_probe_every=2)), progress=False)
    assert torch.equal(plain["step_loss"], probed["step_loss"])
    recs = probed["probes"]["landscape"]
    np.testing.assert_allclose(recs[0]["eta"], [f * tiny_dln.lr for f in landscape.DLN_ETA_FACTORS])
    assert [r["step"] for r in probed["probes"]["hessian"]] == [0, 10]  # 5 x the landscape's cadence


def test_default_cadence():
    p = resolve("cpu")
    vgg = {probe.name: probe for probe in landscape.vgg_probes(p)}
    dln = {probe.name: probe for probe in landscape.dln_probes(p)}
    assert vgg["landscape"].every == p.probe_every and dln["landscape"].every == p.dln_probe_every
    assert vgg["hessian"].every > p.probe_every and dln["hessian"].every > p.dln_probe_every
    assert min(vgg["landscape"].eta_factors) == 0.5 and max(vgg["landscape"].eta_factors) == 4
    assert min(dln["landscape"].eta_factors) == 0.01 and max(dln["landscape"].eta_factors) == 30


def test_bad_input():
    with pytest.raises(ValueError, match="eta_factors"):
        landscape.LandscapeProbe(5, [])
    with pytest.raises(ValueError, match="eta_factors"):
        landscape.LandscapeProbe(5, [0.5, -1])
    with pytest.raises(ValueError, match="every"):
        landscape.LandscapeProbe(0)
    with pytest.raises(ValueError, match="landscape"):
        landscape.landscape_series({"probes": {"ics": []}})


def _fake_history(scale: float, steps=range(0, 60, 5), trains_from: int = 0) -> dict:
    """Records shaped like the probes' with every Standard measure `scale` x BN's (and x2 at step 0); the
    training-batch accuracy is at chance before step `trains_from`, 100% from it on."""
    recs = [{"step": t, "loss_min": 1.0, "loss_max": 1.0 + scale, "gdiff_min": 0.5 * scale,
             "gdiff_max": scale * (1 + (t == 0)), "beta_eff": 3 * scale} for t in steps]
    return {"config": {"steps": 60}, "probes": {"landscape": recs},
            "step_acc": [0.1 if t < trains_from else 1.0 for t in range(60)]}


def test_the_vgg_claims_leave_out_standards_plateau():
    """A Standard run at chance until step 24 (half BN's loss range there, 8x once it trains) is graded on its
    training phase only (steps 24-32 of "mid", 4-32): 8, reproduced; read from the start of "mid" the plateau
    would make the median 0.5, 'not reproduced'."""
    from bnlib.claims import landscape as claims

    std = _fake_history(0.5, range(0, 60, 2), trains_from=24)
    for r in std["probes"]["landscape"]:
        if r["step"] >= 24:
            r.update(loss_max=9.0)  # 1 + 8
    bn = _fake_history(1.0, range(0, 60, 2))
    by_id = {r.id: r for r in claims.vgg_claims({s: {"Standard": std, "+BN": bn} for s in (0, 1)})}
    assert claims.training_start(std) == 24
    assert by_id["fig4a-vgg-loss-range-mid"].ours == [pytest.approx(8.0)] * 2
    assert by_id["fig4a-vgg-loss-range-mid"].verdict == "reproduced"
    assert claims.median_ratio(*(st.landscape_curves(h)["loss_range"] for h in (std, bn)), 60, "mid") == 0.5
    never = _fake_history(8.0, trains_from=60)  # never leaves chance: no phase, no verdict
    assert claims.vgg_claims({s: {"Standard": never, "+BN": _fake_history(1.0)} for s in (0, 1)})[0].verdict \
        == "inconclusive"


@pytest.mark.parametrize(("std_scale", "verdict"), [(8.0, "reproduced"), (50.0, "partly"), (1.1, "not reproduced"),
                                                     (float("nan"), "inconclusive")])
def test_claims_are_graded_against_the_papers_figure_4(std_scale, verdict):
    from bnlib.claims import landscape as claims

    runs = {s: {"Standard": _fake_history(std_scale), "+BN": _fake_history(1.0)} for s in (0, 1)}
    by_id = {r.id: r for r in claims.vgg_claims(runs)}
    loss = by_id["fig4a-vgg-loss-range-mid"]
    assert loss.paper == pytest.approx(8.42, abs=0.01) and loss.verdict == verdict
    beta = by_id["fig4c-vgg-beta-eff-mid"]
    assert beta.paper_vs_text.startswith("no") and beta.paper == pytest.approx(1.0, abs=0.02)
    orders = claims.vgg_claims({0: {"Standard": _fake_history(100.0), "+BN": _fake_history(1.0)}})[-1]
    assert orders.id == "fig4b-vgg-gradient-orders" and orders.ours == [pytest.approx(100.0)]


def _seeded_history(scale: float, seed: int, steps=range(0, 60, 5)) -> dict:
    """`_fake_history` as a whole VGG run record of seed `seed`: config, Figure 11's per-eta records and a
    Hessian record at every third probed step (beta = 4 x scale)."""
    h = _fake_history(scale, steps)
    h["config"] = {"model": "vgg", "norm": "batch", "lr": 0.1, "steps": 60, "seed": seed, "width": 1 / 16,
                   "dataset": "synthetic", "batch_size": 32}
    h["steps_done"], h["step_loss"] = 60, [1.0] * 60
    for r in h["probes"]["landscape"]:
        r["eta"], r["gdiff"] = [0.05, 0.1], [r["gdiff_min"], r["gdiff_max"]]
    h["probes"]["hessian"] = [{"step": t, "top_eig": 4 * scale, "min_eig": -scale, "iters": 5, "rel_residual": 1e-3}
                              for t in steps[::3]]
    return h


def _band_extents(ax) -> list[dict[float, tuple[float, float]]]:
    """Per shaded area of `ax`: {x: (lowest, highest) y of its outline at x}."""
    from matplotlib.collections import PolyCollection

    out = []
    for coll in ax.collections:
        if isinstance(coll, PolyCollection):
            spans: dict[float, tuple[float, float]] = {}
            for path in coll.get_paths():
                for x, y in path.vertices:
                    lo, hi = spans.get(round(float(x), 6), (np.inf, -np.inf))
                    spans[round(float(x), 6)] = (min(lo, y), max(hi, y))
            out.append(spans)
    return out


def test_figures_draw_the_mean_and_the_range_of_every_seed():
    """Two seeds whose Standard values differ 4x: the line is their mean and the band runs from one seed to
    the other at every step. A figure that drew only the first seed would give seed 0's values and no band."""
    import matplotlib.pyplot as plt

    from bnlib.plots import landscape as plots

    scales = {0: 2.0, 1: 8.0}
    runs = {seed: {"Standard": _seeded_history(s, seed), "+BN": _seeded_history(1.0, seed)}
            for seed, s in scales.items()}
    steps = np.arange(0, 60, 5, dtype=float)
    fig = plots.landscape_figure(runs, "two seeds")
    beta_ax, gdiff_ax = fig.axes[2], fig.axes[1]
    mean = next(line for line in beta_ax.get_lines() if line.get_label() == "Standard (mean of 2 seeds)")
    np.testing.assert_allclose(mean.get_ydata(), 3 * np.mean(list(scales.values())))
    assert {x: (3 * 2.0, 3 * 8.0) for x in steps} in _band_extents(beta_ax)
    # (b): the top of the range over step sizes (gdiff_max, x2 at step 0) with the seeds' band around it
    top = {x: (2.0 * (1 + (x == 0)), 8.0 * (1 + (x == 0))) for x in steps}
    assert top in _band_extents(gdiff_ax)
    assert any("Lines: mean of 2 seeds" in t.get_text() for t in fig.texts)
    assert fig.axes[0]._bnlib_paper_axis is not None  # the paper's digitized bands are still drawn beside ours
    hessian = plots.hessian_figure({"VGG": runs}).axes[0]
    assert {x: (4 * 2.0, 4 * 8.0) for x in steps[::3]} in _band_extents(hessian)
    one = plots.landscape_figure({1: runs[1]})  # one seed: plain lines, no shading, the seed named
    assert "Standard" in [line.get_label() for line in one.axes[2].get_lines()]
    assert not any(_band_extents(ax) for ax in one.axes[:3]) and any("Seed 1." in t.get_text() for t in one.texts)
    plt.close("all")


def test_single_seed_views_name_their_seed_and_seed_figures_reject_one_seeds_runs():
    import matplotlib.pyplot as plt

    from bnlib.plots import landscape as plots

    pair = {"Standard": _seeded_history(2.0, 7), "+BN": _seeded_history(1.0, 7)}
    assert all("seed 7" in ax.get_title() for ax in plots.gradient_change_figure(pair).axes)
    assert "seed 7" in plots.control_figure(pair, 0.1).axes[0].get_title()
    with pytest.raises(ValueError, match="seed"):
        plots.landscape_figure(pair)  # a single seed's runs where {seed: runs} is expected
    with pytest.raises(ValueError, match="same"):
        plots.landscape_figure({0: pair, 1: {"Standard": pair["Standard"]}})
    plt.close("all")


def test_claims_and_table_read_every_seed():
    from bnlib.claims import landscape as claims
    from bnlib.experiments import landscape as experiment

    agree = {seed: {"Standard": _seeded_history(scale, seed), "+BN": _seeded_history(1.0, seed)}
             for seed, scale in ((0, 6.0), (1, 7.0), (2, 8.0))}
    rows = experiment.medians_table(agree)
    assert [r["network"] for r in rows] == ["Standard", "+BN"] and rows[0]["phase"].startswith("mid")
    assert rows[0]["median loss range"] == "7 [6, 8]" and rows[1]["median loss range"] == "1 [1, 1]"
    assert len(experiment.medians_table(agree, ("mid", "late"))) == 4
    loss = {r.id: r for r in claims.vgg_claims(agree)}["fig4a-vgg-loss-range-mid"]
    assert loss.seeds == [0, 1, 2] and loss.ours == [pytest.approx(v) for v in (6.0, 7.0, 8.0)]
    assert loss.verdict == "reproduced"  # the paper's 8.42: the seeds' interval [4.9, 9.9] within a factor 3 of it
    assert loss.interval == (pytest.approx(4.86, abs=0.01), pytest.approx(9.94, abs=0.01))
    wide = {seed: agree[seed] for seed in (0, 2)}  # 6 and 8 alone: two seeds give an interval too wide to decide
    assert {r.id: r for r in claims.vgg_claims(wide)}["fig4a-vgg-loss-range-mid"].verdict == "inconclusive"
    disagree = {**agree, 1: {"Standard": _seeded_history(0.5, 1), "+BN": _seeded_history(1.0, 1)}}
    assert {r.id: r for r in claims.vgg_claims(disagree)}["fig4a-vgg-loss-range-mid"].verdict == "inconclusive"


def test_a_loss_range_below_fp32_resolution_is_not_graded():
    """A network stalled near a loss of 1e4 shows loss ranges of a few units in the last place: rounding, not
    landscape. The claims read them as unresolved (0), and a phase that is mostly unresolved gives no ratio."""
    from bnlib.claims import landscape as claims

    def stalled(loss: float, spread: float) -> dict:
        h = _fake_history(1.0)
        for r in h["probes"]["landscape"]:
            r.update(loss_min=loss, loss_max=loss + spread)
        return h

    ulp = 2.0 ** -23 * 1e4
    both = {s: {"Standard": stalled(1e4, 4 * ulp), "+BN": stalled(1e4, 100.0)} for s in (0, 1)}
    loss = {r.id: r for r in claims.dln_claims(both)}["fig10a-dln-loss-range-mid"]
    assert all(v != v for v in loss.ours) and loss.verdict == "inconclusive" and "fp32" in loss.why
    resolved = {s: {"Standard": stalled(1e4, 1000 * ulp), "+BN": stalled(1e4, 100.0)} for s in (0, 1)}
    ratio = {r.id: r for r in claims.dln_claims(resolved)}["fig10a-dln-loss-range-mid"].ours
    assert ratio == [pytest.approx(1000 * ulp / 100.0)] * 2
    assert st.landscape_curves(both[0]["Standard"])["loss_range"].values[0] == pytest.approx(4 * ulp)  # plots: as is
