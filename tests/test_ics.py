"""The ICS probe (Definition 2.1): checked against G' built by hand, and shown to leave runs untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bnlib import report, stats
from bnlib.losses import cross_entropy, sum_squared_error
from bnlib.models import DLN, VGG
from bnlib.probes import ics
from bnlib.probes.base import StepContext, rng_state, set_rng_state
from bnlib.profiles import resolve
from bnlib.train import RunConfig, train

CASES = [("vgg", "none"), ("vgg", "batch"), ("vgg", "noisy"), ("dln", "none"), ("dln", "batch"), ("dln", "noisy")]


def _task(model_name: str, norm: str) -> tuple[torch.nn.Module, object, torch.Tensor, torch.Tensor, tuple[int, ...]]:
    torch.manual_seed(0)
    if model_name == "vgg":
        model = VGG(norm, width=1 / 16, in_channels=1)
        x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
        return model, cross_entropy, x, y, (1, 5, 10)
    model = DLN(norm, depth=5, dim=4)
    x = torch.randn(32, 4)
    return model, sum_squared_error, x, x @ torch.randn(4, 4), (1, 3, 5)


def _step_context(model, loss_fn, x, y, opt, lr) -> StepContext:
    """Forward/backward as the training loop does, returning what the probe sees."""
    model.train()
    rng = rng_state()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model, x, y)
    loss.backward()
    return StepContext(model, x, y, loss.detach(), loss_fn, lr, 0, rng, opt)


def _copy_with_grads(model: torch.nn.Module) -> torch.nn.Module:
    """deepcopy, grads included (copy.deepcopy drops .grad)."""
    twin = copy.deepcopy(model)
    for p_twin, p in zip(twin.parameters(), model.parameters(), strict=True):
        p_twin.grad = None if p.grad is None else p.grad.clone()
    return twin


def _g_prime_by_hand(model, loss_fn, x, y, k, rng, stepped) -> torch.Tensor:
    """G' from a copy: blocks < k take the parameters of `stepped`, the rest stay; same noise draw."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for b in range(1, k):
            for p_ref, p_new in zip(ref.block(b).parameters(), stepped.block(b).parameters(), strict=True):
                p_ref.copy_(p_new)
    ref.zero_grad(set_to_none=True)
    set_rng_state(rng)
    loss_fn(ref, x, y).backward()
    return ref.layer(k).weight.grad


