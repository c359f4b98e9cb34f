"""Hessian eigenvalues by Lanczos on double-backward HVPs, checked against a finite-difference Hessian."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bnlib.losses import cross_entropy, sum_squared_error
from bnlib.models import DLN, VGG
from bnlib.probes.base import StepContext, rng_state, set_rng_state
from bnlib.probes.hessian import (
    MAX_ITERS,
    HessianProbe,
    finite_difference_hessian,
    hessian_series,
    lanczos,
    top_eigenvalue,
)
from bnlib.train import train


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def _flat_grad(model: nn.Module, loss_fn, x, y, rng) -> torch.Tensor:
    """First-order gradient only (no double backward)."""
    if rng:
        set_rng_state(rng)
    loss = loss_fn(model, x, y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, _params(model))])


def _mlp_bn() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def _case(name: str):
    torch.manual_seed(1)
    if name.startswith("dln"):
        model = DLN(name.split("-")[1], depth=3, dim=3).double()
        x = torch.randn(16, 3, dtype=torch.float64)
        return model, sum_squared_error, x, x @ torch.randn(3, 3, dtype=torch.float64)
    model = _mlp_bn().double()
    return model, cross_entropy, torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))


@pytest.mark.parametrize("name", ["dln-none", "dln-batch", "dln-noisy", "mlp-bn"])
def test_lanczos_matches_full_hessian(name):
    model, loss_fn, x, y = _case(name)
    model.train()
    rng = rng_state()
    eig = np.linalg.eigvalsh(finite_difference_hessian(model, loss_fn, x, y, rng))
    n = sum(p.numel() for p in _params(model))
    out = lanczos(model, loss_fn, x, y, iters=n, tol=0.0, seed=3, rng=rng)
    scale = np.abs(eig).max()
    assert abs(out["top_eig"] - eig[-1]) <= 1e-5 * scale
    assert abs(out["min_eig"] - eig[0]) <= 1e-5 * scale
    assert top_eigenvalue(model, loss_fn, x, y, iters=n, tol=0.0, rng=rng) == pytest.approx(eig[-1], abs=1e-5 * scale)
    # a handful of products already gets the spectral norm to within a few percent here
    few = lanczos(model, loss_fn, x, y, iters=12, tol=0.0, seed=3, rng=rng)
    assert max(abs(few["top_eig"]), abs(few["min_eig"])) == pytest.approx(scale, rel=0.05)


def _ritz_by_loop(model, loss_fn, x, y, iters: int, seed: int) -> list[float]:
    """Textbook Lanczos: Hessian columns from first-order gradients, one vector subtracted at a time."""
    hess = torch.from_numpy(finite_difference_hessian(model, loss_fn, x, y))
    v = torch.randn(hess.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    basis, alphas, betas, tops = [v / v.norm()], [], [], []
    for _ in range(iters):
        w = hess @ basis[-1]
        alphas.append(float(w @ basis[-1]))
        for _ in range(2):
            for b in basis:
                w = w - (w @ b) * b
        tops.append(float(np.linalg.eigvalsh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))[-1]))
        betas.append(float(w.norm()))
        basis.append(w / betas[-1])
    return tops


def test_matrix_reorthogonalisation_follows_the_textbook_loop():
    """The preallocated basis and matrix-product reorthogonalisation give the Ritz values of the
    vector-by-vector loop after every product (not only at convergence)."""
    model, loss_fn, x, y = _case("mlp-bn")
    model.train()
    trace: list[float] = []
    lanczos(model, loss_fn, x, y, iters=15, tol=0.0, seed=5, trace=trace)
    assert len(trace) == 15
    np.testing.assert_allclose(trace, _ritz_by_loop(model, loss_fn, x, y, 15, seed=5), rtol=1e-6)


def test_iteration_cap_below_dimension_stops_cleanly():
    model, loss_fn, x, y = _case("mlp-bn")
    model.train()
    out = lanczos(model, loss_fn, x, y, iters=4, tol=0.0)
    assert out["iters"] == 4 and not out["converged"]


@pytest.mark.parametrize("name", ["dln-none", "mlp-bn"])
def test_top_only_stopping_rule_bounds_the_error(name):
    """which="top" stops on the top Ritz pair's residual alone: no later than "both", and the top
    eigenvalue is then within tol x spectral norm of the full Hessian's (the residual bounds the error)."""
    model, loss_fn, x, y = _case(name)
    model.train()
    rng = rng_state()
    eig = np.linalg.eigvalsh(finite_difference_hessian(model, loss_fn, x, y, rng))
    n = sum(p.numel() for p in _params(model))
    trace: list[float] = []
    top = lanczos(model, loss_fn, x, y, iters=n, tol=1e-3, seed=3, rng=rng, which="top", trace=trace)
    both = lanczos(model, loss_fn, x, y, iters=n, tol=1e-3, seed=3, rng=rng)
    assert top["iters"] <= both["iters"] and top["rel_residual"] <= 1e-3
    assert len(trace) == top["iters"] and trace[-1] == top["top_eig"]
    assert abs(top["top_eig"] - eig[-1]) <= 1e-3 * np.abs(eig).max()
    with pytest.raises(ValueError, match="which must be 'both' or 'top'"):
        lanczos(model, loss_fn, x, y, which="bottom")


