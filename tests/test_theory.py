import math

import numpy as np
import pytest
import torch

from bnlib import theory
from bnlib.claims import theory as theory_claims


@pytest.fixture(scope="module")
def draws():
    return theory.sample(ms=(3, 8, 32), draws=10, seed=0)


def test_batch_norm_matches_torch_in_training_mode():
    y = torch.randn(16, 5, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(5, eps=1e-5, affine=False).double().train()
    z, y_hat, _ = theory.batch_norm(y, torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64),
                                    theory.Convention("torch", eps=1e-5))
    assert torch.allclose(z, bn(y), atol=1e-12)
    # the analysis' convention: ||y_hat_j||^2 = m exactly
    _, y_hat, _ = theory.batch_norm(y, torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(y_hat.pow(2).sum(0), torch.full((5,), 16.0, dtype=torch.float64), atol=1e-10)


def test_gradient_is_a_projection_of_the_standard_gradient(draws):
    """The corrected Theorem 4.1 (1/m) is an identity to 1e-10 in float64."""
    gap = np.abs(draws["lhs41"] - draws["rhs41_m"]) / draws["scale41"]
    assert gap.max() < 1e-10


def test_printed_theorem41_is_violated_for_m_at_least_2(draws):
    """The printed 1/sqrt(m) form subtracts more than the exact value: it fails on every draw."""
    ok = theory.holds(draws["lhs41"], draws["rhs41_sqrt"], draws["scale41"])
    assert not ok.any()
    summary = theory.theorem41(draws)
    assert summary["printed_1_over_sqrt_m"]["frac_holds"] == 0.0
    assert summary["corrected_1_over_m"]["equality"]


def test_theorem42_holds_with_equality(draws):
    summary = theory.theorem42(draws)
    assert summary["frac_holds"] == 1.0 and summary["equality"]


def test_a_deliberately_wrong_bound_is_detected(draws):
    """Tighten the true bound by 1% of its size: the checker must call it violated."""
    wrong = draws["rhs41_m"] - 0.01 * draws["scale41"]
    summary = theory.inequality_summary(draws["lhs41"], wrong, draws["scale41"])
    assert summary["frac_holds"] == 0.0 and summary["worst_slack"] < -0.005
    # and a bound that is loose holds, without being an equality
    loose = theory.inequality_summary(draws["lhs41"], draws["rhs41_m"] + 0.01 * draws["scale41"], draws["scale41"])
    assert loose["frac_holds"] == 1.0 and not loose["equality"]


def test_autograd_gradient_against_the_closed_form():
    gen = torch.Generator().manual_seed(3)
    p = theory.random_problem(10, gen)
    y = (p.x @ p.w.T).detach().requires_grad_(True)
    z, y_hat, sigma = theory.batch_norm(y, p.gamma, p.beta)
    (grad_y,) = torch.autograd.grad(p.loss(z), y)
    zd = z.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(p.loss(zd), zd)
    m = 10
    yh = y_hat[:, 0].detach()
    proj = torch.eye(m, dtype=torch.float64) - torch.ones(m, m, dtype=torch.float64) / m - torch.outer(yh, yh) / m
    expected = p.gamma[0] / sigma[0].detach() * proj @ g[:, 0]
    assert torch.allclose(grad_y[:, 0], expected, atol=1e-10)
    assert torch.allclose(proj @ proj, proj, atol=1e-10)  # an orthogonal projection


def test_eps_breaks_the_identity_but_not_the_corrected_inequality():
    data = theory.sample(ms=(4, 16), draws=5, seed=1, conv=theory.Convention("eps", eps=1e-2))
    s = theory.theorem41(data)["corrected_1_over_m"]
    assert s["frac_holds"] == 1.0 and not s["equality"]


def test_observation43_and_lemma45():
    obs = theory.observation43(draws=20)
    assert obs["holds"]
    lem = theory.lemma45(draws=60)
    assert lem["ray"]["equality"] and lem["ray"]["frac_holds"] == 1.0
    assert lem["per_unit"]["frac_holds"] == 1.0
    assert lem["max_rel_loss_change_under_rescaling"] < 1e-10
    # without <W0, W*> > 0 the construction gives no guarantee: the bound fails there
    assert lem["negative_inner_ray_holds"] < 1.0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="batch size m"):
        theory.random_problem(1, torch.Generator())
    with pytest.raises(ValueError, match="draws"):
        theory.run_all(draws=0)


def test_claims_are_computed():
    results = theory_claims.claims(5, 3)
    by_id = {r.id: r for r in results}
    assert by_id["thm41-printed"].verdict == "not reproduced"
    assert by_id["thm41-corrected"].verdict == "reproduced"
    assert by_id["thm42"].verdict == "reproduced"
    assert all(not math.isnan(float(r.details.get("n", 0))) for r in results)
    assert all(r.paper is None and r.seeds == [3] and len(r.ours) == 1 for r in results)
