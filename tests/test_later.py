"""Chapter 7's parts: the new networks, the Hessian probe's top-k and running statistics against direct
computations, the "trains" rule, the gradients at initialisation and the graders on hand-made records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnlib import book, runs
from bnlib.checks import BadParameter
from bnlib.claims import later as claims
from bnlib.experiments import later
from bnlib.losses import cross_entropy
from bnlib.models import MLP, VGG, VGG_LAYOUTS
from bnlib.probes.base import StepContext
from bnlib.probes.hessian import HessianProbe, finite_difference_hessian, lanczos, normalise_with_running_statistics
from bnlib.train import RunConfig, train


@pytest.mark.parametrize(("depth", "convs"), [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_vgg_depths_are_vggs_configurations_with_one_classifier(depth, convs):
    model = VGG("batch", width=1 / 16, in_channels=1, depth=depth)
    assert model.num_layers == convs + 1 == depth - 2
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 5
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_vgg16_is_unchanged_by_the_depth_switch():
    torch.manual_seed(0)
    a = VGG("batch", 1 / 16, 1)
    torch.manual_seed(0)
    b = VGG("batch", 1 / 16, 1, depth=16)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert VGG_LAYOUTS[16] == tuple(v for v in VGG_LAYOUTS[16])


@pytest.mark.parametrize(("make", "match"), [
    (lambda: VGG(depth=12), r"VGG depth must be one of \[11, 13, 16, 19\], got 12"),
    (lambda: VGG(depth=16.0), "depth must be an int"),
    (lambda: MLP(depth=1), "depth must be an int >= 2, got 1"),
    (lambda: RunConfig(vgg_depth=17), r"vgg_depth must be one of \[11, 13, 16, 19\], got 17"),
    (lambda: RunConfig(model="mlp", mlp_depth=1), "mlp_depth must be an int"),
    (lambda: RunConfig(model="mlp", mlp_width=0), "mlp_width must be an int"),
    (lambda: RunConfig(model="cnn"), r"unknown model 'cnn' \(str\); allowed: \['vgg', 'dln', 'mlp'\]"),
])
def test_bad_depths_and_widths_are_refused_by_name(make, match):
    with pytest.raises(BadParameter, match=match):
        make()


def test_mlp_layers_are_numbered_and_he_initialised():
    torch.manual_seed(0)
    model = MLP("batch", depth=6, width=256, in_features=1024)
    assert model.num_layers == 6 and model.layer(1).in_features == 1024 and model.layer(6).out_features == 10
    assert isinstance(model.block(3).norm, torch.nn.BatchNorm1d) and isinstance(model.block(6).norm, torch.nn.Identity)
    std = float(model.layer(3).weight.detach().std())
    assert abs(std - math.sqrt(2 / 256)) < 0.05 * math.sqrt(2 / 256)  # He: variance 2 / fan_in, not Glorot's 1 / 256


def test_networks_are_named_by_their_depth_only_off_the_papers():
    assert RunConfig().network == "VGG" and RunConfig(vgg_depth=11).network == "VGG-11"
    assert RunConfig(model="dln").network == "DLN" and RunConfig(model="dln", dln_depth=5).network == "DLN-5"
    assert RunConfig(model="mlp", mlp_depth=16).network == "MLP-16"
    assert runs.describe(RunConfig(vgg_depth=13, steps=10)).startswith("VGG-13 none lr 0.1 seed 0")


def test_an_mlp_trains_on_images_and_records_accuracy(cache):
    config = RunConfig(model="mlp", norm="batch", lr=0.1, steps=12, batch_size=16, dataset="synthetic",
                       n_train=128, n_test=64, eval_every=4, mlp_depth=4, mlp_width=32)
    history = runs.run(config, progress=False)
    assert history["dataset"] == "synthetic" and history["execution"]["channels_last"] is False
    assert torch.isfinite(history["step_loss"]).all() and torch.isfinite(history["step_acc"]).all()
    assert {"train_acc", "test_acc"} <= set(history["evals"][-1])
    assert runs.cached(config) is not None


def _tiny(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    net = MLP("batch", depth=3, width=4, in_features=3, num_classes=3).double().train()
    with torch.no_grad():  # move the running statistics off their initial values
        for _ in range(4):
            net(torch.randn(10, 3, dtype=torch.float64) * 3 + 2)
    return net, torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 3, (10,))


def test_top_k_eigenvalues_match_the_full_hessians():
    net, x, y = _tiny()
    n = sum(p.numel() for p in net.parameters())
    full = np.sort(np.linalg.eigvalsh(finite_difference_hessian(net, cross_entropy, x, y)))[::-1]
    est = lanczos(net, cross_entropy, x, y, iters=n, tol=0.0, top_k=4)
    np.testing.assert_allclose(est["top_eigs"], full[:4], rtol=1e-6)
    assert len(est["top_residuals"]) == 4 and est["top_eig"] == est["top_eigs"][0]


def test_top_k_stops_only_when_all_k_pairs_converged():
    net, x, y = _tiny()
    one = lanczos(net, cross_entropy, x, y, iters=60, tol=1e-6, which="top", top_k=1)
    four = lanczos(net, cross_entropy, x, y, iters=60, tol=1e-6, which="top", top_k=4)
    assert four["converged"] and max(four["top_residuals"]) <= 1e-6
    assert four["iters"] >= one["iters"] and four["iters"] >= 4


def test_rms_eigenvalue_is_the_first_products_norm():
    """||H q|| for the start vector q, against the full Hessian applied to the same q."""
    net, x, y = _tiny()
    hess = finite_difference_hessian(net, cross_entropy, x, y)
    q = torch.randn(hess.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    q /= np.linalg.norm(q)
    got = lanczos(net, cross_entropy, x, y, iters=2, tol=0.0, seed=3)["rms_eig"]
    assert got == pytest.approx(np.linalg.norm(hess @ q), rel=1e-6)


def test_running_statistics_hessian_is_the_frozen_statistics_loss_hessian():
    """The probe with statistics="running" against the Hessian of the loss written out by hand with the running
    mean and variance as constants; with batch statistics it differs (the test can fail both ways)."""
    net, x, y = _tiny()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    bn = net.block(1).norm

    def frozen(w: torch.Tensor) -> torch.Tensor:
        parts = dict(zip([n for n, _ in net.named_parameters()],
                         torch.split(w, [p.numel() for p in net.parameters()]), strict=True))
        shape = {n: p.shape for n, p in net.named_parameters()}
        p = {n: t.view(shape[n]) for n, t in parts.items()}
        h = x
        for k in (1, 2):
            h = h @ p[f"blocks.{k - 1}.layer{'.1' if k == 1 else ''}.weight"].T + p[
                f"blocks.{k - 1}.layer{'.1' if k == 1 else ''}.bias"]
            norm = net.block(k).norm
            h = (h - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
            h = torch.relu(h * p[f"blocks.{k - 1}.norm.weight"] + p[f"blocks.{k - 1}.norm.bias"])
        out = h @ p["blocks.2.layer.weight"].T + p["blocks.2.layer.bias"]
        return torch.nn.functional.cross_entropy(out, y)

    direct = np.linalg.eigvalsh(torch.autograd.functional.hessian(frozen, flat).numpy())
    ctx = StepContext(net, x, y, torch.tensor(0.0), cross_entropy, 0.1, 0)
    n = len(flat)
    running = HessianProbe(1, iters=n, tol=0.0, top_k=2, statistics="running").measure(ctx)
    batch = HessianProbe(1, iters=n, tol=0.0, top_k=2).measure(ctx)
    np.testing.assert_allclose(running["top_eigs"], direct[::-1][:2], rtol=1e-8)
    assert running["min_eig"] == pytest.approx(direct[0], rel=1e-8)
    assert abs(batch["top_eig"] - direct[-1]) > 1e-3 * abs(direct[-1])
    assert bn.training and net.training  # the probe leaves the model in training mode


def test_running_statistics_mode_touches_only_the_normalisation():
    net = MLP("batch", depth=3, width=4, in_features=3).train()
    normalise_with_running_statistics(net)
    assert [type(m).__name__ for m in net.modules() if not m.training] == ["BatchNorm1d", "BatchNorm1d"]


def test_the_running_probe_has_its_own_name_and_spec():
    batch, running = HessianProbe(10), HessianProbe(10, statistics="running", top_k=5)
    assert (batch.name, running.name) == ("hessian", "hessian_running")
    assert running.spec() == {"name": "hessian_running", "every": 10, "iters": 50, "tol": 1e-2, "seed": 0,
                              "top_k": 5, "statistics": "running"}
    with pytest.raises(BadParameter, match="unknown hessian probe: statistics 'eval'"):
        HessianProbe(10, statistics="eval")
    with pytest.raises(BadParameter, match="top_k must be an int"):
        HessianProbe(10, iters=4, top_k=5)


def _history(losses: list[float]) -> dict:
    return {"step_loss": torch.tensor(losses, dtype=torch.float32)}


def test_trains_needs_a_finite_tail_below_three_quarters_of_the_first_loss():
    assert later.trains(_history([4.0] + [2.9] * 19))
    assert not later.trains(_history([4.0] + [3.1] * 19))  # below the initial loss, not by a quarter
    assert not later.trains(_history([4.0] + [1.0] * 18 + [float("nan")]))  # diverged at the end
    assert not later.trains(_history([float("nan")] * 20))
    assert later.largest_trained({0.1: _history([4, 1] * 10), 1.0: _history([4, 1] * 9 + [4, 3.5]),
                                  0.3: _history([4] + [2] * 19)}) == 0.3
    assert math.isnan(later.largest_trained({0.1: _history([4.0] * 20)}))


def test_explosion_reads_the_second_over_the_last_hidden_layer():
    assert later.explosion(np.array([9.0, 8.0, 4.0, 2.0, 7.0])) == 4.0


def test_init_gradients_are_one_norm_per_layer_and_seeded():
    a = later.init_gradients("batch", 5, seed=1, dataset="synthetic", batch_size=16, width=8)
    b = later.init_gradients("batch", 5, seed=1, dataset="synthetic", batch_size=16, width=8)
    c = later.init_gradients("batch", 5, seed=2, dataset="synthetic", batch_size=16, width=8)
    assert a.shape == (5,) and (a > 0).all() and np.array_equal(a, b) and not np.array_equal(a, c)


def _hessian_records(steps, tops, rms, name="hessian"):
    return {name: [{"step": s, "top_eig": t, "min_eig": -1.0, "iters": 10, "rel_residual": 0.0, "rms_eig": r,
                    "top_eigs": [t, t / 2], "top_residuals": [0.0, 0.0], "converged": True}
                   for s, t, r in zip(steps, tops, rms, strict=True)]}


def test_outlier_claims_read_top_over_rms_at_the_running_probes_steps():
    steps = [0, 225, 450, 675, 900]
    std = {"probes": _hessian_records(steps, [99, 8, 8, 8, 8], [1, 1, 1, 1, 1])}
    bn = {"probes": {**_hessian_records(steps, [99, 2, 2, 2, 2], [1, 1, 1, 1, 1]),
                     **_hessian_records([0, 450, 900], [99, 30, 30], [1, 2, 2], "hessian_running")}}
    runs_ = {s: {"Standard": std, "+BN": bn} for s in (0, 1, 2)}
    values = claims.outlier_values(runs_[0])
    assert values == {"Standard": 8.0, "+BN (batch statistics)": 2.0, "+BN (running statistics)": 15.0}
    standard, running = claims.outlier_claims(runs_)
    assert standard.ours == [4.0] * 3 and running.ours == [7.5] * 3
    assert standard.verdict == running.verdict == "reproduced"


def test_lr_claims_compare_the_deepest_networks_largest_rates():
    def grid(largest_std, largest_bn):
        out = {}
        for model, depths, lrs in (("mlp", later.LR_DEPTHS, later.MLP_LRS), ("dln", later.DLN_DEPTHS, later.DLN_LRS)):
            for d in depths:
                for label, top in (("Standard", largest_std[model]), ("+BN", largest_bn[model])):
                    for lr in lrs:
                        out[model, d, label, lr] = _history([4.0] + [1.0 if lr <= top else 4.0] * 9)
        return out

    same = {s: grid({"mlp": 0.1, "dln": 1e-5}, {"mlp": 0.1, "dln": 1e-4}) for s in (0, 1, 2)}
    mlp, dln = claims.lr_claims(same)
    assert mlp.ours == [1.0] * 3 and mlp.verdict == "not reproduced"
    assert dln.ours == pytest.approx([10.0] * 3) and dln.verdict == "reproduced"


def test_init_claim_is_bn_over_standard_growth_at_the_deepest():
    table = {(label, d, s): np.array([1.0, g, 1.0, 1.0]) for s in (0, 1) for d in (4, 8)
             for label, g in (("Standard", 1.5), ("+BN", 6.0))}
    (result,) = claims.init_claims(table)
    assert result.ours == [4.0, 4.0] and result.verdict == "reproduced"


def test_the_chapter_is_registered_between_the_theory_and_the_overlays():
    assert [c.notebook for c in book.CHAPTERS.values()][5:8] == ["06_theory_checks", "07_later_work",
                                                                 "08_paper_vs_ours"]
    setup = book.common("smoke", "synthetic")
    planned = book.CHAPTERS[7].planned(setup)
    networks = {config.network for config, _ in planned}
    assert {"VGG-11", "VGG-13", "VGG", "DLN-5", "DLN", "DLN-50", "MLP-4", "MLP-16", "MLP-48"} == networks
    keys = {runs.run_key(c, p) for c, p in book.book_plan(setup)}
    assert {runs.run_key(c, p) for c, p in planned} <= keys


def test_the_canonical_bn_vgg_carries_the_running_hessian_and_standard_does_not():
    from bnlib.experiments.landscape import vgg_plan
    plan = vgg_plan(book.common("cpu", "synthetic").profile, "synthetic")
    names = {label: [p.name for p in probes] for label, (_, probes) in plan.items()}
    assert "hessian_running" in names["+BN"] and "hessian_running" not in names["Standard"]
    hessian = next(p for p in plan["Standard"][1] if p.name == "hessian")
    running = next(p for p in plan["+BN"][1] if p.name == "hessian_running")
    assert hessian.top_k == running.top_k == 5 and running.every == 2 * hessian.every


def test_training_an_mlp_is_not_changed_by_the_running_probe(tiny_vgg):
    """A probe never changes the trajectory: the running-statistics Hessian puts BatchNorm in evaluation mode while
    it measures, and the training run goes on bitwise as without it."""
    config = RunConfig(model="mlp", norm="batch", lr=0.1, steps=6, batch_size=16, dataset="synthetic", n_train=64,
                       n_test=32, eval_every=3, mlp_depth=3, mlp_width=8)
    plain = train(config, progress=False)
    probed = train(config, [HessianProbe(2, iters=5, statistics="running")], progress=False)
    assert torch.equal(plain["step_loss"], probed["step_loss"]) and len(probed["probes"]["hessian_running"]) == 3