@pytest.mark.parametrize("model_name,norm", CASES)
def test_plain_sgd_matches_hand_computation(model_name, norm):
    model, loss_fn, x, y, layers = _task(model_name, norm)
    lr = 0.05 if model_name == "vgg" else 0.01
    ctx = _step_context(model, loss_fn, x, y, torch.optim.SGD(model.parameters(), lr=lr), lr)
    before = _copy_with_grads(model)
    record = ics.ICSProbe(1, layers).measure(ctx)
    # the hand-made update: W <- W - lr * grad on every parameter (applied to blocks < k only below)
    stepped = _copy_with_grads(model)
    with torch.no_grad():
        for p in stepped.parameters():
            p.sub_(lr * p.grad)
    for j, k in enumerate(layers):
        g = model.layer(k).weight.grad
        gp = _g_prime_by_hand(model, loss_fn, x, y, k, ctx.rng_before_forward, stepped)
        assert record["l2"][j] == pytest.approx((g - gp).norm().item(), rel=1e-4, abs=1e-7)
        cos = torch.nn.functional.cosine_similarity(g.flatten(), gp.flatten(), dim=0).item()
        assert record["cos"][j] == pytest.approx(cos, abs=1e-5)
        assert record["g_norm"][j] == pytest.approx(g.norm().item(), rel=1e-6)
        if k == 1:  # nothing precedes layer 1: G' = G exactly
            assert record["l2"][j] == 0.0
        else:  # a real shift, so the comparison above is not between zeros
            assert record["l2"][j] > 1e-4 * record["g_norm"][j]
    # measuring left the model (weights, grads, BN running statistics) as it was
    for (n, a), b in zip(model.state_dict().items(), before.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    for a, b in zip(model.parameters(), before.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("model_name,norm", [("vgg", "batch"), ("dln", "none")])
def test_momentum_and_weight_decay_follow_the_optimizer(model_name, norm):
    """With momentum (a buffer already filled) and weight decay, G' uses torch's own SGD step."""
    model, loss_fn, x, y, layers = _task(model_name, norm)
    lr = 0.05 if model_name == "vgg" else 0.01
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-3, nesterov=True)
    _step_context(model, loss_fn, x, y, opt, lr)
    opt.step()  # fills the momentum buffers
    ctx = _step_context(model, loss_fn, x, y, opt, lr)
    record = ics.ICSProbe(1, layers).measure(ctx)
    stepped = _copy_with_grads(model)
    opt2 = torch.optim.SGD(stepped.parameters(), lr=lr, momentum=0.9, weight_decay=5e-3, nesterov=True)
    opt2.load_state_dict(opt.state_dict())
    opt2.step()
    plain = _copy_with_grads(model)  # what plain SGD would give instead: must differ
    with torch.no_grad():
        for p in plain.parameters():
            p.sub_(lr * p.grad)
    for j, k in enumerate(layers[1:], start=1):
        g = model.layer(k).weight.grad
        gp = _g_prime_by_hand(model, loss_fn, x, y, k, ctx.rng_before_forward, stepped)
        assert record["l2"][j] == pytest.approx((g - gp).norm().item(), rel=1e-4)
        gp_plain = _g_prime_by_hand(model, loss_fn, x, y, k, ctx.rng_before_forward, plain)
        assert abs(record["l2"][j] - (g - gp_plain).norm().item()) > 1e-3 * record["l2"][j]


def test_noisy_bn_uses_the_training_steps_noise_sample():
    """With lr = 0 nothing moves, so Definition 2.1 must give exactly G' = G; a fresh noise draw would not."""
    model, loss_fn, x, y, _ = _task("vgg", "noisy")
    ctx = _step_context(model, loss_fn, x, y, torch.optim.SGD(model.parameters(), lr=0.0), 0.0)
    record = ics.ICSProbe(1, [5, 10]).measure(ctx)
    assert record["l2"] == [0.0, 0.0]
    fresh = copy.deepcopy(model)  # the same weights, a fresh noise sample
    loss_fn(fresh, x, y).backward()
    for k in (5, 10):
        noise_only = (model.layer(k).weight.grad - fresh.layer(k).weight.grad).norm().item()
        assert noise_only > 0.05 * model.layer(k).weight.grad.norm().item()


@pytest.mark.parametrize("model_name,norm,momentum", [("vgg", "batch", 0.0), ("vgg", "noisy", 0.9),
                                                       ("dln", "batch", 0.0)])
def test_probed_run_is_bit_identical(tmp_path, model_name, norm, momentum):
    """Losses, parameters, BN running statistics and optimiser state equal an unprobed run's."""
    steps = 6
    if model_name == "vgg":
        config = RunConfig(model="vgg", norm=norm, lr=0.05, steps=steps + 1, batch_size=16, width=1 / 16,
                           dataset="synthetic", n_train=64, n_test=32, eval_every=3, momentum=momentum)
        layers = (5, 10)
    else:
        config = RunConfig(model="dln", norm=norm, lr=1e-3, steps=steps + 1, dln_points=50, dln_depth=6,
                           dln_dim=4, eval_every=3)
        layers = (3, 5)
    states = []
    for name, probes in (("plain", []), ("probed", [ics.ICSProbe(2, layers)])):
        ckpt = tmp_path / f"{name}.pt"
        history = train(config, probes, device="cpu", checkpoint=ckpt, progress=False, stop_after=steps)
        states.append((history, torch.load(ckpt, weights_only=False)))
    (h0, s0), (h1, s1) = states
    assert torch.equal(h0["step_loss"][:steps], h1["step_loss"][:steps])
    assert [r["step"] for r in h1["probes"]["ics"]] == [0, 2, 4]
    for n, t in s0["model"].items():
        assert torch.equal(t, s1["model"][n]), n
    assert any("running_mean" in n for n in s0["model"]) or norm == "none"
    assert len(s0["optimizer"]["state"]) == len(s1["optimizer"]["state"])
    assert (len(s0["optimizer"]["state"]) > 0) == (momentum > 0)
    for a, b in zip(s0["optimizer"]["state"].values(), s1["optimizer"]["state"].values(), strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert torch.equal(s0["rng"]["cpu"], s1["rng"]["cpu"])


def test_ics_series_and_defaults():
    config = RunConfig(model="dln", norm="batch", lr=1e-3, steps=5, dln_points=40, dln_depth=6, dln_dim=4,
                       eval_every=5)
    history = train(config, [ics.ICSProbe(2, [5, 2])], device="cpu", progress=False)
    s = ics.ics_series(history, 5)
    assert s["steps"].tolist() == [0, 2, 4]
    assert set(s) == {"steps", "l2", "cos", "g_norm", "gp_norm"}
    assert all(isinstance(v, np.ndarray) and len(v) == 3 for v in s.values())
    assert np.all(s["l2"] > 0) and np.all(np.abs(s["cos"]) <= 1 + 1e-6)
    with pytest.raises(ValueError, match="layer must be one of the probed layers"):
        ics.ics_series(history, 3)
    with pytest.raises(ValueError, match="no 'ics' probe records"):
        ics.ics_series({"probes": {}}, 5)
    smoke = resolve("smoke")
    (v,) = ics.vgg_probes(smoke)
    (d,) = ics.dln_probes(smoke)
    assert v.layers == (5, 10) and v.every == smoke.probe_every
    assert d.layers == (9, 17) and d.every == smoke.dln_probe_every


@pytest.mark.parametrize("layers", [[], [0], [2, 2], ["5"], [True]])
def test_bad_layers_are_refused(layers):
    with pytest.raises(ValueError, match="layers"):
        ics.ICSProbe(1, layers)


def test_layer_beyond_the_model_is_refused():
    model, loss_fn, x, y, _ = _task("dln", "none")
    ctx = _step_context(model, loss_fn, x, y, torch.optim.SGD(model.parameters(), lr=0.01), 0.01)
    with pytest.raises(ValueError, match=r"must lie in 1\.\.5"):
        ics.ICSProbe(1, [9]).measure(ctx)


def _fake_runs(values: dict[tuple[str, float], tuple[float, float]], layers: tuple[int, ...]) -> dict:
    """Histories carrying only ICS records, (l2, cos) constant over six probed steps of a 60-step run."""
    n = len(layers)

    def records(l2: float, cos: float) -> list[dict]:
        return [{"step": t, "layers": list(layers), "l2": [l2] * n, "cos": [cos] * n, "g_norm": [1.0] * n,
                 "gp_norm": [1.0] * n} for t in range(0, 60, 10)]

    return {key: {"config": {"steps": 60}, "evals": [{"step": 60, "train_acc": 0.9}], "step_acc": [0.9] * 60,
                  "probes": {"ics": records(l2, cos)}} for key, (l2, cos) in values.items()}


@pytest.mark.parametrize("bn_l2,expected", [(1.0, "reproduced"), (5.0, "partly"), (0.1, "not reproduced"),
                                            (float("nan"), "inconclusive")])
def test_vgg_claim_is_graded_against_the_papers_figure(bn_l2, expected):
    """The paper's own Figure 3 (layer #5, LR 0.1) shows BN's ||G - G'|| similar to Standard's (x1.11 from step
    1.3k, where its Standard reaches 50% training accuracy)."""
    from bnlib.claims import ics as ics_claims

    runs = _fake_runs({("none", 0.1): (1.0, 0.9), ("batch", 0.1): (bn_l2, 0.5)}, (5, 10))
    (result,) = ics_claims.vgg_claims({0: runs, 1: runs}, lrs=(0.1,))
    assert result.paper == pytest.approx(1.106, abs=0.01) and result.paper_vs_text == "yes"
    assert result.ours == [pytest.approx(bn_l2, nan_ok=True)] * 2 and result.verdict == expected


@pytest.mark.parametrize("bn_cos,expected", [(-0.3, "reproduced"), (0.9, "not reproduced")])
def test_dln_claim_verdicts(bn_cos, expected):
    """At LR 1e-7 the paper's Standard cos is ~1 and BN's far lower (gap ~1.1)."""
    from bnlib.claims import ics as ics_claims

    runs = _fake_runs({("none", 1e-7): (1.0, 1.0), ("batch", 1e-7): (5.0, bn_cos)}, (9, 17))
    (result,) = ics_claims.dln_claims({0: runs, 1: runs}, lrs=(1e-7,))
    assert result.paper == pytest.approx(1.1, abs=0.05) and result.verdict == expected


def test_too_few_measurements_are_inconclusive():
    from bnlib.claims import ics as ics_claims
    from bnlib.stats import MIN_POINTS

    runs = _fake_runs({("none", 1e-6): (1.0, 1.0), ("batch", 1e-6): (5.0, 0.0)}, (9, 17))
    for h in runs.values():
        h["probes"]["ics"] = h["probes"]["ics"][:MIN_POINTS - 1]
    assert ics_claims.dln_claims({0: runs}, lrs=(1e-6,))[0].verdict == "inconclusive"


def test_figures_draw_from_real_runs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnlib.plots import ics as ics_plots
    from bnlib.probes.activations import ActivationProbe

    runs = {}
    for norm in ("none", "batch"):
        config = RunConfig(model="dln", norm=norm, lr=1e-3, steps=6, dln_points=40, dln_depth=5, dln_dim=4,
                           eval_every=3)
        runs[(norm, 1e-3)] = train(config, [ics.ICSProbe(2, [2, 4]), ActivationProbe(2, [1, 3])], device="cpu",
                                   progress=False)
    fig = ics_plots.fig3_dln({0: runs}, layers=(2, 4))
    assert len(fig.axes) == 5 and fig.axes[1].get_yscale() == "log" and len(fig.axes[2].lines) >= 2
    fig9 = ics_plots.fig9(runs, 7, lr=1e-3, layers=(1, 3))
    assert len(fig9.axes) == 4 and "seed 7" in fig9._suptitle.get_text()
    with pytest.raises(ValueError, match="no DLN runs at lr"):
        ics_plots.fig9(runs, 0, lr=0.5)
    with pytest.raises(ValueError, match="keyed by seed"):
        ics_plots.fig3_dln(runs, layers=(2, 4))  # one seed's runs, not {seed: runs}
    plt.close("all")


def _seeded_runs(l2: list[float], acc: list[float]) -> dict:
    """One seed's VGG runs: Standard with ||G - G'|| = l2[i] (cos = l2[i] / 10) and training accuracy acc[i] at
    step 10 * i; BN at a tenth of Standard's l2 (one fixed value per step, so every seed's curve is known)."""
    def history(scale: float) -> dict:
        records = [{"step": 10 * i, "layers": [5, 10], "l2": [scale * v] * 2, "cos": [v / 10] * 2,
                    "g_norm": [1.0] * 2, "gp_norm": [1.0] * 2} for i, v in enumerate(l2)]
        evals = [{"step": 10 * i, "train_acc": a} for i, a in enumerate(acc)]
        return {"config": {"model": "vgg", "steps": 10 * len(l2)}, "evals": evals, "probes": {"ics": records}}

    return {("none", 0.1): history(1.0), ("batch", 0.1): history(0.1)}


def _band(ax, colour) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, lowest, highest) of the one shaded band drawn in `colour` on `ax`."""
    from matplotlib.colors import to_rgb

    (band,) = [c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3], to_rgb(colour))]
    xy = band.get_paths()[0].vertices
    xs = np.unique(xy[:, 0])
    return xs, np.array([xy[xy[:, 0] == x, 1].min() for x in xs]), np.array([xy[xy[:, 0] == x, 1].max() for x in xs])


def test_fig3_draws_the_mean_and_band_of_every_seed_not_the_first():
    """Two seeds whose curves cross: the line is their mean and the band their per-step min and max, so a
    figure that drew only the first seed (or the first seed as the band's edge) fails here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnlib.plots import ics as ics_plots
    from bnlib.plots.distributions import COLOURS

    l2 = {0: [1.0, 4.0, 2.0, 8.0], 1: [3.0, 2.0, 6.0, 4.0]}  # seed 0 is lower at some steps, higher at others
    acc = {0: [0.1, 0.5, 0.3, 0.9], 1: [0.2, 0.3, 0.7, 0.6]}
    runs = {seed: _seeded_runs(l2[seed], acc[seed]) for seed in (0, 1)}
    fig = ics_plots.fig3_vgg(runs, layers=(5, 10), paper_data=False)
    progress, ax_l2, ax_cos = fig.axes[:3]
    steps = np.array([0, 10, 20, 30])
    for ax, per_seed in ((progress, {s: 100 * np.array(v) for s, v in acc.items()}),
                         (ax_l2, {s: np.array(v) for s, v in l2.items()}),
                         (ax_cos, {s: np.array(v) / 10 for s, v in l2.items()})):
        values = np.stack([per_seed[0], per_seed[1]])
        (line,) = [ln for ln in ax.lines if ln.get_label().startswith("Standard (")]
        assert line.get_label() == "Standard (mean of 2 seeds)"
        assert np.allclose(line.get_xdata(), steps) and np.allclose(line.get_ydata(), values.mean(axis=0))
        x, low, high = _band(ax, COLOURS["none"])
        assert np.allclose(x, steps) and np.allclose(low, values.min(axis=0)) and np.allclose(high, values.max(axis=0))
    _, low, high = _band(ax_l2, COLOURS["batch"])  # BN's band too: a tenth of Standard's
    assert np.allclose(low, 0.1 * np.minimum(l2[0], l2[1])) and np.allclose(high, 0.1 * np.maximum(l2[0], l2[1]))
    assert any("mean of 2 seeds" in t.get_text() for t in fig.texts)  # the caption says how seeds are drawn

    one = ics_plots.fig3_vgg({1: runs[1]}, layers=(5, 10), paper_data=False)  # one seed: its line, no band
    (line,) = [ln for ln in one.axes[1].lines if ln.get_label() == "Standard"]
    assert np.allclose(line.get_ydata(), l2[1]) and not one.axes[1].collections and not one.texts
    plt.close("all")


def test_medians_table_gives_the_mean_and_range_over_seeds():
    from bnlib.experiments import ics as experiment

    runs = {seed: _seeded_runs(v, [0.1] * 4) for seed, v in {0: [1.0, 4.0, 2.0, 8.0], 1: [3.0, 2.0, 6.0, 4.0]}.items()}
    rows = experiment.medians_table(runs, (5,), label=str.upper)
    assert [(r["network"], r["LR"], r["layer"]) for r in rows] == [("BATCH", "0.1", "#5"), ("NONE", "0.1", "#5")]
    # Standard's median l2: seed 0 -> 3, seed 1 -> 3.5
    assert rows[1]["‖G − G′‖"] == "3.25 [3, 3.5]" and rows[1]["‖G‖"] == "1 [1, 1]"
    assert experiment.medians_table({0: runs[0]}, (5,))[1]["‖G − G′‖"] == "3"
    assert stats.across_seeds([1.0, float("nan"), 3.0]) == "2 [1, 3] (1 of 3 seeds nan)"
    assert stats.across_seeds([float("nan")]) == "nan"
    assert report.seeds_caption((0,)) == "Seed 0."
    assert report.seeds_caption((0, 2)).startswith("Seeds 0, 2: each number is their mean [lowest, highest]")
    with pytest.raises(ValueError, match="at least one seed"):
        experiment.medians_table({}, (5,))