def test_hvp_matches_finite_differences_on_conv_bn():
    """Tiny VGG with BN: H v along random unit directions equals the difference quotient of gradients.

    The step is tiny (1e-7 in float64) so that no ReLU or max-pool switches inside it."""
    torch.manual_seed(0)
    model = VGG("batch", width=1 / 64, in_channels=1).double().train()
    x, y = torch.randn(6, 1, 32, 32, dtype=torch.float64), torch.randint(0, 10, (6,))
    params = _params(model)
    loss = cross_entropy(model, x, y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    for k in range(2):
        v = torch.randn(len(flat), generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        v = v / v.norm()
        vs = list(torch.split(v, [p.numel() for p in params]))
        hv = torch.cat([t.reshape(-1) for t in torch.autograd.grad(
            grads, params, grad_outputs=[t.view(p.shape) for t, p in zip(vs, params, strict=True)],
            retain_graph=True)])
        fd = []
        for sign in (1, -1):
            m = copy.deepcopy(model)
            torch.nn.utils.vector_to_parameters(flat + sign * 1e-7 * v, _params(m))
            fd.append(_flat_grad(m, cross_entropy, x, y, None))
        fd = (fd[0] - fd[1]) / 2e-7
        assert torch.allclose(hv, fd, rtol=1e-4, atol=1e-6 * float(fd.abs().max()))


def _hessian_by_unit_hvps(model: nn.Module, loss_fn, x, y) -> np.ndarray:
    """The full Hessian, column by column: H e_i by double backward (the product the HVP test checks
    against finite differences on this very architecture). float32 convs are fast; float64 ones are not."""
    params = _params(model)
    grads = torch.autograd.grad(loss_fn(model, x, y), params, create_graph=True)
    n = sum(p.numel() for p in params)
    cols = []
    for i in range(n):
        e = torch.zeros(n)
        e[i] = 1.0
        vs = [t.view(p.shape) for t, p in zip(torch.split(e, [p.numel() for p in params]), params, strict=True)]
        cols.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(grads, params, vs, retain_graph=True)]))
    hess = torch.stack(cols, 1).double().numpy()
    return (hess + hess.T) / 2


def test_probe_iterates_until_both_ends_meet_its_tolerance_on_a_tiny_vgg():
    """Issue 16: 8 products left the VGG's smallest eigenvalue far off. The probe now runs Lanczos until
    both ends' residuals are below tol (cap: MAX_ITERS), records them, and then matches the full Hessian."""
    torch.manual_seed(0)
    model = VGG("batch", width=1 / 512, in_channels=1).train()  # 176 parameters
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    eig = np.linalg.eigvalsh(_hessian_by_unit_hvps(model, cross_entropy, x, y))
    scale = np.abs(eig).max()
    probe = HessianProbe(every=1)
    assert probe.iters == MAX_ITERS and probe.tol == 1e-2
    loss = cross_entropy(model, x, y)
    out = probe.measure(StepContext(model, x, y, loss.detach(), cross_entropy, 0.1, 0, rng_state()))
    assert out["converged"] and out["iters"] < MAX_ITERS
    assert out["top_residual"] <= probe.tol and out["min_residual"] <= probe.tol
    assert abs(out["min_eig"] - eig[0]) <= probe.tol * scale
    assert abs(out["top_eig"] - eig[-1]) <= probe.tol * scale
    capped = lanczos(model, cross_entropy, x, y, iters=3, tol=probe.tol)
    assert not capped["converged"] and capped["rel_residual"] > probe.tol  # a cap that stops it early says so


def test_model_untouched():
    torch.manual_seed(0)
    model = VGG("noisy", width=1 / 16, in_channels=1).train()
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    cross_entropy(model, x, y).backward()
    before = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    rng = rng_state()
    lanczos(model, cross_entropy, x, y, iters=3, rng=rng)
    assert all(torch.equal(a, b) for a, b in zip(before.values(), model.state_dict().values(), strict=True))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    assert torch.equal(torch.get_rng_state(), rng["cpu"])
    assert model.training


def test_probe_leaves_run_identical(tiny_vgg):
    cfg = tiny_vgg.replace(norm="noisy")
    plain = train(cfg, [], progress=False)
    probed = train(cfg, [HessianProbe(5, iters=3)], progress=False)
    assert torch.equal(plain["step_loss"], probed["step_loss"])
    assert plain["evals"] == probed["evals"]
    series = hessian_series(probed)
    assert list(series["steps"]) == [0, 5, 10]
    assert np.all(series["beta"] >= np.abs(series["top_eig"]))
    assert np.all(series["iters"] <= 3)
    assert set(series) >= {"top_residual", "min_residual", "converged"}


def test_bad_input():
    with pytest.raises(ValueError, match="iters"):
        HessianProbe(5, iters=0)
    with pytest.raises(ValueError, match="tol"):
        HessianProbe(5, tol=-1.0)
    with pytest.raises(ValueError, match="hessian"):
        hessian_series({"probes": {}})
